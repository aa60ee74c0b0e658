"""SpecAugment's masks: within bounds, inside each utterance, filled with the band's mean, a
pure function of the key."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import SpecAugmentConfig, spec_augment, spec_augment_masks

SHAPE = (4, 60, 16)
LENGTHS = np.array([60, 41, 12, 3])
CONFIG = SpecAugmentConfig(freq_masks=2, max_freq_width=5, time_masks=3, max_time_width=7)


def _features(seed=0):
    features = np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)
    mask = np.arange(SHAPE[1])[None, :] < LENGTHS[:, None]
    return features, mask


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_masks_are_bands_and_spans_within_bounds(seed):
    masks = np.asarray(
        spec_augment_masks(jax.random.key(seed), jnp.asarray(LENGTHS), SHAPE, CONFIG)
    )
    for b, length in enumerate(LENGTHS):
        rows = masks[b].all(axis=1)  # frames masked across every band: the time spans
        assert not rows[length:].any(), "a span reaches past the utterance"
        assert rows.sum() <= CONFIG.time_masks * CONFIG.max_time_width
        columns = masks[b, ~rows].all(axis=0) if (~rows).any() else np.zeros(SHAPE[2], bool)
        assert columns.sum() <= CONFIG.freq_masks * CONFIG.max_freq_width
        # every masked cell is in a masked frame or a masked band
        np.testing.assert_array_equal(masks[b], rows[:, None] | columns[None, :])


def test_masked_cells_hold_their_bands_mean_and_the_rest_is_untouched():
    features, mask = _features()
    key = jax.random.key(3)
    out = np.asarray(spec_augment(key, jnp.asarray(features), jnp.asarray(mask), CONFIG))
    masks = (
        np.asarray(spec_augment_masks(key, jnp.asarray(LENGTHS), SHAPE, CONFIG)) & mask[..., None]
    )
    np.testing.assert_array_equal(out[~masks], features[~masks])
    for b, length in enumerate(LENGTHS):
        mean = features[b, :length].mean(axis=0)
        cells = np.argwhere(masks[b])
        np.testing.assert_allclose(out[b][masks[b]], mean[cells[:, 1]], rtol=1e-5)


def test_the_same_key_the_same_masks_jit_equal_and_off_when_disabled():
    features, mask = _features(1)
    args = (jnp.asarray(features), jnp.asarray(mask))
    one = spec_augment(jax.random.key(0), *args, CONFIG)
    jitted = jax.jit(spec_augment, static_argnums=3)(jax.random.key(0), *args, CONFIG)
    np.testing.assert_array_equal(one, jitted)
    assert not np.array_equal(one, spec_augment(jax.random.key(1), *args, CONFIG))
    off = SpecAugmentConfig(0, 0, 0, 0)
    assert not off.enabled
    np.testing.assert_array_equal(spec_augment(jax.random.key(0), *args, off), features)
