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
but a window's pairs then share the centre's output vector rather than its input vector; on
a 4M-word corpus this (with gensim's skip of saturated scores) moved the 3-seed means of
WordSim-353 from 0.242 to 0.252 and SimLex-999 from 0.084 to 0.090 (gensim: 0.257, 0.103).

The pipeline follows word2vec's C code and gensim:

1. :func:`build_vocab`: count words, drop those seen fewer than ``min_count`` times, sort by
   descending count (ties by first appearance).
2. Each epoch, on the host with NumPy (:mod:`jaxllm.embeddings.sampling`): subsample
   frequent words (:func:`keep_probabilities`), draw a reduced window ``b ~ U{1..window}`` per
   remaining position, and pair each centre with the words at distance ``<= b`` in the same
   sentence (:func:`skipgram_pairs`,
   :func:`cbow_windows`). CBOW sends the epoch's surviving words to the device once and each
   row as three numbers (where its window is), and the device reads the window from them.
3. The rows (skip-gram pairs or CBOW centres), a segment of 512 batches at a time, are dealt
   into batches from interleaved stretches of the segment (:func:`interleave`): skip-gram
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
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from tqdm.auto import tqdm

from jaxllm.config import require
from jaxllm.data.corpora import EmptyCorpusError
from jaxllm.embeddings.evaluate import nearest_neighbours
from jaxllm.embeddings.sampling import (
    Prefetched,
    cbow_rows,
    cut_into_segments,
    distinct_count,
    host_negatives,
    interleave,
    keep_probabilities,
    noise_guide,
    noise_table,
    padded_corpus,
    sample_negatives,
    skipgram_chunks,
    windows_from_corpus,
)

Word2VecArchitecture = Literal["skipgram", "cbow"]
MODELS = get_args(Word2VecArchitecture)
# Batches run by one compiled call (a lax.scan over them): amortises the dispatch and the
# host-to-device copies, while each batch still sees the tables updated by the previous one.
# Eight already make the dispatch a small cost; one length for every call (the last, partial
# one of a segment is padded with empty batches) is one program to compile, half the time of
# two (0.45 s instead of 0.9 s for CBOW).
_BATCHES_PER_CALL = 8
_BATCHES_PER_TAIL_CALL = _BATCHES_PER_CALL
# Batches per segment: the rows dealt into one set of interleaved streams (see interleave).
_SEGMENT_BATCHES = 512
# Neighbouring rows a stream puts into each batch (see interleave). A skip-gram row is one
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
      batch sees the tables from before it, so a word that fills many rows collects that
      many same-direction steps at once; rows dealt from stretches spread over the text
      (:func:`jaxllm.embeddings.sampling.interleave`) keep that number low even on
      repetitive text. On 2 CPU cores 2048 was the fastest per pair.
    seed: seeds the initial vectors, the subsampling and windows, and the negatives.
    max_vocab_size: keep only this many most frequent words (after ``min_count``); unlike
      gensim's option of the same name, which prunes while counting to bound memory, this
      is an exact cap.
    ns_exponent: exponent of the unigram counts in the noise distribution.
    """

    model: Word2VecArchitecture = "skipgram"
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
        require(
            self.model in MODELS,
            f"Word2VecConfig.model must be one of {MODELS}, got {self.model!r}",
        )
        require(
            self.vector_size > 0 and self.window > 0 and self.negative > 0,
            "Word2VecConfig.vector_size, window and negative must be > 0, got "
            f"{self.vector_size}, {self.window}, {self.negative}",
        )
        require(self.min_count >= 1, f"Word2VecConfig.min_count must be >= 1, got {self.min_count}")
        require(
            0.0 <= self.sample < 1.0,
            f"Word2VecConfig.sample is a fraction of the corpus in [0, 1), got {self.sample}",
        )
        require(
            self.alpha > 0 and 0 <= self.min_alpha <= self.alpha,
            f"need alpha > 0 and 0 <= min_alpha <= alpha, got alpha={self.alpha}, "
            f"min_alpha={self.min_alpha}",
        )
        require(
            self.epochs > 0 and self.batch_size > 0,
            "Word2VecConfig.epochs and batch_size must be > 0, "
            f"got {self.epochs}, {self.batch_size}",
        )
        require(
            self.max_vocab_size is None or self.max_vocab_size > 0,
            f"Word2VecConfig.max_vocab_size must be None or > 0, got {self.max_vocab_size}",
        )
        require(
            math.isfinite(self.ns_exponent),
            f"Word2VecConfig.ns_exponent must be finite, got {self.ns_exponent}",
        )


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
                "training corpus or seen fewer than min_count times"
            )
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
        raise TypeError(
            "sentences must be an iterable of lists of words, got one string; "
            "split it, e.g. [line.split() for line in text.splitlines()]"
        )
    first_seen: dict[str, int] = {}
    tokens: list[int] = []
    lengths: list[int] = []
    for sentence in sentences:
        if isinstance(sentence, str):
            raise TypeError(
                f"each sentence must be a list of words, got the string {sentence[:40]!r}; "
                "split it into words first"
            )
        before = len(tokens)
        # setdefault's default is evaluated first, so a new word gets the next free id.
        tokens.extend([first_seen.setdefault(w, len(first_seen)) for w in sentence])
        lengths.append(len(tokens) - before)
    if not tokens:
        raise EmptyCorpusError(
            "the corpus has no words: pass an iterable of non-empty lists of words"
        )
    odd = next((w for w in first_seen if not isinstance(w, str)), None)
    if odd is not None:
        raise TypeError(
            f"words must be strings, got {odd!r} ({type(odd).__name__}); convert them, e.g. "
            "[[str(w) for w in sentence] for sentence in sentences]"
        )
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
            f"{int(scan.counts.max())} times); lower min_count or train on more text"
        )
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
    sentence_ids = np.repeat(
        np.arange(scan.sentence_lengths.size, dtype=np.int32), scan.sentence_lengths
    )
    known = ids >= 0
    return ids[known], sentence_ids[known]


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
    use = jnp.concatenate(
        [jnp.ones_like(positives[:, None], bool), negatives != positives[:, None]], axis=1
    )
    use = use.astype(jnp.float32)
    return targets, use if weights is None else use * weights[:, None]


def _signed_scores(h: Array, u: Array) -> tuple[Array, Array]:
    """Scores ``f = u_t · h``: float32[b, 1+K], and ``f`` with the noise words' sign flipped, so
    each term of the loss is ``-log σ(signed)``."""
    f = jnp.einsum("bd,bkd->bk", h, u)
    sign = jnp.where(jnp.arange(f.shape[1]) == 0, 1.0, -1.0)
    return f, f * sign


def negative_sampling_loss(
    W_in: Array,
    W_out: Array,
    centres: Array,
    contexts: Array,
    negatives: Array,
    weights: Array | None = None,
) -> Array:
    """Skip-gram loss summed over pairs:
    ``Σ_i w_i [-log σ(u_{o_i}·v_{c_i}) - Σ_k log σ(-u_{k}·v_{c_i})]``.

    Args:
      W_in: float32[V, d], the input vectors.
      W_out: float32[V, d], the output vectors.
      centres: int32[b], the ``c_i`` of the pairs ``(c_i, o_i)``: the word whose input vector
        is used (:func:`train_word2vec` passes a pair's context word as ``c`` and its centre
        as ``o``, as word2vec's C code does).
      contexts: int32[b], the ``o_i``: the word to predict.
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


def cbow_negative_sampling_loss(
    W_in: Array,
    W_out: Array,
    contexts: Array,
    context_mask: Array,
    centres: Array,
    negatives: Array,
    weights: Array | None = None,
) -> Array:
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


def skipgram_update(
    W_in: Array,
    W_out: Array,
    centres: Array,
    contexts: Array,
    negatives: Array,
    weights: Array,
    lr: Array,
) -> tuple[Array, Array, Array]:
    """One SGD step ``W ← W - lr · ∇ negative_sampling_loss`` as scatter-adds into the rows the
    batch touches, leaving out (as gensim does) the terms whose score ``|u·v| >= 6``: returns
    ``(W_in, W_out, loss before the step)``. ``lr`` is one learning rate or float32[b], one per
    pair."""
    W_in, W_out = jnp.asarray(W_in), jnp.asarray(W_out)
    targets, use = _targets_and_use(contexts, negatives, weights)
    h = W_in[centres]
    grad_h, W_out, loss = _output_step(h, targets, use, W_out, lr)
    return W_in.at[centres].add(grad_h, mode="promise_in_bounds"), W_out, loss


def cbow_update(
    W_in: Array,
    W_out: Array,
    contexts: Array,
    context_mask: Array,
    centres: Array,
    negatives: Array,
    weights: Array,
    lr: Array,
) -> tuple[Array, Array, Array]:
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
def cbow_step(
    W_in, W_out, centres, contexts, context_mask, weights, key, lr, table, *, negative: int
):
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
        W_in,
        W_out,
        (centres, contexts, context_mask),
        negatives,
        weights,
        lrs,
    )


@functools.partial(jax.jit, donate_argnums=(0, 1), static_argnames=("window",))
def cbow_corpus_steps(
    W_in, W_out, corpus, index, left, right, negatives, weights, lrs, *, window: int
):
    """:func:`cbow_steps` with each row's window read from ``corpus`` on device: row ``j`` of a
    batch predicts ``corpus[index_j]`` from the words ``corpus[index_j + o]`` for
    ``-left_j <= o <= right_j, o != 0`` (``0 <= left, right <= window``). ``corpus`` is
    int32[L] (:func:`padded_corpus`); ``index, left, right`` are int32[num_batches, batch_size].
    The host then sends three numbers per row instead of ``4·window`` for its window."""

    def update(W_in, W_out, index, left, right, negatives, weights, lr):
        centres, contexts, mask = windows_from_corpus(corpus, index, left, right, window)
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
        require(topn > 0, f"topn must be > 0, got {topn}", ValueError)
        self.vocab.id(word)  # an unknown word raises UnknownWordError, naming it
        return nearest_neighbours(self.vocab.words, self.W_in, word, topn=topn)


def _learning_rate(
    config: Word2VecConfig, epoch: int, positions: np.ndarray, corpus_words: int
) -> np.ndarray:
    """gensim's linear decay over the words of all epochs, floored at ``min_alpha``: float32
    per corpus position."""
    progress = (epoch + np.asarray(positions, np.float64) / corpus_words) / config.epochs
    return np.maximum(
        config.min_alpha, config.alpha - (config.alpha - config.min_alpha) * progress
    ).astype(np.float32)


def train_word2vec(
    sentences: Iterable[list[str]],
    config: Word2VecConfig = Word2VecConfig(),
    *,
    progress: bool = True,
) -> Word2VecModel:
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
    guide = noise_guide(table)
    W_in, W_out = _initial_tables(config, len(vocab))
    n = ids.size
    losses, rates, effective_rates = [], [], []
    bar = _words_bar(config, n, shown=progress)
    # Built ahead in a thread, across epoch ends too; the first ones while the step compiles.
    segments = Prefetched(_epoch_segments(config, ids, sentence_ids, keep, table, guide), depth=1)
    try:
        compile_start = time.perf_counter()
        compiled = _compiled_steps(config, W_in, W_out, n)
        compile_seconds = time.perf_counter() - compile_start
        for epoch in range(config.epochs):
            W_in, W_out, loss, rate, effective_rate = _train_epoch(
                config, epoch, compiled, W_in, W_out, segments, n, bar
            )
            losses.append(loss)
            rates.append(rate)
            effective_rates.append(effective_rate)
            bar.set_postfix(
                loss=f"{loss:.4f}",
                words_per_s=f"{rate:.3g}",
                effective_words_per_s=f"{effective_rate:.3g}",
            )
    finally:
        segments.close()
        bar.close()
    d = config.vector_size
    return Word2VecModel(
        vocab=vocab,
        config=config,
        W_in=np.asarray(W_in)[:, :d],
        W_out=np.asarray(W_out)[:, :d],
        epoch_losses=tuple(losses),
        words_per_second=tuple(rates),
        effective_words_per_second=tuple(effective_rates),
        compile_seconds=compile_seconds,
    )


def _words_bar(config: Word2VecConfig, n: int, shown: bool) -> tqdm:
    """A progress bar of the ``n`` corpus words trained on per epoch, over every epoch."""
    return tqdm(
        total=n * config.epochs,
        unit="word",
        unit_scale=True,
        disable=not shown,
        desc=f"word2vec {config.model}",
    )


def _initial_tables(config: Word2VecConfig, vocab_size: int) -> tuple[Array, Array]:
    """:func:`init_embeddings` from ``config.seed``, each row padded with zero columns to a
    multiple of ``_ROW_ALIGN`` floats: ``(W_in, W_out)``, float32[V, d + padding] each."""
    init_key, _ = jax.random.split(jax.random.key(config.seed))
    d = config.vector_size
    # No update changes the zero columns: each adds a multiple of a row.
    padding = ((0, 0), (0, -d % _ROW_ALIGN))
    W_in, W_out = init_embeddings(init_key, vocab_size, d)
    return jnp.pad(W_in, padding), jnp.pad(W_out, padding)


def _epoch_rows(
    config: Word2VecConfig,
    ids: np.ndarray,
    sentence_ids: np.ndarray,
    keep: np.ndarray,
    rng: np.random.Generator,
) -> tuple[tuple, Iterator]:
    """One epoch's rows after subsampling and drawing the windows with ``rng``:
    ``(shared, chunks)``, the device arrays every row reads (CBOW's surviving words; none for
    skip-gram) and an iterator of ``(*row arrays, corpus positions)``."""
    if config.model == "skipgram":  # (input, output) = (context, centre), as word2vec.c
        pairs = skipgram_chunks(ids, sentence_ids, keep, config.window, rng)
        return (), ((o, c, p) for c, o, p in pairs)
    # CBOW: the epoch's surviving words go to the device once; rows index them.
    kept_ids, *windows = cbow_rows(ids, sentence_ids, keep, config.window, rng)
    return (jax.device_put(padded_corpus(kept_ids, ids.size, config.window)),), iter([windows])


def _epoch_segments(
    config: Word2VecConfig,
    ids: np.ndarray,
    sentence_ids: np.ndarray,
    keep: np.ndarray,
    table: np.ndarray,
    guide: np.ndarray,
) -> Iterator:
    """Every epoch's training data, built on the host, each epoch followed by ``None``.

    Each segment is ``(shared, batches, rows, effective, reached)``: the arrays every call
    reads (:func:`_epoch_rows`); the interleaved batches ``[num_batches, batch_size, ...]`` of
    row arrays, negatives, weights (0 for padding) and learning rates; how many rows it holds;
    how many surviving corpus words it covers; and the corpus position it reaches.
    """
    n = ids.size
    segment_rows = config.batch_size * _SEGMENT_BATCHES
    for epoch in range(config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        noise_rng = np.random.default_rng([config.seed, epoch, 1])
        shared, rows = _epoch_rows(config, ids, sentence_ids, keep, rng)
        last = -1
        for *arrays, positions in cut_into_segments(rows, segment_rows):
            weights = np.ones(positions.size, np.float32)
            lrs = _learning_rate(config, epoch, positions, n)
            *arrays, weights, lrs = interleave(
                (*arrays, weights, lrs),
                config.batch_size,
                _BATCHES_PER_TAIL_CALL,
                _STREAM_RUN[config.model],
            )
            # Independent draws: made in the batches' layout, for the padding too.
            negatives = host_negatives(noise_rng, table, guide, (*weights.shape, config.negative))
            # A skip-gram centre's pairs may straddle two segments: count it once.
            effective = distinct_count(positions) - int(positions[0] == last)
            last = int(positions[-1])
            yield shared, (*arrays, negatives, weights, lrs), positions.size, effective, last + 1
        yield None


def _compiled_steps(config: Word2VecConfig, W_in: Array, W_out: Array, corpus_words: int) -> dict:
    """``{batches per call: compiled step}``: one executable for full blocks of batches, one for
    the shorter groups that end a segment (a block padded with empty batches costs as much as a
    full one)."""
    lower = (
        skipgram_steps.lower
        if config.model == "skipgram"
        else functools.partial(cbow_corpus_steps.lower, window=config.window)
    )
    return {
        size: lower(W_in, W_out, *_block_shapes(config, size, corpus_words)).compile()
        for size in sorted({_BATCHES_PER_CALL, _BATCHES_PER_TAIL_CALL})
    }


def _call_groups(num_batches: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` ranges of a segment's batches, one per compiled call: full blocks of
    ``_BATCHES_PER_CALL``, then the rest in groups of the tail size."""
    per_call, tail = _BATCHES_PER_CALL, _BATCHES_PER_TAIL_CALL
    full = num_batches - num_batches % per_call
    return [(lo, lo + per_call) for lo in range(0, full, per_call)] + [
        (lo, lo + tail) for lo in range(full, num_batches, tail)
    ]


def _train_epoch(
    config: Word2VecConfig,
    epoch: int,
    compiled: dict,
    W_in: Array,
    W_out: Array,
    segments: Prefetched,
    corpus_words: int,
    bar: tqdm,
) -> tuple[Array, Array, float, float, float]:
    """Train on ``segments`` up to the end of epoch ``epoch``.

    Returns:
      ``(W_in, W_out, mean loss per row, corpus words per second, effective words per second)``.

    Raises:
      FloatingPointError: the epoch's loss is not finite, or far above an untrained model's.
    """
    start, done, examples, effective = time.perf_counter(), 0, 0, 0
    epoch_loss = []
    for shared, batches, rows, segment_effective, reached in iter(lambda: next(segments), None):
        num_batches, first = batches[0].shape[0], done
        for lo, hi in _call_groups(num_batches):
            W_in, W_out, loss = compiled[hi - lo](
                W_in, W_out, *shared, *(a[lo:hi] for a in batches)
            )
            epoch_loss.append(loss)
            # Every stream is this far through its stretch of the segment.
            now = first + (reached - first) * hi // num_batches
            bar.update(now - done)
            done = now
        examples += rows
        effective += segment_effective
    W_in.block_until_ready()
    bar.update(corpus_words - done)
    seconds = max(time.perf_counter() - start, 1e-9)
    total_loss = float(np.sum([np.sum(np.asarray(x, np.float64)) for x in epoch_loss]))
    _check_not_diverged(config, epoch, total_loss, examples)
    return W_in, W_out, total_loss / max(examples, 1), corpus_words / seconds, effective / seconds


def _check_not_diverged(
    config: Word2VecConfig, epoch: int, total_loss: float, examples: int
) -> None:
    """Raise ``FloatingPointError`` if epoch ``epoch``'s summed loss over ``examples`` rows is
    not finite or more than ten times an untrained model's, ``(1 + negative)·ln 2`` per row:
    the summed batch steps overshot, even while the numbers are still finite."""
    ceiling = 10 * (1 + config.negative) * math.log(2) * max(examples, 1)
    if not math.isfinite(total_loss) or total_loss > ceiling:
        raise FloatingPointError(
            f"word2vec diverged in epoch {epoch + 1} (loss {total_loss}): batches of "
            f"{config.batch_size} sum too many steps on the same frequent words; lower "
            "batch_size or alpha"
        )


def _block_shapes(
    config: Word2VecConfig, per_call: int, corpus_words: int
) -> tuple[jax.ShapeDtypeStruct, ...]:
    """Shapes of the arguments of :func:`skipgram_steps` / :func:`cbow_corpus_steps` after the
    tables: the corpus (CBOW), the batches' arrays, negatives, weights and per-pair learning
    rates."""
    shape = (per_call, config.batch_size)
    i32 = jax.ShapeDtypeStruct(shape, jnp.int32)
    arrays = (
        (i32, i32)
        if config.model == "skipgram"
        else (jax.ShapeDtypeStruct((corpus_words + 2 * config.window,), jnp.int32), i32, i32, i32)
    )
    negatives = jax.ShapeDtypeStruct((*shape, config.negative), jnp.int32)
    return (
        *arrays,
        negatives,
        jax.ShapeDtypeStruct(shape, jnp.float32),
        jax.ShapeDtypeStruct(shape, jnp.float32),
    )


# ---------------------------------------------------------------------------- file format


def save_word2vec_format(
    model: Word2VecModel, path: str | os.PathLike[str], binary: bool = False
) -> None:
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
        raise ValueError(
            f"the word {bad!r} is empty or contains whitespace, which the word2vec format "
            "cannot store; split such tokens before training"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, vector in zip(words, vectors, strict=True):
            if binary:
                f.write(word.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")
            else:
                f.write(
                    (word + " " + " ".join(f"{x:.9g}" for x in vector.tolist()) + "\n").encode(
                        "utf-8"
                    )
                )


def load_word2vec_format(
    path: str | os.PathLike[str], binary: bool = False
) -> tuple[list[str], np.ndarray]:
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
            raise ValueError(
                f"{path}: the first line must be 'num_words vector_size', got "
                f"{b' '.join(header)[:80]!r}"
            )
        count, dim = int(header[0]), int(header[1])
        return _read_binary(f, path, count, dim) if binary else _read_text(f, path, count, dim)


def _read_text(f, path: Path, count: int, dim: int) -> tuple[list[str], np.ndarray]:
    words, vectors = [], np.empty((count, dim), np.float32)
    for i in range(count):
        parts = f.readline().decode("utf-8").rstrip("\n").split(" ")
        if len(parts) != dim + 1:
            raise ValueError(
                f"{path}: line {i + 2} has {len(parts) - 1} values, the header promises {dim}"
                + (" (is it a binary file? pass binary=True)" if len(parts) < 2 else "")
            )
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
