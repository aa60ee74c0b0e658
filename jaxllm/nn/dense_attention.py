"""The softmax attention every implementation shares: masked softmax weights with dropout,
attention over every (query, key) pair, and the checks of causal lengths and dropout keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.masks import causal_mask, combine_masks


def check_causal_lengths(q_len: int, k_len: int, causal: bool) -> None:
    """Raise ``ValueError`` if ``causal`` attention is asked for with unequal lengths."""
    if causal and q_len != k_len:
        raise ValueError(
            f"causal attention needs as many queries as keys, got {q_len} and "
            f"{k_len}; pass an explicit mask (e.g. causal_mask(q_len, k_len, offset))"
        )


def attention_dropout_key(
    dropout_rng: Array | None, dropout_rate: float, deterministic: bool
) -> Array | None:
    """The key attention dropout draws from; ``None`` when there is no dropout.

    Raises:
      ValueError: dropout is on (``deterministic=False``, ``dropout_rate > 0``) without a key.
    """
    if deterministic or dropout_rate <= 0.0:
        return None
    if dropout_rng is None:
        raise ValueError(
            "attention dropout (deterministic=False, dropout_rate > 0) needs a "
            "dropout_rng; modules get it from rngs={'dropout': key}"
        )
    return dropout_rng


def softmax_attention(
    q: Array, k: Array, v: Array, mask: Array | None, keep: Array | None, dropout_rate: float
) -> Array:
    """Attention over every (query, key) pair, its weights ``softmax(q kᵀ / sqrt(d) + mask)``.

    Args:
      q: float[batch, q_len, heads, head_dim]
      k: float[batch, k_len, heads, head_dim]
      v: float[batch, k_len, heads, head_dim]
      mask: bool broadcastable to [batch, heads, q_len, k_len]; a fully masked query gets
        uniform weights.
      keep: bool[batch, heads, q_len, k_len], the weights dropout keeps (``None``: no dropout);
        kept weights are scaled by ``1 / (1 - dropout_rate)``.

    Returns:
      float[batch, q_len, heads, head_dim]
    """
    weights = attention_weights(_scores(q, k), mask, keep, dropout_rate)
    return jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)


def attention_probabilities(
    q: Array, k: Array, mask: Array | None = None, *, causal: bool = False
) -> Array:
    """The weights each query gives each key, ``softmax(q kᵀ / sqrt(d) + mask)``, without
    dropout: float32[batch, heads, q_len, k_len], each row summing to 1.

    Args:
      q: float[batch, q_len, heads, head_dim]
      k: float[batch, k_len, heads, head_dim]
      mask: bool broadcastable to [batch, heads, q_len, k_len], ``False`` blocks a key.
      causal: also block every key after its query (needs ``q_len == k_len``).
    """
    check_causal_lengths(q.shape[1], k.shape[1], causal)
    if causal:
        mask = combine_masks(causal_mask(q.shape[1]), mask)
    return attention_weights(_scores(q, k), mask, None, 0.0)


def _scores(q: Array, k: Array) -> Array:
    """``q kᵀ / sqrt(d)``: float32[batch, heads, q_len, k_len]."""
    scale = 1.0 / jnp.sqrt(q.shape[-1]).astype(jnp.float32)
    return jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale


def attention_weights(
    scores: Array, mask: Array | None, keep: Array | None, dropout_rate: float
) -> Array:
    """float32[batch, heads, q_len, k_len] scores -> masked softmax weights, dropout applied."""
    if mask is not None:
        scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1)
    if keep is not None:
        weights = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
    return weights
