"""Bag-of-words counts and TF-IDF, with scikit-learn's options and numbers, as sparse matrices
that JAX multiplies without ever densifying them.

``fit_vectorizer(docs, TfidfConfig(...))`` learns a vocabulary (and inverse document
frequencies); ``vectorizer.transform(docs)`` turns any documents into a
``jax.experimental.sparse.BCOO`` matrix ``float32[n_docs, n_terms]``. With the same settings the
vocabulary and values equal scikit-learn's ``TfidfVectorizer`` (``CountVectorizer`` with
``use_idf=False, norm=None``) to float32 rounding.

Tokenising is one regular-expression scan per document, as in scikit-learn; everything after
it is vectorised: terms become ids through one C-level dictionary pass, and the
(document, term) counts, document frequencies and weights are NumPy array operations, where
scikit-learn loops over every token in Python.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import Literal

import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jaxllm.config import require
from jaxllm.device_arrays import to_device

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


@dataclasses.dataclass(frozen=True)
class TfidfConfig:
    """What counts as a term and how it is weighted (scikit-learn's names and defaults).

    Attributes:
      lowercase: lower-case documents before tokenising.
      token_pattern: regular expression of a token (default: two or more word characters).
      ngram_range: ``(min_n, max_n)``: word n-grams from ``min_n`` to ``max_n`` tokens, joined
        by a space.
      stop_words: tokens dropped before n-grams are formed (``None``: none).
      min_df, max_df: keep terms in at least ``min_df`` and at most ``max_df`` documents; an
        int is a count, a float in [0, 1] a fraction of the documents.
      max_features: keep only the most frequent terms (over the whole corpus).
      binary: a term counts 1 however often it occurs in a document.
      use_idf: weight by inverse document frequency; ``False`` with ``norm=None`` gives counts.
      smooth_idf: ``idf = ln((1 + n) / (1 + df)) + 1`` (else ``ln(n / df) + 1``).
      sublinear_tf: ``tf = 1 + ln(tf)``.
      norm: ``"l2"``, ``"l1"`` or ``None``: scale each document's row to unit norm.
    """

    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    ngram_range: tuple[int, int] = (1, 1)
    stop_words: tuple[str, ...] | None = None
    min_df: int | float = 1
    max_df: int | float = 1.0
    max_features: int | None = None
    binary: bool = False
    use_idf: bool = True
    smooth_idf: bool = True
    sublinear_tf: bool = False
    norm: Literal["l1", "l2"] | None = "l2"

    def __post_init__(self):
        low, high = self.ngram_range
        require(
            1 <= low <= high,
            "TfidfConfig.ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, "
            f"got {self.ngram_range}",
        )
        require(
            self.norm in ("l1", "l2", None),
            f"TfidfConfig.norm must be 'l1', 'l2' or None, got {self.norm!r}",
        )
        for name, value in (("min_df", self.min_df), ("max_df", self.max_df)):
            if isinstance(value, Integral):
                require(value >= 0, f"TfidfConfig.{name} as a count must be >= 0, got {value}")
            else:
                require(
                    0.0 <= value <= 1.0,
                    f"TfidfConfig.{name} as a fraction must be in [0, 1], got {value}",
                )
        require(
            self.max_features is None or self.max_features > 0,
            f"TfidfConfig.max_features must be positive or None, got {self.max_features}",
        )
        try:
            re.compile(self.token_pattern)
        except re.error as e:
            raise ValueError(
                f"TfidfConfig.token_pattern {self.token_pattern!r} "
                f"is not a valid regular expression: {e}"
            ) from e


@dataclasses.dataclass(frozen=True)
class Vectorizer:
    """A fitted vocabulary: ``transform(docs)`` maps documents to TF-IDF rows.

    Attributes:
      config: the settings it was fitted with.
      terms: the vocabulary in column order (sorted, as scikit-learn's ``get_feature_names_out``).
      idf: float64[n_terms] inverse document frequencies (ones when ``use_idf`` is off).
    """

    config: TfidfConfig
    terms: tuple[str, ...]
    idf: np.ndarray

    @property
    def num_features(self) -> int:
        return len(self.terms)

    @property
    def vocabulary(self) -> dict[str, int]:
        """``{term: column}``, as scikit-learn's ``vocabulary_`` (a new dict each time)."""
        return dict(self._columns)

    @functools.cached_property
    def _columns(self) -> dict[str, int]:
        """:attr:`vocabulary`, built once (a third of a small ``transform``'s time) and never
        handed out, so no caller can change it."""
        return dict(zip(self.terms, range(len(self.terms)), strict=True))

    def transform(self, docs: Sequence[str], *, dtype=jnp.float32) -> sparse.BCOO:
        """``float32[len(docs), n_terms]`` TF-IDF rows (a document with no known term is a
        zero row)."""
        docs = _check_docs(docs)
        _, rows, ids = _scan(docs, self.config, self._columns)
        counts = _count_pairs(rows, ids, len(self.terms))
        return _weighted(counts, self.idf, self.config, (len(docs), len(self.terms)), dtype)


@dataclasses.dataclass(frozen=True)
class _Counts:
    """Sparse counts in row-major order: ``counts[k]`` of term ``cols[k]`` in document
    ``rows[k]``."""

    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray


def fit_vectorizer(docs: Sequence[str], config: TfidfConfig = TfidfConfig()) -> Vectorizer:
    """Learn the vocabulary and document frequencies of ``docs``.

    Raises:
      ValueError: no documents, a document that is not a string, no token in any document, or
        no term left after ``min_df``/``max_df`` (each message names the fix).
    """
    return _fit(docs, config)[0]


def fit_transform(
    docs: Sequence[str], config: TfidfConfig = TfidfConfig(), *, dtype=jnp.float32
) -> tuple[Vectorizer, sparse.BCOO]:
    """``fit_vectorizer`` and ``transform`` of the same documents in one pass over them."""
    vectorizer, counts = _fit(docs, config)
    return vectorizer, _weighted(
        counts, vectorizer.idf, config, (len(docs), vectorizer.num_features), dtype
    )


def _fit(docs: Sequence[str], config: TfidfConfig) -> tuple[Vectorizer, _Counts]:
    docs = _check_docs(docs)
    n_docs = len(docs)
    terms, rows, ids = _scan(docs, config)
    if not terms:
        raise ValueError(
            f"empty vocabulary: none of the {n_docs} documents has a token matching "
            f"{config.token_pattern!r} (after stop words); check the documents or the "
            "token_pattern"
        )
    counts = _count_pairs(rows, ids, len(terms))

    df = np.bincount(counts.cols, minlength=len(terms))
    # max_features ranks terms by corpus frequency (a binary count: document frequency).
    total = df if config.binary else np.bincount(ids, minlength=len(terms))
    keep = _kept_terms(df, total, n_docs, config)
    new_column = np.cumsum(keep) - 1
    on = keep[counts.cols]
    counts = _Counts(counts.rows[on], new_column[counts.cols[on]], counts.counts[on])
    terms = terms if keep.all() else list(itertools.compress(terms, keep))
    df = df[keep]
    if config.use_idf:
        n, d = (n_docs + 1, df + 1) if config.smooth_idf else (n_docs, df)
        idf = np.log(n / d) + 1.0
    else:
        idf = np.ones(len(terms))
    return Vectorizer(config=config, terms=tuple(terms), idf=idf), counts


def _check_docs(docs: Sequence[str]) -> list[str]:
    if isinstance(docs, str):
        raise ValueError("expected a sequence of documents, got one string; wrap it in a list")
    docs = list(docs)
    if not docs:
        raise ValueError("no documents: pass at least one string")
    bad = (
        None
        if set(map(type, docs)) <= {str}
        else next(i for i, d in enumerate(docs) if not isinstance(d, str))
    )
    if bad is not None:
        raise ValueError(
            f"document {bad} is a {type(docs[bad]).__name__}, not a str; decode bytes "
            "and drop missing values first"
        )
    return docs


def _scan(
    docs: list[str], config: TfidfConfig, vocabulary: dict[str, int] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(terms, rows, ids)``: the document and column of every term occurrence, int64[m] each.

    Fitting (``vocabulary`` is ``None``): ``terms`` are the distinct terms, sorted (scikit-learn's
    column order). Transforming: ``vocabulary``'s columns, with unknown terms left out.
    """
    if (
        config.token_pattern == DEFAULT_TOKEN_PATTERN
        and config.ngram_range[1] == 1
        and not config.stop_words
    ):
        scanned = _scan_default_pattern(docs, config.lowercase, vocabulary)
        if scanned is not None:
            return scanned
    if vocabulary is None and config.ngram_range[1] > 1:
        return _fit_scan_ngrams(docs, config)
    tokens, lengths = _tokens(docs, config)
    rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    if vocabulary is None:
        terms, ids = _numbered(tokens)
        return terms, rows, ids
    ids = np.fromiter(map(vocabulary.get, tokens, itertools.repeat(-1)), np.int64, len(tokens))
    known = ids >= 0
    return list(vocabulary), rows[known], ids[known]


def _numbered(tokens: list[str]) -> tuple[list[str], np.ndarray]:
    """``(terms, ids)``: the distinct tokens sorted (scikit-learn's column order), and each
    token's column, ``int64[len(tokens)]``, by one C-level dictionary pass."""
    terms = sorted(dict.fromkeys(tokens))
    column = dict(zip(terms, range(len(terms)), strict=True))
    return terms, np.fromiter(map(column.__getitem__, tokens), np.int64, len(tokens))


def _fit_scan_ngrams(
    docs: list[str], config: TfidfConfig
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """:func:`_scan` when fitting n-grams longer than one word, with integer codes in place of
    strings: an n-gram's code numbers the pair (its first ``n - 1`` words' code, its last
    word's id) by ``np.unique``, so only the distinct n-grams are joined into strings and
    looked up, not every occurrence (~25% faster on a few thousand documents' bigrams)."""
    words, lengths = _tokens(docs, dataclasses.replace(config, ngram_range=(1, 1)))
    doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    distinct = list(dict.fromkeys(words))
    word_column = dict(zip(distinct, range(len(distinct)), strict=True))
    word_id = np.fromiter(map(word_column.__getitem__, words), np.int64, len(words))
    low, high = config.ngram_range
    # Per n-gram length kept: (where each occurrence starts, its code, the codes' strings).
    start, code, names = np.arange(len(words)), word_id, distinct
    found = [(start, code, names)] if low == 1 else []
    for n in range(2, high + 1):
        last = start + n - 1
        inside = last < len(words)
        inside[inside] = doc_of[last[inside]] == doc_of[start[inside]]  # within one document
        start, last = start[inside], last[inside]
        pairs = code[inside] * max(len(distinct), 1) + word_id[last]
        _, first, code = np.unique(pairs, return_index=True, return_inverse=True)
        parts = [map(words.__getitem__, (start[first] + k).tolist()) for k in range(n)]
        names = list(map(" ".join, zip(*parts, strict=True)))
        if n >= low:
            found.append((start, code, names))
    # Distinct codes can join alike ("a b" + "c", "a" + "b c"): one column for both.
    terms, column_of_code = _numbered(list(itertools.chain.from_iterable(n for *_, n in found)))
    rows, ids, offset = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], 0
    for start, code, names in found:
        rows.append(doc_of[start])
        ids.append(column_of_code[offset + code])
        offset += len(names)
    return terms, np.concatenate(rows), np.concatenate(ids)


def _tokens(docs: list[str], config: TfidfConfig) -> tuple[list[str], np.ndarray]:
    """All documents' terms back to back, and how many each document has (any pattern)."""
    pattern = re.compile(config.token_pattern)
    low, high = config.ngram_range
    stop = frozenset(config.stop_words or ())
    per_doc = []
    for doc in docs:
        words = pattern.findall(doc.lower() if config.lowercase else doc)
        if stop:
            words = [w for w in words if w not in stop]
        per_doc.append(_ngrams(words, low, high) if high > 1 else words)
    lengths = np.fromiter(map(len, per_doc), np.int64, len(per_doc))
    return list(itertools.chain.from_iterable(per_doc)), lengths


def _scan_default_pattern(
    docs: list[str], lowercase: bool, vocabulary: dict[str, int] | None
) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """:func:`_scan` for the default pattern, ``(?u)\\b\\w\\w+\\b``, without a regular expression.

    Its tokens are the maximal runs of two or more word characters. So: blank every non-word
    character (the few non-ASCII ones found with one scan, then the ASCII ones byte by byte on
    the UTF-8 encoding, where every byte of a non-ASCII character is >= 0x80 and kept), split
    on blanks, and number the tokens with one dictionary pass: C-level passes over the corpus
    instead of a regular-expression match and Python work per token. Documents are joined by a
    NUL token, which marks where each one ends; runs of one character are dropped with the
    vocabulary. Returns ``None`` if a document contains NUL itself.
    """
    unusual = np.flatnonzero(~np.fromiter(map(str.isascii, docs), bool, len(docs)))
    if lowercase and unusual.size:  # str.lower() only where needed; bytes.lower() does ASCII
        docs = list(docs)
        for i in unusual:
            docs[i] = docs[i].lower()
    text = " \x00 ".join(docs)
    if text.count("\x00") != len(docs) - 1:
        return None  # a document holds NUL itself: the general path handles it
    non_word = {
        c for i in unusual for c in _NON_ASCII.findall(docs[i]) if not _WORD_CHARACTER.match(c)
    }
    if non_word:
        text = re.sub("[" + "".join(map(re.escape, sorted(non_word))) + "]", " ", text)
    data = text.encode("utf-8")
    tokens = (data.lower() if lowercase else data).translate(_ASCII_NON_WORD_TO_SPACE).split()
    # One C-level pass: each token's first position in the stream (setdefault keeps the first),
    # which stands for the token until the distinct ones are decoded and sorted.
    first = {}
    first_seen = np.fromiter(
        map(first.setdefault, tokens, itertools.count()), np.int64, len(tokens)
    )
    words = {token.decode("utf-8"): position for token, position in first.items()}
    if vocabulary is None:
        terms = sorted(t for t in words if len(t) >= 2 and t != "\x00")
        vocabulary = {term: i for i, term in enumerate(terms)}
    else:
        terms = list(vocabulary)
    column_at = np.full(len(tokens), -1, np.int64)  # first position -> column (-1: dropped)
    for word, position in words.items():
        column_at[position] = vocabulary.get(word, -1)
    separator = first.get(b"\x00")
    if separator is not None:
        column_at[separator] = -2
    ids = column_at[first_seen]
    ends = np.flatnonzero(ids == -2)  # one separator between documents
    # Document k's tokens run up to and including its separator (the last one's to the end).
    lengths = np.diff(np.concatenate(([-1], ends, [len(ids) - 1])))
    rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    keep = ids >= 0
    return terms, rows[keep], ids[keep]


_WORD_CHARACTER = re.compile(r"\w")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_NON_WORD_TO_SPACE = bytes(
    byte if byte == 0 or byte >= 0x80 or _WORD_CHARACTER.match(chr(byte)) else 0x20
    for byte in range(256)
)


def _ngrams(words: list[str], low: int, high: int) -> list[str]:
    """Word n-grams of every length from ``low`` to ``high``, joined by single spaces."""
    out = list(words) if low == 1 else []
    for n in range(max(low, 2), high + 1):
        out += map(" ".join, zip(*(words[k:] for k in range(n)), strict=False))  # n-word runs
    return out


def _count_pairs(rows: np.ndarray, cols: np.ndarray, num_cols: int) -> _Counts:
    """How often each (row, col) pair occurs, sorted by row then column."""
    keys = rows * num_cols + cols
    if keys.size == 0:
        return _Counts(keys, keys.copy(), keys.copy())
    # Rows arrive in order (in runs, one per n-gram length), so the keys are mostly sorted, which
    # a stable sort (timsort) exploits: ~3x faster than the quicksort inside np.unique.
    keys.sort(kind="stable")
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(starts, len(keys)))
    keys = keys[starts]
    return _Counts(keys // num_cols, keys % num_cols, counts)


def _kept_terms(df: np.ndarray, tf: np.ndarray, n_docs: int, config: TfidfConfig) -> np.ndarray:
    """bool[n_terms]: the terms ``min_df``, ``max_df`` and ``max_features`` keep
    (scikit-learn's rules)."""
    high = config.max_df if isinstance(config.max_df, Integral) else config.max_df * n_docs
    low = config.min_df if isinstance(config.min_df, Integral) else config.min_df * n_docs
    if high < low:
        raise ValueError(
            f"max_df={config.max_df} allows fewer documents ({high:g}) than "
            f"min_df={config.min_df} requires ({low:g}); raise max_df or lower min_df"
        )
    keep = (df <= high) & (df >= low)
    if config.max_features is not None and keep.sum() > config.max_features:
        # The same call as scikit-learn, so ties in frequency are broken identically.
        order = (-tf[keep]).argsort()[: config.max_features]
        limited = np.zeros_like(keep)
        limited[np.where(keep)[0][order]] = True
        keep = limited
    if not keep.any():
        raise ValueError(
            f"empty vocabulary: no term occurs in at least min_df={config.min_df} and at "
            f"most max_df={config.max_df} of the {n_docs} documents; lower min_df or "
            "raise max_df"
        )
    return keep


def _weighted(
    counts: _Counts, idf: np.ndarray, config: TfidfConfig, shape: tuple[int, int], dtype
) -> sparse.BCOO:
    """TF-IDF values of ``counts`` (float64 on the host), as a ``BCOO`` of ``dtype``."""
    tf = np.ones(len(counts.counts)) if config.binary else counts.counts.astype(np.float64)
    if config.sublinear_tf:
        tf = 1.0 + np.log(tf)
    values = tf * idf[counts.cols]
    if config.norm is not None:
        per_row = np.abs(values) if config.norm == "l1" else values * values
        norms = np.bincount(counts.rows, per_row, minlength=shape[0])
        norms = norms if config.norm == "l1" else np.sqrt(norms)
        values = values / norms[counts.rows]  # a row with a value has a positive norm
    indices = np.stack([counts.rows, counts.cols], axis=1).astype(np.int32)
    return sparse.BCOO(
        (to_device(values, dtype), to_device(indices)),
        shape=shape,
        indices_sorted=True,
        unique_indices=True,
    )


def top_terms(
    vectorizer: Vectorizer, weights: Iterable[float], k: int = 10
) -> list[tuple[str, float]]:
    """The ``k`` terms with the largest ``weights`` (e.g. a linear model's coefficients)."""
    require(k >= 0, f"top_terms: k must be >= 0, got {k}", ValueError)
    weights = np.asarray(list(weights), np.float64)
    require(
        weights.shape == (vectorizer.num_features,),
        f"expected {vectorizer.num_features} weights (one per term), got shape {weights.shape}",
        ValueError,
    )
    order = np.argsort(-weights, kind="stable")[:k]
    return [(vectorizer.terms[i], float(weights[i])) for i in order if math.isfinite(weights[i])]
