"""The Transformer block shared by GPT, BERT and the encoder-decoder: pre-LayerNorm (GPT-2)
or post-LayerNorm (the original Transformer and BERT)."""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import flax.struct
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.attention import AttentionImplementation, KVCache, MultiHeadAttention
from jaxllm.nn.dense import KernelLayout
from jaxllm.nn.mlp import MLP, Activation
from jaxllm.nn.norms import layer_norm


@flax.struct.dataclass
class DecoderLayerCache:
    """A cross-attention block's decoding state.

    Attributes:
      self_attention: the keys and values of the target tokens so far (a :class:`KVCache`
        of ``max_len`` slots).
      cross_attention: the source's keys and values, projected on the first decoding step
        (``None`` before it; then the block needs the encoder output as ``context``).
    """

    self_attention: KVCache
    cross_attention: KVCache | None = None


class TransformerBlock(nn.Module):
    """``x + Attn(LN(x))``, then optionally ``x + CrossAttn(LN(x), context)``, then
    ``x + MLP(LN(x))`` (pre-LN, the GPT-2 layout); with ``norm_position="post"``,
    ``LN(x + Attn(x))``, ... , ``LN(x + MLP(x))`` (the original Transformer's and BERT's).

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
      norm_position: ``"pre"`` or ``"post"``: where each sub-layer's LayerNorm sits.
      layer_norm_epsilon: the LayerNorms' epsilon (GPT-2 1e-5, BERT 1e-12).
      mlp_activation: the MLP's GELU (``"gelu_tanh"``, GPT-2; ``"gelu"``, BERT).
      head_dim: each attention head's width (``None``: width / heads).
      mlp_hidden: the MLP's hidden width (``None``: ``mlp_ratio`` × width).
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
    norm_position: Literal["pre", "post"] = "pre"
    layer_norm_epsilon: float = 1e-5
    mlp_activation: Activation = "gelu_tanh"
    head_dim: int | None = None
    mlp_hidden: int | None = None

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
        cache: KVCache | DecoderLayerCache | None = None,
        cache_index: Array | int = 0,
        deterministic: bool = True,
        queries: int | None = None,
    ) -> tuple[Array, Any]:
        """x: float[batch, seq, width] -> (float[batch, seq, width], updated cache).

        ``mask`` (bool, broadcastable to [batch, heads, seq, keys]) and ``causal`` apply to the
        self-attention, ``context_mask`` to the cross-attention. With ``queries``, the first
        ``queries`` positions only, float[batch, queries, width], without dropout equal to the
        whole block's there (for a last layer of which only those are read). A
        cross-attention block decodes with a :class:`DecoderLayerCache`, whose source keys
        and values are projected from ``context`` once, then read from the cache.
        """
        if self.norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position must be 'pre' or 'post', got {self.norm_position!r}")
        self_cache: KVCache | None = None
        cross_cache: KVCache | None = None
        if isinstance(cache, DecoderLayerCache):
            self_cache, cross_cache = cache.self_attention, cache.cross_attention
        elif cache is not None and self.cross_attention:
            raise ValueError("a cross-attention block decodes with a DecoderLayerCache")
        else:
            self_cache = cache
        x, self_cache = self._residual(
            "ln_1",
            x,
            lambda h: self._attention("attn")(
                h,
                mask=mask,
                causal=causal,
                positions=positions,
                cache=self_cache,
                cache_index=cache_index,
                deterministic=deterministic,
                queries=queries,
            ),
            keep=queries,
        )
        if self.cross_attention:
            x, cross_cache = self._cross_attention(
                x, context, context_mask, cross_cache, deterministic
            )
        x = self._mlp_sublayer(x, deterministic)
        if self.cross_attention and self_cache is not None:
            return x, DecoderLayerCache(self_cache, cross_cache)
        return x, self_cache

    @nn.nowrap
    def _mlp_sublayer(self, x: Array, deterministic: bool) -> Array:
        """``x + MLP(LN(x))`` (or the post-LN form)."""
        mlp = MLP(
            self.mlp_hidden or self.mlp_ratio * x.shape[-1],
            dropout_rate=self.dropout_rate,
            use_bias=self.use_bias,
            out_init_std=self.out_init_std,
            dtype=self.dtype,
            output_kernel_layout=self.mlp_output_kernel_layout,
            activation=self.mlp_activation,
            name="mlp",
        )
        x, _ = self._residual("ln_2", x, lambda h: (mlp(h, deterministic=deterministic), None))
        return x

    @nn.nowrap
    def _cross_attention(
        self,
        x: Array,
        context: Array | None,
        context_mask: Array | None,
        context_cache: KVCache | None,
        deterministic: bool,
    ) -> tuple[Array, KVCache]:
        """The cross-attention sub-layer: (new x, the context's keys and values)."""
        if (context is None) == (context_cache is None):
            raise ValueError(
                "a cross-attention block needs the encoder output as `context` on its first "
                "decoding step (or without a cache), and not after: its cache holds the "
                "projections"
            )
        return self._residual(
            "ln_cross",
            x,
            lambda h: self._attention("cross_attn")(
                h,
                context,
                mask=context_mask,
                deterministic=deterministic,
                context_cache=context_cache,
            ),
        )

    @nn.nowrap
    def _residual(
        self, norm: str, x: Array, sublayer: Any, keep: int | None = None
    ) -> tuple[Array, Any]:
        """``x + sublayer(LN(x))`` (pre-LN) or ``LN(x + sublayer(x))`` (post-LN), where
        ``sublayer(h)`` returns ``(output, extra)``; ``(new x, extra)``. With ``keep``, the
        sublayer's output covers the first ``keep`` positions, and so does the new x."""
        residual = x if keep is None else x[:, :keep]
        if self.norm_position == "pre":
            out, extra = sublayer(self._norm(norm)(x))
            return residual + out, extra
        out, extra = sublayer(x)
        return self._norm(norm)(residual + out), extra

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
            head_dim=self.head_dim,
            name=name,
        )

    @nn.nowrap
    def _norm(self, name: str) -> nn.LayerNorm:
        return layer_norm(
            use_bias=self.use_bias, dtype=self.dtype, epsilon=self.layer_norm_epsilon, name=name
        )
