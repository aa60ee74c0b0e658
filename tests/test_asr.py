"""The acoustic model: padding never reaches real frames (an utterance alone equals it in a
padded batch), the encoder's lengths, the feature normalisation, jit against eager."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.config import ConfigError
from jaxllm.models.asr import (
    AcousticConfig,
    AcousticModel,
    encoder_lengths,
    init_acoustic_params,
    normalize_features,
)

N_MELS = 12
LENGTHS = np.array([37, 20, 9, 1])


def _config(encoder: str, subsample: int = 4) -> AcousticConfig:
    return AcousticConfig(
        vocab_size=7, n_mels=N_MELS, subsample=subsample, conv_channels=4, encoder=encoder,
        n_layer=2, width=16, n_head=2, dropout=0.0,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["bilstm", "transformer"])
def model(request):
    model = AcousticModel(_config(request.param))
    return model, init_acoustic_params(model, jax.random.key(0))


def _batch(seed: int = 0, lengths=LENGTHS):
    frames = int(max(lengths))
    features = np.random.default_rng(seed).normal(size=(len(lengths), frames, N_MELS))
    mask = np.arange(frames)[None, :] < np.asarray(lengths)[:, None]
    return features.astype(np.float32), mask


def test_each_utterance_scores_alone_as_in_its_padded_batch(model):
    model, params = model
    features, mask = _batch()
    features[~mask] = 123.0  # whatever padding holds, it must not matter
    logits, out_mask = model.apply({"params": params}, features, mask)
    np.testing.assert_array_equal(out_mask.sum(1), encoder_lengths(jnp.asarray(LENGTHS), 4))
    for b, length in enumerate(LENGTHS):
        alone, alone_mask = model.apply(
            {"params": params}, features[b : b + 1, :length], mask[b : b + 1, :length]
        )
        steps = int(alone_mask.sum())
        assert alone.shape[1] == steps  # unpadded: every output step is real
        np.testing.assert_allclose(alone[0, :steps], logits[b, :steps], rtol=1e-5, atol=1e-5)


def test_jit_equals_eager(model):
    model, params = model
    features, mask = _batch(1)
    eager = model.apply({"params": params}, features, mask)[0]
    jitted = jax.jit(lambda p, x, m: model.apply({"params": p}, x, m))(params, features, mask)[0]
    np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-6)
    chex.assert_shape(eager, (len(LENGTHS), 10, 7))


@settings(max_examples=20, deadline=None)
@given(frames=st.integers(1, 200), subsample=st.sampled_from([1, 2, 4, 8]))
def test_encoder_lengths_are_what_the_convolutions_give(frames, subsample):
    model = AcousticModel(_config("bilstm", subsample))
    params = jax.eval_shape(lambda key: init_acoustic_params(model, key), jax.random.key(0))
    features = jax.ShapeDtypeStruct((1, frames, N_MELS), jnp.float32)
    mask = jax.ShapeDtypeStruct((1, frames), jnp.bool_)
    logits, _ = jax.eval_shape(
        lambda p, x, m: model.apply({"params": p}, x, m), params, features, mask
    )
    assert logits.shape[1] == int(encoder_lengths(jnp.asarray([frames]), subsample)[0])


def test_features_are_normalised_over_real_frames_only():
    features, mask = _batch(2)
    out = np.asarray(normalize_features(jnp.asarray(features), jnp.asarray(mask)))
    for b, length in enumerate(LENGTHS):
        real = features[b, :length]
        expected = (real - real.mean(0)) / np.sqrt(real.var(0) + 1e-5)
        np.testing.assert_allclose(out[b, :length], expected, rtol=1e-4, atol=1e-4)
        assert not out[b, length:].any()


def test_bad_shapes_are_refused_by_name(model):
    model, params = model
    features, mask = _batch()
    with pytest.raises(ValueError, match="reads 12 mel bands, got features of 80"):
        model.apply({"params": params}, np.zeros((1, 8, 80), np.float32), mask[:1, :8])
    with pytest.raises(ConfigError, match="subsample must be 1, 2, 4 or 8"):
        AcousticConfig(subsample=3)
    with pytest.raises(ConfigError, match="divisible by n_head"):
        AcousticConfig(encoder="transformer", width=30, n_head=4)
