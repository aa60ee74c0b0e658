"""word2vec (Mikolov et al. 2013): skip-gram and CBOW with negative sampling, trained by SGD.

Each word ``w`` has an input vector ``v_w`` (a row of ``W_in``, the word vectors) and an output
vector ``u_w`` (a row of ``W_out``). For a centre word ``c``, a word ``o`` seen near it, and
``K`` noise words ``k_1..k_K`` drawn from the unigram distribution raised to ``ns_exponent``,
the negative-sampling loss is

    ℓ = -log σ(u_o · h) - Σ_k log σ(-u_k · h)

with ``h = v_c`` (skip-gram) or ``h`` the mean of the context words' input vectors (CBOW:
predict the centre from its context, gensim's ``cbow_mean=1``; the centre is then the
"positive" word ``o``). Skip-gram trains each pair the way word2vec's C code and gensim do:
the context word's input vector predicts the centre (``c`` is the context word, ``o`` the
centre). The windows are symmetric, so these are the same pairs as centre-predicts-context,
but a window's pairs then share the centre's output vector rather than its input vector,
which gave gensim's similarity scores where the other way round fell ~0.02 short.

The pipeline follows word2vec's C code and gensim:

1. :func:`build_vocab`: count words, drop those seen fewer than ``min_count`` times, sort by
   descending count (ties by first appearance).
2. Each epoch, on the host with NumPy: subsample frequent words (:func:`keep_probabilities`),
   draw a reduced window ``b ~ U{1..window}`` per remaining position, and pair each centre with
   the words at distance ``<= b`` in the same sentence (:func:`skipgram_pairs`,
   :func:`cbow_windows`). CBOW sends the epoch's surviving words to the device once and each
   row as three numbers (where its window is), and the device reads the window from them.
3. The rows (skip-gram pairs or CBOW centres), a segment of 512 batches at a time, are dealt
   into batches from interleaved stretches of the segment (:func:`_interleave`): skip-gram
   takes runs of 128 neighbouring rows from each of 16 stretches, CBOW one row from each of
   2,048 (``_STREAM_RUN``). A passage that repeats one word (a table, a code listing) then
   cannot fill a batch with stale copies of the same update, which made plain consecutive
   batches diverge on the Python manual. Then ``negative`` noise words per row (the
   distribution of :func:`sample_negatives`, drawn with NumPy). The host's work runs in a
   thread, a segment ahead of the device.
4. On device, 64 batches per compiled call, one after the other in a ``lax.scan``
   (:func:`skipgram_steps`, :func:`cbow_corpus_steps`): per batch, one SGD step of the SUM of
   the batch's losses as scatter-adds into the two tables (:func:`skipgram_update`,
   :func:`cbow_update`), so the step per pair is word2vec's ``alpha``. Within a batch every
   pair sees the tables as they were before the batch, where word2vec would see the updates of
   earlier pairs; for pairs that share no word the two agree.
5. ``alpha`` decays linearly to ``min_alpha`` over the words (before subsampling) of all epochs.

Typical use::

    sentences = [line.lower().split() for line in text.splitlines()]
    model = train_word2vec(sentences, Word2VecConfig(model="skipgram", min_count=5))
    model.most_similar("king", topn=5)
    save_word2vec_format(model, "vectors.txt")
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from queue import Empty, Queue

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from tqdm.auto import tqdm

from jaxllm.config import require
from jaxllm.data.corpora import EmptyCorpusError
from jaxllm.embeddings.evaluate import nearest_neighbours

MODELS = ("skipgram", "cbow")
# gensim's cum_table scale: noise-word probabilities as integer widths out of 2**31 - 1, so a
# draw is an exact integer comparison and words with tiny probability keep their share.
_CUM_TABLE_DOMAIN = 2**31 - 1
# Centres windowed at once on the host: bounds memory at ~2 * window * this many ints.
_HOST_CHUNK = 1 << 16
# Batches run by one compiled call (a lax.scan over them): amortises the dispatch and the
# host-to-device copies, while each batch still sees the tables updated by the previous one.
_BATCHES_PER_CALL = 64
# ... and by one call on the last, partial block of an epoch (padded with empty batches).
_BATCHES_PER_TAIL_CALL = 8
# Blocks per segment: the rows dealt into one set of interleaved streams (see _interleave).
_SEGMENT_BLOCKS = 8
# Neighbouring rows a stream puts into each batch (see _interleave). A skip-gram row is one
# pair: runs of 128 (~30 centre words) keep a passage together in one step, which on small
# corpora ranked related words as gensim does where single rows did not. A CBOW row is a whole
# window, and neighbouring centres share most of theirs: one row per stream sends them to
# successive batches, as word2vec takes them, which gave gensim's SimLex-999 and analogy
# scores where runs of 128 fell short.
_STREAM_RUN = {"skipgram": 128, "cbow": 1}
# The tables' rows are padded to a multiple of this many floats (zeros that stay zero):
# XLA:CPU gathers and scatters rows of 104 floats ~10% faster than rows of 100.
_ROW_ALIGN = 8
# A target whose score u·h is at least this far from 0 is not updated, as in gensim (its
# sigmoid table spans [-6, 6]): the steps stay bounded when many same-word rows share a batch.
_MAX_SCORE = 6.0
# Buckets of the noise words' guide table (:func:`sample_negatives`).
_GUIDE_BITS = 16
# Noise words drawn on the host at a time: ~2.5 MB of work arrays, which stay in cache.
_NEGATIVES_PIECE = 1 << 17


class UnknownWordError(KeyError):
    """A word that is not in the model's vocabulary."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Word2VecConfig:
    """Attributes (defaults are gensim's):
      model: ``"skipgram"`` (predict the context from the centre word) or ``"cbow"``
        (predict the centre word from the mean of its context).
      vector_size: dimension ``d`` of the word vectors.
      window: largest distance between a centre and a context word; each position draws
        its own window ``b`` uniformly from ``1..window``, as word2vec does.
      negative: noise words per positive word.
      min_count: drop words seen fewer times than this.
      sample: subsampling threshold (0 disables it); see :func:`keep_probabilities`.
      alpha: initial learning rate (the SGD step per pair).
      min_alpha: learning rate reached at the end of the last epoch.
      epochs: passes over the corpus.
      batch_size: skip-gram pairs (or CBOW centre words) per jitted update. Every pair in a
        batch sees the tables from before it, so a frequent word collects many
        same-direction steps at once: 16384 diverges on the 64k-word pydoc corpus where 4096
        does not, and on 2 CPU cores 2048 was also the fastest per pair.
      seed: seeds the initial vectors, the subsampling and windows, and the negatives.
      max_vocab_size: keep only this many most frequent words (after ``min_count``); unlike
        gensim's option of the same name, which prunes while counting to bound memory, this
        is an exact cap.
      ns_exponent: exponent of the unigram counts in the noise distribution.
    """

    model: str = "skipgram"
    vector_size: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 1e-4
    epochs: int = 5
    batch_size: int = 2048
    seed: int = 0
    max_vocab_size: int | None = None
    ns_exponent: float = 0.75

    def __post_init__(self):
        require(self.model in MODELS, f"Word2VecConfig.model must be one of {MODELS}, got {self.model!r}")
        require(self.vector_size > 0 and self.window > 0 and self.negative > 0,
                "Word2VecConfig.vector_size, window and negative must be > 0, got "
                f"{self.vector_size}, {self.window}, {self.negative}")
        require(self.min_count >= 1, f"Word2VecConfig.min_count must be >= 1, got {self.min_count}")
        require(0.0 <= self.sample < 1.0,
                f"Word2VecConfig.sample is a fraction of the corpus in [0, 1), got {self.sample}")
        require(self.alpha > 0 and 0 <= self.min_alpha <= self.alpha,
                f"need alpha > 0 and 0 <= min_alpha <= alpha, got alpha={self.alpha}, "
                f"min_alpha={self.min_alpha}")
        require(self.epochs > 0 and self.batch_size > 0,
                f"Word2VecConfig.epochs and batch_size must be > 0, got {self.epochs}, {self.batch_size}")
        require(self.max_vocab_size is None or self.max_vocab_size > 0,
                f"Word2VecConfig.max_vocab_size must be None or > 0, got {self.max_vocab_size}")
        require(math.isfinite(self.ns_exponent),
                f"Word2VecConfig.ns_exponent must be finite, got {self.ns_exponent}")


# ----------------------------------------------------------------------------- vocabulary


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Words by descending count (ties by first appearance in the corpus).

    Attributes:
      words: the words; word ``i`` has id ``i``.
      counts: int64[V], occurrences of each word in the corpus.
    """

    words: tuple[str, ...]
    counts: np.ndarray
    index: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @property
    def total_words(self) -> int:
        """Occurrences of vocabulary words in the corpus."""
        return int(self.counts.sum())

    def id(self, word: str) -> int:
        """The id of ``word``; :class:`UnknownWordError` if it is not in the vocabulary."""
        if word not in self.index:
            raise UnknownWordError(
                f"{word!r} is not in the vocabulary ({len(self)} words); it is absent from the "
                "training corpus or seen fewer than min_count times")
        return self.index[word]


@dataclasses.dataclass(frozen=True)
class _Scan:
    """One pass over a corpus: distinct words in order of first appearance, their counts, and
    the corpus as ids into that order."""

    words: list[str]
    counts: np.ndarray  # int64[distinct]
    tokens: np.ndarray  # int32[num_tokens]
    sentence_lengths: np.ndarray  # int64[num_sentences]


def _scan(sentences: Iterable[list[str]]) -> _Scan:
    if isinstance(sentences, str):
        raise TypeError("sentences must be an iterable of lists of words, got one string; "
                        "split it, e.g. [line.split() for line in text.splitlines()]")
    first_seen: dict[str, int] = {}
    tokens: list[int] = []
    lengths: list[int] = []
    for sentence in sentences:
        if isinstance(sentence, str):
            raise TypeError(f"each sentence must be a list of words, got the string {sentence[:40]!r}; "
                            "split it into words first")
        before = len(tokens)
        # setdefault's default is evaluated first, so a new word gets the next free id.
        tokens.extend([first_seen.setdefault(w, len(first_seen)) for w in sentence])
        lengths.append(len(tokens) - before)
    if not tokens:
        raise EmptyCorpusError("the corpus has no words: pass an iterable of non-empty lists of words")
    tokens_array = np.asarray(tokens, np.int32)
    counts = np.bincount(tokens_array, minlength=len(first_seen)).astype(np.int64)
    return _Scan(list(first_seen), counts, tokens_array, np.asarray(lengths, np.int64))


def _vocab_from_scan(scan: _Scan, config: Word2VecConfig) -> tuple[Vocab, np.ndarray]:
    """The vocabulary, and the map ``int32[distinct]`` from first-appearance ids to vocabulary
    ids (-1 for dropped words)."""
    kept = np.flatnonzero(scan.counts >= config.min_count)
    if kept.size == 0:
        raise EmptyCorpusError(
            f"no word occurs at least min_count={config.min_count} times (the most frequent occurs "
            f"{int(scan.counts.max())} times); lower min_count or train on more text")
    # A stable sort of ids in first-appearance order breaks count ties by first appearance.
    order = kept[np.argsort(-scan.counts[kept], kind="stable")]
    if config.max_vocab_size is not None:
        order = order[: config.max_vocab_size]
    remap = np.full(len(scan.words), -1, np.int32)
    remap[order] = np.arange(order.size, dtype=np.int32)
    vocab = Vocab(tuple(scan.words[i] for i in order), scan.counts[order].astype(np.int64))
    return vocab, remap


def build_vocab(sentences: Iterable[list[str]], config: Word2VecConfig = Word2VecConfig()) -> Vocab:
    """The vocabulary of ``sentences`` (lists of words) under ``config.min_count`` and
    ``config.max_vocab_size``.

    Raises:
      EmptyCorpusError: the corpus has no words, or no word reaches ``min_count``.
    """
    return _vocab_from_scan(_scan(sentences), config)[0]


def encode_corpus(sentences: Iterable[list[str]], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """The corpus as ``(ids: int32[n], sentence_ids: int32[n])``: the vocabulary ids of its
    words in order, out-of-vocabulary words dropped (as word2vec does, so they neither count as
    context nor widen the window), and the index of the sentence each came from."""
    scan = _scan(sentences)
    lookup = np.array([vocab.index.get(w, -1) for w in scan.words], np.int32)
    return _encode_scan(scan, lookup)


def _encode_scan(scan: _Scan, remap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = remap[scan.tokens]
    sentence_ids = np.repeat(np.arange(scan.sentence_lengths.size, dtype=np.int32), scan.sentence_lengths)
    known = ids >= 0
    return ids[known], sentence_ids[known]


# ------------------------------------------------------------------ subsampling and noise


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability that one occurrence of each word survives subsampling: float64[V].

    With ``t = sample · Σ counts`` (gensim's threshold count) and ``f`` a word's count,
    ``P(keep) = min(1, (sqrt(f / t) + 1) · t / f)``, the formula of word2vec's C code.
    ``sample = 0`` keeps every word.
    """
    counts = np.asarray(counts, np.float64)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """The negative-sampling distribution ``P(w) = c_w^exponent / Σ_v c_v^exponent``: float64[V]."""
    weights = np.asarray(counts, np.float64) ** exponent
    return weights / weights.sum()


def noise_table(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """gensim's ``cum_table``: int32[V] cumulative :func:`noise_distribution` scaled to
    ``2**31 - 1``; word ``i`` owns the integers ``[table[i-1], table[i])``."""
    cumulative = np.cumsum(noise_distribution(counts, exponent))
    return np.round(cumulative * _CUM_TABLE_DOMAIN).astype(np.int32)


def sample_negatives(key: Array, table: Array, shape: tuple[int, ...]) -> Array:
    """Noise words ``int32[shape]`` drawn from the distribution of a :func:`noise_table`.

    A binary search of a uniform integer in the cumulative table: O(log V) per draw, where
    ``jax.random.categorical`` would cost O(V).
    """
    draws = jax.random.randint(key, shape, 0, table[-1], dtype=jnp.int32)
    return jnp.searchsorted(table, draws, side="right").astype(jnp.int32)


def _noise_guide(table: np.ndarray) -> np.ndarray:
    """For each of ``2**_GUIDE_BITS`` equal buckets of ``[0, 2**31)``, the word its first
    integer falls on (see :func:`_host_negatives`): int32[2**_GUIDE_BITS]."""
    starts = np.arange(2**_GUIDE_BITS, dtype=np.int64) << (31 - _GUIDE_BITS)
    # Every draw is below table[-1], so no answer is past the last word.
    return np.minimum(np.searchsorted(table, starts, side="right"), table.size - 1).astype(np.int32)


def _uniform_below(rng: np.random.Generator, high: int, size: int) -> np.ndarray:
    """``size`` integers uniform in ``[0, high)`` for ``2**30 < high <= 2**31``: int32. The top
    31 bits of raw 32-bit words, redrawn where they reach ``high`` (for gensim's table domain
    of ``2**31 - 1``, once in ~2**31 draws), which is ~6x cheaper than ``rng.integers``."""
    assert 2**30 < high <= 2**31, high
    raw = rng.bit_generator.random_raw(-(-size // 2)).view(np.uint32)[:size]
    draws = (raw >> 1).astype(np.int32)
    while (over := np.flatnonzero(draws >= high)).size:
        draws[over] = (rng.bit_generator.random_raw(over.size).astype(np.uint32) >> 1).astype(np.int32)
    return draws


def _host_negatives(rng: np.random.Generator, table: np.ndarray, guide: np.ndarray,
                    shape: tuple[int, ...]) -> np.ndarray:
    """:func:`sample_negatives` on the host: ``np.searchsorted(table, draws, "right")`` for
    draws uniform in ``[0, table[-1])`` (:func:`_uniform_below`), found by starting at the first
    word of the draw's :func:`_noise_guide` bucket and stepping forward (a bucket spans few
    words), which costs a pass or two instead of ``log2 V``. Drawn in pieces that stay in
    cache."""
    out = np.empty(math.prod(shape), np.int32)
    for start in range(0, out.size, _NEGATIVES_PIECE):
        draws = _uniform_below(rng, int(table[-1]), min(_NEGATIVES_PIECE, out.size - start))
        words = guide[draws >> (31 - _GUIDE_BITS)]
        behind = np.flatnonzero(table[words] <= draws)
        while behind.size:  # only the draws not yet placed
            words[behind] += 1
            behind = behind[table[words[behind]] <= draws[behind]]
        out[start:start + words.size] = words
    return out.reshape(shape)


# ------------------------------------------------------------------------- training data


def _subsample_and_windows(ids: np.ndarray, sentence_ids: np.ndarray, keep: np.ndarray,
                           window: int, rng: np.random.Generator):
    """Positions ``int64[m]`` that survive subsampling and each one's reduced window
    ``int64[m]`` in ``1..window``; word2vec draws the window after subsampling, so distances
    count surviving words."""
    survives = rng.random(ids.size) < keep[ids]
    positions = np.flatnonzero(survives)
    reduced = rng.integers(1, window + 1, size=positions.size)
    return positions, reduced


def _window_offsets(window: int) -> np.ndarray:
    """The distances of a centre's context slots, left to right: int32[2·window]."""
    return np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)]).astype(np.int32)


def _surviving_windows(ids, sentence_ids, keep, window, rng):
    """One epoch's subsampling and windows: ``(positions int64[m], kept_ids int32[m],
    left int32[m], right int32[m])``, the surviving positions, their words, and how far each
    looks left and right: its reduced window, cut at the ends of its sentence (counted in
    surviving words)."""
    positions, reduced = _subsample_and_windows(ids, sentence_ids, keep, window, rng)
    kept_sentences = sentence_ids[positions]
    m = positions.size
    index = np.arange(m, dtype=np.int32)
    starts = np.ones(m, bool)
    starts[1:] = kept_sentences[1:] != kept_sentences[:-1]
    ends = np.roll(starts, -1)
    first = np.maximum.accumulate(np.where(starts, index, 0))
    last = np.minimum.accumulate(np.where(ends, index, m - 1)[::-1])[::-1]
    left = np.minimum(reduced, index - first).astype(np.int32)
    right = np.minimum(reduced, last - index).astype(np.int32)
    return positions, ids[positions], left, right


def _window_mask(left, right, window: int):
    """Which of the ``2·window`` slots (:func:`_window_offsets`) are context: bool[m, 2w]. NumPy
    or JAX arrays."""
    offsets = _window_offsets(window)
    return (offsets >= -left[:, None]) & (offsets <= right[:, None])


def _window_chunks(ids, sentence_ids, keep, window, rng, chunk=_HOST_CHUNK):
    """Per chunk of surviving centres: ``(positions int64[m], context int32[m, 2w],
    mask bool[m, 2w], centre_ids int32[m])``, contexts ordered left to right as word2vec
    visits them."""
    positions, kept_ids, left, right = _surviving_windows(ids, sentence_ids, keep, window, rng)
    m = positions.size
    offsets = _window_offsets(window)
    for start in range(0, m, chunk):
        centre = np.arange(start, min(m, start + chunk), dtype=np.int32)
        mask = _window_mask(left[centre], right[centre], window)
        neighbour = np.clip(centre[:, None] + offsets, 0, max(m - 1, 0))  # (chunk, 2w)
        yield positions[centre], kept_ids[neighbour], mask, kept_ids[centre]


def skipgram_pairs(ids: np.ndarray, sentence_ids: np.ndarray, keep: np.ndarray, window: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of skip-gram training pairs, in corpus order.

    Args:
      ids, sentence_ids: int32[n], from :func:`encode_corpus`.
      keep: float[V], :func:`keep_probabilities`.
      window: the largest window; each surviving position draws ``b`` from ``1..window``.
      rng: draws the subsampling and the windows.

    Returns:
      ``(centres int32[p], contexts int32[p], positions int64[p])``: every word at distance
      ``<= b`` (in surviving words, within the sentence) of each surviving centre, and the
      centre's position in ``ids`` (which the learning-rate schedule counts).
    """
    parts = list(_skipgram_chunks(ids, sentence_ids, keep, window, rng, chunk=max(ids.size, 1)))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True)) if parts else (
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64))


def _skipgram_chunks(ids, sentence_ids, keep, window, rng, chunk=_HOST_CHUNK):
    for positions, context, mask, centre_ids in _window_chunks(ids, sentence_ids, keep, window, rng, chunk):
        rows, cols = np.nonzero(mask)  # row-major: by centre, then left to right
        yield centre_ids[rows], context[rows, cols], positions[rows]


def cbow_windows(ids: np.ndarray, sentence_ids: np.ndarray, keep: np.ndarray, window: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of CBOW examples: ``(centres int32[m], contexts int32[m, 2·window],
    mask bool[m, 2·window], positions int64[m])``, the same windows as :func:`skipgram_pairs`
    as one row per surviving centre that has at least one context word (masked slots hold
    word 0). Training builds the same rows on device from :func:`_cbow_rows`."""
    kept_ids, index, left, right, positions = _cbow_rows(ids, sentence_ids, keep, window, rng)
    corpus = _padded_corpus(kept_ids, kept_ids.size, window)
    centres, contexts, mask = _windows_from_corpus(corpus, index, left, right, window)
    return centres, contexts, mask, positions


def _cbow_rows(ids, sentence_ids, keep, window, rng):
    """One epoch of CBOW rows, as indices into the surviving words: ``(kept_ids int32[m],
    index int32[r], left int32[r], right int32[r], positions int64[r])`` for the ``r``
    surviving centres with at least one context word (the others change nothing in word2vec);
    ``index`` counts from the start of :func:`_padded_corpus`."""
    positions, kept_ids, left, right = _surviving_windows(ids, sentence_ids, keep, window, rng)
    rows = np.flatnonzero(left + right > 0).astype(np.int32)
    return kept_ids, rows + window, left[rows], right[rows], positions[rows]


def _padded_corpus(kept_ids: np.ndarray, length: int, window: int) -> np.ndarray:
    """The surviving words with ``window`` zeros before them and zeros after, up to
    ``length + 2·window`` (one shape for every epoch): int32."""
    corpus = np.zeros(length + 2 * window, np.int32)
    corpus[window:window + kept_ids.size] = kept_ids
    return corpus


def _windows_from_corpus(corpus, index, left, right, window: int):
    """``(centres [r], contexts [r, 2w], mask bool[r, 2w])`` of the rows at ``index`` in
    ``corpus`` (NumPy or JAX arrays): masked slots hold word 0, one row that stays in cache
    rather than a random one."""
    mask = _window_mask(left, right, window)
    xp = jnp if isinstance(corpus, jax.Array) else np
    contexts = xp.where(mask, corpus[index[:, None] + _window_offsets(window)], 0)
    return corpus[index], contexts, mask


def _segments(chunks: Iterator[tuple[np.ndarray, ...]], rows: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Re-cut chunks of rows (tuples of arrays of equal length) into segments of exactly
    ``rows`` rows, the last one shorter."""
    pending: list[tuple[np.ndarray, ...]] = []
    have = 0
    for chunk in chunks:
        pending.append(chunk)
        have += chunk[0].shape[0]
        if have < rows:
            continue
        joined = [np.concatenate(p) for p in zip(*pending, strict=True)]
        full = have // rows * rows
        for start in range(0, full, rows):
            yield tuple(a[start:start + rows] for a in joined)
        pending = [tuple(a[full:] for a in joined)]
        have -= full
    if have:
        yield tuple(np.concatenate(p) for p in zip(*pending, strict=True))


def _interleave(arrays: tuple[np.ndarray, ...], batch_size: int, multiple: int, run: int = 1) -> list[np.ndarray]:
    """Deal ``m`` rows (in corpus order) into batches from ``batch_size / run`` streams: the
    rows are cut into that many equal stretches, and batch ``i`` holds rows
    ``i·run ... (i+1)·run - 1`` of every stretch (``run`` is cut to the largest divisor of
    ``batch_size`` that does not exceed it). Returns each array as ``[num_batches, batch_size, ...]``,
    ``num_batches = ceil(m / batch_size)`` rounded up to a ``multiple``, zero-padded at the
    end of the last stretches.

    A stretch of text that repeats one word (a table, a code listing) then puts at most
    ``run`` rows into any one batch, where ``batch_size`` neighbouring rows would bring that
    many stale copies of the same update; each stretch still meets the tables in corpus order.
    ``run > 1`` keeps neighbouring rows in the same step (see ``_STREAM_RUN``).
    """
    run = max(r for r in range(1, min(run, batch_size) + 1) if batch_size % r == 0)
    m = arrays[0].shape[0]
    num_batches = -(-max(-(-m // batch_size), 1) // multiple) * multiple
    num_streams, stretch = batch_size // run, num_batches * run
    full = m // stretch  # stretches without padding
    rest, cut = divmod(m - full * stretch, run)
    out = []
    for a in arrays:
        batches = np.zeros((num_batches, num_streams, run, *a.shape[1:]), a.dtype)
        streams = batches.swapaxes(0, 1)  # a view: [num_streams, num_batches, run, ...]
        streams[:full] = a[:full * stretch].reshape(full, num_batches, run, *a.shape[1:])
        if full < num_streams:
            start = full * stretch
            streams[full, :rest] = a[start:start + rest * run].reshape(rest, run, *a.shape[1:])
            streams[full, rest, :cut] = a[start + rest * run:m]
        out.append(batches.reshape(num_batches, batch_size, *a.shape[1:]))
    return out


# ---------------------------------------------------------------------- losses and updates


def init_embeddings(key: Array, vocab_size: int, vector_size: int) -> tuple[Array, Array]:
    """``(W_in, W_out)``, float32[V, d] each: input vectors uniform in ``±0.5 / d`` (word2vec's C
    code; gensim 4 uses ``±1 / d``), output vectors zero."""
    bound = 0.5 / vector_size
    W_in = jax.random.uniform(key, (vocab_size, vector_size), jnp.float32, -bound, bound)
    return W_in, jnp.zeros((vocab_size, vector_size), jnp.float32)


def _targets_and_use(positives: Array, negatives: Array, weights: Array | None):
    """Output words ``int32[b, 1+K]`` (the positive first) and each term's weight
    ``float32[b, 1+K]``: a noise word equal to the positive is skipped, as in word2vec."""
    targets = jnp.concatenate([positives[:, None], negatives], axis=1)
    use = jnp.concatenate([jnp.ones_like(positives[:, None], bool), negatives != positives[:, None]], axis=1)
    use = use.astype(jnp.float32)
    return targets, use if weights is None else use * weights[:, None]


def _signed_scores(h: Array, u: Array) -> tuple[Array, Array]:
    """Scores ``f = u_t · h``: float32[b, 1+K], and ``f`` with the noise words' sign flipped, so
    each term of the loss is ``-log σ(signed)``."""
    f = jnp.einsum("bd,bkd->bk", h, u)
    sign = jnp.where(jnp.arange(f.shape[1]) == 0, 1.0, -1.0)
    return f, f * sign


def negative_sampling_loss(W_in: Array, W_out: Array, centres: Array, contexts: Array,
                           negatives: Array, weights: Array | None = None) -> Array:
    """Skip-gram loss summed over pairs: ``Σ_i w_i [-log σ(u_{o_i}·v_{c_i}) - Σ_k log σ(-u_{k}·v_{c_i})]``.

    Args:
      W_in, W_out: float32[V, d].
      centres, contexts: int32[b], the pairs ``(c_i, o_i)``: the word whose input vector is
        used and the word to predict (:func:`train_word2vec` passes a pair's context word as
        ``c`` and its centre as ``o``, as word2vec's C code does).
      negatives: int32[b, K]; a noise word equal to ``o_i`` is left out of the sum.
      weights: optional float32[b] per-pair weights (0 for padding).

    Returns:
      The scalar sum (not the mean), so that ``alpha · grad`` is word2vec's per-pair step.
    """
    targets, use = _targets_and_use(contexts, negatives, weights)
    _, signed = _signed_scores(W_in[centres], W_out[targets])
    return -jnp.sum(use * jax.nn.log_sigmoid(signed))


def _context_mean(W_in: Array, contexts: Array, mask: Array) -> tuple[Array, Array]:
    """Mean input vector of each row's context words: float32[b, d], and the counts float32[b]."""
    mask = mask.astype(jnp.float32)
    count = jnp.sum(mask, axis=1)
    h = jnp.einsum("bc,bcd->bd", mask, W_in[contexts]) / jnp.maximum(count, 1.0)[:, None]
    return h, count


def cbow_negative_sampling_loss(W_in: Array, W_out: Array, contexts: Array, context_mask: Array,
                                centres: Array, negatives: Array, weights: Array | None = None) -> Array:
    """CBOW loss summed over examples: ``Σ_i w_i [-log σ(u_{c_i}·h_i) - Σ_k log σ(-u_k·h_i)]`` with
    ``h_i`` the mean input vector of row ``i``'s context words.

    Args:
      contexts: int32[b, C] context words; context_mask: bool[b, C] which of them count.
      centres: int32[b] the words to predict; negatives: int32[b, K].
    """
    h, _ = _context_mean(W_in, contexts, context_mask)
    targets, use = _targets_and_use(centres, negatives, weights)
    _, signed = _signed_scores(h, W_out[targets])
    return -jnp.sum(use * jax.nn.log_sigmoid(signed))


def _output_step(h: Array, targets: Array, use: Array, W_out: Array, lr: Array):
    """word2vec's inner loop for all rows at once: ``g = (label - σ(f)) · lr``, 0 where
    ``|f| >= 6`` (gensim's rule); returns
    ``(g·u summed over targets: float32[b, d], W_out + g·h scattered, loss)``."""
    u = W_out[targets]  # (b, 1+K, d)
    f, signed = _signed_scores(h, u)
    labels = (jnp.arange(f.shape[1]) == 0).astype(jnp.float32)
    # gensim (and word2vec's table lookup) skips a target whose score is saturated.
    g = jnp.where(jnp.abs(f) < _MAX_SCORE, labels - jax.nn.sigmoid(f), 0.0)
    g = g * jnp.reshape(lr, (-1, 1)) * use  # (b, 1+K)
    loss = -jnp.sum(use * jax.nn.log_sigmoid(signed))
    W_out = W_out.at[targets].add(g[..., None] * h[:, None, :], mode="promise_in_bounds")
    # Σ_t g_t u_t as a sum of 1+K terms: one fused loop, where XLA:CPU's batched dot is slower.
    return sum(g[:, k, None] * u[:, k] for k in range(u.shape[1])), W_out, loss


def skipgram_update(W_in: Array, W_out: Array, centres: Array, contexts: Array, negatives: Array,
                    weights: Array, lr: Array) -> tuple[Array, Array, Array]:
    """One SGD step ``W ← W - lr · ∇ negative_sampling_loss`` as scatter-adds into the rows the
    batch touches, leaving out (as gensim does) the terms whose score ``|u·v| >= 6``: returns
    ``(W_in, W_out, loss before the step)``. ``lr`` is one learning rate or float32[b], one per
    pair."""
    W_in, W_out = jnp.asarray(W_in), jnp.asarray(W_out)
    targets, use = _targets_and_use(contexts, negatives, weights)
    h = W_in[centres]
    grad_h, W_out, loss = _output_step(h, targets, use, W_out, lr)
    return W_in.at[centres].add(grad_h, mode="promise_in_bounds"), W_out, loss


def cbow_update(W_in: Array, W_out: Array, contexts: Array, context_mask: Array, centres: Array,
                negatives: Array, weights: Array, lr: Array) -> tuple[Array, Array, Array]:
    """One CBOW step as word2vec and gensim (``cbow_mean=1``) take it: ``W_out`` moves by
    ``-lr · ∇``; each context word's input vector moves by the whole error ``Σ_t g_t u_t``
    rather than the exact gradient's ``1/count`` share of it. ``lr``: a scalar or float32[b].
    Returns ``(W_in, W_out, loss)``."""
    W_in, W_out = jnp.asarray(W_in), jnp.asarray(W_out)
    h, _ = _context_mean(W_in, contexts, context_mask)
    targets, use = _targets_and_use(centres, negatives, weights)
    error, W_out, loss = _output_step(h, targets, use, W_out, lr)
    # Masked slots point past the table and are dropped, rather than adding zeros. One scatter
    # per slot reads the (b, d) error directly instead of a (b, C, d) copy of it.
    rows = jnp.where(context_mask, contexts, W_in.shape[0])
    for c in range(contexts.shape[1]):
        W_in = W_in.at[rows[:, c]].add(error, mode="drop")
    return W_in, W_out, loss


@functools.partial(jax.jit, donate_argnums=(0, 1), static_argnames=("negative",))
def skipgram_step(W_in, W_out, centres, contexts, weights, key, lr, table, *, negative: int):
    """Jitted :func:`skipgram_update` with ``negative`` noise words per pair drawn from ``key``
    and the :func:`noise_table` ``table``; the tables are donated (updated in place)."""
    negatives = sample_negatives(key, table, (centres.shape[0], negative))
    return skipgram_update(W_in, W_out, centres, contexts, negatives, weights, lr)


@functools.partial(jax.jit, donate_argnums=(0, 1), static_argnames=("negative",))
def cbow_step(W_in, W_out, centres, contexts, context_mask, weights, key, lr, table, *, negative: int):
    """Jitted :func:`cbow_update`, negatives drawn as in :func:`skipgram_step`."""
    negatives = sample_negatives(key, table, (centres.shape[0], negative))
    return cbow_update(W_in, W_out, contexts, context_mask, centres, negatives, weights, lr)


def _scan_steps(update, W_in, W_out, arrays, negatives, weights, lrs):
    """``update`` applied to each batch of a ``[num_batches, batch_size, ...]`` block in turn,
    inside one compiled loop."""

    def body(carry, x):
        batch, neg, w, lr = x
        W_in, W_out, loss = update(*carry, *batch, neg, w, lr)
        return (W_in, W_out), loss

    (W_in, W_out), losses = lax.scan(body, (W_in, W_out), (tuple(arrays), negatives, weights, lrs))
    return W_in, W_out, losses


@functools.partial(jax.jit, donate_argnums=(0, 1))
def skipgram_steps(W_in, W_out, centres, contexts, negatives, weights, lrs):
    """:func:`skipgram_update` on each of ``num_batches`` batches in order, in one compiled call
    (the tables are donated): ``centres, contexts, weights`` are ``[num_batches, batch_size]``,
    ``negatives`` ``[num_batches, batch_size, K]`` and ``lrs`` float32[num_batches] (one per
    batch) or float32[num_batches, batch_size] (one per pair). Equals the
    loop of :func:`skipgram_update` calls; a batch of zero weights changes nothing. Returns
    ``(W_in, W_out, losses float32[num_batches])``."""
    return _scan_steps(skipgram_update, W_in, W_out, (centres, contexts), negatives, weights, lrs)


@functools.partial(jax.jit, donate_argnums=(0, 1))
def cbow_steps(W_in, W_out, centres, contexts, context_mask, negatives, weights, lrs):
    """:func:`cbow_update` on each of ``num_batches`` batches, as :func:`skipgram_steps` does."""
    return _scan_steps(
        lambda W_in, W_out, c, ctx, m, neg, w, lr: cbow_update(W_in, W_out, ctx, m, c, neg, w, lr),
        W_in, W_out, (centres, contexts, context_mask), negatives, weights, lrs)


@functools.partial(jax.jit, donate_argnums=(0, 1), static_argnames=("window",))
def cbow_corpus_steps(W_in, W_out, corpus, index, left, right, negatives, weights, lrs, *, window: int):
    """:func:`cbow_steps` with each row's window read from ``corpus`` on device: row ``j`` of a
    batch predicts ``corpus[index_j]`` from the words ``corpus[index_j + o]`` for
    ``-left_j <= o <= right_j, o != 0`` (``0 <= left, right <= window``). ``corpus`` is
    int32[L] (:func:`_padded_corpus`); ``index, left, right`` are int32[num_batches, batch_size].
    The host then sends three numbers per row instead of ``4·window`` for its window."""

    def update(W_in, W_out, index, left, right, negatives, weights, lr):
        centres, contexts, mask = _windows_from_corpus(corpus, index, left, right, window)
        return cbow_update(W_in, W_out, contexts, mask, centres, negatives, weights, lr)

    return _scan_steps(update, W_in, W_out, (index, left, right), negatives, weights, lrs)


# ------------------------------------------------------------------------------ training


@dataclasses.dataclass(frozen=True)
class Word2VecModel:
    """Trained word2vec embeddings.

    Attributes:
      vocab: the words.
      config: how they were trained.
      W_in: float32[V, d], the word vectors.
      W_out: float32[V, d], the output (context) vectors.
      epoch_losses: mean loss per pair (skip-gram) or per centre word (CBOW), each epoch.
      words_per_second: corpus words (before subsampling) trained on per second, each epoch.
      effective_words_per_second: words surviving subsampling per second (gensim's
        "effective words"), each epoch.
      compile_seconds: time spent compiling the training step before the first epoch (not
        counted in the epochs' rates).
    """

    vocab: Vocab
    config: Word2VecConfig
    W_in: np.ndarray
    W_out: np.ndarray
    epoch_losses: tuple[float, ...] = ()
    words_per_second: tuple[float, ...] = ()
    effective_words_per_second: tuple[float, ...] = ()
    compile_seconds: float = 0.0

    @property
    def vectors(self) -> np.ndarray:
        """The word vectors: float32[V, d]."""
        return self.W_in

    def __getitem__(self, word: str) -> np.ndarray:
        return self.W_in[self.vocab.id(word)]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words' vectors."""
        u, v = self[a], self[b]
        return float(u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-12))

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` words of highest cosine similarity to ``word`` (itself excluded)."""
        require(topn > 0, f"topn must be > 0, got {topn}")
        self.vocab.id(word)  # an unknown word raises UnknownWordError, naming it
        return nearest_neighbours(self.vocab.words, self.W_in, word, topn=topn)


def _learning_rate(config: Word2VecConfig, epoch: int, positions: np.ndarray, corpus_words: int) -> np.ndarray:
    """gensim's linear decay over the words of all epochs, floored at ``min_alpha``: float32
    per corpus position."""
    progress = (epoch + np.asarray(positions, np.float64) / corpus_words) / config.epochs
    return np.maximum(config.min_alpha, config.alpha - (config.alpha - config.min_alpha) * progress).astype(np.float32)


def train_word2vec(sentences: Iterable[list[str]], config: Word2VecConfig = Word2VecConfig(), *,
                   progress: bool = True) -> Word2VecModel:
    """Train word vectors on ``sentences`` (an iterable of lists of words, read once).

    Deterministic given ``config.seed``: epoch ``e``'s subsampling and windows come from
    ``numpy.random.default_rng([seed, e])``, and its negatives from
    ``numpy.random.default_rng([seed, e, 1])``.

    Raises:
      EmptyCorpusError: no words, or none that reaches ``min_count``.
    """
    scan = _scan(sentences)
    vocab, remap = _vocab_from_scan(scan, config)
    ids, sentence_ids = _encode_scan(scan, remap)
    keep = keep_probabilities(vocab.counts, config.sample)
    table = noise_table(vocab.counts, config.ns_exponent)
    guide = _noise_guide(table)
    init_key, _ = jax.random.split(jax.random.key(config.seed))
    d = config.vector_size
    # Rows padded with zero columns, which no update changes (each adds a multiple of a row).
    padding = ((0, 0), (0, -d % _ROW_ALIGN))
    W_in, W_out = (jnp.pad(W, padding) for W in init_embeddings(init_key, len(vocab), d))

    n = ids.size
    batch, per_call = config.batch_size, _BATCHES_PER_CALL
    tail = min(per_call, _BATCHES_PER_TAIL_CALL)
    def epoch_segments():  # every epoch's segments, each epoch followed by None
        for epoch in range(config.epochs):
            rng = np.random.default_rng([config.seed, epoch])
            noise_rng = np.random.default_rng([config.seed, epoch, 1])
            if config.model == "skipgram":  # (input, output) = (context, centre), as word2vec.c
                pairs = _skipgram_chunks(ids, sentence_ids, keep, config.window, rng)
                shared, rows = (), ((o, c, p) for c, o, p in pairs)
            else:  # the epoch's surviving words go to the device once; rows index them
                kept_ids, *cbow_rows = _cbow_rows(ids, sentence_ids, keep, config.window, rng)
                shared, rows = (jax.device_put(_padded_corpus(kept_ids, n, config.window)),), iter([cbow_rows])
            last = -1
            for *arrays, positions in _segments(rows, batch * per_call * _SEGMENT_BLOCKS):
                weights = np.ones(positions.size, np.float32)
                lrs = _learning_rate(config, epoch, positions, n)
                *arrays, weights, lrs = _interleave((*arrays, weights, lrs), batch, tail,
                                                    _STREAM_RUN[config.model])
                # Independent draws: made in the batches' layout, for the padding too.
                negatives = _host_negatives(noise_rng, table, guide, (*weights.shape, config.negative))
                # A skip-gram centre's pairs may straddle two segments: count it once.
                effective = _distinct_count(positions) - int(positions[0] == last)
                last = int(positions[-1])
                yield shared, (*arrays, negatives, weights, lrs), positions.size, effective, last + 1
            yield None

    losses, rates, effective_rates = [], [], []
    bar = tqdm(total=n * config.epochs, unit="word", unit_scale=True, disable=not progress,
               desc=f"word2vec {config.model}")
    # Built ahead in a thread, across epoch ends too; the first ones while the step compiles.
    segments = _Prefetched(epoch_segments(), depth=1)
    try:
        compile_start = time.perf_counter()
        # One executable for full blocks of batches, one for the shorter groups that end a
        # segment (a block padded with empty batches costs as much as a full one).
        lower = skipgram_steps.lower if config.model == "skipgram" else functools.partial(
            cbow_corpus_steps.lower, window=config.window)
        compiled = {size: lower(W_in, W_out, *_block_shapes(config, size, n)).compile()
                    for size in sorted({per_call, tail})}
        compile_seconds = time.perf_counter() - compile_start
        for epoch in range(config.epochs):
            start, done, examples, effective = time.perf_counter(), 0, 0, 0
            epoch_loss = []
            for shared, batches, rows, segment_effective, reached in iter(lambda: next(segments), None):
                num_batches, first = batches[0].shape[0], done
                full = num_batches - num_batches % per_call
                groups = ([(lo, lo + per_call) for lo in range(0, full, per_call)]
                          + [(lo, lo + tail) for lo in range(full, num_batches, tail)])
                for lo, hi in groups:
                    W_in, W_out, loss = compiled[hi - lo](W_in, W_out, *shared, *(a[lo:hi] for a in batches))
                    epoch_loss.append(loss)
                    # Every stream is this far through its stretch of the segment.
                    now = first + (reached - first) * hi // num_batches
                    bar.update(now - done)
                    done = now
                examples += rows
                effective += segment_effective
            W_in.block_until_ready()
            bar.update(n - done)
            seconds = max(time.perf_counter() - start, 1e-9)
            total_loss = float(np.sum([np.sum(np.asarray(x, np.float64)) for x in epoch_loss]))
            # An untrained pair costs (1 + negative)·ln 2; ten times that means the summed batch
            # steps overshot, even while the numbers are still finite.
            ceiling = 10 * (1 + config.negative) * math.log(2) * max(examples, 1)
            if not math.isfinite(total_loss) or total_loss > ceiling:
                raise FloatingPointError(
                    f"word2vec diverged in epoch {epoch + 1} (loss {total_loss}): batches of "
                    f"{config.batch_size} sum too many steps on the same frequent words; lower "
                    "batch_size or alpha")
            losses.append(total_loss / max(examples, 1))
            rates.append(n / seconds)
            effective_rates.append(effective / seconds)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", words_per_s=f"{rates[-1]:.3g}",
                            effective_words_per_s=f"{effective_rates[-1]:.3g}")
    finally:
        segments.close()
        bar.close()
    return Word2VecModel(vocab=vocab, config=config, W_in=np.asarray(W_in)[:, :d],
                         W_out=np.asarray(W_out)[:, :d], epoch_losses=tuple(losses),
                         words_per_second=tuple(rates), effective_words_per_second=tuple(effective_rates),
                         compile_seconds=compile_seconds)


def _block_shapes(config: Word2VecConfig, per_call: int, corpus_words: int) -> tuple[jax.ShapeDtypeStruct, ...]:
    """Shapes of the arguments of :func:`skipgram_steps` / :func:`cbow_corpus_steps` after the
    tables: the corpus (CBOW), the batches' arrays, negatives, weights and per-pair learning
    rates."""
    shape = (per_call, config.batch_size)
    i32 = jax.ShapeDtypeStruct(shape, jnp.int32)
    arrays = (i32, i32) if config.model == "skipgram" else (
        jax.ShapeDtypeStruct((corpus_words + 2 * config.window,), jnp.int32), i32, i32, i32)
    negatives = jax.ShapeDtypeStruct((*shape, config.negative), jnp.int32)
    return (*arrays, negatives, jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(shape, jnp.float32))


class _Prefetched:
    """The items of ``items``, computed ahead in a thread that starts at once, so that the
    host builds the next segment while the device works on the current one (and builds the
    first while the step compiles). An exception in the thread is re-raised by ``next``;
    ``close`` stops the thread."""

    _DONE = object()

    def __init__(self, items: Iterator, depth: int):
        self._queue: Queue = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), daemon=True,
                                        name="word2vec-batches")
        self._thread.start()

    def _produce(self, items: Iterator) -> None:
        try:
            for item in items:
                if self._stop.is_set():
                    return
                self._queue.put(item)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            self._queue.put(error)
        self._queue.put(self._DONE)

    def __next__(self):
        item = self._queue.get()
        if item is self._DONE:
            self._queue.put(item)  # every later call ends too
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except Empty:
                self._thread.join(0.01)


def _distinct_count(sorted_positions: np.ndarray) -> int:
    """Distinct values of a non-decreasing array (centres repeat once per context word)."""
    if sorted_positions.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(sorted_positions)) + 1)


# ---------------------------------------------------------------------------- file format


def save_word2vec_format(model: Word2VecModel, path: str | os.PathLike[str], binary: bool = False) -> None:
    """Write the word vectors in word2vec's format, read by gensim's
    ``KeyedVectors.load_word2vec_format`` and the C tools: a header ``"V d"``, then one word per
    line with its ``d`` values, as text (``%.9g``, which round-trips float32 exactly) or, with
    ``binary``, as ``d`` little-endian float32s after ``"word "``.

    Raises:
      ValueError: a word contains whitespace, which the format cannot hold.
    """
    words, vectors = model.vocab.words, np.asarray(model.vectors, np.float32)
    bad = next((w for w in words if not w or any(ch.isspace() for ch in w)), None)
    if bad is not None:
        raise ValueError(f"the word {bad!r} is empty or contains whitespace, which the word2vec format "
                         "cannot store; split such tokens before training")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, vector in zip(words, vectors, strict=True):
            if binary:
                f.write(word.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")
            else:
                f.write((word + " " + " ".join(f"{x:.9g}" for x in vector.tolist()) + "\n").encode("utf-8"))


def load_word2vec_format(path: str | os.PathLike[str], binary: bool = False) -> tuple[list[str], np.ndarray]:
    """``(words, vectors float32[V, d])`` from a file in word2vec's text (or ``binary``) format.

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: a malformed header or line, naming where.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no word2vec file at {path}")
    with open(path, "rb") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise ValueError(f"{path}: the first line must be 'num_words vector_size', got "
                             f"{b' '.join(header)[:80]!r}")
        count, dim = int(header[0]), int(header[1])
        return _read_binary(f, path, count, dim) if binary else _read_text(f, path, count, dim)


def _read_text(f, path: Path, count: int, dim: int) -> tuple[list[str], np.ndarray]:
    words, vectors = [], np.empty((count, dim), np.float32)
    for i in range(count):
        parts = f.readline().decode("utf-8").rstrip("\n").split(" ")
        if len(parts) != dim + 1:
            raise ValueError(f"{path}: line {i + 2} has {len(parts) - 1} values, the header promises {dim}"
                             + (" (is it a binary file? pass binary=True)" if len(parts) < 2 else ""))
        words.append(parts[0])
        vectors[i] = np.asarray(parts[1:], np.float32)
    return words, vectors


def _read_binary(f, path: Path, count: int, dim: int) -> tuple[list[str], np.ndarray]:
    words, vectors = [], np.empty((count, dim), np.float32)
    for i in range(count):
        word = bytearray()
        while (ch := f.read(1)) != b" ":
            if not ch:
                raise ValueError(f"{path}: ends inside word {i + 1} of {count}")
            if ch != b"\n" or word:  # the newline that ends the previous vector
                word += ch
        raw = f.read(4 * dim)
        if len(raw) != 4 * dim:
            raise ValueError(f"{path}: ends inside the vector of word {i + 1} of {count}")
        words.append(word.decode("utf-8"))
        vectors[i] = np.frombuffer(raw, "<f4")
    return words, vectors
