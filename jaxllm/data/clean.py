"""Text cleaning: Unicode and whitespace normalisation, exact deduplication.

Cleaning keeps single newlines: a character-level model learns line
structure (verse, code, lists) from them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

from jaxllm.data.corpora import EmptyCorpusError

UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")

# Every whitespace character except "\n": tabs, no-break and em spaces, form
# feeds, the Unicode line/paragraph separators. Collapsing them to one space
# keeps words apart without giving the model a zoo of invisible characters.
# (A lone space matches neither branch: there is nothing to change.)
_HORIZONTAL_WHITESPACE = re.compile(r"[^\S\n]{2,}|[^\S \n]")
_TRAILING_SPACE = re.compile(r" +\n")
_BLANK_LINE_RUN = re.compile(r"\n{3,}")
# The ASCII characters _HORIZONTAL_WHITESPACE matches besides the space.
_ASCII_ODD_SPACES = "\t\x0b\x0c\r\x1c\x1d\x1e\x1f"


def normalize_text(text: str, form: str = "NFC") -> str:
    """``text`` in a canonical form; applying it twice changes nothing.

    Steps: Unicode normalisation ``form``; ``\\r\\n`` and ``\\r`` to ``\\n``;
    each run of other whitespace to one space; spaces before a newline
    removed; three or more newlines to two (at most one blank line); leading
    and trailing whitespace stripped.
    """
    return _normalize_lines(text, form).strip()


def _normalize_lines(text: str, form: str) -> str:
    """:func:`normalize_text` but for the final strip. Every step acts within a run of
    whitespace or between characters that are not whitespace, so a text cut where whitespace
    follows a non-whitespace character is normalised piece by piece."""
    if form not in UNICODE_FORMS:
        raise ValueError(f"Unknown Unicode form {form!r}; use one of {', '.join(UNICODE_FORMS)}.")
    text = unicodedata.normalize(form, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not _ascii_with_plain_spaces(text):  # the regular expressions below cost ~40 s a GB
        text = _HORIZONTAL_WHITESPACE.sub(" ", text)
    if " \n" in text:
        text = _TRAILING_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_LINE_RUN.sub("\n\n", text)
    return text


def _ascii_with_plain_spaces(text: str) -> bool:
    """Whether ``text`` is ASCII whose only horizontal whitespace is single spaces (nothing
    for :data:`_HORIZONTAL_WHITESPACE` to change); each test is one fast scan."""
    return text.isascii() and "  " not in text and not any(c in text for c in _ASCII_ODD_SPACES)


def normalize_pieces(pieces: Iterable[str], form: str = "NFC") -> Iterator[str]:
    """:func:`normalize_text` of a text given in pieces, one piece at a time.

    Each piece but the last must end with a non-whitespace character that whitespace follows
    (:func:`~jaxllm.data.token_files.read_text_pieces` cuts there). The pieces yielded join
    into ``normalize_text("".join(pieces), form)``; each ends with a non-whitespace character
    (whitespace is held back until text follows it, so the end is stripped) and each but the
    first begins with whitespace, so every tokenizer's pre-tokenisation splits between them.
    """
    held: str | None = None  # whitespace waiting for text (None: no text yet)
    for piece in pieces:
        normalized = _normalize_lines(piece, form)
        if held is None:
            normalized = normalized.lstrip()
            if not normalized:
                continue
            held = ""
        body = normalized.rstrip()
        if body:
            yield held + body
            held = normalized[len(body) :]
        else:
            held += normalized


def deduplicate(docs: Iterable[str]) -> list[str]:
    """``docs`` without exact duplicates, compared after :func:`normalize_text`.

    The first occurrence of each document is kept, as given, in input order.
    """
    seen: set[str] = set()
    unique = []
    for doc in docs:
        key = normalize_text(doc)
        if key not in seen:
            seen.add(key)
            unique.append(doc)
    return unique


def clean_corpus(docs: Iterable[str]) -> list[str]:
    """Normalised, non-empty, duplicate-free documents, in input order.

    Raises:
        EmptyCorpusError: no document has any text left.
    """
    normalized = [normalize_text(doc) for doc in docs]
    cleaned = deduplicate(doc for doc in normalized if doc)
    if not cleaned:
        raise EmptyCorpusError(
            "The corpus is empty after cleaning (every document was blank); "
            "check the source path or pick another corpus."
        )
    return cleaned
