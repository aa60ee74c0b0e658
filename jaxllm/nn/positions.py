"""Position encodings: rotary embeddings (Su et al., "RoFormer", 2021; GPT-NeoX half-split
layout) and the original Transformer's sinusoids (Vaswani et al., 2017)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def apply_rotary(x: Array, positions: Array, base: float = 10000.0) -> Array:
    """Rotate channel pairs ``(x[..., i], x[..., i + D/2])`` by angle ``pos * base^(-2i/D)``.

    The dot product of a rotated query and key then depends only on their relative position.

    Args:
      x: float[batch, seq, heads, head_dim] (``head_dim`` even).
      positions: int[batch, seq] absolute positions.

    Returns:
      float[batch, seq, heads, head_dim], same dtype as ``x``.
    """
    head_dim = x.shape[-1]
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
    half = head_dim // 2
    inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)  # (D/2,)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # (B, T, D/2)
    cos = jnp.cos(angles)[:, :, None, :]  # (B, T, 1, D/2)
    sin = jnp.sin(angles)[:, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x.dtype)


def sinusoidal_positions(positions: Array, width: int, base: float = 10000.0) -> Array:
    """The original Transformer's fixed position encodings, sines in the first half of the
    channels and cosines in the second (as tensor2tensor and Marian lay them out):
    ``[sin(pos · base^(-i/(D/2))), cos(pos · base^(-i/(D/2)))]`` for ``i < D/2``.

    Args:
      positions: int[...] absolute positions.
      width: the encoding's width ``D`` (even).

    Returns:
      float32[..., width]
    """
    if width % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {width}")
    half = width // 2
    inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
