import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import EmptyCorpusError, clean_corpus, deduplicate, normalize_text

# Text rich in the characters normalisation touches: whitespace of every kind,
# combining marks, compatibility characters.
messy_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" \t\n\r\x0b\x0c\u00a0\u2003\u2028\u3000ae\u0301\u00b4\ufb01\u1e9b")),
        st.characters(),
    )
)


@pytest.mark.parametrize("form", ["NFC", "NFD", "NFKC", "NFKD"])
@settings(max_examples=200, deadline=None)
@given(text=messy_text)
def test_normalize_text_is_idempotent(form, text):
    once = normalize_text(text, form)
    assert normalize_text(once, form) == once


@settings(max_examples=200, deadline=None)
@given(text=messy_text)
def test_normalized_text_has_canonical_whitespace(text):
    out = normalize_text(text)
    assert "\r" not in out and "\t" not in out and "\u00a0" not in out
    assert "\n\n\n" not in out and "  " not in out and " \n" not in out
    assert out == out.strip()


def test_normalize_text_examples():
    assert normalize_text("  a\t\tb \r\nc\rd\u00a0e  \n\n\n\nf  ") == "a b\nc\nd e\n\nf"
    assert normalize_text("e\u0301") == "\u00e9"
    assert normalize_text("\u00e9", form="NFD") == "e\u0301"
    assert normalize_text("line1\nline2") == "line1\nline2"  # single newlines survive
    with pytest.raises(ValueError, match="NFKC"):
        normalize_text("x", form="nfc")


def test_deduplicate_keeps_first_occurrence_in_order():
    docs = ["b", "a", "b ", "c", "a", "\u00e9", "e\u0301"]
    assert deduplicate(docs) == ["b", "a", "c", "\u00e9"]


def test_clean_corpus_normalises_drops_empty_and_dedupes():
    assert clean_corpus(["  x\t y ", "", "\n \n", "x y", "z"]) == ["x y", "z"]


def test_clean_corpus_of_blank_documents_raises():
    with pytest.raises(EmptyCorpusError, match="empty after cleaning"):
        clean_corpus(["", "  ", "\n\t"])
