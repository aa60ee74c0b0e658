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
    ATTENTION_IMPLEMENTATIONS,
    KVCache,
    MultiHeadAttention,
    cached_attention,
    dot_product_attention,
)
from jaxllm.nn.blocked_attention import (
    MAX_QUERY_BLOCKS,
    MIN_QUERY_BLOCK,
    _query_block_bounds,
    blocked_dot_product_attention,
)
from jaxllm.nn.dense import Dense
from jaxllm.nn.masks import padding_mask

ATTEND = {"jax": dot_product_attention, "cpu_blocked": blocked_dot_product_attention}


@settings(max_examples=8, deadline=None)
@given(
    batch=st.integers(1, 3),
    seq=st.integers(1, 5),
    features=st.integers(1, 9),
    bias=st.booleans(),
    layout=st.sampled_from(["in_out", "out_in"]),
)
@example(batch=2, seq=3, features=2, bias=True, layout="out_in")  # narrowing, stored [out, in]
@example(batch=2, seq=3, features=9, bias=False, layout="in_out")
def test_flattened_dense_equals_flax_dense(batch, seq, features, bias, layout):
    """Same values and gradients as ``flax.linen.Dense``; the parameter is always ``kernel``,
    flax's ``[in, out]`` matrix or, ``"out_in"``, its transpose (initialised to it)."""
    x = jax.random.normal(jax.random.key(0), (batch, seq, 6))
    ours = Dense(features, use_bias=bias, kernel_layout=layout)
    ref = nn.Dense(features, use_bias=bias)
    ref_params = ref.init(jax.random.key(1), x)["params"]
    if bias:
        ref_params = {**ref_params, "bias": jax.random.normal(jax.random.key(2), (features,))}
    to_ours = (lambda p: {**p, "kernel": p["kernel"].T}) if layout == "out_in" else (lambda p: p)
    params = to_ours(ref_params)
    initial = ours.init(jax.random.key(1), x)["params"]
    chex.assert_trees_all_close(initial, to_ours(ref.init(jax.random.key(1), x)["params"]))
    assert sorted(initial) == (["bias", "kernel"] if bias else ["kernel"])

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply({"params": p}, x)))

    chex.assert_trees_all_close(
        ours.apply({"params": params}, x),
        ref.apply({"params": ref_params}, x),
        atol=1e-5,
        rtol=1e-5,
    )
    ours_grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
    ref_grads = jax.grad(loss(ref), argnums=(0, 1))(ref_params, x)
    chex.assert_trees_all_close(
        ours_grads, (to_ours(ref_grads[0]), ref_grads[1]), atol=1e-5, rtol=1e-5
    )
    assert np.asarray(ours.apply({"params": params}, x)).shape == (batch, seq, features)


def test_dense_rejects_an_unknown_layout():
    with pytest.raises(ValueError, match=r"kernel_layout must be one of \['in_out', 'out_in'\]"):
        Dense(3, kernel_layout="columns").init(jax.random.key(0), jnp.ones((1, 2)))


# --------------------------------------------------------------------------- attention


def numpy_attention(q, k, v, mask=None, *, causal=False, keep=None, dropout_rate=0.0):
    """softmax(q kᵀ / sqrt(d)) v in float64, over the keys ``mask`` (and ``causal``) allow; a
    query with no allowed key gets NaN (implementations only promise a finite value there).
    ``keep``: bool[batch, heads, q_len, k_len], the weights dropout keeps."""
    q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    allowed = np.ones(scores.shape, bool)
    if mask is not None:
        allowed &= np.broadcast_to(np.asarray(mask, bool), scores.shape)
    if causal:
        allowed &= np.tril(np.ones(scores.shape[-2:], bool))
    exp = np.where(allowed, np.exp(scores - scores.max(axis=-1, keepdims=True)), 0.0)
    with np.errstate(invalid="ignore"):
        weights = exp / exp.sum(axis=-1, keepdims=True)  # 0 / 0 = NaN on fully masked queries
    if keep is not None:
        weights = np.where(np.asarray(keep), weights / (1.0 - dropout_rate), 0.0)
    return np.einsum("bhqk,bkhd->bqhd", weights, v)


def assert_matches_reference(ours, expected, atol=1e-5):
    """``ours`` equals ``expected`` wherever the reference is defined and is finite everywhere."""
    ours = np.asarray(ours)
    defined = np.isfinite(expected)
    assert np.all(np.isfinite(ours)), "a fully masked query must get a finite output, never NaN"
    np.testing.assert_allclose(
        np.where(defined, ours, 0.0), np.where(defined, expected, 0.0), atol=atol, rtol=1e-5
    )


def random_qkv(batch, q_len, k_len, heads, dim, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    q = jax.random.normal(keys[0], (batch, q_len, heads, dim))
    k, v = (jax.random.normal(key, (batch, k_len, heads, dim)) for key in keys[1:])
    return q, k, v


@settings(max_examples=12, deadline=None)
@given(
    implementation=st.sampled_from(ATTENTION_IMPLEMENTATIONS),
    batch=st.integers(1, 3),
    q_len=st.integers(1, 5),
    k_len=st.integers(1, 5),
    heads=st.integers(1, 2),
    causal=st.booleans(),
    mask_kind=st.sampled_from(["none", "padding", "full"]),
    seed=st.integers(0, 2**16),
)
@example(
    implementation="jax",
    batch=2,
    q_len=3,
    k_len=3,
    heads=2,
    causal=True,
    mask_kind="padding",
    seed=1,
)
@example(
    implementation="cpu_blocked",
    batch=2,
    q_len=3,
    k_len=3,
    heads=2,
    causal=True,
    mask_kind="padding",
    seed=1,
)
def test_attention_equals_a_numpy_reference(
    implementation, batch, q_len, k_len, heads, causal, mask_kind, seed
):
    """Both implementations, jitted or not, against float64 numpy: no mask, per-row key padding
    (some rows fully padded) or an arbitrary [batch, heads, q_len, k_len] mask; causal or not."""
    k_len = q_len if causal else k_len
    q, k, v = random_qkv(batch, q_len, k_len, heads, 4, seed)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, k_len + 1, (batch, 1))  # 0: a fully padded row
    mask = {
        "none": None,
        "padding": padding_mask(np.arange(k_len)[None, :] < lengths),
        "full": jnp.asarray(rng.random((batch, heads, q_len, k_len)) < 0.6),
    }[mask_kind]
    expected = numpy_attention(q, k, v, mask, causal=causal)
    attend = ATTEND[implementation]
    assert_matches_reference(attend(q, k, v, mask, causal=causal), expected)
    jitted = jax.jit(attend, static_argnames=("causal",))
    assert_matches_reference(jitted(q, k, v, mask, causal=causal), expected)


@pytest.mark.parametrize("implementation", ATTENTION_IMPLEMENTATIONS)
def test_a_fully_masked_query_gets_uniform_weights(implementation):
    """The documented contract for padding rows: uniform weights (the mean value), never NaN."""
    q, k, v = random_qkv(2, 3, 5, 2, 4)
    mask = padding_mask(jnp.array([[True] * 5, [False] * 5]))
    out = ATTEND[implementation](q, k, v, mask)
    uniform = np.broadcast_to(np.mean(v[1], axis=0), out[1].shape)  # (T, H, D): mean over keys
    np.testing.assert_allclose(out[1], uniform, atol=1e-6)
    np.testing.assert_allclose(out[0], numpy_attention(q, k, v, mask)[0], atol=1e-5)


@pytest.mark.parametrize("seq", [64, 127, 128, 200, 259])
def test_blocked_causal_attention_equals_the_reference_across_query_blocks(seq):
    """Skipping the blocks above the diagonal changes nothing on real (non-padding) queries,
    including lengths that do not split evenly; gradients equal the portable implementation's."""
    batch, heads, dim = 2, 2, 8
    q, k, v = random_qkv(batch, seq, seq, heads, dim)
    valid = jnp.arange(seq)[None, :] < jnp.array([seq, seq // 2 + 1])[:, None]  # right padding
    mask = padding_mask(valid)
    bounds = _query_block_bounds(seq)
    assert bounds[0] == 0 and bounds[-1] == seq
    assert len(bounds) - 1 == min(MAX_QUERY_BLOCKS, max(1, seq // MIN_QUERY_BLOCK))

    blocked = jax.jit(lambda q, k, v: blocked_dot_product_attention(q, k, v, mask, causal=True))
    assert_matches_reference(blocked(q, k, v), numpy_attention(q, k, v, mask, causal=True))

    keep = valid[:, :, None, None]

    def loss(attend):
        def real_queries_loss(q, k, v):
            return jnp.sum(jnp.where(keep, jnp.sin(attend(q, k, v, mask, causal=True)), 0.0))

        return real_queries_loss

    blocked_grads = jax.jit(jax.grad(loss(blocked_dot_product_attention), argnums=(0, 1, 2)))(
        q, k, v
    )
    portable_grads = jax.grad(loss(dot_product_attention), argnums=(0, 1, 2))(q, k, v)
    chex.assert_trees_all_close(blocked_grads, portable_grads, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("row_groups", [2, 3])
def test_row_groups_change_nothing(row_groups):
    """Computing the long query blocks as groups of batch rows gives the values and gradients of
    one group, with a per-row padding mask and with dropout drawn from the same key."""
    batch, seq, heads, dim = 5, 192, 2, 8  # three blocks of 64: the last two are split
    q, k, v = random_qkv(batch, seq, seq, heads, dim)
    valid = jnp.arange(seq)[None, :] < jnp.array([seq, 150, 100, seq, 70])[:, None]
    keep = valid[:, :, None, None]

    def loss(groups, dropout):
        def attend(q, k, v):
            out = blocked_dot_product_attention(
                q,
                k,
                v,
                padding_mask(valid),
                causal=True,
                dropout_rate=0.25,
                dropout_rng=jax.random.key(9),
                deterministic=not dropout,
                row_groups=groups,
            )
            return jnp.sum(jnp.where(keep, jnp.sin(out), 0.0)), out

        return attend

    value_and_grads = lambda groups: jax.value_and_grad(  # noqa: E731
        loss(groups, True), argnums=(0, 1, 2), has_aux=True
    )
    (_, grouped), grouped_grads = jax.jit(value_and_grads(row_groups))(q, k, v)
    (_, whole), whole_grads = value_and_grads(1)(q, k, v)
    chex.assert_trees_all_close(
        jnp.where(keep, grouped, 0), jnp.where(keep, whole, 0), atol=1e-6, rtol=1e-6
    )
    chex.assert_trees_all_close(grouped_grads, whole_grads, atol=1e-6, rtol=1e-6)
    _, without_dropout = jax.jit(loss(row_groups, False))(q, k, v)
    assert_matches_reference(
        without_dropout, numpy_attention(q, k, v, padding_mask(valid), causal=True)
    )


def test_row_groups_must_be_positive():
    q = jnp.zeros((2, 64, 1, 4))
    with pytest.raises(ValueError, match="row_groups must be >= 1"):
        blocked_dot_product_attention(q, q, q, causal=True, row_groups=0)


@pytest.mark.parametrize("implementation", ATTENTION_IMPLEMENTATIONS)
@pytest.mark.parametrize("causal", [False, True])
def test_dropout_is_a_function_of_the_key(implementation, causal):
    """Same key, same output (jit or not); another key, another output; ``deterministic`` or a
    zero rate: no dropout, whatever the key."""
    q, k, v = random_qkv(2, 5, 5, 2, 4)
    mask = padding_mask(jnp.array([[True] * 5, [True, True, True, False, False]]))

    def attend(key, deterministic=False, rate=0.5):
        return ATTEND[implementation](
            q,
            k,
            v,
            mask,
            causal=causal,
            dropout_rate=rate,
            dropout_rng=key,
            deterministic=deterministic,
        )

    first = attend(jax.random.key(1))
    chex.assert_trees_all_equal(first, attend(jax.random.key(1)))
    chex.assert_trees_all_close(first, jax.jit(attend)(jax.random.key(1)), atol=1e-6)
    assert not np.allclose(first, attend(jax.random.key(2)))
    expected = numpy_attention(q, k, v, mask, causal=causal)
    assert_matches_reference(attend(jax.random.key(1), deterministic=True), expected)
    assert_matches_reference(attend(jax.random.key(1), rate=0.0), expected)


def test_portable_dropout_equals_the_reference_with_its_documented_draw():
    """``keep = bernoulli(dropout_rng, 1 - rate, [batch, heads, q_len, k_len])``, kept weights
    scaled by ``1 / (1 - rate)``, as the docstring says."""
    q, k, v = random_qkv(2, 4, 4, 2, 4)
    key, rate = jax.random.key(3), 0.3
    keep = jax.random.bernoulli(key, 1.0 - rate, (2, 2, 4, 4))
    ours = dot_product_attention(
        q, k, v, causal=True, dropout_rate=rate, dropout_rng=key, deterministic=False
    )
    assert_matches_reference(
        ours, numpy_attention(q, k, v, causal=True, keep=keep, dropout_rate=rate)
    )


@pytest.mark.parametrize("implementation", ATTENTION_IMPLEMENTATIONS)
def test_causal_attention_future_keys_never_matter(implementation):
    """Changing keys and values after position t leaves every output up to t unchanged."""
    seq, t = 192, 70
    q, k, v = random_qkv(1, seq, seq, 2, 8)
    k2 = k.at[:, t + 1 :].set(jax.random.normal(jax.random.key(7), (1, seq - t - 1, 2, 8)))
    v2 = v.at[:, t + 1 :].multiply(-3.0)
    attend = jax.jit(lambda q, k, v: ATTEND[implementation](q, k, v, causal=True))
    chex.assert_trees_all_close(attend(q, k, v)[:, : t + 1], attend(q, k2, v2)[:, : t + 1])


@pytest.mark.parametrize("implementation", ATTENTION_IMPLEMENTATIONS)
def test_causal_attention_rejects_unequal_lengths(implementation):
    q = jnp.zeros((1, 4, 1, 2))
    with pytest.raises(ValueError, match="as many queries as keys"):
        ATTEND[implementation](q, jnp.zeros((1, 6, 1, 2)), jnp.zeros((1, 6, 1, 2)), causal=True)


def _as_cache(k: jax.Array, v: jax.Array) -> KVCache:
    """float[batch, len, heads, dim] keys/values -> the cache's [batch · heads, len, dim] rows."""
    rows = lambda t: t.swapaxes(1, 2).reshape(-1, t.shape[1], t.shape[3])  # noqa: E731
    return KVCache(keys=rows(k), values=rows(v))


@settings(max_examples=10, deadline=None)
@given(
    batch=st.integers(1, 3),
    heads=st.integers(1, 3),
    q_len=st.integers(1, 4),
    max_len=st.integers(4, 9),
    dropout=st.booleans(),
)
@example(batch=1, heads=4, q_len=1, max_len=9, dropout=False)  # one decoding step at batch 1
def test_cached_attention_equals_the_reference(batch, heads, q_len, max_len, dropout):
    """Attention over the cache's rows is attention over the same keys and values, with a
    per-row mask and with dropout drawn as :func:`dot_product_attention` draws it; jit or not."""
    dim, rate, key = 4, 0.3, jax.random.key(5)
    q = jax.random.normal(jax.random.key(0), (batch, q_len, heads, dim))
    k, v = (jax.random.normal(jax.random.key(i), (batch, max_len, heads, dim)) for i in (1, 2))
    filled = jnp.arange(max_len)[None, :] < jnp.arange(max_len - batch + 1, max_len + 1)[:, None]
    mask = padding_mask(filled)  # (B, 1, 1, S): each row has filled a different number of slots
    keep = None
    if dropout:
        keep = jax.random.bernoulli(key, 1.0 - rate, (batch, heads, q_len, max_len))
    expected = numpy_attention(q, k, v, mask, keep=keep, dropout_rate=rate)
    settings_ = dict(
        dropout_rate=rate if dropout else 0.0, dropout_rng=key, deterministic=not dropout
    )
    jitted = jax.jit(cached_attention, static_argnames=("dropout_rate", "deterministic"))
    for attend in (cached_attention, jitted):
        ours = attend(q, _as_cache(k, v), mask, **settings_)
        chex.assert_shape(ours, (batch, q_len, heads, dim))
        assert_matches_reference(ours, expected)


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


def test_attention_layer_implementations_agree_and_unknown_ones_are_rejected():
    """The layer's output is the same whichever implementation computes it, self-attention
    (causal, padded) and cross-attention alike."""
    x = jax.random.normal(jax.random.key(0), (3, 6, 8))
    context = jax.random.normal(jax.random.key(1), (3, 4, 8))
    mask = padding_mask(jnp.arange(6)[None, :] < jnp.array([[6], [4], [2]]))
    real = np.asarray(mask)[:, 0, 0, :, None, None].squeeze(-1)  # (B, T, 1): the unpadded queries
    portable = MultiHeadAttention(num_heads=2, rotary=True)
    blocked = MultiHeadAttention(
        num_heads=2, rotary=True, implementation="cpu_blocked", row_groups=2
    )
    cases = [((x,), dict(mask=mask, causal=True), real), ((x, context), {}, True)]
    for args, inputs, where in cases:
        params = portable.init(jax.random.key(2), *args, **inputs)
        ours = jax.jit(lambda p, a=args, i=inputs: blocked.apply(p, *a, **i))(params)[0]
        theirs = portable.apply(params, *args, **inputs)[0]
        np.testing.assert_allclose(np.where(where, ours, 0), np.where(where, theirs, 0), atol=1e-5)
    with pytest.raises(
        ValueError,
        match=r"unknown attention implementation 'flash'; choose one of "
        r"\['jax', 'cpu_blocked'\]",
    ):
        MultiHeadAttention(num_heads=2, implementation="flash").init(jax.random.key(0), x)
    with pytest.raises(
        ValueError, match="row_groups=2 applies to implementation='cpu_blocked' only"
    ):
        MultiHeadAttention(num_heads=2, row_groups=2).init(jax.random.key(0), x)


@pytest.mark.parametrize("norm_position", ["pre", "post"])
@pytest.mark.parametrize("queries", [1, 3])
def test_a_block_of_its_first_queries_equals_the_whole_blocks_first_rows(norm_position, queries):
    """``queries=n`` computes the first n positions (attending to all, padding masked) as the
    whole block does: what BERT's last layer needs for its [CLS] summary."""
    from jaxllm.nn import TransformerBlock

    x = jax.random.normal(jax.random.key(0), (3, 7, 16))
    mask = padding_mask(jnp.arange(7)[None, :] < jnp.array([[7], [4], [5]]))
    block = TransformerBlock(2, norm_position=norm_position, mlp_activation="gelu")
    params = block.init(jax.random.key(1), x, mask=mask)
    whole, _ = block.apply(params, x, mask=mask)
    first, _ = block.apply(params, x, mask=mask, queries=queries)
    assert first.shape == (3, queries, 16)
    chex.assert_trees_all_close(first, whole[:, :queries], atol=1e-6)
    per_query = mask & jnp.tril(jnp.ones((7, 7), bool))  # a mask with one row per query
    whole, _ = block.apply(params, x, mask=per_query)
    first, _ = block.apply(params, x, mask=per_query, queries=queries)
    chex.assert_trees_all_close(first, whole[:, :queries], atol=1e-6)
    with pytest.raises(ValueError, match=r"queries must be in \[1, 7\]"):
        block.apply(params, x, mask=mask, queries=8)
    with pytest.raises(ValueError, match="plain self-attention only"):
        block.apply(params, x, causal=True, queries=1)
