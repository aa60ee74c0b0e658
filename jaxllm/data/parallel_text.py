"""English-Spanish parallel text: two Bibles paired verse by verse, and a user's TSV files.

The Bibles are Debian's SWORD modules ``sword-text-kjv`` (King James Version, 1769 text) and
``sword-text-sparv`` (Reina-Valera 1909), which ``make data`` unpacks into ``<data dir>/bible``
and :func:`load_bible_pairs` reads with ``pysword`` (``pip install 'jaxllm[translate]'``)::

    corpus = load_bible_pairs()            # ~31k VersePair, corpus.dropped says what was left out
    splits = split_by_book(corpus.pairs)   # whole books held out: "train", "valid", "test"
    train = [(pair.source, pair.target) for pair in splits["train"]]

Both modules claim the KJV versification, yet the Reina-Valera text keeps its own verse breaks
in a few chapters (Numbers 13 and 30, 1 Samuel 24, 1 Kings 22, 1 and 2 Chronicles, Job 39-40,
Hosea 12, Jonah 2, ...): a chapter shifted by one to five verses, its overflow merged into one
verse. Pairing by reference alone would pair ~200 verses with a neighbour's translation. Both
modules tag their words with Strong's numbers of the same Hebrew and Greek words, so each pair is
checked against its neighbours (:func:`pair_verses`) and dropped when they disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxllm.data import corpora, labelled

VerseKey = tuple[str, int, int]  # (book, chapter, verse)

ENGLISH_MODULE = "engKJV2006eb"  # Debian package sword-text-kjv
SPANISH_MODULE = "spaRV1909eb"  # Debian package sword-text-sparv
BIBLE_SUBDIR = "bible"
TRANSLATE_INSTALL_COMMAND = "pip install 'jaxllm[translate]'"

# The 66 books in canonical order, named as pysword names them in the KJV versification.
BIBLE_BOOKS: tuple[str, ...] = (
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "I Samuel", "II Samuel", "I Kings", "II Kings", "I Chronicles", "II Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon",
    "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos",
    "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah",
    "Malachi",
    "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "I Corinthians", "II Corinthians",
    "Galatians", "Ephesians", "Philippians", "Colossians", "I Thessalonians",
    "II Thessalonians", "I Timothy", "II Timothy", "Titus", "Philemon", "Hebrews", "James",
    "I Peter", "II Peter", "I John", "II John", "III John", "Jude", "Revelation of John",
)  # fmt: skip
_BOOK_POSITION = {book: i for i, book in enumerate(BIBLE_BOOKS)}

# Held-out books, ~5% of the verse pairs each, from both Testaments and of every kind: story,
# poetry, wisdom, prophecy, gospel, letter. Pairs that load_bible_pairs gives: valid 1,564
# (Ruth 85, Ecclesiastes 222, Daniel 357, Joel 73, Mark 678, Galatians 149); test 1,563
# (Esther 167, Song of Solomon 117, Lamentations 154, Micah 105, Jonah 37, John 879,
# Philippians 104); train 27,757. Mark has many parallels in Matthew and Luke, so the
# validation loss is a little optimistic; John, in the test set, has few.
DEFAULT_VALID_BOOKS = ("Ruth", "Ecclesiastes", "Daniel", "Joel", "Mark", "Galatians")
DEFAULT_TEST_BOOKS = (
    "Esther", "Song of Solomon", "Lamentations", "Micah", "Jonah", "John", "Philippians",
)  # fmt: skip
SPLITS = ("train", "valid", "test")

# Why pair_verses leaves a reference out (every key of BibleCorpus.dropped).
DROP_REASONS: tuple[str, ...] = (
    "missing_source",  # the reference is in the target Bible only
    "missing_target",  # in the source Bible only
    "empty_source",  # no text in the source Bible (after markup is stripped)
    "empty_target",
    "empty_both",
    "shifted",  # the verse matches a neighbour's translation better than its own
    "merged",  # the verse's translation also holds a neighbouring verse
)
# Neighbours compared on each side; the largest shift in these modules is five verses (Job 40).
ALIGNMENT_WINDOW = 5
SHIFT_MARGIN = 0.2  # Jaccard similarity a neighbour must beat the verse's own by
MERGE_MARGIN = 0.5  # share of a neighbour's Strong's numbers that moved into this verse


class ParallelTextError(ValueError):
    """A file of sentence pairs is malformed (the message names the line)."""


@dataclasses.dataclass(frozen=True)
class VersePair:
    """One verse in two languages, plain text: ``source`` (English) and ``target`` (Spanish)."""

    book: str
    chapter: int
    verse: int
    source: str
    target: str


@dataclasses.dataclass(frozen=True)
class BibleCorpus:
    """Verse pairs in canonical order, and how many references were left out, by reason.

    Attributes:
        pairs: one :class:`VersePair` per kept reference.
        dropped: ``{reason: count}`` for every reason of ``DROP_REASONS``.
    """

    pairs: tuple[VersePair, ...]
    dropped: dict[str, int]


@dataclasses.dataclass(frozen=True)
class Verse:
    """One verse of one Bible: its plain ``text`` and the Strong's numbers of its words
    (``"H430"``, ``"G2316"``), which say which source-language words it translates."""

    text: str
    strongs: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------------------------
# Markup


def _keep_title(match: re.Match[str]) -> str:
    """A title that is part of the text (a psalm's superscription, an acrostic letter, a
    letter's subscription; the Spanish module prints them inside the verse) or an editor's
    heading (any other ``type``), which is dropped."""
    attributes = match.group(1)
    kind = re.search(r'\btype="([^"]*)"', attributes)
    canonical = 'canonical="true"' in attributes
    if canonical or kind is None or kind.group(1) in ("psalm", "acrostic"):
        return match.group(0)
    return " "


_OSIS_NOTES = re.compile(
    r"<(note|rdg|rdgGroup|index|figure)\b[^>]*(?<!/)>.*?</\1\s*>", re.DOTALL | re.IGNORECASE
)
_OSIS_TITLE = re.compile(r"<title\b([^>]*)(?<!/)>.*?</title\s*>", re.DOTALL | re.IGNORECASE)
_GBF_NOTES = re.compile(r"<RF>.*?<Rf>|<RX>.*?<Rx>", re.DOTALL)
_GBF_TITLES = re.compile(r"<TS>.*?<Ts>|<TT>.*?<Tt>", re.DOTALL)
_GBF_BREAK = re.compile(r"<C[LM]>")
_THML_NOTES = re.compile(r"<(note|scripRef)\b[^>]*(?<!/)>.*?</\1\s*>", re.DOTALL | re.IGNORECASE)


def _non_text_dropped(markup: str, source_type: str) -> str:
    """``markup`` without the elements that are not verse text: notes (footnotes and
    cross-references), variant readings, index entries, figures and editors' headings."""
    # A note hangs on the word or stop before it (``heaven<note>..</note>.``), so it leaves
    # nothing; a heading stands before the text, so it leaves a space.
    kind = source_type.upper()
    if kind == "OSIS":
        return _OSIS_TITLE.sub(_keep_title, _OSIS_NOTES.sub("", markup))
    if kind == "GBF":
        return _GBF_BREAK.sub(" ", _GBF_TITLES.sub(" ", _GBF_NOTES.sub("", markup)))
    if kind == "THML":
        return _THML_NOTES.sub("", markup)
    raise ValueError(
        f"Unknown SWORD markup {source_type!r}; the SourceType of a module's .conf is one of "
        "'OSIS', 'GBF' or 'ThML'."
    )


_EMPTY_ELEMENT = re.compile(r"<[^<>]*/\s*>")  # milestones: line, paragraph, chapter markers
_TAG = re.compile(r"<[^<>]*>")
_TAGS_IN_WORDS = re.compile(r"(?<=\w)(?:<[^<>]*>)+(?=\w)")
_CLOSE_THEN_OPEN = re.compile(r"</[^<>]*>.*<(?!/)[^<>]*(?<!/)>")


def _word_break(match: re.Match[str]) -> str:
    """Tags between two letters, and a space if one element ends and another starts there.

    The Spanish module runs ~590 pairs of words together that way (``allí</w><transChange
    type="added">también``), while an element that ends or starts inside a word marks part of
    it (``give</w>n``, ``preguntándo<transChange>le``).
    """
    tags = match.group(0)
    return tags + " " if _CLOSE_THEN_OPEN.search(tags) else tags


# USFM character markers (\nd ... \nd*) that the KJV module's converter left in 27 verses.
_USFM_MARKER = re.compile(r"\\\+?[a-z]+\d*\*?")


def strip_markup(markup: str, source_type: str = "OSIS") -> str:
    """The plain text of one SWORD verse: the words a reader sees, whitespace normalised.

    Dropped with their content: notes (footnotes, cross-references), variant readings,
    editors' section headings. Dropped as tags: word markup with its Strong's numbers and
    morphology (``<w lemma="strong:H0430" morph="...">God</w>``: ``God``), added-word and
    divine-name styling, quotation and line milestones; also pilcrows (``¶``) and stray USFM
    markers (``\\nd``). Where one element ends and another starts between two letters, the
    words are parted by a space. Titles that are part of the text are kept: a psalm's
    superscription, which the Spanish module prints inside verse 1.

    Args:
        markup: one verse as stored in the module.
        source_type: the module's markup, its ``.conf``'s ``SourceType``: ``"OSIS"``,
            ``"GBF"`` or ``"ThML"``.

    Raises:
        ValueError: an unknown ``source_type``.
    """
    text = _non_text_dropped(markup, source_type)
    text = _TAGS_IN_WORDS.sub(_word_break, text)
    text = _TAG.sub("", _EMPTY_ELEMENT.sub(" ", text))
    text = _USFM_MARKER.sub("", text).replace("\u00b6", " ")
    return " ".join(html.unescape(text).split())


_OSIS_LEMMA = re.compile(r'\blemma="([^"]*)"')
_GBF_STRONGS = re.compile(r"<W([GH]\d+)[a-z]?>")
_THML_STRONGS = re.compile(r'<sync\b[^>]*type="Strongs"[^>]*value="([GH]?\d+)"', re.IGNORECASE)
_STRONGS_NUMBER = re.compile(r"([GH])0*(\d+)")


def strong_numbers(markup: str, source_type: str = "OSIS") -> frozenset[str]:
    """The Strong's numbers tagged on the words of one verse, notes left out, without leading
    zeros: ``'<w lemma="strong:H0430">God</w>'`` gives ``{"H430"}``.

    Read from OSIS ``lemma="strong:H0430"``, GBF ``<WH0430>`` and ThML
    ``<sync type="Strongs" value="H0430"/>``.
    """
    body = _non_text_dropped(markup, source_type)
    pattern = {"OSIS": _OSIS_LEMMA, "GBF": _GBF_STRONGS}.get(source_type.upper(), _THML_STRONGS)
    fields = pattern.findall(body)
    return frozenset(
        f"{letter}{number}" for field in fields for letter, number in _STRONGS_NUMBER.findall(field)
    )


def parse_verse(markup: str, source_type: str = "OSIS") -> Verse:
    """One verse's plain text and Strong's numbers (:func:`strip_markup`,
    :func:`strong_numbers`)."""
    return Verse(strip_markup(markup, source_type), strong_numbers(markup, source_type))


# ---------------------------------------------------------------------------------------------
# Pairing


def pair_verses(
    source: Mapping[VerseKey, Verse],
    target: Mapping[VerseKey, Verse],
    window: int = ALIGNMENT_WINDOW,
) -> BibleCorpus:
    """Pair two Bibles by reference ``(book, chapter, verse)``, dropping what cannot be paired.

    A reference is dropped when either Bible lacks it or has no text for it, and, where both
    verses carry Strong's numbers, when the pair disagrees with its neighbours (the ``window``
    references before and after it in the same book), with ``J`` the Jaccard similarity of
    two sets of Strong's numbers and ``C(a, b) = |a & b| / |a|``:

    * ``"shifted"``: a neighbour ``n`` matches better than the verse's own translation,
      ``max(J(s[k], t[n]), J(s[n], t[k])) >= J(s[k], t[k]) + SHIFT_MARGIN``;
    * ``"merged"``: an adjacent verse's words moved into this one,
      ``C(s[n], t[k]) >= C(s[n], t[n]) + MERGE_MARGIN`` (or the same with ``s`` and ``t``
      swapped), as when the target joins two verses and leaves the next one empty.

    Verses without Strong's numbers are kept unchecked.

    Returns:
        The pairs in canonical order and the count of each reason in ``DROP_REASONS``.
    """
    order = sorted(source.keys() | target.keys(), key=_canonical_position)
    dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
    pairs = []
    for i, key in enumerate(order):
        reason = _unpaired(source.get(key), target.get(key))
        if reason is None:
            reason = _misalignment(order, i, source, target, window)
        if reason is None:
            pairs.append(VersePair(*key, source[key].text, target[key].text))
        else:
            dropped[reason] += 1
    return BibleCorpus(tuple(pairs), dropped)


def _canonical_position(key: VerseKey) -> tuple[int, str, int, int]:
    book, chapter, verse = key
    return _BOOK_POSITION.get(book, len(BIBLE_BOOKS)), book, chapter, verse


def _unpaired(source: Verse | None, target: Verse | None) -> str | None:
    """Why a reference has no pair (a key of ``DROP_REASONS``), or None."""
    if source is None:
        return "missing_source"
    if target is None:
        return "missing_target"
    if not source.text and not target.text:
        return "empty_both"
    if not source.text:
        return "empty_source"
    if not target.text:
        return "empty_target"
    return None


def _misalignment(
    order: Sequence[VerseKey],
    i: int,
    source: Mapping[VerseKey, Verse],
    target: Mapping[VerseKey, Verse],
    window: int,
) -> str | None:
    """``"shifted"``, ``"merged"`` or None for the pair at ``order[i]`` (see
    :func:`pair_verses`)."""
    key = order[i]
    own_s, own_t = source[key].strongs, target[key].strongs
    if not own_s or not own_t:
        return None
    near = [
        j for j in range(max(0, i - window), min(len(order), i + window + 1))
        if j != i and order[j][0] == key[0]
    ]  # fmt: skip
    tagged = [(j, _tagged(source.get(order[j])), _tagged(target.get(order[j]))) for j in near]
    own = _jaccard(own_s, own_t)
    for _, near_s, near_t in tagged:
        if near_s is None or near_t is None:
            continue
        if max(_jaccard(own_s, near_t), _jaccard(near_s, own_t)) >= own + SHIFT_MARGIN:
            return "shifted"
    for j, near_s, near_t in tagged:
        if abs(j - i) != 1 or near_s is None or near_t is None:
            continue
        moved_t = _coverage(near_s, own_t) - _coverage(near_s, near_t)
        moved_s = _coverage(near_t, own_s) - _coverage(near_t, near_s)
        if max(moved_t, moved_s) >= MERGE_MARGIN:
            return "merged"
    return None


def _tagged(verse: Verse | None) -> frozenset[str] | None:
    """A verse's Strong's numbers: empty for a missing or empty verse (its words went
    elsewhere), None for text without them (nothing to compare)."""
    if verse is None or not verse.text:
        return frozenset()
    return verse.strongs or None


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _coverage(a: frozenset[str], b: frozenset[str]) -> float:
    """The share of ``a`` found in ``b``."""
    return len(a & b) / len(a) if a else 0.0


# ---------------------------------------------------------------------------------------------
# The two SWORD modules


def bible_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder ``make data`` unpacks the modules into: ``<data dir>/bible``, the data folder
    being ``data_dir``, else ``$JAXLLM_DATA_DIR``, else ``~/.cache/jaxllm``."""
    return labelled.sentiment_data_dir(data_dir) / BIBLE_SUBDIR


def load_bible_pairs(data_dir: str | os.PathLike[str] | None = None) -> BibleCorpus:
    """The King James (``source``, English) and Reina-Valera 1909 (``target``, Spanish) Bibles,
    paired verse by verse (:func:`pair_verses`): ~31k pairs, markup stripped.

    Args:
        data_dir: the data folder holding ``bible/mods.d/`` and ``bible/modules/`` (see
            :func:`bible_data_dir`).

    Raises:
        FileNotFoundError: a module is absent (the message says to run ``make data``).
        ModuleNotFoundError: ``pysword`` is not installed (the message says how).
    """
    library = bible_data_dir(data_dir)
    for module in (ENGLISH_MODULE, SPANISH_MODULE):
        _check_module(library, module)
    return pair_verses(
        read_sword_bible(library, ENGLISH_MODULE), read_sword_bible(library, SPANISH_MODULE)
    )


def _check_module(library: Path, module: str) -> None:
    conf = library / "mods.d" / f"{module}.conf"
    texts = library / "modules" / "texts" / "ztext" / module
    if not conf.is_file() or not texts.is_dir():
        missing = conf if not conf.is_file() else texts
        raise FileNotFoundError(
            f"The Bible corpus needs the SWORD modules {ENGLISH_MODULE} (Debian package "
            f"sword-text-kjv) and {SPANISH_MODULE} (sword-text-sparv) in {str(library)!r}, and "
            f"{str(missing)!r} does not exist; run `make data`, which fetches them with "
            f"`apt-get download`, or pass data_dir= (or set {labelled.DATA_DIR_ENV}) to a folder "
            f"holding {BIBLE_SUBDIR}/mods.d/ and {BIBLE_SUBDIR}/modules/."
        )


def read_sword_bible(library: str | os.PathLike[str], module: str) -> dict[VerseKey, Verse]:
    """Every verse of the SWORD Bible ``module`` in ``library`` (the folder holding ``mods.d/``),
    in canonical order, parsed by :func:`parse_verse`; a verse without text maps to
    ``Verse("")``.

    Raises:
        ModuleNotFoundError: ``pysword`` is not installed. KeyError: ``library`` has no
            ``module`` (the message lists the modules it has).
    """
    modules = _sword_modules(library)
    confs = modules.parse_modules()
    if module not in confs:
        raise KeyError(f"No SWORD module {module!r} in {str(library)!r}; it has {sorted(confs)}.")
    bible = modules.get_bible_from_module(module)
    _remember_blocks(bible)
    source_type = confs[module].get("sourcetype") or "OSIS"
    verses: dict[VerseKey, Verse] = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            keys = [
                (book.name, chapter, verse)
                for chapter, length in enumerate(book.chapter_lengths, start=1)
                for verse in range(1, length + 1)
            ]
            texts = list(bible.get_iter(books=[book.name], clean=False))
            if len(texts) != len(keys):
                raise ValueError(
                    f"{module} gave {len(texts)} verses for {book.name}, its versification "
                    f"{len(keys)}; the module is damaged: delete {str(library)!r} and run "
                    "`make data` again."
                )
            verses.update(
                (k, parse_verse(t, source_type)) for k, t in zip(keys, texts, strict=True)
            )
    return verses


def _sword_modules(library: str | os.PathLike[str]) -> Any:
    """pysword's catalogue of the modules in ``library``."""
    try:
        from pysword.modules import SwordModules
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "Reading the SWORD Bibles needs the `pysword` package; install it with "
            f"`{TRANSLATE_INSTALL_COMMAND}` (or `pip install pysword`).",
            name="pysword",
        ) from err
    return SwordModules(str(library))


def _remember_blocks(bible: Any) -> None:
    """Make pysword keep the last blocks it decompressed.

    pysword 0.2 inflates a whole compressed block (a book) for every verse it returns, over a
    minute for the two Bibles; remembered, they take well under a second. The method is
    private to pysword: where it is absent, reading is only slower.
    """
    decompress: Callable[..., bytes] | None = getattr(bible, "_decompressed_text", None)
    if decompress is not None:
        bible._decompressed_text = functools.lru_cache(maxsize=4)(decompress)


# ---------------------------------------------------------------------------------------------
# Splits


def split_by_book(
    pairs: Iterable[VersePair],
    valid_books: Sequence[str] = DEFAULT_VALID_BOOKS,
    test_books: Sequence[str] = DEFAULT_TEST_BOOKS,
) -> dict[str, list[VersePair]]:
    """Whole books held out: ``{"train": [...], "valid": [...], "test": [...]}``.

    Every pair lands in exactly one split, in its input order: ``"valid"`` if its book is one
    of ``valid_books``, ``"test"`` if one of ``test_books``, else ``"train"``; so no verse of
    a held-out book is seen in training. The defaults hold out ~5% of the verses each (see
    ``DEFAULT_VALID_BOOKS``).

    Raises:
        ValueError: a name not in ``BIBLE_BOOKS`` (the message lists them), a bare string
            instead of a sequence of names, or a book in both ``valid_books`` and
            ``test_books``.
    """
    _check_book_names(valid_books, "valid_books")
    _check_book_names(test_books, "test_books")
    both = sorted(set(valid_books) & set(test_books), key=_BOOK_POSITION.__getitem__)
    if both:
        raise ValueError(f"{both} are in both valid_books and test_books; hold each book out once.")
    valid, test = set(valid_books), set(test_books)
    splits: dict[str, list[VersePair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        name = "valid" if pair.book in valid else "test" if pair.book in test else "train"
        splits[name].append(pair)
    return splits


def _check_book_names(books: Sequence[str], argument: str) -> None:
    if isinstance(books, str):
        raise ValueError(
            f"{argument} must be a sequence of book names, got the string {books!r}; "
            f"write ({books!r},)."
        )
    unknown = [book for book in books if book not in _BOOK_POSITION]
    if unknown:
        raise ValueError(
            f"Unknown book names in {argument}: {unknown}; use names from BIBLE_BOOKS: "
            f"{', '.join(BIBLE_BOOKS)}."
        )


# ---------------------------------------------------------------------------------------------
# A user's parallel text


def read_parallel_tsv(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """A user's parallel text: one ``source<TAB>target`` pair a line, UTF-8.

    Surrounding whitespace of each side is dropped; blank lines are skipped; a leading
    byte-order mark is dropped. Lines end at ``\\n`` (a ``\\r`` before it is dropped).

    Returns:
        ``(source, target)`` pairs in file order.

    Raises:
        FileNotFoundError: no file at ``path``.
        CorpusEncodingError: the file is not UTF-8 (the message names the line).
        ParallelTextError: a line without exactly one tab, or with an empty side (the message
            names the line); EmptyCorpusError (a ValueError): no pairs at all.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"No parallel text file at {str(file)!r}.")
    pairs = []
    for number, line in enumerate(_read_utf8(file).split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ParallelTextError(
                f"{str(file)!r} line {number} has {len(fields) - 1} tabs; each line must be "
                "source<TAB>target with exactly one tab (replace tabs inside a sentence with "
                "spaces)."
            )
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            raise ParallelTextError(
                f"{str(file)!r} line {number} has an empty {'source' if not source else 'target'}"
                " side; fill it in or remove the line."
            )
        pairs.append((source, target))
    if not pairs:
        raise corpora.EmptyCorpusError(
            f"{str(file)!r} holds no source<TAB>target lines; add some or check the path."
        )
    return pairs


def _read_utf8(file: Path) -> str:
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise corpora.CorpusEncodingError(
            f"{str(file)!r} is not valid UTF-8 (byte {data[err.start]:#04x} on line {line}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8 in.tsv > out.tsv`."
        ) from err


def write_parallel_tsv(path: str | os.PathLike[str], pairs: Iterable[tuple[str, str]]) -> Path:
    """Write ``(source, target)`` pairs as UTF-8 ``source<TAB>target`` lines, which
    :func:`read_parallel_tsv` reads back (sides with surrounding whitespace come back
    stripped).

    Returns:
        The file's path.

    Raises:
        ValueError: a side that is empty or holds a tab, ``\\n`` or ``\\r`` (the message
            gives the pair's index); nothing is written then.
    """
    lines = []
    for index, (source, target) in enumerate(pairs):
        for side, text in (("source", source), ("target", target)):
            if not text.strip() or any(c in text for c in "\t\n\r"):
                raise ValueError(
                    f"Pair {index} has a {side} side that is empty or holds a tab or line "
                    f"break ({text!r}); one pair must fit on one line with one tab."
                )
        lines.append(f"{source}\t{target}\n")
    file = Path(path)
    file.write_text("".join(lines), encoding="utf-8", newline="")
    return file
