"""Token files: a corpus tokenised in pieces equals it tokenised whole, maps back from disk,
and is made once per text and tokenizer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import CorpusEncodingError, train_tokenizer
from jaxllm.data.token_files import read_text_pieces, read_token_file, write_token_file

LINES = ["The cat sat.", "", "  indented line", "Über naïve café", "x\ty", "1234 5678", "   "]
TEXTS = st.lists(st.sampled_from(LINES), min_size=1, max_size=40).map("\n".join)
TOKENIZERS = {
    kind: train_tokenizer(kind, ["\n".join(LINES * 20)], vocab_size=size)
    for kind, size in (("char", None), ("bpe", 300), ("wordpiece", 120))
}


@settings(max_examples=40, deadline=None)
@given(text=TEXTS, piece_chars=st.integers(1, 64))
def test_pieces_are_the_whole_text_and_end_before_whitespace(tmp_path_factory, text, piece_chars):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(read_text_pieces(path, piece_chars))
    assert "".join(pieces) == text
    for piece, following in zip(pieces, pieces[1:], strict=False):
        assert not piece[-1].isspace() and following[0].isspace()


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
@settings(max_examples=15, deadline=None)
@given(text=TEXTS, piece_chars=st.integers(1, 64))
def test_a_token_file_holds_the_whole_text_encoded_at_once(
    tmp_path_factory, kind, text, piece_chars
):
    tokenizer = TOKENIZERS[kind]
    folder = tmp_path_factory.mktemp("tokens")
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    pieces = read_text_pieces(folder / "corpus.txt", piece_chars)
    written = write_token_file(tokenizer, pieces, folder / "corpus.bin", "fp")
    np.testing.assert_array_equal(written.tokens(), tokenizer.encode(text))
    assert written.tokens().dtype == np.uint16 and not list(folder.glob("*.partial"))


def test_a_finished_token_file_is_found_again_and_an_unfinished_one_is_not(tmp_path):
    tokenizer = TOKENIZERS["char"]
    written = write_token_file(tokenizer, LINES, tmp_path / "a.bin", "fp")
    assert read_token_file(tmp_path / "a.bin", "fp") == written
    assert read_token_file(tmp_path / "a.bin", "other") is None  # made from something else
    (tmp_path / "a.bin.json").unlink()  # cut before its description
    assert read_token_file(tmp_path / "a.bin", "fp") is None


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusEncodingError, match="latin1.txt' is not valid UTF-8"):
        list(read_text_pieces(tmp_path / "latin1.txt"))


def test_the_benchmark_reports_both_ways_on_a_small_corpus(tmp_path):
    from scripts import load_script

    bench = load_script("benchmarks/token_file.py")  # by its own name: a spawned process imports it
    result = bench.run(0.004, tmp_path, 0.002)
    assert result["same_tokens"] and result["token_files"]["tokens"] > 1_000_000
    assert result["token_files"]["file_mb"] == pytest.approx(2 * result["text_mb"], rel=0.01)
    lines = "\n".join(bench.report_lines(result))
    assert "| token files (`FileCorpus`) |" in lines and "target < 2" in lines


def test_writers_of_one_file_at_once_do_not_write_into_each_other(tmp_path):
    from jaxllm.data.json_files import replaced_atomically

    with (
        replaced_atomically(tmp_path / "f") as first,
        replaced_atomically(tmp_path / "f") as second,
    ):
        first.write(b"first")
        second.write(b"second")
    assert (tmp_path / "f").read_bytes() in (b"first", b"second")
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_token_file_of_another_size_than_described_is_not_used(tmp_path):
    written = write_token_file(TOKENIZERS["char"], LINES, tmp_path / "a.bin", "fp")
    with open(written.path, "ab") as file:
        file.write(b"\0\0")
    assert read_token_file(written.path, "fp") is None
