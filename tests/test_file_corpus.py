"""A one-file corpus cleaned, split and tokenised in pieces gives what the in-memory way gives:
the same clean text, the same splits, the same tokenizer, the same token streams."""

import re
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.config import ConfigError
from jaxllm.data import (
    DataConfig,
    EmptyCorpusError,
    EmptySplitError,
    encode_corpus,
    load_splits,
    train_tokenizer,
)
from jaxllm.data.clean import normalize_pieces, normalize_text
from jaxllm.data.file_corpus import FileCorpus
from jaxllm.data.token_files import read_text_pieces

LINES = [
    "The cat sat.",
    "",
    "  indented  line ",
    "Über naïve café\u00a0ok",
    "x\ty\r",
    "e\u0301 combining",
    "1234\x0b5678",
    "   ",
    "\u3000wide space",
]
TEXTS = st.lists(st.sampled_from(LINES), min_size=1, max_size=40).map("\n".join)


def reference_normalize(text: str) -> str:
    """The cleaning steps written out plainly, one regular expression each."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r" +\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@settings(max_examples=60, deadline=None)
@given(text=TEXTS | st.text(alphabet=" \t\n\r\u00a0ab", max_size=40))
def test_normalize_text_equals_the_plain_regular_expressions(text):
    assert normalize_text(text) == reference_normalize(text)


@settings(max_examples=60, deadline=None)
@given(text=TEXTS, piece_chars=st.integers(1, 48))
def test_cleaning_piece_by_piece_equals_cleaning_the_whole(tmp_path_factory, text, piece_chars):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(text, encoding="utf-8", newline="")
    pieces = list(normalize_pieces(read_text_pieces(path, piece_chars)))
    assert "".join(pieces) == reference_normalize(text)
    assert all(piece and not piece[-1].isspace() for piece in pieces)


def in_memory(data: DataConfig):
    """The recipes' in-memory way: the clean splits, a tokenizer, and each split encoded."""
    splits = load_splits(data)
    texts = [doc for split in splits for doc in split] if data.tokenizer == "char" else splits[0]
    tokenizer = train_tokenizer(data.tokenizer, texts, vocab_size=data.vocab_size)
    return tokenizer, [encode_corpus(tokenizer, split) for split in splits]


def streamed(data: DataConfig, cache, piece_chars: int):
    corpus = FileCorpus.open(data, cache, piece_chars)
    tokenizer = corpus.tokenizer()
    return tokenizer, [file.tokens() for file in corpus.token_files(tokenizer)]


def assert_same_streams(data: DataConfig, cache, piece_chars: int) -> None:
    try:
        expected_tokenizer, expected = in_memory(data)
    except (EmptySplitError, EmptyCorpusError, ValueError) as e:
        with pytest.raises(type(e)):
            streamed(data, cache, piece_chars)
        return
    tokenizer, tokens = streamed(data, cache, piece_chars)
    assert tokenizer.fingerprint() == expected_tokenizer.fingerprint()
    for got, want in zip(tokens, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(
    text=TEXTS,
    piece_chars=st.integers(1, 48),
    fractions=st.sampled_from([(0.05, 0.05), (0.2, 0.1), (0.3, 0.3), (0.01, 0.5)]),
)
def test_char_token_files_equal_the_in_memory_streams(
    tmp_path_factory, text, piece_chars, fractions
):
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "corpus.txt").write_text(text, encoding="utf-8", newline="")
    data = DataConfig(str(folder / "corpus.txt"), "char", val_fraction=fractions[0],
                      test_fraction=fractions[1])  # fmt: skip
    assert_same_streams(data, folder / "cache", piece_chars)


@pytest.mark.parametrize("kind, size", [("bpe", 300), ("wordpiece", 150)])
@pytest.mark.parametrize("seed", [0, 1])
def test_trained_tokenizers_and_their_token_files_equal_the_in_memory_ones(
    tmp_path, kind, size, seed
):
    rng = np.random.default_rng(seed)
    text = "\n".join(LINES[i] for i in rng.integers(0, len(LINES), 400))
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8", newline="")
    data = DataConfig(str(tmp_path / "corpus.txt"), kind, bpe_vocab_size=max(size, 257),
                      wordpiece_vocab_size=size, val_fraction=0.1, test_fraction=0.1)  # fmt: skip
    assert_same_streams(data, tmp_path / "cache", piece_chars=37)


def test_a_later_call_reads_what_the_first_made_and_a_changed_file_is_made_again(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(LINES * 30))
    data = DataConfig(str(text), "char", val_fraction=0.1, test_fraction=0.1)
    first = FileCorpus.open(data, tmp_path / "cache")
    files = first.token_files(first.tokenizer())
    made = [file.path.stat().st_mtime_ns for file in files]
    again = FileCorpus.open(data, tmp_path / "cache")
    assert again.folder == first.folder
    assert again.token_files(again.tokenizer()) == files
    assert [file.path.stat().st_mtime_ns for file in files] == made  # read, not made again
    assert not list(first.folder.glob("*.partial"))
    text.write_text("\n".join(LINES * 31))
    changed = FileCorpus.open(data, tmp_path / "cache")
    assert changed.folder != first.folder
    assert sum(f.count for f in changed.token_files(changed.tokenizer())) > sum(
        f.count for f in files
    )


def test_what_cannot_become_token_files_is_said(tmp_path):
    with pytest.raises(ConfigError, match="named corpus.*cat folder"):
        FileCorpus.open(DataConfig("pydoc"), tmp_path)
    with pytest.raises(ConfigError, match="is a folder"):
        FileCorpus.open(DataConfig(str(tmp_path)), tmp_path)
    with pytest.raises(FileNotFoundError, match="No text file"):
        FileCorpus.open(DataConfig(str(tmp_path / "missing.txt")), tmp_path)
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    with pytest.raises(EmptyCorpusError, match="holds no text"):
        FileCorpus.open(DataConfig(str(tmp_path / "blank.txt")), tmp_path / "cache").text()
    (tmp_path / "small.txt").write_text("one line only")
    with pytest.raises(EmptySplitError, match="validation split .* is empty"):
        corpus = FileCorpus.open(DataConfig(str(tmp_path / "small.txt")), tmp_path / "cache")
        corpus.token_files(corpus.tokenizer())
    with pytest.raises(EmptySplitError, match="val_fraction is 0"):
        FileCorpus.open(DataConfig(str(tmp_path / "small.txt"), val_fraction=0), tmp_path)


def test_a_tokenizer_that_cannot_encode_the_text_leaves_no_file(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(LINES * 30))
    corpus = FileCorpus.open(DataConfig(str(tmp_path / "corpus.txt")), tmp_path / "cache")
    other = train_tokenizer("char", ["abc"])
    with pytest.raises(ValueError, match="not in"):
        corpus.token_files(other)
    assert not list(corpus.folder.glob("*.bin*"))


def test_a_text_without_line_ends_is_yielded_in_pieces_not_held_whole(tmp_path):
    words = " ".join(f"word{i % 97}" for i in range(4000))  # one line of ~36k characters
    (tmp_path / "corpus.txt").write_text(words)
    data = DataConfig(str(tmp_path / "corpus.txt"), "char", val_fraction=0.1, test_fraction=0.1)
    corpus = FileCorpus.open(data, tmp_path / "cache", piece_chars=256)
    assert max(len(text) for _, text in corpus.segments()) < 3 * 256
    assert_same_streams(data, tmp_path / "cache2", piece_chars=256)


def test_only_a_missing_split_file_is_made_again(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(LINES * 30))
    corpus = FileCorpus.open(DataConfig(str(tmp_path / "corpus.txt")), tmp_path / "cache")
    tokenizer = corpus.tokenizer()
    train, validation, test = corpus.token_files(tokenizer)
    made = train.path.stat().st_mtime_ns
    test.path.unlink()
    again = corpus.token_files(tokenizer)
    assert again == (train, validation, test) and train.path.stat().st_mtime_ns == made
