"""Decoding a CTC acoustic model's frame-wise outputs into label sequences.

A CTC model scores one symbol per frame, a blank among them; a labelling is what an alignment
collapses to (merge repeated symbols, then drop blanks: ``"hh_e_ll_llo"`` reads ``"hello"``).

- :func:`ctc_greedy_decode`: the best path, the likeliest symbol at every frame, collapsed; pure
  JAX, one compiled program for a batch.
- :func:`ctc_prefix_beam_search`: the likeliest labellings, each scored by the sum over all its
  alignments (Hannun et al. 2014, "First-Pass Large Vocabulary Continuous Speech Recognition
  using Bi-Directional Recurrent DNNs"), optionally fused with a language model over labels
  (a :class:`PrefixScorer`, weighted, with a bonus per label); NumPy on the host.
  :func:`ctc_beam_decode` runs it over a batch of logits.

::

    tokens, lengths = ctc_greedy_decode(logits, frame_lengths)
    texts = [decode(ids) for ids in to_lists(tokens, lengths)]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

PAD = -1  # fills the greedy output after each row's labels; never a symbol id
_NEG_INF = -math.inf


def ctc_greedy_decode(
    logits: ArrayLike, frame_lengths: ArrayLike, *, blank_id: int = 0
) -> tuple[Array, Array]:
    """The best path: the argmax symbol of every real frame, repeats merged, blanks dropped.

    Frames at or beyond a row's length are ignored. Works under ``jax.jit``: the output has
    the fixed width ``frames`` (no labelling is longer), padded with :data:`PAD` (``-1``).

    Args:
      logits: float[batch, frames, vocab] (or log-probabilities: the argmax is the same).
      frame_lengths: int[batch], real frames of each row.
      blank_id: the blank symbol's id.

    Returns:
      ``(tokens int32[batch, frames], lengths int32[batch])``: row ``b``'s labels are
      ``tokens[b, :lengths[b]]``.
    """
    logits, frame_lengths = jnp.asarray(logits), jnp.asarray(frame_lengths)
    _check_batch(logits, frame_lengths)
    batch, frames = logits.shape[:2]
    best = jnp.argmax(logits, axis=-1).astype(jnp.int32)  # (B, T)
    previous = jnp.concatenate([jnp.full((batch, 1), PAD, jnp.int32), best[:, :-1]], axis=1)
    real = jnp.arange(frames)[None, :] < frame_lengths[:, None]
    keep = real & (best != blank_id) & (best != previous)
    # Each kept symbol goes to its rank among the kept ones; the others go out of bounds.
    slot = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, frames)
    rows = jnp.broadcast_to(jnp.arange(batch)[:, None], (batch, frames))
    tokens = jnp.full((batch, frames), PAD, jnp.int32).at[rows, slot].set(best, mode="drop")
    return tokens, jnp.sum(keep, axis=1).astype(jnp.int32)


def _check_batch(logits: Any, frame_lengths: Any) -> None:
    """Raise ``ValueError`` unless ``logits`` is [batch, frames, vocab] and ``frame_lengths``
    [batch]."""
    if np.ndim(logits) != 3 or np.shape(frame_lengths) != np.shape(logits)[:1]:
        raise ValueError(
            f"logits must be float[batch, frames, vocab] and frame_lengths int[batch], got "
            f"{np.shape(logits)} and {np.shape(frame_lengths)}: add a batch axis of 1 for one "
            "utterance"
        )


def to_lists(tokens: Any, lengths: Any) -> list[list[int]]:
    """Each row's labels as a list of ids: ``tokens[b, :lengths[b]]`` (host side).

    tokens: int[batch, width]; lengths: int[batch].
    """
    tokens, lengths = np.asarray(jax.device_get(tokens)), np.asarray(jax.device_get(lengths))
    return [row[: int(n)].tolist() for row, n in zip(tokens, lengths, strict=True)]


# ------------------------------------------------------------------------------------------------
# Prefix beam search (host side)
# ------------------------------------------------------------------------------------------------

Beams = dict[tuple[int, ...], tuple[float, float]]  # prefix -> (log p ending in blank, in label)


def _log_add(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` of two floats, ``-inf`` allowed."""
    if a < b:
        a, b = b, a
    return a if b == _NEG_INF else a + math.log1p(math.exp(b - a))


def _add(beams: Beams, prefix: tuple[int, ...], blank: float, label: float) -> None:
    """Add probability mass (log) ending in a blank and ending in a label to ``prefix`` (none:
    an impossible prefix is not kept)."""
    if blank == label == _NEG_INF:
        return
    old_blank, old_label = beams.get(prefix, (_NEG_INF, _NEG_INF))
    beams[prefix] = (_log_add(old_blank, blank), _log_add(old_label, label))


def _extend(beams: Beams, frame: np.ndarray, symbols: Sequence[int], blank_id: int) -> Beams:
    """The prefixes after one more frame, from ``beams`` before it; ``frame``: float[vocab]
    log-probabilities, ``symbols``: the ids to try.

    A blank keeps the prefix; the prefix's last label again merges into it unless a blank came
    between (then it is a new label); any other label extends the prefix.
    """
    after: Beams = {}
    for prefix, (blank, label) in beams.items():
        total = _log_add(blank, label)
        last = prefix[-1] if prefix else None
        for symbol in symbols:
            p = float(frame[symbol])
            if symbol == blank_id:
                _add(after, prefix, total + p, _NEG_INF)
            elif symbol == last:
                _add(after, prefix, _NEG_INF, label + p)
                _add(after, (*prefix, symbol), _NEG_INF, blank + p)
            else:
                _add(after, (*prefix, symbol), _NEG_INF, total + p)
    return after


class PrefixScorer(Protocol):
    """A language model over label ids, as the beam search consults it."""

    def next_log_probs(self, prefix: tuple[int, ...]) -> np.ndarray:
        """float[vocab]: log P(each label id next | ``prefix``); the blank's entry is unused."""
        ...

    def end_log_prob(self, prefix: tuple[int, ...]) -> float:
        """log P(the labelling ends after ``prefix``)."""
        ...


@dataclasses.dataclass(frozen=True)
class Fusion:
    """Shallow fusion of a language model into the beam search: a prefix ``y`` ranks by
    ``log p_ctc(y) + weight · log p_lm(y) + bonus · len(y)`` (the bonus offsets the language
    model's pull towards short labellings); finished labellings add ``weight · log p_lm(end |
    y)``."""

    lm: PrefixScorer
    weight: float = 0.5
    bonus: float = 0.0


class _FusedScores:
    """The language-model part of each prefix's rank, computed once per prefix."""

    def __init__(self, fusion: Fusion | None):
        self.fusion = fusion
        self.lm_log_probs: dict[tuple[int, ...], float] = {(): 0.0}
        self.next_rows: dict[tuple[int, ...], np.ndarray] = {}  # asked once per parent

    def rank(self, prefix: tuple[int, ...], ctc: float, final: bool = False) -> float:
        if self.fusion is None:
            return ctc
        lm = self.lm_log_probs.get(prefix)
        if lm is None:  # a prefix one label longer than a kept one
            parent = prefix[:-1]
            row = self.next_rows.get(parent)
            if row is None:
                row = self.next_rows[parent] = self.fusion.lm.next_log_probs(parent)
            lm = self.lm_log_probs[parent] + float(row[prefix[-1]])
            self.lm_log_probs[prefix] = lm
        if final:
            lm += self.fusion.lm.end_log_prob(prefix)
        return ctc + self.fusion.weight * lm + self.fusion.bonus * len(prefix)


def _best(beams: Beams, beam_size: int, scores: _FusedScores) -> Beams:
    """The ``beam_size`` best-ranked prefixes."""
    ranked = sorted(beams.items(), key=lambda item: -scores.rank(item[0], _log_add(*item[1])))
    return dict(ranked[:beam_size])


def ctc_prefix_beam_search(
    log_probs: np.ndarray,
    *,
    beam_size: int = 8,
    blank_id: int = 0,
    prune_top_k: int | None = None,
    fusion: Fusion | None = None,
) -> list[tuple[list[int], float]]:
    """The likeliest labellings of one utterance by CTC prefix beam search.

    Each frame extends every kept prefix by every symbol, adding up the probability of all the
    alignments that reach the same prefix (split by whether they end in a blank, which decides
    whether a repeated label merges), and keeps the ``beam_size`` best. A prefix's CTC score
    is ``log Σ_π p(π)`` over its alignments; without ``fusion`` prefixes rank by it, with one
    by :class:`Fusion`'s sum. With a beam as large as the number of possible prefixes the
    search is exact.

    Cost: ``frames · beam_size · vocab`` Python steps. ``prune_top_k`` tries only each frame's
    ``k`` likeliest symbols (the blank always), which makes it ``frames · beam_size · k`` at
    little loss for a peaky model; ``None`` tries all.

    Args:
      log_probs: float[frames, vocab], log-softmax outputs of the real frames only.
      beam_size: how many prefixes to keep, and to return at most.
      blank_id: the blank symbol's id.
      prune_top_k: symbols to try per frame, or ``None`` for all.
      fusion: a language model to fuse, or ``None``.

    Returns:
      up to ``beam_size`` ``(labels, score)``, best first: the CTC log-probability, or with
      ``fusion`` the fused score of the finished labelling.
    """
    log_probs = _checked_log_probs(log_probs, beam_size, blank_id)
    vocab, scores = log_probs.shape[1], _FusedScores(fusion)
    beams: Beams = {(): (0.0, _NEG_INF)}
    for frame in log_probs:
        symbols = range(vocab)
        if prune_top_k is not None and prune_top_k < vocab:
            top = np.argpartition(-frame, prune_top_k - 1)[:prune_top_k].tolist()
            symbols = top if blank_id in top else [*top, blank_id]
        beams = _best(_extend(beams, frame, symbols, blank_id), beam_size, scores)
    finished = [
        (list(prefix), scores.rank(prefix, _log_add(*ctc), final=True))
        for prefix, ctc in beams.items()
    ]
    return sorted(finished, key=lambda item: -item[1])


def _checked_log_probs(log_probs: Any, beam_size: int, blank_id: int) -> np.ndarray:
    """``log_probs`` as float64[frames, vocab], or a ``ValueError`` naming the problem."""
    log_probs = np.asarray(log_probs, np.float64)
    if log_probs.ndim != 2:
        raise ValueError(
            f"log_probs must be float[frames, vocab] of one utterance, got shape "
            f"{log_probs.shape}: search each row of a batch (ctc_beam_decode does)"
        )
    if beam_size < 1 or not 0 <= blank_id < log_probs.shape[1]:
        raise ValueError(
            f"need beam_size >= 1 and blank_id in [0, {log_probs.shape[1]}), got beam_size="
            f"{beam_size}, blank_id={blank_id}"
        )
    row_sums = np.logaddexp.reduce(log_probs, axis=1) if log_probs.size else np.zeros(0)
    if not np.allclose(row_sums, 0.0, atol=0.05):
        raise ValueError(
            "log_probs rows are not log-probabilities (logsumexp != 0): pass "
            "jax.nn.log_softmax(logits), or use ctc_beam_decode, which takes logits"
        )
    return log_probs


def ctc_beam_decode(
    logits: ArrayLike,
    frame_lengths: Any,
    *,
    beam_size: int = 8,
    blank_id: int = 0,
    prune_top_k: int | None = None,
    fusion: Fusion | None = None,
) -> list[list[int]]:
    """The best labelling of each utterance by :func:`ctc_prefix_beam_search` (host side),
    with ``fusion``'s language model if one is given.

    logits: float[batch, frames, vocab]; frame_lengths: int[batch], real frames of each row.
    Returns one list of label ids per row.
    """
    _check_batch(logits, frame_lengths)
    log_probs = np.asarray(jax.device_get(jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))))
    lengths = np.asarray(jax.device_get(frame_lengths))
    return [
        ctc_prefix_beam_search(
            rows[: int(n)],
            beam_size=beam_size,
            blank_id=blank_id,
            prune_top_k=prune_top_k,
            fusion=fusion,
        )[0][0]
        for rows, n in zip(log_probs, lengths, strict=True)
    ]
