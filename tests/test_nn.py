"""Layers against their straightforward references: same parameters, values and gradients."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.nn.dense import Dense


@settings(max_examples=6, deadline=None)
@given(batch=st.integers(1, 3), seq=st.integers(1, 5), features=st.integers(1, 7), bias=st.booleans())
def test_flattened_dense_equals_flax_dense(batch, seq, features, bias):
    x = jax.random.normal(jax.random.key(0), (batch, seq, 6))
    ours, ref = Dense(features, use_bias=bias), nn.Dense(features, use_bias=bias)
    params = ref.init(jax.random.key(1), x)["params"]
    if bias:
        params = {**params, "bias": jax.random.normal(jax.random.key(2), (features,))}
    chex.assert_trees_all_equal_shapes(ours.init(jax.random.key(1), x)["params"], params)

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply({"params": p}, x)))

    chex.assert_trees_all_close(ours.apply({"params": params}, x), ref.apply({"params": params}, x),
                                atol=1e-5, rtol=1e-5)
    ours_grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
    ref_grads = jax.grad(loss(ref), argnums=(0, 1))(params, x)
    chex.assert_trees_all_close(ours_grads, ref_grads, atol=1e-5, rtol=1e-5)
    assert np.asarray(ours.apply({"params": params}, x)).shape == (batch, seq, features)
