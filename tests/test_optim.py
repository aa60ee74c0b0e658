"""Optimisers: update rules, weight-decay masks, schedules, clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxllm.config import ConfigError
from jaxllm.optim import OptimizerConfig, learning_rate_schedule, make_optimizer, weight_decay_mask

PARAMS = {
    "dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))},
    "ln": {"scale": jnp.ones((2,))},
    "embed": jnp.ones((4, 2)),
}


def one_update(config, grads, params=PARAMS):
    opt = make_optimizer(config)
    updates, _ = opt.update(grads, opt.init(params), params)
    return optax.apply_updates(params, updates)


def test_decay_mask_skips_norms_and_biases():
    mask = weight_decay_mask(PARAMS)
    assert mask == {"dense": {"kernel": True, "bias": False}, "ln": {"scale": False}, "embed": True}


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_weight_decay_only_on_matrices(name):
    zero_grads = jax.tree.map(jnp.zeros_like, PARAMS)
    cfg = OptimizerConfig(
        name=name, learning_rate=0.1, weight_decay=0.5, grad_clip=0.0, momentum=0.0
    )
    new = one_update(cfg, zero_grads)
    np.testing.assert_array_equal(new["dense"]["bias"], PARAMS["dense"]["bias"])
    np.testing.assert_array_equal(new["ln"]["scale"], PARAMS["ln"]["scale"])
    assert float(new["dense"]["kernel"][0, 0]) < 1.0 and float(new["embed"][0, 0]) < 1.0


def test_plain_sgd_is_gradient_descent():
    grads = jax.tree.map(lambda p: 0.5 * jnp.ones_like(p), PARAMS)
    cfg = OptimizerConfig(
        name="sgd", learning_rate=0.1, momentum=0.0, weight_decay=0.0, grad_clip=0.0
    )
    new = one_update(cfg, grads)
    jax.tree.map(lambda n, p: np.testing.assert_allclose(n, p - 0.1 * 0.5, rtol=1e-6), new, PARAMS)


def test_clipping_bounds_the_global_norm():
    grads = jax.tree.map(lambda p: 100.0 * jnp.ones_like(p), PARAMS)
    cfg = OptimizerConfig(
        name="sgd", learning_rate=1.0, momentum=0.0, weight_decay=0.0, grad_clip=1.0
    )
    new = one_update(cfg, grads)
    step = jax.tree.map(lambda n, p: p - n, new, PARAMS)
    np.testing.assert_allclose(optax.tree.norm(step), 1.0, rtol=1e-5)


def test_warmup_cosine_schedule():
    cfg = OptimizerConfig(learning_rate=1.0, warmup_steps=10, decay_steps=100, min_lr_ratio=0.1)
    lr = learning_rate_schedule(cfg)
    assert float(lr(0)) == 0.0
    np.testing.assert_allclose(lr(5), 0.5, rtol=1e-6)
    np.testing.assert_allclose(lr(10), 1.0, rtol=1e-6)
    np.testing.assert_allclose(lr(60), 0.1 + 0.9 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(lr(110), 0.1, rtol=1e-5)
    np.testing.assert_allclose(lr(10_000), 0.1, rtol=1e-5)
    assert all(float(lr(s)) >= float(lr(s + 1)) for s in range(10, 120))


@pytest.mark.parametrize(
    "kwargs",
    [{"name": "rmsprop"}, {"learning_rate": 0.0}, {"min_lr_ratio": 2.0}, {"weight_decay": -1.0}],
)
def test_bad_optimizer_config(kwargs):
    with pytest.raises(ConfigError):
        OptimizerConfig(**kwargs)


def _updated_twice(config, grads):
    opt = make_optimizer(config)
    params, state = PARAMS, opt.init(PARAMS)
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_default_sgd_and_adam_are_plain():
    # Gradients of global norm ~12: clipping at 1.0 would shrink them, momentum would make the
    # second step longer, and L2 would move the matrices more than the biases.
    grads = jax.tree.map(lambda p: 3.0 * jnp.ones_like(p), PARAMS)
    sgd = _updated_twice(OptimizerConfig(name="sgd", learning_rate=0.01), grads)
    for new, p, g in zip(
        jax.tree.leaves(sgd), jax.tree.leaves(PARAMS), jax.tree.leaves(grads), strict=True
    ):
        np.testing.assert_allclose(new, np.asarray(p) - 2 * 0.01 * np.asarray(g), rtol=1e-6)
    adam = _updated_twice(OptimizerConfig(name="adam", learning_rate=0.01), grads)
    for new, p in zip(jax.tree.leaves(adam), jax.tree.leaves(PARAMS), strict=True):
        # Adam's bias-corrected step for a constant gradient g is lr · g / (|g| + eps) = lr.
        np.testing.assert_allclose(new, np.asarray(p) - 2 * 0.01, rtol=1e-5)


def test_default_adamw_decays_matrices_by_pytorchs_default():
    grads = jax.tree.map(lambda p: 3.0 * jnp.ones_like(p), PARAMS)
    config = OptimizerConfig(name="adamw", learning_rate=0.1)
    assert config.decay == 0.01 and OptimizerConfig(name="sgd").decay == 0.0
    new = one_update(config, grads)
    # One AdamW step: p - lr · (g / (|g| + eps) + decay · p) on matrices, without decay elsewhere.
    np.testing.assert_allclose(new["dense"]["kernel"], 1.0 - 0.1 * (1.0 + 0.01 * 1.0), rtol=1e-6)
    np.testing.assert_allclose(new["dense"]["bias"], 1.0 - 0.1, rtol=1e-6)
