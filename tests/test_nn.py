"""Layers against their straightforward references: same parameters, values and gradients."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jaxllm.nn.attention import (
    MAX_QUERY_BLOCKS,
    MIN_QUERY_BLOCK,
    KVCache,
    MultiHeadAttention,
    _query_block_bounds,
    cached_attention,
    dot_product_attention,
)
from jaxllm.nn.dense import Dense
from jaxllm.nn.masks import causal_mask, combine_masks, padding_mask


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 3), seq=st.integers(1, 5), features=st.integers(1, 9), bias=st.booleans())
@example(batch=2, seq=3, features=2, bias=True)  # narrowing
@example(batch=2, seq=3, features=9, bias=False)  # widening
def test_flattened_dense_equals_flax_dense(batch, seq, features, bias):
    """Same values and gradients as ``flax.linen.Dense``; a narrowing layer (features < 6 inputs
    here) holds the transpose of flax's kernel, initialised to it."""
    x = jax.random.normal(jax.random.key(0), (batch, seq, 6))
    ours, ref = Dense(features, use_bias=bias), nn.Dense(features, use_bias=bias)
    ref_params = ref.init(jax.random.key(1), x)["params"]
    if bias:
        ref_params = {**ref_params, "bias": jax.random.normal(jax.random.key(2), (features,))}
    narrowing = features < 6
    to_ours = (lambda p: {**{k: v for k, v in p.items() if k != "kernel"}, "weight": p["kernel"].T}) \
        if narrowing else (lambda p: p)
    params = to_ours(ref_params)
    initial = ours.init(jax.random.key(1), x)["params"]
    chex.assert_trees_all_close(initial, to_ours(ref.init(jax.random.key(1), x)["params"]))
    assert ("weight" in initial) == narrowing and ("kernel" in initial) != narrowing

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply({"params": p}, x)))

    chex.assert_trees_all_close(ours.apply({"params": params}, x), ref.apply({"params": ref_params}, x),
                                atol=1e-5, rtol=1e-5)
    ours_grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
    ref_grads = jax.grad(loss(ref), argnums=(0, 1))(ref_params, x)
    chex.assert_trees_all_close(ours_grads, (to_ours(ref_grads[0]), ref_grads[1]), atol=1e-5, rtol=1e-5)
    assert np.asarray(ours.apply({"params": params}, x)).shape == (batch, seq, features)


def _dense_causal_reference(q, k, v, mask):
    """Straightforward attention: the full score matrix with the causal mask applied."""
    return dot_product_attention(q, k, v, combine_masks(causal_mask(q.shape[1]), mask))


@pytest.mark.parametrize("seq", [40, 64, 127, 128, 200, 259])
def test_blocked_causal_attention_equals_masked_full_attention(seq):
    """Skipping the blocks above the diagonal changes nothing on real (non-padding) queries,
    for values and for gradients, including lengths that do not split evenly."""
    batch, heads, dim = 2, 2, 8
    q, k, v = (jax.random.normal(jax.random.key(i), (batch, seq, heads, dim)) for i in range(3))
    lengths = jnp.array([seq, seq // 2 + 1])
    valid = jnp.arange(seq)[None, :] < lengths[:, None]  # right padding on the second row
    mask = padding_mask(valid)
    bounds = _query_block_bounds(seq)
    assert bounds[0] == 0 and bounds[-1] == seq
    assert len(bounds) - 1 == min(MAX_QUERY_BLOCKS, max(1, seq // MIN_QUERY_BLOCK))

    ours = jax.jit(lambda q, k, v: dot_product_attention(q, k, v, mask, causal=True))(q, k, v)
    ref = _dense_causal_reference(q, k, v, mask)
    chex.assert_shape(ours, (batch, seq, heads, dim))
    keep = valid[:, :, None, None]
    chex.assert_trees_all_close(jnp.where(keep, ours, 0), jnp.where(keep, ref, 0), atol=1e-5, rtol=1e-5)

    def loss(attend):
        return lambda q, k, v: jnp.sum(jnp.where(keep, jnp.sin(attend(q, k, v)), 0.0))

    ours_grads = jax.grad(loss(lambda q, k, v: dot_product_attention(q, k, v, mask, causal=True)),
                          argnums=(0, 1, 2))(q, k, v)
    ref_grads = jax.grad(loss(lambda q, k, v: _dense_causal_reference(q, k, v, mask)),
                         argnums=(0, 1, 2))(q, k, v)
    chex.assert_trees_all_close(ours_grads, ref_grads, atol=1e-5, rtol=1e-5)
    assert bool(jnp.all(jnp.isfinite(ours)))  # padding queries get finite (meaningless) values


@pytest.mark.parametrize("row_groups", [2, 3])
def test_row_groups_change_nothing(row_groups):
    """Computing the long query blocks as groups of batch rows gives the same values and
    gradients, with a per-row padding mask and with dropout drawn from the same key."""
    batch, seq, heads, dim = 5, 192, 2, 8  # three blocks of 64: the last two are split
    q, k, v = (jax.random.normal(jax.random.key(i), (batch, seq, heads, dim)) for i in range(3))
    valid = jnp.arange(seq)[None, :] < jnp.array([seq, 150, 100, seq, 70])[:, None]
    keep = valid[:, :, None, None]

    def loss(groups):
        def attend(q, k, v):
            out = dot_product_attention(q, k, v, padding_mask(valid), causal=True, dropout_rate=0.25,
                                        dropout_rng=jax.random.key(9), deterministic=False,
                                        row_groups=groups)
            return jnp.sum(jnp.where(keep, jnp.sin(out), 0.0)), out
        return attend

    (_, grouped), grouped_grads = jax.jit(jax.value_and_grad(loss(row_groups), argnums=(0, 1, 2),
                                                             has_aux=True))(q, k, v)
    (_, whole), whole_grads = jax.value_and_grad(loss(1), argnums=(0, 1, 2), has_aux=True)(q, k, v)
    chex.assert_trees_all_close(jnp.where(keep, grouped, 0), jnp.where(keep, whole, 0),
                                atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(grouped_grads, whole_grads, atol=1e-6, rtol=1e-6)


def test_row_groups_must_be_positive():
    q = jnp.zeros((2, 64, 1, 4))
    with pytest.raises(ValueError, match="row_groups must be >= 1"):
        dot_product_attention(q, q, q, causal=True, row_groups=0)


def test_causal_attention_future_keys_never_matter():
    """Changing keys and values after position t leaves every output up to t unchanged."""
    seq, t = 192, 70
    q, k, v = (jax.random.normal(jax.random.key(i), (1, seq, 2, 8)) for i in range(3))
    k2 = k.at[:, t + 1:].set(jax.random.normal(jax.random.key(7), (1, seq - t - 1, 2, 8)))
    v2 = v.at[:, t + 1:].multiply(-3.0)
    attend = jax.jit(lambda q, k, v: dot_product_attention(q, k, v, causal=True))
    chex.assert_trees_all_close(attend(q, k, v)[:, :t + 1], attend(q, k2, v2)[:, :t + 1])


def test_causal_attention_rejects_unequal_lengths():
    q = jnp.zeros((1, 4, 1, 2))
    with pytest.raises(ValueError, match="as many queries as keys"):
        dot_product_attention(q, jnp.zeros((1, 6, 1, 2)), jnp.zeros((1, 6, 1, 2)), causal=True)


def _as_cache(k: jax.Array, v: jax.Array) -> KVCache:
    """float[batch, len, heads, dim] keys/values -> the cache's [batch · heads, len, dim] rows."""
    rows = lambda t: t.swapaxes(1, 2).reshape(-1, t.shape[1], t.shape[3])  # noqa: E731
    return KVCache(keys=rows(k), values=rows(v))


@settings(max_examples=10, deadline=None)
@given(batch=st.integers(1, 3), heads=st.integers(1, 3), q_len=st.integers(1, 4),
       max_len=st.integers(4, 9), dropout=st.booleans())
@example(batch=1, heads=4, q_len=1, max_len=9, dropout=False)  # one decoding step at batch 1
def test_cached_attention_equals_dot_product_attention(batch, heads, q_len, max_len, dropout):
    """Attention over the cache's rows is attention over the same keys and values, with a
    per-row mask and with dropout drawn from the same key; jit or not."""
    dim = 4
    q = jax.random.normal(jax.random.key(0), (batch, q_len, heads, dim))
    k, v = (jax.random.normal(jax.random.key(i), (batch, max_len, heads, dim)) for i in (1, 2))
    filled = jnp.arange(max_len)[None, :] < jnp.arange(max_len - batch + 1, max_len + 1)[:, None]
    mask = padding_mask(filled)  # (B, 1, 1, S): each row has filled a different number of slots
    settings_ = dict(dropout_rate=0.3 if dropout else 0.0, dropout_rng=jax.random.key(5),
                     deterministic=not dropout)
    expected = dot_product_attention(q, k, v, mask, **settings_)
    for attend in (cached_attention, jax.jit(cached_attention, static_argnames=("dropout_rate", "deterministic"))):
        ours = attend(q, _as_cache(k, v), mask, **settings_)
        chex.assert_shape(ours, (batch, q_len, heads, dim))
        chex.assert_trees_all_close(ours, expected, atol=1e-6, rtol=1e-6)


def test_cached_attention_rejects_a_cache_of_another_shape():
    q = jnp.zeros((2, 1, 3, 4))
    cache = KVCache.zeros(batch=2, max_len=5, num_heads=2, head_dim=4)  # 2 heads, not 3
    with pytest.raises(ValueError, match=r"needs \[batch · heads, max_len, head_dim\] = \[6"):
        cached_attention(q, cache)


def test_attention_with_a_cache_rejects_causal():
    layer = MultiHeadAttention(num_heads=2)
    x = jnp.zeros((1, 1, 8))
    params = layer.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="causal=True does not apply with a cache"):
        layer.apply(params, x, causal=True, cache=KVCache.zeros(1, 4, 2, 4))
