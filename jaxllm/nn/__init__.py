"""Layers shared by every jaxllm model: attention, masks, positions, MLP, norms, blocks."""

from jaxllm.nn.attention import KVCache, MultiHeadAttention, cached_attention, dot_product_attention
from jaxllm.nn.dense import Dense
from jaxllm.nn.masks import causal_mask, combine_masks, padding_mask
from jaxllm.nn.mlp import MLP
from jaxllm.nn.norms import layer_norm
from jaxllm.nn.positions import apply_rotary
from jaxllm.nn.transformer import TransformerBlock

__all__ = [
    "Dense", "KVCache", "MLP", "MultiHeadAttention", "TransformerBlock", "apply_rotary", "causal_mask",
    "cached_attention", "combine_masks", "dot_product_attention", "layer_norm", "padding_mask",
]
