"""Attention masks.

Every mask is boolean, ``True`` where a query may attend to a key, and broadcasts against
attention scores of shape ``[batch, heads, q_len, k_len]``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def causal_mask(q_len: int, k_len: int | None = None, offset: int | Array = 0) -> Array:
    """Query ``i`` sees keys ``j <= i + offset``.

    ``offset`` is the number of keys before the first query (a KV cache's fill level).

    Returns:
      bool[1, 1, q_len, k_len]
    """
    k_len = q_len if k_len is None else k_len
    q_pos = jnp.arange(q_len)[:, None] + offset
    k_pos = jnp.arange(k_len)[None, :]
    return (k_pos <= q_pos)[None, None]


def padding_mask(key_valid: Array) -> Array:
    """Keys that are padding are never attended to.

    Args:
      key_valid: bool[batch, k_len], ``True`` for real tokens.

    Returns:
      bool[batch, 1, 1, k_len]
    """
    return key_valid.astype(bool)[:, None, None, :]


def combine_masks(*masks: Array | None) -> Array | None:
    """Logical AND of the masks that are not ``None`` (``None`` if all are)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = jnp.logical_and(out, m)
    return out
