"""The pre-LayerNorm Transformer block shared by GPT, BERT and the encoder-decoder."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.attention import AttentionImplementation, KVCache, MultiHeadAttention
from jaxllm.nn.dense import KernelLayout
from jaxllm.nn.mlp import MLP
from jaxllm.nn.norms import layer_norm


class TransformerBlock(nn.Module):
    """``x + Attn(LN(x))``, then optionally ``x + CrossAttn(LN(x), context)``, then
    ``x + MLP(LN(x))`` (the GPT-2 layout).

    Attributes:
      num_heads: attention heads.
      mlp_ratio: MLP hidden width / model width.
      dropout_rate: dropout on attention weights and on each residual branch.
      use_bias: biases in dense layers and LayerNorms.
      rotary: rotary position embeddings in self-attention.
      cross_attention: add a cross-attention sub-layer (encoder-decoder decoders).
      out_init_std: init std of the projections that write into the residual stream.
      dtype: compute dtype.
      attention, attention_row_groups: how self- and cross-attention are computed without a
        cache (``MultiHeadAttention``'s ``implementation`` and ``row_groups``).
      mlp_output_kernel_layout: layout of the MLP output projection's kernel (see ``Dense``).
    """

    num_heads: int
    mlp_ratio: int = 4
    dropout_rate: float = 0.0
    use_bias: bool = True
    rotary: bool = False
    cross_attention: bool = False
    out_init_std: float = 0.02
    dtype: Any = jnp.float32
    attention: AttentionImplementation = "jax"
    attention_row_groups: int = 1
    mlp_output_kernel_layout: KernelLayout = "in_out"

    @nn.compact
    def __call__(
        self,
        x: Array,
        *,
        mask: Array | None = None,
        causal: bool = False,
        positions: Array | None = None,
        context: Array | None = None,
        context_mask: Array | None = None,
        cache: KVCache | None = None,
        cache_index: Array | int = 0,
        deterministic: bool = True,
    ) -> tuple[Array, KVCache | None]:
        """x: float[batch, seq, width] -> (float[batch, seq, width], updated cache).

        ``mask`` (bool, broadcastable to [batch, heads, seq, keys]) and ``causal`` apply to the
        self-attention, ``context_mask`` to the cross-attention.
        """
        h, cache = self._attention("attn")(
            self._norm("ln_1")(x),
            mask=mask,
            causal=causal,
            positions=positions,
            cache=cache,
            cache_index=cache_index,
            deterministic=deterministic,
        )
        x = x + h
        if self.cross_attention:
            if context is None:
                raise ValueError("a cross-attention block needs the encoder output as `context`")
            h, _ = self._attention("cross_attn")(
                self._norm("ln_cross")(x), context, mask=context_mask, deterministic=deterministic
            )
            x = x + h
        x = x + MLP(
            self.mlp_ratio * x.shape[-1],
            dropout_rate=self.dropout_rate,
            use_bias=self.use_bias,
            out_init_std=self.out_init_std,
            dtype=self.dtype,
            output_kernel_layout=self.mlp_output_kernel_layout,
            name="mlp",
        )(self._norm("ln_2")(x), deterministic=deterministic)
        return x, cache

    @nn.nowrap
    def _attention(self, name: str) -> MultiHeadAttention:
        """The self-attention (``"attn"``, rotary if the block is) or cross-attention layer."""
        return MultiHeadAttention(
            self.num_heads,
            dropout_rate=self.dropout_rate,
            use_bias=self.use_bias,
            rotary=self.rotary and name == "attn",
            out_init_std=self.out_init_std,
            dtype=self.dtype,
            implementation=self.attention,
            row_groups=self.attention_row_groups,
            name=name,
        )

    @nn.nowrap
    def _norm(self, name: str) -> nn.LayerNorm:
        return layer_norm(use_bias=self.use_bias, dtype=self.dtype, name=name)
