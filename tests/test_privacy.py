"""DP-SGD as a train-step option: per-example clipping against a loop over examples, the
noise's scale, and agreement with plain SGD where it must agree."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxllm.config import ConfigError
from jaxllm.losses import classification_loss
from jaxllm.models.classifiers import ClassifierConfig, TextClassifier, init_classifier
from jaxllm.privacy import (
    PrivacyBudgetError,
    PrivacySettings,
    poisson_indices,
    privacy_report,
    resolve_privacy,
)
from jaxllm.privacy.dp_sgd import clipped_part
from jaxllm.train import DPConfig, create_train_state, make_train_step

FEATURES, CLASSES = 5, 3


def softmax_loss(params, batch, key):
    """A linear classifier's mean cross-entropy over its batch."""
    del key
    logits = batch["x"] @ params["w"] + params["b"]
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]))
    return loss, {"loss": loss}


def problem(n: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = {
        "w": jnp.asarray(rng.normal(size=(FEATURES, CLASSES)), jnp.float32),
        "b": jnp.zeros(CLASSES),
    }
    batch = {
        "x": jnp.asarray(rng.normal(size=(n, FEATURES)) * 3, jnp.float32),
        "y": jnp.asarray(rng.integers(CLASSES, size=n)),
    }
    return params, batch


def one_step(params, batch, privacy=None, microbatches=1, learning_rate=0.1):
    optimizer = optax.sgd(learning_rate)
    state = create_train_state(params, optimizer, jax.random.key(0))
    step = make_train_step(softmax_loss, optimizer, microbatches=microbatches, privacy=privacy)
    return jax.jit(step)(state, batch)


def test_without_noise_and_with_a_clip_no_example_reaches_it_is_plain_sgd():
    params, batch = problem()
    plain, _ = one_step(params, batch)
    private, metrics = one_step(params, batch, DPConfig(clip_norm=1e6, noise_multiplier=0.0))
    chex.assert_trees_all_close(private.params, plain.params, rtol=1e-5, atol=1e-6)
    assert float(metrics["clip_fraction"]) == 0.0


def test_clipped_sum_equals_a_loop_over_examples_each_clipped_to_the_norm():
    params, batch = problem(n=6, seed=1)
    clip = 0.5
    total, sums, count = clipped_part(softmax_loss, params, clip)(batch, jax.random.key(0))
    expected = jax.tree.map(jnp.zeros_like, params)
    clipped = 0
    for i in range(6):
        example = jax.tree.map(lambda x, i=i: x[i : i + 1], batch)
        grads = jax.grad(lambda p, e=example: softmax_loss(p, e, None)[0])(params)
        norm = float(optax.tree.norm(grads))
        clipped += norm > clip
        scaled = jax.tree.map(lambda g, norm=norm: g * min(1.0, clip / norm), grads)
        assert float(optax.tree.norm(scaled)) <= clip * (1 + 1e-5)
        expected = jax.tree.map(jnp.add, expected, scaled)
    chex.assert_trees_all_close(total, expected, rtol=1e-5, atol=1e-6)
    assert float(count) == 6 and float(sums["clip_fraction"]) == clipped > 0


def test_an_embedding_tables_clipped_sum_equals_a_loop_over_examples():
    """A classifier over word embeddings: each example's table gradient is a scatter of its
    rows, the case XLA once ran pathologically slowly (see clipped_part)."""
    config = ClassifierConfig(
        "bag", vocab_size=50, num_classes=3, embed_dim=8, hidden_size=8, dropout=0.0,
        embedding_dropout=0.0,
    )  # fmt: skip
    params = init_classifier(config, jax.random.key(3))
    loss_fn = classification_loss(TextClassifier(config))
    rng = np.random.default_rng(3)
    batch = {
        "tokens": jnp.asarray(rng.integers(0, 50, (5, 7)), jnp.int32),
        "mask": jnp.asarray(np.arange(7)[None, :] < rng.integers(1, 8, (5, 1))),
        "labels": jnp.asarray(rng.integers(0, 3, 5), jnp.int32),
    }
    clip = 0.05
    total, sums, _ = jax.jit(clipped_part(loss_fn, params, clip))(batch, jax.random.key(0))
    expected = jax.tree.map(jnp.zeros_like, params)
    for i in range(5):
        example = jax.tree.map(lambda x, i=i: x[i : i + 1], batch)
        grads = jax.grad(lambda p, e=example: loss_fn(p, e, None)[0])(params)
        scale = min(1.0, clip / float(optax.tree.norm(grads)))
        expected = jax.tree.map(lambda t, g, s=scale: t + s * g, expected, grads)
    chex.assert_trees_all_close(total, expected, rtol=1e-5, atol=1e-7)
    assert float(sums["clip_fraction"]) > 0


def test_micro_batches_give_the_same_private_update():
    params, batch = problem(n=8, seed=2)
    config = DPConfig(clip_norm=0.3, noise_multiplier=1.2)
    whole, _ = one_step(params, batch, config)
    split, _ = one_step(params, batch, config, microbatches=4)
    chex.assert_trees_all_close(split.params, whole.params, rtol=1e-5, atol=1e-6)


def test_the_noise_has_standard_deviation_sigma_c_over_the_batch():
    _, batch = problem(n=16, seed=3)
    params = {"w": jnp.zeros((FEATURES, 2000)), "b": jnp.zeros(2000)}  # many coordinates
    config = DPConfig(clip_norm=0.5, noise_multiplier=2.0)
    quiet, _ = one_step(
        params, batch, DPConfig(clip_norm=0.5, noise_multiplier=0.0), learning_rate=1.0
    )
    noisy, _ = one_step(params, batch, config, learning_rate=1.0)
    noise = np.concatenate(
        [
            np.ravel(a - b)
            for a, b in zip(
                jax.tree.leaves(noisy.params), jax.tree.leaves(quiet.params), strict=True
            )
        ]
    )
    expected = config.noise_multiplier * config.clip_norm / 16
    assert abs(noise.mean()) < 4 * expected / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(
    "settings", [{"clip_norm": 0.0}, {"clip_norm": -1.0}, {"noise_multiplier": -0.5}]
)
def test_bad_settings_are_refused_with_the_reason(settings):
    with pytest.raises(ConfigError, match="clip_norm must be > 0|noise_multiplier must be >= 0"):
        DPConfig(**settings)


@pytest.mark.multidevice(2)
def test_two_devices_give_the_one_device_private_update():
    params, batch = problem(n=8, seed=4)
    config = DPConfig(clip_norm=0.4, noise_multiplier=1.5)
    one, _ = one_step(params, batch, config)
    optimizer = optax.sgd(0.1)
    state = create_train_state(params, optimizer, jax.random.key(0))
    step = make_train_step(softmax_loss, optimizer, axis_name="devices", privacy=config)
    replicated = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    shards = jax.tree.map(lambda x: x.reshape(2, 4, *x.shape[1:]), batch)
    two, _ = jax.pmap(step, axis_name="devices", devices=jax.devices()[:2])(replicated, shards)
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x[0], two.params), one.params, rtol=1e-5, atol=1e-6
    )


def test_poisson_draws_include_each_example_at_the_rate_and_pad_to_a_multiple():
    n, rate = 400, 0.05
    counts = np.zeros(n)
    for step in range(400):
        index, weights = poisson_indices(n, rate, seed=7, step=step, multiple=16)
        assert len(index) % 16 == 0 and len(index) >= 16
        real = index[weights == 1]
        assert len(set(real.tolist())) == len(real)  # no example twice in a draw
        assert np.all(weights[len(real) :] == 0)
        counts[real] += 1
    # Each example's inclusions are Binomial(400, 0.05): mean 20, sd 4.4.
    assert abs(counts.mean() - 20) < 0.5 and 3.0 < counts.std() < 6.0
    # A draw depends on (seed, step) alone: other steps and seeds draw other examples.
    draws = {(seed, step): tuple(poisson_indices(n, rate, seed=seed, step=step)[0])
             for seed in (7, 8) for step in (3, 4)}  # fmt: skip
    assert len(set(draws.values())) == 4


def test_padding_rows_of_weight_zero_change_nothing():
    params, batch = problem(n=5, seed=4)
    padded = jax.tree.map(lambda x: jnp.concatenate([x, x[:3]]), batch)
    padded["example_weights"] = jnp.asarray([1.0] * 5 + [0.0] * 3)
    part = clipped_part(softmax_loss, params, 0.4)
    total, sums, count = part(batch, jax.random.key(0))
    padded_total, padded_sums, padded_count = part(padded, jax.random.key(0))
    chex.assert_trees_all_close(padded_total, total, rtol=1e-6, atol=1e-7)
    assert float(padded_count) == float(count) == 5
    assert float(padded_sums["clip_fraction"]) == float(sums["clip_fraction"])


def test_with_an_expected_batch_size_the_update_is_divided_by_it():
    params, batch = problem(n=6, seed=5)
    batch["example_weights"] = jnp.asarray([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    config = DPConfig(clip_norm=0.5, noise_multiplier=0.0, expected_batch_size=8.0)
    state, metrics = one_step(params, batch, config, learning_rate=1.0)
    total, _, _ = clipped_part(softmax_loss, params, 0.5)(batch, jax.random.key(0))
    expected = jax.tree.map(lambda p, g: p - g / 8.0, params, total)
    chex.assert_trees_all_close(state.params, expected, rtol=1e-5, atol=1e-6)
    empty = dict(batch, example_weights=jnp.zeros(6))
    _, metrics = one_step(params, empty, config)
    assert np.isfinite(float(metrics["loss"]))  # a draw of no example is not a NaN
    with pytest.raises(ValueError, match="expected_batch_size"):  # else: a division by zero
        one_step(params, empty, DPConfig(clip_norm=0.5, noise_multiplier=1.0))
    with pytest.raises(ValueError, match="only DP-SGD"):
        one_step(params, batch)


def test_privacy_settings_resolve_to_a_sigma_that_keeps_the_target():
    settings = resolve_privacy(PrivacySettings(target_epsilon=2.0), 1_000, 50, 200)
    assert settings.delta == pytest.approx(1e-4) and settings.noise_multiplier > 0
    report = privacy_report(settings, 1_000, 50, 200)
    assert 2.0 * 0.99 <= report["epsilon"] <= 2.0 and report["sampling_rate"] == 0.05
    off = PrivacySettings()
    assert not off.enabled and resolve_privacy(off, 10, 5, 3) == off
    given = resolve_privacy(PrivacySettings(noise_multiplier=1.3, delta=1e-5), 1_000, 50, 200)
    assert given.noise_multiplier == 1.3 and given.delta == 1e-5
    with pytest.raises(ConfigError, match="target_epsilon must be >= 0"):
        PrivacySettings(target_epsilon=-1.0)
    with pytest.raises(ConfigError, match="accountant must be one of"):
        PrivacySettings(accountant="gdp")  # type: ignore[arg-type]
    with pytest.raises(PrivacyBudgetError, match="so large that"):
        resolve_privacy(PrivacySettings(target_epsilon=1e9), 1_000, 50, 200)
