"""SpecAugment's masks on the device (Park et al., 2019): bands of mel channels and spans of
frames hidden from a speech model while it trains, so it cannot lean on any one of them.

A masked cell takes its band's mean over the utterance's real frames, so after the per-band
normalisation of :func:`jaxllm.models.asr.normalize_features` it reads close to 0 (the paper
masks normalised features with 0), whatever the level of the recording.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require


@dataclasses.dataclass(frozen=True)
class SpecAugmentConfig:
    """How many masks of what width each training utterance gets.

    Attributes:
      freq_masks: bands of mel channels masked, each of a width drawn from
        ``0..max_freq_width``.
      max_freq_width: the widest band.
      time_masks: spans of frames masked, each of a width drawn from ``0..max_time_width``
        frames (at most the utterance's length).
      max_time_width: the widest span, in frames.
    """

    freq_masks: int = 2
    max_freq_width: int = 8
    time_masks: int = 2
    max_time_width: int = 20

    def __post_init__(self):
        for name in ("freq_masks", "max_freq_width", "time_masks", "max_time_width"):
            value = getattr(self, name)
            require(value >= 0, f"SpecAugmentConfig.{name} must be >= 0, got {value}")

    @property
    def enabled(self) -> bool:
        return bool(self.freq_masks * self.max_freq_width or self.time_masks * self.max_time_width)


def band_means(features: Array, frame_mask: Array) -> Array:
    """float[B, T, M], bool[B, T] -> float[B, 1, M]: each utterance's mean of each band over
    its real frames (0 for an utterance without any)."""
    m = frame_mask[..., None].astype(features.dtype)
    return jnp.sum(features * m, axis=1, keepdims=True) / jnp.maximum(
        jnp.sum(m, axis=1, keepdims=True), 1.0
    )


def _spans(key: Array, count: int, max_width: int, limit: Array, size: int) -> Array:
    """bool[size]: the union of ``count`` spans, each of width drawn in ``0..max_width``
    (clipped to ``limit``) starting in ``0..limit - width``."""
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (count,), 0, max_width + 1)
    widths = jnp.minimum(widths, limit)
    starts = jax.random.randint(start_key, (count,), 0, jnp.maximum(limit - widths, 0) + 1)
    positions = jnp.arange(size)[None, :]
    inside = (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
    return jnp.any(inside, axis=0)


def spec_augment_masks(
    key: Array, frame_lengths: Array, shape: tuple[int, ...], config: SpecAugmentConfig
) -> Array:
    """bool[batch, frames, n_mels], ``True`` where a cell is masked: for each utterance
    ``config.freq_masks`` bands and ``config.time_masks`` spans within its own
    ``frame_lengths`` frames."""
    batch, frames, n_mels = shape

    def one(key: Array, length: Array) -> Array:
        freq_key, time_key = jax.random.split(key)
        bands = _spans(
            freq_key, config.freq_masks, config.max_freq_width, jnp.int32(n_mels), n_mels
        )
        spans = _spans(time_key, config.time_masks, config.max_time_width, length, frames)
        return spans[:, None] | bands[None, :]

    return jax.vmap(one)(jax.random.split(key, batch), frame_lengths)


def spec_augment(
    key: Array, features: Array, frame_mask: Array, config: SpecAugmentConfig
) -> Array:
    """features float[B, T, M] with :func:`spec_augment_masks`' cells set to their band's mean
    over the utterance's real frames (``frame_mask`` bool[B, T]); padding is left as it is."""
    if not config.enabled:
        return features
    mean = band_means(features, frame_mask)
    masks = spec_augment_masks(key, jnp.sum(frame_mask, axis=1), features.shape, config)
    return jnp.where(masks & frame_mask[..., None], mean, features)
