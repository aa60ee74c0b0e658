"""Attention maps: the weights every attention layer gives each (query, key) pair.

Every :class:`jaxllm.nn.MultiHeadAttention` records its weights when Flax's ``intermediates``
collection is mutable, and computes nothing extra otherwise; this reads them out for any model
built from it (GPT, BERT, the Transformer classifier)::

    maps = attention_maps(model, params, tokens)       # {"h_0/attn": float32[B, H, T, T], ...}
    plot_attention(maps["h_0/attn"][0, 0], labels)      # one head of one example
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
from flax import traverse_util
from jax import Array


class NoAttentionError(ValueError):
    """The model has no attention layer that records its weights."""


def attention_maps(model: nn.Module, params: Any, *args: Any, **kwargs: Any) -> dict[str, Array]:
    """Every attention layer's weights when ``model`` reads ``args``, in the order the layers
    ran (without dropout, whatever ``train`` says).

    Args:
      model: a Flax module built on :class:`jaxllm.nn.MultiHeadAttention`.
      params: its parameters.
      *args: the model's inputs, e.g. ``tokens`` int[batch, seq] (and a mask).
      **kwargs: its keyword inputs (e.g. BERT's ``attention_mask``).

    Returns:
      ``{layer path: float32[batch, heads, q_len, k_len]}``, e.g. ``"h_0/attn"`` for GPT's
      first block; each row (query) sums to 1 over the keys.

    Raises:
      NoAttentionError: the model attended nowhere (or only through a KV cache, which records
        nothing).
    """
    _, state = model.apply({"params": params}, *args, mutable=["intermediates"], **kwargs)
    recorded: Any = state.get("intermediates", {})
    flat: dict[str, Any] = traverse_util.flatten_dict(recorded, sep="/")
    name = "attention_weights"  # sown by a layer (at "<layer path>/name") or by the model
    maps: dict[str, Array] = {
        path.removesuffix(name).rstrip("/") or "attention": value[0]
        for path, value in flat.items()
        if path == name or path.endswith("/" + name)
    }
    if not maps:
        raise NoAttentionError(
            f"{type(model).__name__} recorded no attention weights: only "
            "jaxllm.nn.MultiHeadAttention records them, and only without a KV cache"
        )
    return maps
