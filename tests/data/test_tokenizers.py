import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import (
    EOS_TOKEN,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
    train_tokenizer,
)


def test_tokenizers_satisfy_the_protocol(char_tokenizer, bpe_tokenizer):
    for tokenizer, kind in ((char_tokenizer, "char"), (bpe_tokenizer, "bpe")):
        assert isinstance(tokenizer, Tokenizer)
        assert tokenizer.kind == kind
        ids = tokenizer.encode("def f(x):\n    return x")
        assert ids.dtype == np.int32 and ids.ndim == 1
        assert 0 <= ids.min() and ids.max() < tokenizer.vocab_size
    assert char_tokenizer.eos_id is None
    assert bpe_tokenizer.decode([bpe_tokenizer.eos_id]) == EOS_TOKEN


def test_char_vocabulary_is_the_sorted_alphabet():
    tokenizer = CharTokenizer.train(["cab", "bca"])
    assert tokenizer.alphabet == "\nabc"  # "\n" joins documents, so it is always in
    assert tokenizer.vocab_size == 4
    np.testing.assert_array_equal(tokenizer.encode("abc\n"), [1, 2, 3, 0])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_char_round_trips_the_corpus_alphabet(char_tokenizer, data):
    text = data.draw(st.text(alphabet=char_tokenizer.alphabet))
    ids = char_tokenizer.encode(text)
    assert len(ids) == len(text)
    assert char_tokenizer.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(text=st.text())
def test_char_round_trips_any_text_it_was_trained_on(text):
    tokenizer = CharTokenizer.train([text])
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_char_unknown_character_error_names_it(char_tokenizer):
    with pytest.raises(ValueError) as info:
        char_tokenizer.encode("abc \u4e2d\U0001f600 x")
    message = str(info.value)
    assert "'\u4e2d'" in message and "'\U0001f600'" in message
    assert "position 4" in message and "bpe" in message


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_bpe_round_trips_arbitrary_unicode(bpe_tokenizer, text):
    assert bpe_tokenizer.decode(bpe_tokenizer.encode(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        " leading space",
        "  two leading spaces\n\n\ttab",
        "\x00\x01\x1b[0m\x7f control",
        "e\u0301 combining, \u00e9 composed",
        "emoji \U0001f600\U0001f469\u200d\U0001f4bb flags \U0001f1eb\U0001f1f7",
        "\r\n windows \r newline \u2028 separator",
        f"text {EOS_TOKEN} inside",
        "\ufeffbom \ufffd replacement",
    ],
)
def test_bpe_round_trips_tricky_strings(bpe_tokenizer, text):
    assert bpe_tokenizer.decode(bpe_tokenizer.encode(text)) == text


def test_bpe_rejects_lone_surrogates_with_position(bpe_tokenizer):
    with pytest.raises(UnicodeEncodeError, match="position 2"):
        bpe_tokenizer.encode("ab\ud800")


def test_bpe_compresses_and_uses_full_vocab(bpe_tokenizer, pydoc_docs):
    assert bpe_tokenizer.vocab_size == 512
    assert bpe_tokenizer.eos_id == 0
    text = pydoc_docs[0]
    assert len(bpe_tokenizer.encode(text)) < 0.6 * len(text)


def test_bpe_training_is_deterministic(pydoc_docs):
    first = BPETokenizer.train(pydoc_docs[:20], vocab_size=400)
    second = BPETokenizer.train(pydoc_docs[:20], vocab_size=400)
    assert first.fingerprint() == second.fingerprint()
    assert first.to_dict() == second.to_dict()


@pytest.mark.parametrize("name", ["char_tokenizer", "bpe_tokenizer", "wordpiece_tokenizer"])
def test_save_load_round_trip_keeps_fingerprint(name, request, tmp_path):
    tokenizer = request.getfixturevalue(name)
    path = tmp_path / "sub" / "tokenizer.json"
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert loaded.fingerprint() == tokenizer.fingerprint()
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.eos_id == tokenizer.eos_id
    text = "Hello, world!\n  (x) = 1"
    np.testing.assert_array_equal(loaded.encode(text), tokenizer.encode(text))
    assert json.loads(path.read_text(encoding="utf-8"))["kind"] == tokenizer.kind


def test_fingerprints_differ_between_tokenizers(char_tokenizer, bpe_tokenizer, pydoc_docs):
    fingerprints = {
        char_tokenizer.fingerprint(),
        bpe_tokenizer.fingerprint(),
        CharTokenizer.train(["abc"]).fingerprint(),
        BPETokenizer.train(pydoc_docs[:20], vocab_size=300).fingerprint(),
    }
    assert len(fingerprints) == 4
    assert all(len(f) == 64 for f in fingerprints)


def test_load_tokenizer_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_tokenizer(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"kind": "char", "alphabet": ["ab"]}',
        '{"kind": "bpe", "hf_tokenizer": {"model": 3}}',
        '{"kind": "wordpiece"}',
        '{"alphabet": ["a"]}',
        "[]",
    ],
)
def test_load_tokenizer_corrupt_file(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="not a readable jaxllm tokenizer file"):
        load_tokenizer(path)


def test_load_tokenizer_truncated_file(bpe_tokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    bpe_tokenizer.save(path)
    path.write_text(path.read_text(encoding="utf-8")[:1000], encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(path)


def test_train_tokenizer_dispatch_and_errors():
    assert train_tokenizer("char", ["ab"]).kind == "char"
    assert train_tokenizer("bpe", ["ab ab ab"] * 3, vocab_size=300).kind == "bpe"
    assert train_tokenizer("wordpiece", ["ab ab ab"] * 3, vocab_size=30).kind == "wordpiece"
    with pytest.raises(ValueError, match="char, bpe, wordpiece"):
        train_tokenizer("unigram", ["ab"])
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer("char", ["ab"], vocab_size=100)
    with pytest.raises(ValueError, match=">= 257"):
        train_tokenizer("bpe", ["ab"], vocab_size=256)


@pytest.mark.parametrize("name", ["char_tokenizer", "bpe_tokenizer", "wordpiece_tokenizer"])
def test_decode_rejects_out_of_vocab_ids(name, request):
    tokenizer = request.getfixturevalue(name)
    with pytest.raises(ValueError, match=rf"id {tokenizer.vocab_size} at position 1"):
        tokenizer.decode([0, tokenizer.vocab_size])
    with pytest.raises(ValueError, match="id -1 at position 0"):
        tokenizer.decode(np.array([-1, 0]))
    assert tokenizer.decode([]) == ""
