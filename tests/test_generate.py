"""KV-cache decoding: parity with full recomputation, greedy, sampling filters, stop tokens,
text round trip, bad input.

Compile time dominates, so every decoding test reuses a few fixed shapes: 3 prompts padded to 9
tokens, 8 new tokens.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import pad_sequences
from jaxllm.generate import (
    GenerationResult,
    generate,
    generate_long,
    generate_text,
    greedy,
    positions_from_mask,
    sample_logits,
)
from jaxllm.models import GPT, GPTConfig, init_params

VOCAB, BLOCK, NEW = 37, 64, 8
PROMPTS = [[5, 3, 8, 1, 2], [7], [3, 1, 4, 1, 5, 9, 2, 6, 5]]  # padded to 9
CONFIGS = {
    positions: GPTConfig(
        vocab_size=VOCAB,
        block_size=BLOCK,
        n_layer=2,
        n_head=2,
        n_embd=32,
        bias=True,
        positions=positions,
    )
    for positions in ("learned", "rotary")
}


@functools.cache
def model_and_params(name: str) -> tuple[GPT, dict]:
    return GPT(CONFIGS[name]), init_params(CONFIGS[name], jax.random.key(0))


@functools.cache
def full_logits_fn(name: str):
    """Jitted full recomputation without a cache: int[1, T] -> float32[1, T, V]."""
    model, _ = model_and_params(name)
    return jax.jit(lambda params, tokens: model.apply({"params": params}, tokens))


def recompute_step_logits(name: str, prompt: list[int], new_tokens: np.ndarray) -> np.ndarray:
    """Logits for choosing each new token, from one pass over the unpadded prompt + new tokens.

    Returns float32[len(new_tokens), V]: row i is the distribution new token i was chosen from.
    """
    _, params = model_and_params(name)
    sequence = np.asarray([list(prompt) + list(new_tokens[:-1])], np.int32)
    logits = full_logits_fn(name)(params, sequence)[0]
    return np.asarray(logits[len(prompt) - 1 :])


@functools.cache
def greedy_with_logits(name: str) -> GenerationResult:
    model, params = model_and_params(name)
    return generate(model, params, PROMPTS, max_new_tokens=NEW, greedy=True, return_logits=True)


@functools.cache
def greedy_tokens() -> np.ndarray:
    model, params = model_and_params("learned")
    return np.asarray(generate(model, params, PROMPTS, max_new_tokens=NEW, greedy=True).tokens)


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cached_step_logits_match_full_recomputation(name):
    result = greedy_with_logits(name)
    chex.assert_shape(result.tokens, (len(PROMPTS), NEW))
    chex.assert_shape(result.step_logits, (len(PROMPTS), NEW, VOCAB))
    assert result.tokens.dtype == jnp.int32 and result.lengths.dtype == jnp.int32
    np.testing.assert_array_equal(result.lengths, [NEW] * len(PROMPTS))
    for row, prompt in enumerate(PROMPTS):  # each row against its own unpadded sequence
        tokens = np.asarray(result.tokens[row])
        expected = recompute_step_logits(name, prompt, tokens)
        np.testing.assert_allclose(result.step_logits[row], expected, atol=1e-5, rtol=0)
        # greedy: every token is the argmax of the recomputed distribution
        np.testing.assert_array_equal(tokens, expected.argmax(-1))


def test_sampled_tokens_use_cached_logits_and_stay_in_top_k():
    model, params = model_and_params("learned")
    sample = functools.partial(
        generate,
        model,
        params,
        PROMPTS,
        max_new_tokens=NEW,
        temperature=0.8,
        top_k=5,
        top_p=0.9,
        return_logits=True,
    )
    result = sample(key=jax.random.key(1))
    for row, prompt in enumerate(PROMPTS):
        tokens = np.asarray(result.tokens[row])
        expected = recompute_step_logits("learned", prompt, tokens)
        np.testing.assert_allclose(result.step_logits[row], expected, atol=1e-5, rtol=0)
        top5 = np.argsort(-expected, axis=-1)[:, :5]
        assert all(t in top for t, top in zip(tokens, top5, strict=True))
    # the same key gives the same tokens; another key (almost surely) others
    np.testing.assert_array_equal(sample(key=jax.random.key(1)).tokens, result.tokens)
    assert not np.array_equal(sample(key=jax.random.key(2)).tokens, result.tokens)


def test_greedy_is_deterministic_and_compiles_once_per_shape():
    from jaxllm.generate import _generate_padded

    if not hasattr(_generate_padded, "_cache_size"):
        pytest.skip("this jax version does not expose the jit cache size")
    model, params = model_and_params("learned")
    first = greedy_tokens()
    compiled = _generate_padded._cache_size()
    # other prompts of the same padded shape and another (unused) key: no new compile
    other = [[1, 2], [3, 4, 5, 6, 7, 8, 9, 10, 11], [12]]
    generate(model, params, other, max_new_tokens=NEW, greedy=True, key=jax.random.key(5))
    again = generate(model, params, PROMPTS, max_new_tokens=NEW, greedy=True, key=jax.random.key(7))
    assert _generate_padded._cache_size() == compiled
    np.testing.assert_array_equal(again.tokens, first)


@pytest.mark.parametrize("row", [0, 1])
def test_batched_rows_equal_each_prompt_alone(row):
    model, params = model_and_params("learned")
    alone = generate(model, params, [PROMPTS[row]], max_new_tokens=NEW, greedy=True)
    np.testing.assert_array_equal(alone.tokens[0], greedy_tokens()[row])


def test_array_prompts_are_rows():
    model, params = model_and_params("learned")
    prompts = np.arange(27, dtype=np.int64).reshape(3, 9) % VOCAB
    result = generate(model, params, prompts, max_new_tokens=NEW, greedy=True)
    listed = generate(model, params, prompts.tolist(), max_new_tokens=NEW, greedy=True)
    np.testing.assert_array_equal(result.tokens, listed.tokens)


def test_stop_token_ends_rows_and_pads_after_it():
    model, params = model_and_params("learned")
    unstopped = greedy_tokens()
    stop, pad = int(unstopped[0, 2]), -1
    result = generate(
        model, params, PROMPTS, max_new_tokens=NEW, greedy=True, stop_token=stop, pad_id=pad
    )
    tokens, lengths = np.asarray(result.tokens), np.asarray(result.lengths)
    assert lengths[0] <= 3
    for row in range(len(PROMPTS)):
        hits = np.flatnonzero(unstopped[row] == stop)
        length = hits[0] + 1 if hits.size else NEW
        assert lengths[row] == length
        np.testing.assert_array_equal(tokens[row, :length], unstopped[row, :length])
        assert (tokens[row, length:] == pad).all()
    assert result.to_lists() == [tokens[r, : lengths[r]].tolist() for r in range(len(PROMPTS))]


def test_loop_ends_early_once_every_row_has_stopped():
    model, params = model_and_params("learned")
    same = [PROMPTS[2]] * len(PROMPTS)  # same shape as the cached fixture: no new compile
    unstopped = generate(model, params, same, max_new_tokens=NEW, greedy=True, return_logits=True)
    row = np.asarray(unstopped.tokens[0])
    stop = int(row[1])
    stopped_at = int(np.flatnonzero(row == stop)[0])
    result = generate(
        model, params, same, max_new_tokens=NEW, greedy=True, return_logits=True, stop_token=stop
    )
    np.testing.assert_array_equal(result.lengths, [stopped_at + 1] * len(same))
    logits = np.asarray(result.step_logits)
    assert np.abs(logits[:, : stopped_at + 1]).max() > 0
    assert (logits[:, stopped_at + 1 :] == 0).all()  # those steps never ran


class CharTokenizer:
    """Duck-typed tokenizer: one id per character of a 37-symbol alphabet."""

    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.alphabet.index(c) for c in text], np.int32)

    def decode(self, ids) -> str:
        return "".join(self.alphabet[i] for i in np.asarray(ids).tolist())


def test_generate_text_round_trips_through_the_tokenizer():
    model, params = model_and_params("learned")
    tokenizer = CharTokenizer()
    texts = ["fdibc", "h", "dbebfjcgf"]  # PROMPTS as characters
    assert [tokenizer.encode(t).tolist() for t in texts] == PROMPTS
    out = generate_text(model, params, tokenizer, texts, max_new_tokens=NEW, greedy=True)
    assert out == [tokenizer.decode(row) for row in greedy_tokens()]
    stop = int(greedy_tokens()[0, 2])
    stopped = generate_text(
        model, params, tokenizer, texts, max_new_tokens=NEW, greedy=True, stop_token=stop
    )
    assert tokenizer.alphabet[stop] not in stopped[0] and out[0].startswith(stopped[0])


# --------------------------------------------------------------------------- prompts


def test_left_pad_and_positions():
    tokens, mask = pad_sequences(PROMPTS, 0, side="left")
    chex.assert_shape(tokens, (3, 9))
    np.testing.assert_array_equal(tokens[1], [0] * 8 + [7])
    np.testing.assert_array_equal(mask.sum(1), [5, 1, 9])
    positions = np.asarray(positions_from_mask(mask))
    np.testing.assert_array_equal(positions[0], [0, 0, 0, 0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(positions[2], np.arange(9))


# --------------------------------------------------------------------------- sampling


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    vocab=st.sampled_from([2, 9, 37]),
    values=st.sampled_from([3, 1000]),
)
def test_greedy_is_first_argmax(seed, vocab, values):
    # few distinct values make ties likely: the lowest id must win, as in np.argmax
    logits = np.random.default_rng(seed).integers(0, values, (6, vocab)).astype(np.float32)
    np.testing.assert_array_equal(greedy(logits), logits.argmax(-1))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    top_k=st.sampled_from([None, 1, 3, 10, 50]),
    top_p=st.one_of(st.none(), st.floats(0.05, 1.0)),
    temperature=st.floats(0.3, 3.0),
    scale=st.floats(0.1, 10.0),
)
def test_samples_stay_inside_top_k_and_nucleus(seed, top_k, top_p, temperature, scale):
    rng = np.random.default_rng(seed)
    row = (rng.normal(size=VOCAB) * scale).astype(np.float32)
    draws = 256  # one logits row repeated: each row of the batch is an independent draw
    ids = np.asarray(
        sample_logits(jax.random.key(seed), np.tile(row, (draws, 1)), temperature, top_k, top_p)
    )
    assert ids.dtype == np.int32 and ((ids >= 0) & (ids < VOCAB)).all()

    order = np.argsort(-row, kind="stable")
    allowed = order if top_k is None else order[:top_k]
    if top_p is not None:
        probs = _softmax(row[allowed].astype(np.float64) / temperature)
        mass_above = np.cumsum(probs) - probs
        allowed = allowed[mass_above < top_p + 1e-5]  # float32 slack at the boundary
    assert set(ids.tolist()) <= set(allowed.tolist())


def test_filtered_samples_follow_the_renormalised_distribution():
    row = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -1.0], np.float32)
    draws = 20_000
    ids = np.asarray(
        sample_logits(
            jax.random.key(0), np.tile(row, (draws, 1)), temperature=0.7, top_k=4, top_p=0.9
        )
    )
    probs = _softmax(row[:4] / 0.7)  # top-4, then the nucleus of mass >= 0.9
    keep = (np.cumsum(probs) - probs) < 0.9
    expected = np.zeros(len(row))
    expected[:4] = np.where(keep, probs, 0) / probs[keep].sum()
    frequencies = np.bincount(ids, minlength=len(row)) / draws
    np.testing.assert_allclose(frequencies, expected, atol=0.015)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "prompts, kwargs, message",
    [
        (
            [[1] * 60],
            {"max_new_tokens": 10},
            r"longest prompt \(60 tokens\).*max_new_tokens \(10\).*block_size=64",
        ),
        ([[1, 37]], {}, r"token id 37 is outside the vocabulary \[0, 37\)"),
        ([[1, -1]], {}, r"token id -1"),
        ([], {}, r"no prompts"),
        ([[1], []], {}, r"prompt 1 is empty"),
        ([[1.5, 2.0]], {}, r"integer token ids"),
        ("hello", {}, r"list of token-id sequences"),
        ([[1]], {"max_new_tokens": 0}, r"max_new_tokens must be a positive int"),
        ([[1]], {"greedy": False, "temperature": 0.0}, r"temperature must be > 0"),
        ([[1]], {"greedy": False, "temperature": -1.0}, r"temperature must be > 0"),
        ([[1]], {"greedy": False, "top_k": 0}, r"top_k must be a positive int"),
        ([[1]], {"greedy": False, "top_k": 2.5}, r"top_k must be a positive int"),
        ([[1]], {"greedy": False, "top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ([[1]], {"greedy": False, "top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ([[1]], {"greedy": False, "key": None}, r"sampling needs a PRNG key"),
        ([[1]], {"stop_token": 37}, r"stop_token 37 is outside the vocabulary"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(prompts, kwargs, message):
    model, params = model_and_params("learned")
    kwargs = {"max_new_tokens": 4, "greedy": True, "key": jax.random.key(0), **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, params, prompts, **kwargs)


def test_sample_logits_rejects_bad_settings():
    logits = jnp.zeros((2, VOCAB))
    for bad in ({"temperature": 0.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.01}):
        with pytest.raises(ValueError):
            sample_logits(jax.random.key(0), logits, **bad)


def test_generation_past_the_context_slides_a_window():
    """Past ``block_size`` every chunk of new tokens is the greedy continuation of the newest
    tokens that fit, and a request that fits is exactly :func:`generate`."""
    model, params = model_and_params("learned")
    prompt = PROMPTS[0]
    short = generate_long(model, params, [prompt], max_new_tokens=NEW, greedy=True)[0]
    assert short == list(np.asarray(greedy_tokens()[0]))
    total = BLOCK + 40
    new = generate_long(model, params, [prompt], max_new_tokens=total, greedy=True)[0]
    assert len(new) == total
    chunk = BLOCK // 2
    sequence = list(prompt) + new
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        window = sequence[: len(prompt) + start][-(BLOCK - n) :]
        expected = generate(model, params, [window], max_new_tokens=n, greedy=True).to_lists()[0]
        assert new[start : start + n] == expected
