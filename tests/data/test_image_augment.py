"""Random shifts and rotations: checked against NumPy references (np.roll, np.rot90) and for
their properties. Every warp runs through one jitted function at a few fixed shapes, so the
hypothesis examples do not recompile."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.config import ConfigError
from jaxllm.data import AugmentConfig, affine_warp, augment_images, augment_params

HEIGHT, WIDTH, CHANNELS = 6, 7, 2  # not square, two channels: catches swapped axes
warp = jax.jit(affine_warp)
augment = jax.jit(augment_images, static_argnames="config")


def random_image(seed: int, shape=(HEIGHT, WIDTH, CHANNELS)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def rolled_with_zeros(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``image`` moved down by ``rows`` and right by ``columns``, zeros coming in."""
    moved = np.roll(image, (rows, columns), axis=(0, 1))
    if rows > 0:
        moved[:rows] = 0
    elif rows < 0:
        moved[rows:] = 0
    if columns > 0:
        moved[:, :columns] = 0
    elif columns < 0:
        moved[:, columns:] = 0
    return moved


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_zero_shift_and_angle_is_the_identity(seed):
    image = random_image(seed)
    np.testing.assert_allclose(warp(image, jnp.zeros(2), 0.0), image, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(-7, 7), columns=st.integers(-8, 8))
def test_integer_shift_is_np_roll_with_zeros_coming_in(seed, rows, columns):
    image = random_image(seed)
    moved = warp(image, jnp.array([rows, columns], jnp.float32), 0.0)
    np.testing.assert_allclose(moved, rolled_with_zeros(image, rows, columns), atol=1e-6)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3, -1])
def test_quarter_turns_of_a_square_image_are_np_rot90(quarter_turns):
    # Positive angles turn the picture counter-clockwise as shown, like np.rot90's k.
    image = random_image(quarter_turns % 4, shape=(5, 5, CHANNELS))
    turned = warp(image, jnp.zeros(2), quarter_turns * math.pi / 2)
    np.testing.assert_allclose(turned, np.rot90(image, k=quarter_turns), atol=1e-5)


def test_a_half_pixel_shift_averages_neighbours():
    image = random_image(0)
    moved = np.asarray(warp(image, jnp.array([0.0, 0.5]), 0.0))
    np.testing.assert_allclose(moved[:, 1:], (image[:, 1:] + image[:, :-1]) / 2, atol=1e-6)
    np.testing.assert_allclose(moved[:, 0], image[:, 0] / 2, atol=1e-6)  # zero outside


def test_small_moves_of_a_centred_blob_keep_its_mass():
    rows, columns = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    blob = np.exp(-((rows - 7.5) ** 2 + (columns - 7.5) ** 2) / 8).astype(np.float32)
    images = np.repeat(blob[None, :, :, None], 8, axis=0)
    moved = np.asarray(augment(jax.random.key(0), images, AugmentConfig(1.5, 15.0)))
    assert not np.allclose(moved, images)
    np.testing.assert_allclose(moved.sum(axis=(1, 2, 3)), blob.sum(), rtol=0.02)


def test_params_stay_within_bounds_and_spread_over_them():
    config = AugmentConfig(max_shift=2.0, max_rotation=15.0)
    shifts, angles = augment_params(jax.random.key(3), 2000, config)
    assert shifts.shape == (2000, 2) and angles.shape == (2000,)
    assert shifts.dtype == angles.dtype == jnp.float32
    max_angle = math.radians(15.0)
    assert float(jnp.abs(shifts).max()) <= 2.0 and float(jnp.abs(angles).max()) <= max_angle
    for axis in (0, 1):  # both signs on both axes, reaching near the bounds
        assert shifts[:, axis].min() < -1.9 and shifts[:, axis].max() > 1.9
    assert angles.min() < -0.95 * max_angle and angles.max() > 0.95 * max_angle
    assert abs(float(jnp.corrcoef(shifts[:, 0], shifts[:, 1])[0, 1])) < 0.1  # drawn apart


def test_augment_is_the_warp_of_each_image_with_its_params():
    images = np.stack([random_image(seed) for seed in range(4)])
    config, key = AugmentConfig(), jax.random.key(7)
    shifts, angles = augment_params(key, len(images), config)
    one_by_one = np.stack(
        [
            warp(image, shift, angle)
            for image, shift, angle in zip(images, shifts, angles, strict=True)
        ]
    )
    np.testing.assert_allclose(augment(key, images, config), one_by_one, atol=1e-6)
    np.testing.assert_allclose(augment_images(key, images, config), one_by_one, atol=1e-6)


def test_same_key_same_output_other_key_other_output():
    images = np.stack([random_image(seed) for seed in range(4)])
    config = AugmentConfig()
    first = augment(jax.random.key(1), images, config)
    np.testing.assert_array_equal(augment(jax.random.key(1), images, config), first)
    assert not np.allclose(augment(jax.random.key(2), images, config), first)


def test_disabled_config_returns_the_images():
    images = np.stack([random_image(seed) for seed in range(2)])
    config = AugmentConfig(max_shift=0.0, max_rotation=0.0)
    assert not config.enabled and AugmentConfig(max_shift=0.0).enabled
    np.testing.assert_array_equal(augment_images(jax.random.key(0), images, config), images)
    shifts, angles = augment_params(jax.random.key(0), 3, config)
    assert not np.any(shifts) and not np.any(angles)


@pytest.mark.parametrize(
    "fields", [{"max_shift": -1.0}, {"max_rotation": float("nan")}, {"max_shift": "2"}]
)
def test_config_rejects_negative_or_non_numbers(fields):
    with pytest.raises(ConfigError, match=r"AugmentConfig\.max_\w+ must be a finite number >= 0"):
        AugmentConfig(**fields)
