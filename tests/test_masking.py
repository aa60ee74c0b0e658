"""Masked-language-model inputs: what is chosen, what it becomes, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.config import ConfigError
from jaxllm.data.masking import MaskingConfig, mask_tokens

V, MASK = 1000, 3


def batch(seed, shape=(64, 128)):
    rng = np.random.default_rng(seed)
    tokens = jnp.asarray(rng.integers(10, V, shape), jnp.int32)
    maskable = jnp.asarray(rng.random(shape) > 0.2)
    return tokens, maskable


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), step=st.integers(0, 10_000))
def test_chosen_tokens_follow_the_rates_and_skip_special_ones(seed, step):
    tokens, maskable = batch(seed)
    key = jax.random.fold_in(jax.random.key(seed), step)
    out = mask_tokens(tokens, maskable, key, mask_id=MASK, vocab_size=V)
    chosen = np.asarray(out.weights) == 1
    assert not chosen[~np.asarray(maskable)].any()  # never a special token or padding
    np.testing.assert_array_equal(out.targets, tokens)
    np.testing.assert_array_equal(np.asarray(out.inputs)[~chosen], np.asarray(tokens)[~chosen])
    counts = np.asarray(maskable).sum(axis=1)  # round(15%) of each row's maskable tokens
    np.testing.assert_array_equal(chosen.sum(axis=1), np.maximum(np.round(0.15 * counts), 1))
    positions = np.asarray(out.positions)  # every chosen position, in order, then others
    assert positions.shape == (64, MaskingConfig().max_predictions(128))
    for row, where in zip(chosen, positions, strict=True):
        np.testing.assert_array_equal(where[: row.sum()], np.flatnonzero(row))
        assert not row[where[row.sum() :]].any()
    inputs, original = np.asarray(out.inputs)[chosen], np.asarray(tokens)[chosen]
    masked, same = (inputs == MASK).mean(), (inputs == original).mean()
    assert abs(masked - 0.8) < 0.05 and abs(same - 0.1) < 0.04  # the rest random (~10%)


def test_a_pure_function_of_the_key_under_jit_too():
    tokens, maskable = batch(0, (4, 16))
    key = jax.random.fold_in(jax.random.key(7), 3)
    eager = mask_tokens(tokens, maskable, key, mask_id=MASK, vocab_size=V)
    jitted = jax.jit(lambda t, m, k: mask_tokens(t, m, k, mask_id=MASK, vocab_size=V))(
        tokens, maskable, key
    )
    jax.tree_util.tree_map(np.testing.assert_array_equal, eager, jitted)
    other = mask_tokens(
        tokens, maskable, jax.random.fold_in(jax.random.key(7), 4), mask_id=MASK, vocab_size=V
    )
    assert not np.array_equal(eager.weights, other.weights)


def test_whole_word_masking_chooses_every_piece_of_a_word_together():
    # Words of 1-3 pieces: word_ids holds each piece's word's first position.
    rng = np.random.default_rng(1)
    starts = np.cumsum(rng.integers(1, 4, 200))
    starts = np.concatenate([[0], starts[starts < 128]])
    word_ids = np.repeat(starts, np.diff(np.append(starts, 128)))[None].repeat(32, 0)
    tokens, _ = batch(1, (32, 128))
    config = MaskingConfig(whole_word=True)
    out = mask_tokens(
        tokens,
        jnp.ones_like(tokens, bool),
        jax.random.key(0),
        mask_id=MASK,
        vocab_size=V,
        config=config,
        word_ids=jnp.asarray(word_ids),
    )
    chosen = np.asarray(out.weights)
    for row in range(32):
        for start in starts:
            pieces = chosen[row][word_ids[row] == start]
            assert pieces.min() == pieces.max()  # all or none of the word
    # whole words while they fit in round(15% of 128) = 19: a word of up to 3 pieces may not
    per_row = chosen.sum(axis=1)
    assert per_row.max() <= 19 and per_row.min() >= 17, per_row


def test_bad_settings_are_clear_errors():
    tokens, maskable = batch(0, (2, 8))
    with pytest.raises(ConfigError, match="at most 1"):
        MaskingConfig(mask_fraction=0.9, random_fraction=0.2)
    with pytest.raises(ConfigError, match="rate must be in"):
        MaskingConfig(rate=0.0)
    with pytest.raises(ValueError, match="mask_id 1000 is not a token id"):
        mask_tokens(tokens, maskable, jax.random.key(0), mask_id=V, vocab_size=V)
    with pytest.raises(ValueError, match="needs word_ids"):
        mask_tokens(
            tokens,
            maskable,
            jax.random.key(0),
            mask_id=MASK,
            vocab_size=V,
            config=MaskingConfig(whole_word=True),
        )
    with pytest.raises(ValueError, match="both be"):
        mask_tokens(tokens, maskable[:, :4], jax.random.key(0), mask_id=MASK, vocab_size=V)
