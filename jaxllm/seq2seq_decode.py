"""Decoding for encoder-decoder models: greedy search and beam search over a batch of sources,
each loop wholly inside ``jax.lax.while_loop`` (no Python per token), so one compiled program
translates a batch.

Both searches drive a model through a :class:`Seq2SeqDecoding`, three pure functions: start
(encode the sources and take the first step from the start token), step (one more token) and
reorder (the decoding state of chosen rows). :func:`jaxllm.models.seq2seq.transformer_decoding` and
:func:`jaxllm.models.lstm_seq2seq.lstm_decoding` make them::

    decoding = transformer_decoding(Seq2SeqTransformer(config))
    out = beam_search(decoding, params, source, source_mask, beam_size=4, max_new_tokens=64,
                      start_id=0, end_id=0)
    out.tokens        # int32[batch, max_new_tokens], the best hypothesis, padded after its end

Beam search follows fairseq's and Hugging Face's (``early_stopping=True``): each step scores
``2k`` candidates; an end token among the best ``k`` of them ends a hypothesis, scored by its
log-probability over ``length ** length_penalty``; the best ``k`` others stay alive; a sentence
is done when ``k`` hypotheses have ended. With ``k = 1`` it is greedy search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from jax import Array


@dataclasses.dataclass(frozen=True)
class Seq2SeqDecoding:
    """How a search drives an encoder-decoder (hashable: a static argument of ``jax.jit``).

    Attributes:
      start: ``(params, source int[B, S], source_mask bool[B, S], start int[B], max_len) ->
        (logits float32[B, V] of the first target token, state)``.
      step: ``(params, tokens int[B], state) -> (logits float32[B, V], state)``.
      reorder: ``(state, rows int[B'], same_sources: bool) -> state`` of the rows ``rows``;
        ``same_sources`` promises that each row replaces one with the same source (beams of
        one sentence), so what depends on the source alone may stay in place.

      vocab_size: the model's ids, ``[0, vocab_size)``.
    """

    start: Callable[..., tuple[Array, Any]]
    step: Callable[[Any, Array, Any], tuple[Array, Any]]
    reorder: Callable[[Any, Array, bool], Any]
    vocab_size: int


@flax.struct.dataclass
class DecodeResult:
    """What a search found for each source.

    Attributes:
      tokens: int32[batch, max_new_tokens], the output, its end token included, then padding.
      lengths: int32[batch], tokens up to and including the end token (``max_new_tokens`` if
        it never ended).
      ended: bool[batch], whether the output ended with the end token.
      log_probs: float32[batch], the model's log-probability of those tokens.
      scores: float32[batch], ``log_probs / lengths ** length_penalty`` (greedy: ``log_probs``).
    """

    tokens: Array
    lengths: Array
    ended: Array
    log_probs: Array
    scores: Array

    def to_lists(self, *, keep_end: bool = False) -> list[list[int]]:
        """Each output as a list of ids, without its end token unless ``keep_end``."""
        ids, lengths, ended = jax.device_get((self.tokens, self.lengths, self.ended))
        cut = [int(n) - int(bool(e) and not keep_end) for n, e in zip(lengths, ended, strict=True)]
        return [row[:n].tolist() for row, n in zip(ids, cut, strict=True)]


def _result(
    tokens: Array, lengths: Array, log_probs: Array, scores: Array, end_id: int | None
) -> DecodeResult:
    last = jnp.take_along_axis(tokens, jnp.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0]
    ended = (lengths > 0) & (last == (-1 if end_id is None else end_id))
    return DecodeResult(tokens, lengths, ended, log_probs, scores)


def _check_request(
    decoding: Seq2SeqDecoding,
    source: Array,
    source_mask: Array,
    sizes: tuple[int, int],
    ids: tuple[int, int | None],
) -> None:
    """Raise ``ValueError`` naming the problem with a search's inputs: ``sizes`` is
    ``(max_new_tokens, beam_size)``, ``ids`` ``(start_id, end_id)``."""
    if source.ndim != 2 or source_mask.shape != source.shape:
        raise ValueError(
            f"source must be int[batch, len] with a bool mask of the same shape, got "
            f"{tuple(source.shape)} and {tuple(source_mask.shape)}"
        )
    if min(sizes) < 1:
        raise ValueError(f"max_new_tokens and beam_size must be >= 1, got {sizes[0]}, {sizes[1]}")
    for name, token in zip(("start_id", "end_id"), ids, strict=True):
        if token is not None and not 0 <= token < decoding.vocab_size:
            raise ValueError(
                f"{name}={token} is not a token id of the model's vocabulary "
                f"[0, {decoding.vocab_size}) (end_id=None: outputs never end early)"
            )


def _is_end(tokens: Array, end_id: int | None) -> Array:
    return jnp.zeros(tokens.shape, bool) if end_id is None else tokens == end_id


@flax.struct.dataclass
class _GreedyState:
    index: Array  # int32[], tokens chosen so far
    tokens: Array  # int32[B, L]
    log_probs: Array  # float32[B]
    lengths: Array  # int32[B]; 0 while unfinished
    logits: Array  # float32[B, V], of the next token
    decoder: Any


def greedy_search(
    decoding: Seq2SeqDecoding,
    params: Any,
    source: Array,
    source_mask: Array,
    *,
    max_new_tokens: int,
    start_id: int,
    end_id: int | None,
    pad_id: int = 0,
) -> DecodeResult:
    """The likeliest token at every step, until each source's output ends or
    ``max_new_tokens`` are made: a :class:`DecodeResult` whose ``scores`` are its
    ``log_probs``. ``source``: int[batch, len] ids, ``source_mask``: bool[batch, len];
    ``start_id``: the decoder's first input; ``end_id``: the token that ends an output
    (``None``: none does, every output is ``max_new_tokens`` long)."""
    _check_request(decoding, source, source_mask, (max_new_tokens, 1), (start_id, end_id))
    batch = source.shape[0]
    logits, decoder = decoding.start(
        params, source, source_mask, jnp.full((batch,), start_id, jnp.int32), max_new_tokens
    )
    state = _GreedyState(
        index=jnp.zeros((), jnp.int32),
        tokens=jnp.full((batch, max_new_tokens), pad_id, jnp.int32),
        log_probs=jnp.zeros((batch,), jnp.float32),
        lengths=jnp.zeros((batch,), jnp.int32),
        logits=logits,
        decoder=decoder,
    )

    def choose(state: _GreedyState) -> _GreedyState:
        """Write each unfinished row's likeliest next token."""
        live = state.lengths == 0
        log_probs = jax.nn.log_softmax(state.logits)
        token = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
        chosen = jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]
        written = jnp.where(live, token, pad_id)
        ended = live & (_is_end(token, end_id) | (state.index + 1 == max_new_tokens))
        return dataclasses.replace(
            state, index=state.index + 1,
            tokens=jax.lax.dynamic_update_slice(state.tokens, written[:, None], (0, state.index)),
            log_probs=state.log_probs + jnp.where(live, chosen, 0.0),
            lengths=jnp.where(ended, state.index + 1, state.lengths),
        )  # fmt: skip

    def feed_and_choose(state: _GreedyState) -> _GreedyState:
        """Feed the newest tokens, then choose the next ones: one model step per token."""
        newest = jax.lax.dynamic_slice_in_dim(state.tokens, state.index - 1, 1, axis=1)[:, 0]
        logits, decoder = decoding.step(params, newest, state.decoder)
        return choose(dataclasses.replace(state, logits=logits, decoder=decoder))

    def running(state: _GreedyState) -> Array:
        return (state.index < max_new_tokens) & jnp.any(state.lengths == 0)

    state = jax.lax.while_loop(running, feed_and_choose, choose(state))
    return _result(state.tokens, state.lengths, state.log_probs, state.log_probs, end_id)


@flax.struct.dataclass
class _BeamState:
    index: Array  # int32[], tokens chosen so far
    alive_tokens: Array  # int32[B, k, L]
    alive_log_probs: Array  # float32[B, k], -inf for empty beams
    ended_tokens: Array  # int32[B, k, L]
    ended_log_probs: Array  # float32[B, k]
    ended_scores: Array  # float32[B, k], -inf for empty slots
    ended_lengths: Array  # int32[B, k]
    ended_count: Array  # int32[B]
    logits: Array  # float32[B·k, V], of each alive beam's next token
    next_tokens: Array  # int32[B·k], each alive beam's newest token, not yet fed
    decoder: Any


def beam_search(
    decoding: Seq2SeqDecoding,
    params: Any,
    source: Array,
    source_mask: Array,
    *,
    beam_size: int,
    max_new_tokens: int,
    start_id: int,
    end_id: int | None,
    length_penalty: float = 1.0,
    pad_id: int = 0,
) -> DecodeResult:
    """The best of ``beam_size`` hypotheses per source (see the module docstring).

    Args:
      source: int[batch, len] ids; source_mask: bool[batch, len].
      beam_size: hypotheses kept per source (``k``).
      max_new_tokens: the longest output; a hypothesis still alive then is scored as it is.
      start_id: the decoder's first input.
      end_id: the token that ends a hypothesis (``None``: none does).
      length_penalty: the exponent ``a`` of ``score = log_prob / length ** a`` (0: none;
        larger values favour longer outputs).

    Returns:
      a :class:`DecodeResult` of each source's best-scoring hypothesis.
    """
    _check_request(decoding, source, source_mask, (max_new_tokens, beam_size), (start_id, end_id))
    state = _initial_beams(
        decoding, params, source, source_mask, beam_size, max_new_tokens, start_id, pad_id
    )
    choose = _beam_choice(decoding, beam_size, max_new_tokens, end_id, length_penalty)

    def feed_and_choose(state: _BeamState) -> _BeamState:
        logits, decoder = decoding.step(params, state.next_tokens, state.decoder)
        return choose(dataclasses.replace(state, logits=logits, decoder=decoder))

    def running(state: _BeamState) -> Array:
        return (state.index < max_new_tokens) & jnp.any(state.ended_count < beam_size)

    state = jax.lax.while_loop(running, feed_and_choose, choose(state))
    best = (state.ended_tokens[:, 0], state.ended_lengths[:, 0])  # every source has ended ones
    return _result(*best, state.ended_log_probs[:, 0], state.ended_scores[:, 0], end_id)


def _initial_beams(
    decoding: Seq2SeqDecoding,
    params: Any,
    source: Array,
    source_mask: Array,
    k: int,
    max_new_tokens: int,
    start_id: int,
    pad_id: int,
) -> _BeamState:
    """The first step's logits for each source, repeated over its ``k`` beams, of which only
    the first is alive (so the first choice takes ``k`` different tokens)."""
    batch = source.shape[0]
    logits, decoder = decoding.start(
        params, source, source_mask, jnp.full((batch,), start_id, jnp.int32), max_new_tokens
    )
    rows = jnp.repeat(jnp.arange(batch), k)
    first_alive = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)
    empty = jnp.full((batch, k, max_new_tokens), pad_id, jnp.int32)
    return _BeamState(
        index=jnp.zeros((), jnp.int32),
        alive_tokens=empty,
        alive_log_probs=jnp.broadcast_to(first_alive, (batch, k)).astype(jnp.float32),
        ended_tokens=empty,
        ended_log_probs=jnp.zeros((batch, k), jnp.float32),
        ended_scores=jnp.full((batch, k), -jnp.inf, jnp.float32),
        ended_lengths=jnp.zeros((batch, k), jnp.int32),
        ended_count=jnp.zeros((batch,), jnp.int32),
        logits=logits[rows],
        next_tokens=jnp.zeros((batch * k,), jnp.int32),
        decoder=decoding.reorder(decoder, rows, False),
    )


def _beam_choice(
    decoding: Seq2SeqDecoding,
    k: int,
    max_new_tokens: int,
    end_id: int | None,
    length_penalty: float,
) -> Callable[[_BeamState], _BeamState]:
    """One choice of beam search, from the alive beams' next-token logits: extend them, end
    some, keep the best ``k`` alive, their decoding state reordered to match."""

    def choose(state: _BeamState) -> _BeamState:
        batch, vocab = state.alive_tokens.shape[0], state.logits.shape[-1]
        log_probs = jax.nn.log_softmax(state.logits).reshape(batch, k, vocab)
        candidates = (state.alive_log_probs[:, :, None] + log_probs).reshape(batch, k * vocab)
        scores, flat = jax.lax.top_k(candidates, 2 * k)  # (B, 2k), best first
        parents, tokens = flat // vocab, (flat % vocab).astype(jnp.int32)
        sequences = jnp.take_along_axis(state.alive_tokens, parents[:, :, None], axis=1)
        sequences = jax.lax.dynamic_update_slice(sequences, tokens[:, :, None], (0, 0, state.index))
        ends = _is_end(tokens, end_id) | (state.index + 1 == max_new_tokens)
        state = _end_hypotheses(state, sequences, scores, ends, k, length_penalty)
        alive_scores, chosen = jax.lax.top_k(jnp.where(ends, -jnp.inf, scores), k)
        parent_rows = jnp.arange(batch)[:, None] * k + jnp.take_along_axis(parents, chosen, 1)
        return dataclasses.replace(
            state, index=state.index + 1,
            alive_tokens=jnp.take_along_axis(sequences, chosen[:, :, None], axis=1),
            alive_log_probs=alive_scores,
            next_tokens=jnp.take_along_axis(tokens, chosen, axis=1).reshape(-1),
            decoder=decoding.reorder(state.decoder, parent_rows.reshape(-1), True),
        )  # fmt: skip

    return choose


def _length_normalised(log_probs: Array, lengths: Array, length_penalty: float) -> Array:
    return log_probs / lengths.astype(jnp.float32) ** length_penalty


def _end_hypotheses(
    state: _BeamState, sequences: Array, scores: Array, ends: Array, k: int, length_penalty: float
) -> _BeamState:
    """Add the candidates that end among each unfinished source's best ``k`` to its ended
    hypotheses, keeping the ``k`` best by length-normalised score.

    Args:
      sequences: int32[B, 2k, L], the candidates; scores: float32[B, 2k], their
        log-probabilities, best first; ends: bool[B, 2k], which end here.
    """
    ranked_in_beam = jnp.arange(2 * k)[None, :] < k
    open_sources = (state.ended_count < k)[:, None]
    ending = ends & ranked_in_beam & open_sources & jnp.isfinite(scores)
    length = state.index + 1
    new_scores = jnp.where(ending, _length_normalised(scores, length, length_penalty), -jnp.inf)
    all_scores = jnp.concatenate([state.ended_scores, new_scores], axis=1)  # (B, 3k)
    best_scores, best = jax.lax.top_k(all_scores, k)
    pick = lambda old, new: jnp.take_along_axis(  # noqa: E731
        jnp.concatenate([old, new], axis=1), best if old.ndim == 2 else best[:, :, None], axis=1
    )
    return dataclasses.replace(
        state,
        ended_tokens=pick(state.ended_tokens, sequences),
        ended_log_probs=pick(state.ended_log_probs, scores),
        ended_scores=best_scores,
        ended_lengths=pick(state.ended_lengths, jnp.full(scores.shape, length, jnp.int32)),
        ended_count=state.ended_count + jnp.sum(ending, axis=1, dtype=jnp.int32),
    )
