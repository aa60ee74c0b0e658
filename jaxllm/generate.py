"""Autoregressive decoding with a KV cache: greedy, temperature, top-k and top-p (nucleus).

Prompts of different lengths are left-padded to the longest one and prefilled in one forward
pass (padding masked out, each row's positions counting only its real tokens); then one token
per step runs inside a ``lax.while_loop``, the whole thing one ``jax.jit`` compiled once per
(model, batch, padded prompt length, ``max_new_tokens``, sampling settings)::

    result = generate(model, params, [[5, 7, 1], [2]], max_new_tokens=20, key=key, top_k=40)
    result.tokens      # int32[2, 20], pad_id after a row's stop token
    result.lengths     # int32[2], tokens generated per row, the stop token included
    result.to_lists()  # [[...], [...]] each cut at its length

The sampling pieces (:func:`greedy`, :func:`sample_logits`) are pure functions of their own.
An :class:`~jaxllm.models.LSTMLM` decodes through the same functions, its recurrent state in
place of the cache (``lax.scan`` over the new tokens, the prompt read once).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any, cast

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxllm.config import require
from jaxllm.data.batches import pad_sequences
from jaxllm.data.tokenizers import Tokenizer
from jaxllm.models.gpt import GPT, GPTCache, GPTConfig, check_token_ids, check_tokens, init_cache
from jaxllm.models.lstm_lm import LSTMLM, LSTMLMConfig, lstm_lm_prefill, lstm_lm_step

# Padding slots are masked out of attention, so their id never matters; 0 is in every vocabulary
# (an out-of-range id would embed as NaN, and NaN times a zero attention weight is still NaN).
PROMPT_PAD_ID = 0
# Token-id prompts of any lengths (lists or 1-D arrays), or one int[batch, seq] array.
Prompts = Sequence[Sequence[int] | np.ndarray] | np.ndarray | Array


# --------------------------------------------------------------------------- sampling


def greedy(logits: Array) -> Array:
    """The most likely token: ``argmax(logits)``.

    Args:
      logits: float[..., vocab]

    Returns:
      int32[...]
    """
    # The lowest id among the maxima (NaN counting as the maximum), exactly jnp.argmax; but two
    # plain reductions vectorise, where XLA:CPU's (value, index) argmax reduction does not: over
    # a 50k vocabulary this is ~6x faster than argmax and ~4x faster than lax.top_k.
    best = jnp.max(logits, axis=-1, keepdims=True)
    ids = jnp.arange(logits.shape[-1], dtype=jnp.int32)
    is_best = (logits == best) | jnp.isnan(logits)
    return jnp.min(jnp.where(is_best, ids, logits.shape[-1]), axis=-1)


def _check_sampling(temperature: Any, top_k: int | None, top_p: float | None) -> None:
    """Reject settings that define no distribution (traced temperatures are not checked)."""
    if isinstance(temperature, numbers.Real):
        require(
            float(temperature) > 0,
            f"temperature must be > 0 to sample (got {temperature}); "
            "use greedy=True for argmax decoding",
            ValueError,
        )
    require(
        top_k is None
        or (isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool) and top_k >= 1),
        f"top_k must be a positive int or None, got {top_k!r}",
        ValueError,
    )
    require(
        top_p is None or (isinstance(top_p, numbers.Real) and 0.0 < top_p <= 1.0),
        f"top_p must be in (0, 1] or None, got {top_p!r}",
        ValueError,
    )


def _nucleus(sorted_logits: Array, top_p: float) -> Array:
    """Keep the smallest prefix of descending ``sorted_logits`` whose probability mass is ≥ p.

    Token ``i`` stays iff the mass of the tokens ranked above it is < p, so the top token always
    stays. Args and result: float32[..., n], dropped entries set to -inf.
    """
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_above = jnp.cumsum(probs, axis=-1) - probs
    return jnp.where(mass_above < top_p, sorted_logits, -jnp.inf)


def sample_logits(
    key: Array,
    logits: Array,
    temperature: float | Array = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Array:
    """Draw one token per row from ``softmax(filter(logits / temperature))``.

    The filters run after the temperature, top-k before top-p (the order of Hugging Face's
    logits warpers): top-k keeps the ``k`` largest logits, top-p then keeps the smallest set of
    those whose renormalised probability mass is ≥ ``top_p`` (always at least the top token).

    Args:
      key: PRNG key; each row gets an independent draw.
      logits: float[..., vocab]
      temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
      top_k: keep the ``top_k`` most likely tokens (``None``: all); clipped to the vocabulary.
      top_p: nucleus mass in (0, 1] (``None`` or 1: no nucleus filter).

    Returns:
      int32[...] token ids.
    """
    _check_sampling(temperature, top_k, top_p)
    logits = logits.astype(jnp.float32) / temperature
    if top_k is None and top_p is None:
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
    # Sample among the candidates in sorted order, then map back to vocabulary ids: with a top-k
    # this touches k entries instead of the vocabulary, and top-p needs them sorted anyway.
    vocab = logits.shape[-1]
    candidates, ids = jax.lax.top_k(logits, vocab if top_k is None else min(int(top_k), vocab))
    if top_p is not None and top_p < 1.0:
        candidates = _nucleus(candidates, top_p)
    choice = jax.random.categorical(key, candidates, axis=-1)
    return jnp.take_along_axis(ids, choice[..., None], axis=-1)[..., 0].astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How the next token is chosen; hashable, so it is a static argument of the decode jit.

    Attributes:
      greedy: always take the argmax (the other settings are then unused).
      temperature, top_k, top_p: as in :func:`sample_logits`.
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        _check_sampling(self.temperature, self.top_k, self.top_p)

    def choose(self, key: Array | None, logits: Array) -> Array:
        """float[batch, vocab] -> int32[batch] next tokens (``key`` may be ``None`` if greedy)."""
        if self.greedy:
            return greedy(logits)
        if key is None:
            raise ValueError("sampling needs a PRNG key: pass key=jax.random.key(seed)")
        return sample_logits(key, logits, self.temperature, self.top_k, self.top_p)


# --------------------------------------------------------------------------- prompts


def positions_from_mask(mask: Array) -> Array:
    """Each real token's position is the number of real tokens before it (padding gets 0).

    Args:
      mask: bool[batch, seq], ``True`` at real tokens.

    Returns:
      int32[batch, seq]
    """
    return jnp.maximum(jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1, 0)


def _as_prompt_list(prompts: Any) -> list[np.ndarray]:
    """Validate the container and each prompt's shape/dtype; id ranges are checked later."""
    if isinstance(prompts, (np.ndarray, jax.Array)):
        if prompts.ndim != 2:
            raise ValueError(
                f"a prompt array must be int[batch, seq], got shape {tuple(prompts.shape)}"
            )
        prompts = list(np.asarray(prompts))
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise ValueError(
            f"prompts must be a list of token-id sequences, got {type(prompts).__name__}; "
            "use generate_text for strings"
        )
    if len(prompts) == 0:
        raise ValueError("no prompts given: pass at least one token-id sequence")
    out = []
    for row, prompt in enumerate(prompts):
        ids = np.asarray(prompt)
        if ids.ndim != 1:
            raise ValueError(
                f"prompt {row} must be a 1-D sequence of token ids, got shape {ids.shape}"
            )
        if ids.size == 0:
            raise ValueError(
                f"prompt {row} is empty; every prompt needs at least one token "
                "(e.g. a beginning-of-text token)"
            )
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"prompt {row} must hold integer token ids, got dtype {ids.dtype}")
        out.append(ids)
    return out


# --------------------------------------------------------------------------- decoding


@flax.struct.dataclass
class GenerationResult:
    """New tokens of a batch of prompts.

    Attributes:
      tokens: int32[batch, max_new_tokens]; after a row's stop token, ``pad_id``.
      lengths: int32[batch] tokens generated per row, its stop token included.
      step_logits: float32[batch, max_new_tokens, vocab] the logits each token was chosen from
        (before temperature and filters), when asked for with ``return_logits=True``; zeros for
        steps a GPT did not run because every row had stopped (an LSTM runs every step).
    """

    tokens: Array
    lengths: Array
    step_logits: Array | None = None

    def to_lists(self) -> list[list[int]]:
        """Each row's new tokens as a Python list, cut at its length."""
        tokens, lengths = np.asarray(self.tokens), np.asarray(self.lengths)
        return [row[:n].tolist() for row, n in zip(tokens, lengths, strict=True)]


@flax.struct.dataclass
class _DecodeState:
    """The ``while_loop`` carry.  B = batch, N = max_new_tokens."""

    step: Array  # int32[] index of the next token to choose
    cache: GPTCache
    last_token: Array  # int32[B] the newest token, to feed next (as sampled, even after a stop)
    tokens: Array  # int32[B, N] output, pad_id where not (yet) generated
    lengths: Array  # int32[B]
    done: Array  # bool[B] the row has emitted its stop token
    step_logits: Array | None  # float32[B, N, V] or None


def _cached_apply(model: GPT, params: Any) -> Callable[..., tuple[Array, GPTCache]]:
    """``apply(tokens, **kwargs) -> (logits, cache)``: the model called with a cache."""

    def apply(tokens: Array, **kwargs: Any) -> tuple[Array, GPTCache]:
        # flax types apply's result as Any or a (result, mutated variables) pair.
        return cast("tuple[Array, GPTCache]", model.apply({"params": params}, tokens, **kwargs))

    return apply


def _prefill(
    apply: Callable[..., tuple[Array, GPTCache]],
    config: GPTConfig,
    prompt_tokens: Array,
    prompt_mask: Array,
    max_new_tokens: int,
) -> GPTCache:
    """A cache holding every prompt token but the newest, which the first decode step feeds."""
    batch, prompt_len = prompt_tokens.shape
    # Every token but the last chosen one is fed through the model once.
    cache = init_cache(config, batch, prompt_len + max_new_tokens - 1)
    if prompt_len == 1:
        return cache
    # Only the cache is kept: no logits are computed for the prompt (XLA drops the unused
    # [B, P-1, V] projection).
    _, cache = apply(
        prompt_tokens[:, :-1],
        padding_mask=prompt_mask[:, :-1],
        positions=positions_from_mask(prompt_mask[:, :-1]),
        cache=cache,
    )
    return cache


def _initial_state(
    cache: GPTCache,
    last_token: Array,
    pad_id: Array,
    max_new_tokens: int,
    vocab_size: int,
    return_logits: bool,
) -> _DecodeState:
    """The decode loop's carry before its first step; ``last_token``: int32[B]."""
    batch = last_token.shape[0]
    return _DecodeState(
        step=jnp.zeros((), jnp.int32),
        cache=cache,
        last_token=last_token,
        tokens=jnp.full((batch, max_new_tokens), pad_id, jnp.int32),
        lengths=jnp.zeros((batch,), jnp.int32),
        done=jnp.zeros((batch,), bool),
        step_logits=(
            jnp.zeros((batch, max_new_tokens, vocab_size), jnp.float32) if return_logits else None
        ),
    )


@functools.partial(
    jax.jit, static_argnames=("model", "max_new_tokens", "sampling", "return_logits")
)
def _generate_padded(
    model: GPT,
    params: Any,
    prompt_tokens: Array,
    prompt_mask: Array,
    key: Array,
    stop_token: Array,
    pad_id: Array,
    *,
    max_new_tokens: int,
    sampling: Sampling,
    return_logits: bool,
) -> GenerationResult:
    """Prefill left-padded prompts, then decode one token per ``while_loop`` step.

    Args:
      prompt_tokens: int32[B, P] left-padded prompts (so column P-1 is every row's newest token).
      prompt_mask: bool[B, P] ``True`` at real tokens.
      stop_token: int32[] (-1: none); pad_id: int32[] filler after a row's stop token.

    Returns:
      a :class:`GenerationResult` with N = ``max_new_tokens`` columns.
    """
    apply = _cached_apply(model, params)
    cache = _prefill(apply, model.config, prompt_tokens, prompt_mask, max_new_tokens)
    last_position = prompt_mask.sum(axis=1, dtype=jnp.int32) - 1  # int32[B]: newest prompt token

    def unfinished(state: _DecodeState) -> Array:
        return (state.step < max_new_tokens) & ~jnp.all(state.done)

    def decode_step(state: _DecodeState) -> _DecodeState:
        """Feed the newest token, choose token ``state.step`` from its logits, record it."""
        positions = (last_position + state.step)[:, None]  # (B, 1)
        logits, cache = apply(state.last_token[:, None], positions=positions, cache=state.cache)
        logits = logits[:, 0]  # (B, V)
        step_key = None if sampling.greedy else jax.random.fold_in(key, state.step)
        token = sampling.choose(step_key, logits)
        step_logits = state.step_logits
        if step_logits is not None:
            step_logits = step_logits.at[:, state.step].set(logits)
        return _DecodeState(
            step=state.step + 1,
            cache=cache,
            last_token=token,
            tokens=state.tokens.at[:, state.step].set(jnp.where(state.done, pad_id, token)),
            lengths=state.lengths + (~state.done).astype(jnp.int32),
            done=state.done | (token == stop_token),
            step_logits=step_logits,
        )

    state = _initial_state(
        cache, prompt_tokens[:, -1], pad_id, max_new_tokens, model.config.vocab_size, return_logits
    )
    state = jax.lax.while_loop(unfinished, decode_step, state)
    return GenerationResult(
        tokens=state.tokens, lengths=state.lengths, step_logits=state.step_logits
    )


# --------------------------------------------------------------------------- LSTM decoding


@functools.partial(
    jax.jit, static_argnames=("model", "max_new_tokens", "sampling", "return_logits")
)
def _generate_lstm_padded(
    model: LSTMLM,
    params: Any,
    prompt_tokens: Array,
    prompt_mask: Array,
    key: Array,
    stop_token: Array,
    pad_id: Array,
    *,
    max_new_tokens: int,
    sampling: Sampling,
    return_logits: bool,
) -> GenerationResult:
    """Read right-padded prompts once, then choose and feed one token per ``lax.scan`` step,
    the LSTM's state carried (every step runs; the tokens after a row's stop token are replaced
    by ``pad_id`` at the end).

    Args:
      prompt_tokens: int32[B, P] right-padded prompts; prompt_mask: bool[B, P] ``True`` at real
        tokens.
      stop_token: int32[] (-1: none); pad_id: int32[] filler after a row's stop token.

    Returns:
      a :class:`GenerationResult` with N = ``max_new_tokens`` columns.
    """
    logits, states = lstm_lm_prefill(model, params, prompt_tokens, prompt_mask)

    def step(carry: tuple[Array, Any], index: Array) -> tuple[tuple[Array, Any], tuple]:
        logits, states = carry  # the logits the next token is chosen from, (B, V)
        step_key = None if sampling.greedy else jax.random.fold_in(key, index)
        token = sampling.choose(step_key, logits)
        return lstm_lm_step(params, token, states), (token, logits if return_logits else None)

    steps = jnp.arange(max_new_tokens)
    _, (tokens, step_logits) = jax.lax.scan(step, (logits, states), steps)  # time-major
    tokens = tokens.T  # (B, N)
    stops = tokens == stop_token
    after_stop = jnp.cumsum(stops, axis=1) - stops > 0  # a stop token earlier in the row
    return GenerationResult(
        tokens=jnp.where(after_stop, pad_id, tokens),
        lengths=max_new_tokens - jnp.sum(after_stop, axis=1, dtype=jnp.int32),
        step_logits=None if step_logits is None else step_logits.swapaxes(0, 1),
    )


# --------------------------------------------------------------------------- requests


def _check_request(
    config: GPTConfig | LSTMLMConfig,
    rows: list[np.ndarray],
    max_new_tokens: int,
    stop_token: int | None,
) -> None:
    """Reject a request the model cannot serve: too many tokens (for a GPT's context), or an
    impossible stop token."""
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    longest = max(len(r) for r in rows)
    if isinstance(config, GPTConfig) and longest + max_new_tokens > config.block_size:
        raise ValueError(
            f"the longest prompt ({longest} tokens) plus max_new_tokens ({max_new_tokens}) is "
            f"{longest + max_new_tokens} tokens, more than the model's context "
            f"(block_size={config.block_size}); shorten the prompt or generate fewer tokens"
        )
    if stop_token is not None and not 0 <= stop_token < config.vocab_size:
        raise ValueError(
            f"stop_token {stop_token} is outside the vocabulary [0, {config.vocab_size}) "
            "and could never be generated"
        )


def _padded_prompts(
    config: GPTConfig | LSTMLMConfig,
    prompts: Prompts,
    max_new_tokens: int,
    stop_token: int | None,
    side: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked prompts padded on ``side`` ("left" or "right") to the longest: (int32[B, P]
    tokens, bool[B, P] mask ``True`` at real tokens)."""
    rows = _as_prompt_list(prompts)
    _check_request(config, rows, max_new_tokens, stop_token)
    tokens, mask = pad_sequences(rows, PROMPT_PAD_ID, side=side)
    if isinstance(config, GPTConfig):
        check_tokens(tokens, config)
    else:  # an LSTM reads prompts of any length
        check_token_ids(tokens, config.vocab_size)
    return tokens, mask


def _sampling(
    key: Array | None, greedy: bool, temperature: float, top_k: int | None, top_p: float | None
) -> Sampling:
    """The :class:`Sampling` a request asks for; sampling (not greedy) needs a ``key``."""
    sampling = Sampling(greedy=True) if greedy else Sampling(False, temperature, top_k, top_p)
    if not greedy and key is None:
        raise ValueError("sampling needs a PRNG key: pass key=jax.random.key(seed), or greedy=True")
    return sampling


def _decoder(model: GPT | LSTMLM) -> tuple[Callable[..., GenerationResult], str]:
    """``model``'s jitted decoding loop, and the side its prompts are padded on: an LSTM's
    on the right (its state is each row's own at its last token), a GPT's on the left."""
    if isinstance(model, LSTMLM):
        return _generate_lstm_padded, "right"
    if isinstance(model, GPT):
        return _generate_padded, "left"
    raise ValueError(f"model must be a jaxllm GPT or LSTMLM, got {type(model).__name__}")


def generate(
    model: GPT | LSTMLM,
    params: Any,
    prompts: Prompts,
    *,
    max_new_tokens: int,
    key: Array | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    stop_token: int | None = None,
    pad_id: int = 0,
    return_logits: bool = False,
) -> GenerationResult:
    """Continue each prompt by ``max_new_tokens`` tokens (fewer if it emits ``stop_token``).

    A GPT prefills a KV cache with the left-padded prompts, then decodes in a ``while_loop``;
    an :class:`~jaxllm.models.LSTMLM` reads the right-padded prompts once for each layer's
    state, then decodes in a ``lax.scan``. One ``jax.jit`` compiled per (model, batch, padded
    prompt length, ``max_new_tokens``, sampling settings).

    Args:
      model: a :class:`~jaxllm.models.GPT` or :class:`~jaxllm.models.LSTMLM`.
      params: its parameters.
      prompts: token-id sequences, possibly of different lengths (or an int[batch, seq] array);
        every prompt needs at least one token.
      max_new_tokens: tokens to generate per row; for a GPT, the longest prompt plus this must
        fit in the model's ``block_size`` (an LSTM takes any length).
      key: PRNG key for sampling (not needed with ``greedy=True``). Same key, same tokens.
      temperature: softmax temperature of the sampling, see :func:`sample_logits`.
      top_k: sample among the ``top_k`` most likely tokens only (``None``: all).
      top_p: sample from the smallest set of tokens whose probability reaches ``top_p``.
      greedy: take the argmax at every step instead of sampling.
      stop_token: a row that emits it is finished: it is kept (and counted in ``lengths``),
        later positions hold ``pad_id``; a GPT stops decoding once every row is finished.
      pad_id: the filler after a row's stop token.
      return_logits: also return each step's logits (``GenerationResult.step_logits``).

    Raises ``ValueError`` for empty or malformed prompts, ids outside the vocabulary, too long
    a request, invalid sampling settings or a missing key.
    """
    decode, side = _decoder(model)
    tokens, mask = _padded_prompts(model.config, prompts, max_new_tokens, stop_token, side)
    sampling = _sampling(key, greedy, temperature, top_k, top_p)
    return decode(
        model,
        params,
        tokens,
        mask,
        jax.random.key(0) if key is None else key,
        np.int32(-1 if stop_token is None else stop_token),
        np.int32(pad_id),
        max_new_tokens=int(max_new_tokens),
        sampling=sampling,
        return_logits=return_logits,
    )


def generate_long(
    model: GPT | LSTMLM,
    params: Any,
    prompts: Prompts,
    *,
    max_new_tokens: int,
    key: Array | None = None,
    **settings: Any,
) -> list[list[int]]:
    """Like :func:`generate`, but ``prompt + max_new_tokens`` may exceed the model's context.

    Requests that fit, and every request to an LSTM (which has no context to exceed), are one
    :func:`generate` call. Longer ones decode in chunks of half the
    context, each conditioned on the newest ``block_size - chunk`` tokens of its row (a sliding
    window, as nanoGPT crops its context), so at most a few shapes are ever compiled.
    ``settings`` are :func:`generate`'s keyword arguments.

    Returns:
      the new tokens of each row, cut after its stop token.
    """
    context = model.config.block_size
    rows = [list(map(int, r)) for r in _as_prompt_list(prompts)]
    if isinstance(model, LSTMLM) or max(len(r) for r in rows) + max_new_tokens <= context:
        return generate(
            model, params, rows, max_new_tokens=max_new_tokens, key=key, **settings
        ).to_lists()
    chunk = max(context // 2, 1)
    stop_token = settings.get("stop_token")
    new: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    for index in range(-(-max_new_tokens // chunk)):
        live = [i for i in range(len(rows)) if not done[i]]
        if not live:
            break
        n = min(chunk, max_new_tokens - index * chunk)
        windows = [(rows[i] + new[i])[-(context - n) :] for i in live]
        chunk_key = None if key is None else jax.random.fold_in(key, index)
        result = generate(model, params, windows, max_new_tokens=n, key=chunk_key, **settings)
        for i, ids in zip(live, result.to_lists(), strict=True):
            new[i].extend(ids)
            done[i] = stop_token is not None and bool(ids) and ids[-1] == stop_token
    return new


def generate_text(
    model: GPT | LSTMLM,
    params: Any,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    key: Array | None = None,
    **settings: Any,
) -> list[str]:
    """Continue each text prompt; returns only the continuations, without the stop token.

    ``max_new_tokens`` may exceed a GPT's context (see :func:`generate_long`); ``settings``
    are :func:`generate`'s keyword arguments (``temperature``, ``top_k``, ``top_p``, ``greedy``,
    ``stop_token``, ``pad_id``). The model is a GPT or an :class:`~jaxllm.models.LSTMLM`.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of strings; wrap a single prompt in a list")
    encoded = [np.asarray(tokenizer.encode(text)) for text in prompts]
    new = generate_long(model, params, encoded, max_new_tokens=max_new_tokens, key=key, **settings)
    stop_token = settings.get("stop_token")
    texts = []
    for ids in new:
        if stop_token is not None and ids and ids[-1] == stop_token:
            ids = ids[:-1]
        texts.append(tokenizer.decode(np.asarray(ids, np.int32)))
    return texts
