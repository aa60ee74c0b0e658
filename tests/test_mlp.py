"""The MLP written as its equations: hand-written back-propagation against ``jax.grad``."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.config import ConfigError
from jaxllm.models.mlp import (
    ACTIVATIONS,
    MLP_LOSSES,
    MLPConfig,
    init_mlp,
    mlp_apply,
    mlp_gradient_descent,
    mlp_gradients,
    mlp_loss,
)


def random_batch(config: MLPConfig, n: int, seed: int) -> dict:
    """``n`` examples: standard-normal inputs, targets for ``config.loss``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, config.sizes[0]))
    if config.loss == "mse":
        y = rng.normal(size=(n, config.sizes[-1]))
    else:
        y = rng.integers(0, config.sizes[-1], size=n)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y)}


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    activation=st.sampled_from(ACTIVATIONS),
    loss=st.sampled_from(MLP_LOSSES),
    n=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_hand_written_gradients_equal_jax_grad(sizes, activation, loss, n, seed):
    with jax.enable_x64(True):
        config = MLPConfig(sizes=tuple(sizes), activation=activation, loss=loss)
        params = init_mlp(config, jax.random.key(seed), jnp.float64)
        batch = random_batch(config, n, seed)
        # One compiled program per example (op-by-op dispatch is slower for this many shapes).
        both = jax.jit(
            lambda p, b: (mlp_gradients(p, b, config), jax.value_and_grad(mlp_loss)(p, b, config))
        )
        (loss_value, grads), (expected_loss, expected) = both(params, batch)
        assert loss_value.dtype == jnp.float64
        np.testing.assert_allclose(loss_value, expected_loss, rtol=1e-12)
        chex.assert_trees_all_close(grads, expected, rtol=1e-9, atol=1e-12)


def test_gradients_are_those_of_a_hand_computed_two_layer_network():
    """One hidden tanh unit, one output, one example: every partial derivative by hand."""
    with jax.enable_x64(True):
        params = (
            {"W": jnp.array([[0.5, -1.0]]), "b": jnp.array([0.1])},
            {"W": jnp.array([[2.0]]), "b": jnp.array([-0.3])},
        )
        x, y = np.array([1.0, 2.0]), 0.7
        batch = {"x": jnp.asarray(x[None]), "y": jnp.array([[y]])}
        z1 = 0.5 * x[0] - 1.0 * x[1] + 0.1
        a1 = np.tanh(z1)
        out = 2.0 * a1 - 0.3
        d_out = 2 * (out - y)  # ∂(out - y)² / ∂out
        d_z1 = d_out * 2.0 * (1 - a1**2)
        loss, grads = mlp_gradients(params, batch, MLPConfig(sizes=(2, 1, 1), activation="tanh"))
        np.testing.assert_allclose(loss, (out - y) ** 2, rtol=1e-12)
        np.testing.assert_allclose(grads[1]["W"], [[d_out * a1]], rtol=1e-12)
        np.testing.assert_allclose(grads[1]["b"], [d_out], rtol=1e-12)
        np.testing.assert_allclose(grads[0]["W"], [d_z1 * x], rtol=1e-12)
        np.testing.assert_allclose(grads[0]["b"], [d_z1], rtol=1e-12)


@pytest.mark.parametrize("loss", MLP_LOSSES)
def test_gradient_descent_by_hand_equals_optax_sgd(loss):
    with jax.enable_x64(True):
        config = MLPConfig(sizes=(4, 6, 5, 3), activation="sigmoid", loss=loss)
        params = init_mlp(config, jax.random.key(0), jnp.float64)
        batches = [random_batch(config, 8, seed) for seed in range(5)]
        ours, losses = mlp_gradient_descent(
            params, batches.__getitem__, config, learning_rate=0.3, steps=5
        )
        optimizer = optax.sgd(0.3)
        theirs, state = params, optimizer.init(params)
        for batch in batches:
            grads = jax.grad(mlp_loss)(theirs, batch, config)
            updates, state = optimizer.update(grads, state, theirs)
            theirs = optax.apply_updates(theirs, updates)
        chex.assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-12)
        assert losses[0] == pytest.approx(float(mlp_loss(params, batches[0], config)), rel=1e-12)


def test_gradient_descent_fits_a_nonlinear_function():
    """A tanh network learns y = sin(3x), which no line fits, to within 5% of its variance."""
    config = MLPConfig(sizes=(1, 32, 1), activation="tanh")
    x = jnp.linspace(-1.0, 1.0, 64)[:, None]
    batch = {"x": x, "y": jnp.sin(3.0 * x)}
    params, losses = mlp_gradient_descent(
        init_mlp(config, jax.random.key(0)), lambda _: batch, config, learning_rate=0.1, steps=500
    )
    variance = float(jnp.var(batch["y"]))
    assert losses[0] > 0.5 * variance and losses[-1] < 0.05 * variance, (losses[0], losses[-1])
    assert mlp_apply(params, x, "tanh").shape == (64, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sizes": (3,)}, "two or more positive widths"),
        ({"sizes": (3, 0, 1)}, "two or more positive widths"),
        ({"activation": "gelu"}, "activation must be one of"),
        ({"loss": "hinge"}, "loss must be one of"),
    ],
)
def test_bad_configs_name_the_problem(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MLPConfig(**kwargs)


def test_targets_of_the_wrong_shape_are_refused():
    config = MLPConfig(sizes=(3, 1))
    params = init_mlp(config, jax.random.key(0))
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match=r"shape \(4, 1\)"):
        mlp_gradients(params, {"x": x, "y": jnp.ones(4)}, config)
    ce = MLPConfig(sizes=(3, 2), loss="cross_entropy")
    with pytest.raises(ValueError, match="int class ids"):
        mlp_loss(init_mlp(ce, jax.random.key(0)), {"x": x, "y": jnp.ones(4)}, ce)
