"""Random shifts and rotations of image batches, on the device and pure in their key.

Each image is rotated about its centre by a random angle and shifted by a random number of
pixels along each axis, with bilinear interpolation and zeros where the moved image leaves its
frame; a pure function of the key, so a batch's augmentation is a function of (seed, step)::

    config = AugmentConfig(max_shift=1.0, max_rotation=10.0)
    key = jax.random.fold_in(jax.random.key(seed), step)
    images = augment_images(key, batch.images, config)  # float32[n, h, w, c]

Coordinates are ``(row, column)``, rows growing downwards as an image is shown. A positive
angle turns the picture counter-clockwise as shown (``angle = pi / 2`` on a square image is
``np.rot90(image)``); a positive shift moves it down (rows) and right (columns).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxllm.config import require


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """How far images are moved (hashable, so it can be a static argument of ``jax.jit``).

    Attributes:
        max_shift: the largest shift in pixels, along each axis: shifts are drawn uniformly
            from ``[-max_shift, max_shift]``.
        max_rotation: the largest rotation in degrees: angles are drawn uniformly from
            ``[-max_rotation, max_rotation]``.
    """

    max_shift: float = 1.0
    max_rotation: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_shift", "max_rotation"):
            value = getattr(self, name)
            require(
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                f"AugmentConfig.{name} must be a finite number >= 0 (0 turns it off), got "
                f"{value!r}",
            )

    @property
    def enabled(self) -> bool:
        """Whether images are moved at all (a shift or rotation above 0)."""
        return self.max_shift > 0 or self.max_rotation > 0


def affine_warp(image: ArrayLike, shift: ArrayLike, angle: ArrayLike) -> Array:
    """``image`` rotated about its centre by ``angle``, then shifted by ``shift``.

    With centre ``c = ((h - 1) / 2, (w - 1) / 2)`` and ``R(a) = [[cos a, -sin a], [sin a,
    cos a]]`` acting on ``(row, column)``, output pixel ``p`` reads the input at
    ``c + R(-angle) (p - shift - c)``, interpolated bilinearly (``map_coordinates``, order 1)
    with zeros outside the image. A positive angle turns the picture counter-clockwise as shown
    (rows down); a positive shift moves it down and right.

    Args:
        image: ``float[h, w, c]``.
        shift: ``float[2]``, ``(rows, columns)`` in pixels.
        angle: ``float[]``, radians.

    Returns:
        ``float[h, w, c]``, the dtype of ``image``.
    """
    image = jnp.asarray(image)
    height, width, _ = image.shape
    centre = jnp.array([(height - 1) / 2, (width - 1) / 2], dtype=jnp.float32)
    rows, columns = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij"
    )
    moved = jnp.stack([rows, columns]) - (jnp.asarray(shift, jnp.float32) + centre)[:, None, None]
    cos, sin = jnp.cos(jnp.asarray(angle, jnp.float32)), jnp.sin(jnp.asarray(angle, jnp.float32))
    source = (
        jnp.stack([cos * moved[0] + sin * moved[1], -sin * moved[0] + cos * moved[1]])
        + centre[:, None, None]
    )

    def warp_channel(channel: Array) -> Array:
        return jax.scipy.ndimage.map_coordinates(
            channel, [source[0], source[1]], order=1, mode="constant", cval=0.0
        )

    return jax.vmap(warp_channel, in_axes=2, out_axes=2)(image)


def augment_params(key: Array, count: int, config: AugmentConfig) -> tuple[Array, Array]:
    """The random moves of ``count`` images: ``(shifts, angles)``.

    Returns:
        ``shifts: float32[count, 2]`` pixels, uniform in ``[-max_shift, max_shift]``, and
        ``angles: float32[count]`` radians, uniform in ``±max_rotation`` degrees.
    """
    shift_key, angle_key = jax.random.split(key)
    shifts = jax.random.uniform(
        shift_key, (count, 2), jnp.float32, -config.max_shift, config.max_shift
    )
    max_angle = math.radians(config.max_rotation)
    angles = jax.random.uniform(angle_key, (count,), jnp.float32, -max_angle, max_angle)
    return shifts, angles


def augment_images(key: Array, images: ArrayLike, config: AugmentConfig) -> Array:
    """Each of ``images`` moved by its own draw of :func:`augment_params` (see
    :func:`affine_warp`); the images themselves when ``config`` moves nothing.

    Args:
        key: a JAX random key; the same key gives the same moves.
        images: ``float[n, h, w, c]``.
        config: static under ``jax.jit`` (``static_argnames="config"``).

    Returns:
        ``float[n, h, w, c]``.
    """
    images = jnp.asarray(images)
    if not config.enabled:
        return images
    shifts, angles = augment_params(key, images.shape[0], config)
    return jax.vmap(affine_warp)(images, shifts, angles)
