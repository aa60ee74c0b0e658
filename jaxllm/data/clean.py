"""Text cleaning: Unicode and whitespace normalisation, exact deduplication.

Cleaning keeps single newlines: a character-level model learns line
structure (verse, code, lists) from them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from jaxllm.data.corpora import EmptyCorpusError

UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")

# Every whitespace character except "\n": tabs, no-break and em spaces, form
# feeds, the Unicode line/paragraph separators. Collapsing them to one space
# keeps words apart without giving the model a zoo of invisible characters.
_HORIZONTAL_WHITESPACE = re.compile(r"[^\S\n]+")
_TRAILING_SPACE = re.compile(r" +\n")
_BLANK_LINE_RUN = re.compile(r"\n{3,}")


def normalize_text(text: str, form: str = "NFC") -> str:
    """``text`` in a canonical form; applying it twice changes nothing.

    Steps: Unicode normalisation ``form``; ``\\r\\n`` and ``\\r`` to ``\\n``;
    each run of other whitespace to one space; spaces before a newline
    removed; three or more newlines to two (at most one blank line); leading
    and trailing whitespace stripped.
    """
    if form not in UNICODE_FORMS:
        raise ValueError(f"Unknown Unicode form {form!r}; use one of {', '.join(UNICODE_FORMS)}.")
    text = unicodedata.normalize(form, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HORIZONTAL_WHITESPACE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _BLANK_LINE_RUN.sub("\n\n", text)
    return text.strip()


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
