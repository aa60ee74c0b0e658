"""Train / validation / test splits of a corpus, as a pure function of the seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class EmptySplitError(ValueError):
    """A train, validation or test split holds no document."""


# A held-out split built from whole documents may end up between half and
# twice its target share of characters; outside that band (few or very
# uneven documents) the corpus is split by characters instead.
_SHARE_TOLERANCE = 2.0


def split_corpus(
    docs: Sequence[str],
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> tuple[list[str], list[str], list[str]]:
    """Split documents into (train, val, test), each a ``list[str]``.

    With enough documents the split is by document: documents are shuffled
    with ``seed`` and dealt out so that val and test each get roughly their
    fraction of the characters (a document that would overshoot a split's
    share by more than 2x goes to train), so no document is in two splits.

    Otherwise (e.g. one big file) the documents are joined with ``"\\n\\n"``
    and the text is cut into three contiguous pieces at line boundaries,
    train first, then val, then test (nanoGPT's 90/10 split), each piece a
    one-element list (empty list for a zero fraction).

    Either way every character of the corpus lands in exactly one split.
    A fraction of 0 gives an empty list for that split.
    """
    check_fractions(val_fraction, test_fraction)
    if not docs:
        raise ValueError("Cannot split an empty list of documents.")
    by_document = _split_by_document(docs, val_fraction, test_fraction, seed)
    if by_document is not None:
        return by_document
    return _split_by_characters("\n\n".join(docs), val_fraction, test_fraction)


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Each fraction a finite number >= 0, together < 1 (``ValueError`` naming them)."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 to leave text for training, got "
            f"{val_fraction} + {test_fraction} = {val_fraction + test_fraction}."
        )


def _split_by_document(
    docs: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[str], list[str], list[str]] | None:
    """Whole-document split, or None if it cannot give each split a fair share."""
    total = sum(len(doc) for doc in docs)
    targets = [val_fraction * total, test_fraction * total]
    held_out: list[list[str]] = [[], []]
    held_out_chars = [0, 0]
    train: list[str] = []
    for index in np.random.default_rng(seed).permutation(len(docs)):
        doc = docs[int(index)]
        for split, target in enumerate(targets):
            fits = held_out_chars[split] + len(doc) <= _SHARE_TOLERANCE * target
            if held_out_chars[split] < target and fits:
                held_out[split].append(doc)
                held_out_chars[split] += len(doc)
                break
        else:
            train.append(doc)
    too_small = any(
        target > 0 and (not split or chars < target / _SHARE_TOLERANCE)
        for split, chars, target in zip(held_out, held_out_chars, targets, strict=True)
    )
    if too_small or not train:
        return None
    return train, held_out[0], held_out[1]


def _split_by_characters(
    text: str, val_fraction: float, test_fraction: float
) -> tuple[list[str], list[str], list[str]]:
    """Three contiguous pieces of ``text``, cut just after a newline where possible."""
    train_end = _line_boundary_before(
        text, round(len(text) * (1 - val_fraction - test_fraction)), 0
    )
    val_end = (
        _line_boundary_before(text, round(len(text) * (1 - test_fraction)), train_end)
        if val_fraction > 0
        else train_end
    )
    pieces = (text[:train_end], text[train_end:val_end], text[val_end:])
    for name, piece, fraction in zip(
        ("train", "val", "test"), pieces, (1, val_fraction, test_fraction), strict=True
    ):
        if fraction > 0 and not piece:
            raise EmptySplitError(
                f"The corpus ({len(text)} characters) is too small to give the {name} "
                "split any text; use a larger corpus or a larger fraction."
            )
    train, val, test = ([piece] if piece else [] for piece in pieces)
    return train, val, test


def _line_boundary_before(text: str, position: int, lower: int) -> int:
    """The start of the line holding ``position``, if that is after ``lower``."""
    if position >= len(text):  # a zero test fraction: keep the last line
        return len(text)
    boundary = text.rfind("\n", lower, position) + 1
    return boundary if boundary > lower else position
