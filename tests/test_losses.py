"""Losses against direct NumPy formulas and optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.losses import cross_entropy, masked_mean, mean_squared_error


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16), vocab=st.integers(2, 9), smoothing=st.sampled_from([0.0, 0.1, 0.3])
)
def test_cross_entropy_matches_numpy_with_mask_and_smoothing(seed, vocab, smoothing):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 5, vocab)).astype(np.float32) * 3
    targets = rng.integers(0, vocab, (3, 5))
    mask = rng.random((3, 5)) < 0.7
    mask[0, 0] = True
    q = (1 - smoothing) * np.eye(vocab)[targets] + smoothing / vocab
    per_token = -(q * np_log_softmax(logits.astype(np.float64))).sum(-1)
    expected = (per_token * mask).sum() / mask.sum()
    got = cross_entropy(logits, targets, mask, label_smoothing=smoothing)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    optax_ref = optax.softmax_cross_entropy(
        logits, optax.smooth_labels(np.eye(vocab)[targets], smoothing)
    )
    np.testing.assert_allclose(got, (optax_ref * mask).sum() / mask.sum(), rtol=1e-5)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    logits = jnp.array([[2.0, -1.0, 0.5]])
    grad = jax.grad(lambda z: cross_entropy(z, jnp.array([2])))(logits)
    np.testing.assert_allclose(
        grad, jax.nn.softmax(logits) - jnp.array([[0.0, 0.0, 1.0]]), atol=1e-6
    )


def test_fully_masked_batch_gives_zero_not_nan():
    assert (
        float(cross_entropy(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3), int), jnp.zeros((2, 3)))) == 0.0
    )
    assert float(masked_mean(jnp.ones(3), jnp.zeros(3))) == 0.0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_mse_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    mask = rng.random((4, 3)) < 0.5
    np.testing.assert_allclose(mean_squared_error(a, b), ((a - b) ** 2).mean(), rtol=1e-5)
    if mask.any():
        np.testing.assert_allclose(
            mean_squared_error(a, b, mask), ((a - b) ** 2)[mask].mean(), rtol=1e-5
        )
