import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import split_corpus


def chars(docs):
    return sum(len(doc) for doc in docs)


def test_document_split_is_deterministic_disjoint_and_complete(pydoc_docs):
    train, val, test = split_corpus(pydoc_docs, 0.05, 0.05, seed=0)
    assert (train, val, test) == split_corpus(pydoc_docs, 0.05, 0.05, seed=0)
    assert sorted(train + val + test) == sorted(pydoc_docs)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    total = chars(pydoc_docs)
    for split in (val, test):
        assert split and 0.025 <= chars(split) / total <= 0.10
    assert chars(train) / total > 0.8


def test_document_split_depends_on_the_seed(pydoc_docs):
    assert split_corpus(pydoc_docs, seed=0)[1] != split_corpus(pydoc_docs, seed=1)[1]


def test_one_document_is_split_contiguously_at_line_boundaries():
    text = "".join(f"line {i}\n" for i in range(1000))
    train, val, test = split_corpus([text], val_fraction=0.1, test_fraction=0.1)
    assert [len(split) for split in (train, val, test)] == [1, 1, 1]
    assert train[0] + val[0] + test[0] == text
    assert train[0].endswith("\n") and val[0].endswith("\n")
    assert val[0].startswith("line ") and test[0].startswith("line ")
    assert abs(len(val[0]) / len(text) - 0.1) < 0.01
    assert abs(len(train[0]) / len(text) - 0.8) < 0.01


def test_text_without_newlines_is_cut_by_characters():
    train, val, test = split_corpus(["x" * 100], val_fraction=0.2, test_fraction=0.1)
    assert (len(train[0]), len(val[0]), len(test[0])) == (70, 20, 10)


def test_zero_fractions_give_empty_splits(pydoc_docs):
    train, val, test = split_corpus(pydoc_docs, 0.0, 0.0)
    assert (val, test) == ([], [])
    assert sorted(train) == sorted(pydoc_docs)
    train, val, test = split_corpus(["a\nb\n"], 0.0, 0.0)
    assert (train, val, test) == (["a\nb\n"], [], [])


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction", "message"),
    [
        (-0.1, 0.1, "val_fraction must be"),
        (0.1, float("nan"), "test_fraction must be"),
        (0.5, 0.5, "must be < 1"),
        (0.9, 0.2, "must be < 1"),
    ],
)
def test_bad_fractions_raise(val_fraction, test_fraction, message):
    with pytest.raises(ValueError, match=message):
        split_corpus(["some text\n"] * 10, val_fraction, test_fraction)


def test_corpus_too_small_to_split_raises():
    with pytest.raises(ValueError, match="too small"):
        split_corpus(["ab"], 0.1, 0.1)
    with pytest.raises(ValueError, match="empty list"):
        split_corpus([])


@settings(max_examples=150, deadline=None)
@given(
    docs=st.lists(st.text(alphabet="ab\n", min_size=1, max_size=60), min_size=1, max_size=40),
    val_fraction=st.floats(0.0, 0.3),
    test_fraction=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_covers_every_character_once(docs, val_fraction, test_fraction, seed):
    try:
        train, val, test = split_corpus(docs, val_fraction, test_fraction, seed)
    except ValueError as err:
        assert "too small" in str(err)
        return
    assert (train, val, test) == split_corpus(docs, val_fraction, test_fraction, seed)
    if sorted(train + val + test) != sorted(docs):  # fell back to a character split
        assert "".join(train + val + test) == "\n\n".join(docs)
    assert train
    assert bool(val) == (val_fraction > 0)
    assert bool(test) == (test_fraction > 0)
