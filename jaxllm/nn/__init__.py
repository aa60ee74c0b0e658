"""Layers shared by every jaxllm model: attention, masks, positions, MLP, norms, blocks, LSTM."""

from jaxllm.nn.attention import (
    ATTENTION_IMPLEMENTATIONS,
    AttentionImplementation,
    KVCache,
    MultiHeadAttention,
    cached_attention,
    dot_product_attention,
    softmax_attention,
)
from jaxllm.nn.blocked_attention import blocked_dot_product_attention
from jaxllm.nn.dense import KERNEL_LAYOUTS, Dense, KernelLayout, int8_product
from jaxllm.nn.lstm import (
    FINAL_STATE,
    LSTM,
    LSTMDirection,
    final_states,
    lstm_cell_step,
    lstm_scan,
    lstm_step,
    reverse_padded,
    variational_keep_mask,
    word_type_dropout,
)
from jaxllm.nn.masks import causal_mask, combine_masks, padding_mask
from jaxllm.nn.mlp import MLP
from jaxllm.nn.norms import layer_norm
from jaxllm.nn.positions import apply_rotary, sinusoidal_positions
from jaxllm.nn.transformer import DecoderLayerCache, TransformerBlock

__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "AttentionImplementation",
    "DecoderLayerCache",
    "Dense",
    "FINAL_STATE",
    "KERNEL_LAYOUTS",
    "KVCache",
    "KernelLayout",
    "LSTM",
    "LSTMDirection",
    "MLP",
    "MultiHeadAttention",
    "TransformerBlock",
    "apply_rotary",
    "blocked_dot_product_attention",
    "cached_attention",
    "causal_mask",
    "combine_masks",
    "dot_product_attention",
    "final_states",
    "int8_product",
    "layer_norm",
    "lstm_cell_step",
    "lstm_scan",
    "lstm_step",
    "padding_mask",
    "reverse_padded",
    "sinusoidal_positions",
    "softmax_attention",
    "variational_keep_mask",
    "word_type_dropout",
]
