"""How word2vec samples its training examples: frequent-word subsampling, dynamic windows,
noise words, and the dealing of rows into batches, on the host with NumPy (with JAX versions
of the noise draw and of the CBOW window lookup for the device).

* :func:`keep_probabilities`, :func:`noise_distribution`, :func:`noise_table`: word2vec's and
  gensim's formulas; :func:`host_negatives` draws from the noise table exactly as a binary
  search of it would, in a pass or two.
* :func:`skipgram_pairs`, :func:`cbow_windows`: one epoch's examples, every surviving centre
  with the words within its reduced window in its sentence. Training uses their chunked forms
  (:func:`skipgram_chunks`, and :func:`cbow_rows` with :func:`windows_from_corpus`, which
  builds CBOW windows on device).
* :func:`cut_into_segments`, :func:`interleave`: rows in corpus order into fixed-shape batches
  whose rows come from stretches spread over the text.
* :class:`Prefetched`: all of it in a thread, ahead of the device.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from queue import Empty, Queue
from typing import overload

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

# gensim's cum_table scale: noise-word probabilities as integer widths out of 2**31 - 1, so a
# draw is an exact integer comparison and words with tiny probability keep their share.
_CUM_TABLE_DOMAIN = 2**31 - 1
# Centres windowed at once on the host: bounds memory at ~2 * window * this many ints.
_HOST_CHUNK = 1 << 16
# Buckets of the noise words' guide table (:func:`noise_guide`).
_GUIDE_BITS = 16
# Noise words drawn on the host at a time: ~2.5 MB of work arrays, which stay in cache.
_NEGATIVES_PIECE = 1 << 17


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


def noise_guide(table: np.ndarray) -> np.ndarray:
    """For each of ``2**_GUIDE_BITS`` equal buckets of ``[0, 2**31)``, the word its first
    integer falls on (see :func:`host_negatives`): int32[2**_GUIDE_BITS]."""
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
        draws[over] = (rng.bit_generator.random_raw(over.size).astype(np.uint32) >> 1).astype(
            np.int32
        )
    return draws


def host_negatives(
    rng: np.random.Generator, table: np.ndarray, guide: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """:func:`sample_negatives` on the host: ``np.searchsorted(table, draws, "right")`` for
    draws uniform in ``[0, table[-1])`` (:func:`_uniform_below`), found by starting at the first
    word of the draw's :func:`noise_guide` bucket and stepping forward (a bucket spans few
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
        out[start : start + words.size] = words
    return out.reshape(shape)


# ----------------------------------------------------------------------------- windows


def _subsample_and_windows(
    ids: np.ndarray,
    sentence_ids: np.ndarray,
    keep: np.ndarray,
    window: int,
    rng: np.random.Generator,
):
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


def skipgram_pairs(
    ids: np.ndarray,
    sentence_ids: np.ndarray,
    keep: np.ndarray,
    window: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of skip-gram training pairs, in corpus order.

    Args:
      ids: int32[n] word ids, from :func:`encode_corpus`.
      sentence_ids: int32[n], the sentence of each word, from :func:`encode_corpus`.
      keep: float[V], :func:`keep_probabilities`.
      window: the largest window; each surviving position draws ``b`` from ``1..window``.
      rng: draws the subsampling and the windows.

    Returns:
      ``(centres int32[p], contexts int32[p], positions int64[p])``: every word at distance
      ``<= b`` (in surviving words, within the sentence) of each surviving centre, and the
      centre's position in ``ids`` (which the learning-rate schedule counts).
    """
    parts = list(skipgram_chunks(ids, sentence_ids, keep, window, rng, chunk=max(ids.size, 1)))
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64)
    centres, contexts, positions = (np.concatenate(p) for p in zip(*parts, strict=True))
    return centres, contexts, positions


def skipgram_chunks(ids, sentence_ids, keep, window, rng, chunk=_HOST_CHUNK):
    """:func:`skipgram_pairs` as ``(centres, contexts, positions)`` per ``chunk`` surviving
    centres, so that an epoch's pairs are never all in memory at once."""
    for positions, context, mask, centre_ids in _window_chunks(
        ids, sentence_ids, keep, window, rng, chunk
    ):
        rows, cols = np.nonzero(mask)  # row-major: by centre, then left to right
        yield centre_ids[rows], context[rows, cols], positions[rows]


def cbow_windows(
    ids: np.ndarray,
    sentence_ids: np.ndarray,
    keep: np.ndarray,
    window: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of CBOW examples: ``(centres int32[m], contexts int32[m, 2·window],
    mask bool[m, 2·window], positions int64[m])``, the same windows as :func:`skipgram_pairs`
    as one row per surviving centre that has at least one context word (masked slots hold
    word 0). Training builds the same rows on device from :func:`cbow_rows`."""
    kept_ids, index, left, right, positions = cbow_rows(ids, sentence_ids, keep, window, rng)
    corpus = padded_corpus(kept_ids, kept_ids.size, window)
    centres, contexts, mask = windows_from_corpus(corpus, index, left, right, window)
    return centres, contexts, mask, positions


def cbow_rows(ids, sentence_ids, keep, window, rng):
    """One epoch of CBOW rows, as indices into the surviving words: ``(kept_ids int32[m],
    index int32[r], left int32[r], right int32[r], positions int64[r])`` for the ``r``
    surviving centres with at least one context word (the others change nothing in word2vec);
    ``index`` counts from the start of :func:`padded_corpus`."""
    positions, kept_ids, left, right = _surviving_windows(ids, sentence_ids, keep, window, rng)
    rows = np.flatnonzero(left + right > 0).astype(np.int32)
    return kept_ids, rows + window, left[rows], right[rows], positions[rows]


def padded_corpus(kept_ids: np.ndarray, length: int, window: int) -> np.ndarray:
    """The surviving words with ``window`` zeros before them and zeros after, up to
    ``length + 2·window`` (one shape for every epoch): int32."""
    corpus = np.zeros(length + 2 * window, np.int32)
    corpus[window : window + kept_ids.size] = kept_ids
    return corpus


@overload
def windows_from_corpus(
    corpus: np.ndarray, index: np.ndarray, left: np.ndarray, right: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
@overload
def windows_from_corpus(
    corpus: Array, index: Array, left: Array, right: Array, window: int
) -> tuple[Array, Array, Array]: ...
def windows_from_corpus(corpus, index, left, right, window: int):
    """``(centres [r], contexts [r, 2w], mask bool[r, 2w])`` of the rows at ``index`` in
    ``corpus`` (all NumPy or all JAX arrays, as the results): masked slots hold word 0, one row
    that stays in cache rather than a random one."""
    mask = _window_mask(left, right, window)
    xp = jnp if isinstance(corpus, jax.Array) else np
    contexts = xp.where(mask, corpus[index[:, None] + _window_offsets(window)], 0)
    return corpus[index], contexts, mask


# ------------------------------------------------------------------ dealing into batches


def cut_into_segments(
    chunks: Iterator[tuple[np.ndarray, ...]], rows: int
) -> Iterator[tuple[np.ndarray, ...]]:
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
            yield tuple(a[start : start + rows] for a in joined)
        pending = [tuple(a[full:] for a in joined)]
        have -= full
    if have:
        yield tuple(np.concatenate(p) for p in zip(*pending, strict=True))


def interleave(
    arrays: tuple[np.ndarray, ...], batch_size: int, multiple: int, run: int = 1
) -> list[np.ndarray]:
    """Deal ``m`` rows (in corpus order) into batches from ``batch_size / run`` streams: the
    rows are cut into that many equal stretches, and batch ``i`` holds rows
    ``i·run ... (i+1)·run - 1`` of every stretch (``run`` is cut to the largest divisor of
    ``batch_size`` that does not exceed it). Returns each array as
    ``[num_batches, batch_size, ...]``, ``num_batches = ceil(m / batch_size)`` rounded up to a
    ``multiple``, zero-padded at the end of the last stretches.

    A stretch of text that repeats one word (a table, a code listing) then puts at most
    ``run`` rows into any one batch, where ``batch_size`` neighbouring rows would bring that
    many stale copies of the same update; each stretch still meets the tables in corpus order.
    ``run > 1`` keeps neighbouring rows in the same step
    (``jaxllm.embeddings.word2vec._STREAM_RUN`` says why each model uses what it does).
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
        streams[:full] = a[: full * stretch].reshape(full, num_batches, run, *a.shape[1:])
        if full < num_streams:
            start = full * stretch
            streams[full, :rest] = a[start : start + rest * run].reshape(rest, run, *a.shape[1:])
            streams[full, rest, :cut] = a[start + rest * run : m]
        out.append(batches.reshape(num_batches, batch_size, *a.shape[1:]))
    return out


class Prefetched:
    """The items of ``items``, computed ahead in a thread that starts at once, so that the
    host builds the next segment while the device works on the current one (and builds the
    first while the step compiles). An exception in the thread is re-raised by ``next``;
    ``close`` stops the thread."""

    _DONE = object()

    def __init__(self, items: Iterator, depth: int):
        self._queue: Queue = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(items,), daemon=True, name="word2vec-batches"
        )
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


def distinct_count(sorted_positions: np.ndarray) -> int:
    """Distinct values of a non-decreasing array (centres repeat once per context word)."""
    if sorted_positions.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(sorted_positions)) + 1)
