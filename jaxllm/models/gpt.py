"""GPT: a decoder-only Transformer language model (Radford et al., 2018/2019).

Pre-LayerNorm blocks, learned or rotary positions, the output projection tied to the token
embedding, dropout, optional biases -- the architecture of nanoGPT, as a Flax module used
through pure functions::

    model = GPT(GPTConfig(vocab_size=65))
    params = model.init(key, tokens)["params"]
    logits = model.apply({"params": params}, tokens)                       # (B, T, V)
    logits = model.apply({"params": params}, tokens, train=True, rngs={"dropout": key})
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, cast

import flax.linen as nn
import flax.struct
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxllm.config import require, require_transformer_shape
from jaxllm.nn import KVCache, TransformerBlock, layer_norm
from jaxllm.nn.attention import ATTENTION_IMPLEMENTATIONS, AttentionImplementation
from jaxllm.nn.blocked_attention import CPU_ROW_GROUPS
from jaxllm.nn.dense import KernelLayout
from jaxllm.nn.masks import causal_mask, combine_masks
from jaxllm.nn.masks import padding_mask as key_padding_mask

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

# The MLP output projection narrows 4·width -> width; stored [width, 4·width], its weight
# gradient is the wide product XLA:CPU computes fastest (see jaxllm.nn.Dense): ~3-4% of the
# training step on a 2-core CPU. Its kernel is therefore torch.nn.Linear's [out, in].
MLP_OUTPUT_KERNEL_LAYOUT: KernelLayout = "out_in"


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT.

    Attributes:
      vocab_size: number of token ids; 0 means "take it from the tokenizer" (recipes fill it in,
        a model can't be built with 0).
      block_size: longest sequence (context length) the model accepts.
      n_layer, n_head, n_embd: depth, heads per layer and width.
      dropout: dropout rate on embeddings, attention weights and residual branches.
      bias: biases in dense layers and LayerNorms (nanoGPT's ``bias``).
      positions: ``"learned"`` absolute embeddings (GPT-2) or ``"rotary"`` (RoPE).
      dtype: compute dtype, ``"float32"`` or ``"bfloat16"``; parameters stay float32 and the
        logits are float32.
      attention: how attention is computed in training and scoring (decoding with a KV cache
        always uses ``cached_attention``): ``"jax"`` (``jax.nn.dot_product_attention``, the
        portable default) or ``"cpu_blocked"`` (query blocks and row groups tuned for XLA:CPU,
        :mod:`jaxllm.nn.blocked_attention`; :func:`with_cpu_tuned_attention` picks it for a CPU).
      attention_row_groups: groups of batch rows of ``"cpu_blocked"`` attention: 2 measured
        faster on a single CPU device, 1 (no split) with several devices; only ``"cpu_blocked"``
        takes a value other than 1.
      head_size: each head's width (0: ``n_embd // n_head``); set by structured pruning
        (:func:`jaxllm.compress.prune_heads_and_neurons`), which keeps fewer heads of the
        original width.
      mlp_width: the MLP's hidden width (0: ``4 · n_embd``); set by structured pruning.
    """

    vocab_size: int = 0
    block_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = False
    positions: Literal["learned", "rotary"] = "learned"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attention: AttentionImplementation = "jax"
    attention_row_groups: int = 1
    head_size: int = 0
    mlp_width: int = 0

    def __post_init__(self):
        require_transformer_shape(self, ("block_size", "n_layer", "n_head", "n_embd"))
        require(
            0.0 <= self.dropout < 1.0, f"GPTConfig.dropout must be in [0, 1), got {self.dropout}"
        )
        require(
            self.positions in ("learned", "rotary"),
            f"GPTConfig.positions must be 'learned' or 'rotary', got {self.positions!r}",
        )
        require(
            isinstance(self.head_size, int) and isinstance(self.mlp_width, int)
            and self.head_size >= 0 and self.mlp_width >= 0,
            f"GPTConfig.head_size and mlp_width must be ints >= 0 (0: the standard width), "
            f"got {self.head_size!r}, {self.mlp_width!r}",
        )  # fmt: skip
        require(
            self.positions != "rotary" or self.head_dim % 2 == 0,
            "rotary positions need an even head size (head_size, or n_embd / n_head)",
        )
        require(
            self.dtype in DTYPES,
            f"GPTConfig.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}",
        )
        require(
            self.attention in ATTENTION_IMPLEMENTATIONS,
            f"GPTConfig.attention must be one of {list(ATTENTION_IMPLEMENTATIONS)}, "
            f"got {self.attention!r}",
        )
        require(
            isinstance(self.attention_row_groups, int) and self.attention_row_groups >= 1,
            "GPTConfig.attention_row_groups must be an int >= 1, "
            f"got {self.attention_row_groups!r}",
        )
        require(
            self.attention_row_groups == 1 or self.attention == "cpu_blocked",
            f"GPTConfig.attention_row_groups={self.attention_row_groups} applies to "
            f"attention='cpu_blocked' only, not {self.attention!r}; leave it at 1",
        )

    @property
    def head_dim(self) -> int:
        return self.head_size or self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        """The MLP's hidden width: ``mlp_width``, or 4 × ``n_embd`` (GPT-2's)."""
        return self.mlp_width or 4 * self.n_embd


def with_cpu_tuned_attention(config: GPTConfig, platform: str, device_count: int) -> GPTConfig:
    """``config`` with the attention measured fastest for ``device_count`` devices of ``platform``.

    On ``"cpu"``: ``"cpu_blocked"`` attention, in ``CPU_ROW_GROUPS`` row groups on a single
    device and 1 on several (a batch sharded over them would be re-sliced). Elsewhere
    ``config`` unchanged. For scripts that know their machine, called outside any trace, e.g.
    ``with_cpu_tuned_attention(config, jax.default_backend(), jax.device_count())``.
    """
    if platform != "cpu":
        return config
    return dataclasses.replace(
        config,
        attention="cpu_blocked",
        attention_row_groups=CPU_ROW_GROUPS if device_count == 1 else 1,
    )


@flax.struct.dataclass
class GPTCache:
    """Decoding state: each layer's keys/values, which slots hold real tokens, the fill level.

    Attributes:
      layers: one :class:`KVCache` per layer, each float[batch · heads, max_len, head_dim].
      key_mask: bool[batch, max_len], ``True`` for slots holding a real (non-padding) token.
      index: int32[] number of slots filled so far (the same for every row).
    """

    layers: tuple[KVCache, ...]
    key_mask: Array
    index: Array

    @property
    def max_len(self) -> int:
        return self.key_mask.shape[1]


def init_cache(config: GPTConfig, batch_size: int, max_len: int | None = None) -> GPTCache:
    """An empty cache for ``batch_size`` sequences of up to ``max_len`` (default: context)
    tokens."""
    max_len = config.block_size if max_len is None else max_len
    if max_len > config.block_size:
        raise ValueError(
            f"a cache of {max_len} tokens exceeds the model's context of {config.block_size}; "
            "generate fewer tokens or use a shorter prompt"
        )
    dtype = DTYPES[config.dtype]
    layer = KVCache.zeros(batch_size, max_len, config.n_head, config.head_dim, dtype)
    return GPTCache(
        layers=tuple(layer for _ in range(config.n_layer)),
        key_mask=jnp.zeros((batch_size, max_len), bool),
        index=jnp.zeros((), jnp.int32),
    )


def check_tokens(tokens: Any, config: GPTConfig) -> None:
    """Raise ``ValueError`` naming the problem if ``tokens`` can't be fed to the model.

    Shape and dtype are checked always; the id range only for concrete (non-traced) arrays.
    """
    check_token_ids(tokens, config.vocab_size, context=config.block_size)


def check_token_ids(tokens: Any, vocab_size: int, *, context: int | None = None) -> None:
    """Raise ``ValueError`` naming the problem unless ``tokens`` are int[batch, seq] ids in
    ``[0, vocab_size)`` (checked for concrete arrays only), at most ``context`` long (``None``:
    any length)."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be int[batch, seq], got shape {tuple(tokens.shape)}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens must be integer token ids, got dtype {tokens.dtype}")
    if context is not None and tokens.shape[1] > context:
        raise ValueError(
            f"sequence of {tokens.shape[1]} tokens is longer than the model's context "
            f"(block_size={context}); crop it or train a model with a longer context"
        )
    if not isinstance(tokens, jax.core.Tracer) and tokens.size:
        ids = np.asarray(tokens)
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"token id {bad} is outside the vocabulary [0, {vocab_size}); the tokens "
                "were probably made by a different tokenizer than the model was built for"
            )


class GPT(nn.Module):
    """Decoder-only Transformer language model."""

    config: GPTConfig

    @nn.compact
    def __call__(
        self,
        tokens: Array,
        *,
        train: bool = False,
        padding_mask: Array | None = None,
        positions: Array | None = None,
        cache: GPTCache | None = None,
    ) -> Array | tuple[Array, GPTCache]:
        """Next-token logits.

        Args:
          tokens: int[batch, seq] token ids.
          train: apply dropout (needs ``rngs={"dropout": key}``).
          padding_mask: bool[batch, seq], ``False`` at padding; padded keys are never attended to.
          positions: int[batch, seq] position of each token (default ``0..seq-1``, or continuing
            from the cache's fill level); left-padded prompts pass their own.
          cache: a :class:`GPTCache`; the new tokens' keys/values are appended to it.

        Returns:
          float32[batch, seq, vocab] logits, or ``(logits, updated cache)`` when ``cache`` is given.
        """
        cfg = self.config
        require(
            cfg.vocab_size > 0, "GPTConfig.vocab_size is 0: set it to the tokenizer's vocab_size"
        )
        check_tokens(tokens, cfg)
        batch, seq = tokens.shape
        dtype = DTYPES[cfg.dtype]
        start = 0 if cache is None else cache.index
        if positions is None:
            positions = jnp.broadcast_to(start + jnp.arange(seq), (batch, seq))

        if cache is None:  # attention applies the causal mask itself (see `causal=` below)
            mask = None if padding_mask is None else key_padding_mask(padding_mask)
        else:
            cache, mask = _cache_with_new_slots(cache, padding_mask, batch, seq)

        x, wte = self._embed(tokens, positions, dtype)  # (B, T, C)
        x = nn.Dropout(cfg.dropout)(x, deterministic=not train)

        new_layers = []
        for i in range(cfg.n_layer):
            x, layer_cache = self._block(i, dtype)(
                x,
                mask=mask,
                causal=cache is None,
                positions=positions,
                cache=None if cache is None else cache.layers[i],
                cache_index=start,
                deterministic=not train,
            )
            new_layers.append(layer_cache)
        x = layer_norm(use_bias=cfg.bias, dtype=dtype, name="ln_f")(x)
        logits = wte.attend(x).astype(jnp.float32)  # weight tying: (B, T, C) @ (C, V)
        if cache is None:
            return logits
        return logits, GPTCache(
            layers=tuple(new_layers), key_mask=cache.key_mask, index=cache.index + seq
        )

    @nn.nowrap
    def _embed(self, tokens: Array, positions: Array, dtype: Any) -> tuple[Array, nn.Embed]:
        """Token embeddings (plus learned position embeddings, if the model has them):
        float[batch, seq, n_embd]; and the token table, which the output layer shares."""
        cfg = self.config
        init = nn.initializers.normal(0.02)
        wte = nn.Embed(cfg.vocab_size, cfg.n_embd, embedding_init=init, dtype=dtype, name="wte")
        x = wte(tokens)
        if cfg.positions == "learned":
            x = x + nn.Embed(
                cfg.block_size, cfg.n_embd, embedding_init=init, dtype=dtype, name="wpe"
            )(positions)
        return x, wte

    @nn.nowrap
    def _block(self, i: int, dtype: Any) -> TransformerBlock:
        """Transformer block ``i`` (named ``h_{i}``, as GPT-2's)."""
        cfg = self.config
        return TransformerBlock(
            cfg.n_head,
            dropout_rate=cfg.dropout,
            use_bias=cfg.bias,
            rotary=cfg.positions == "rotary",
            out_init_std=0.02 / (2 * cfg.n_layer) ** 0.5,  # GPT-2's scaled residual init
            dtype=dtype,
            attention=cfg.attention,
            attention_row_groups=cfg.attention_row_groups,
            mlp_output_kernel_layout=MLP_OUTPUT_KERNEL_LAYOUT,
            head_dim=cfg.head_size or None,
            mlp_hidden=cfg.mlp_width or None,
            name=f"h_{i}",
        )


def _cache_with_new_slots(
    cache: GPTCache, padding_mask: Array | None, batch: int, seq: int
) -> tuple[GPTCache, Array | None]:
    """``cache`` with the slots of ``seq`` new tokens marked real (unless padding; each layer
    writes their keys/values), and the mask of those queries over all its slots."""
    start = cache.index
    new_valid = jnp.ones((batch, seq), bool) if padding_mask is None else padding_mask.astype(bool)
    cache = dataclasses.replace(
        cache, key_mask=jax.lax.dynamic_update_slice(cache.key_mask, new_valid, (0, start))
    )
    mask = combine_masks(
        causal_mask(seq, cache.max_len, offset=start), key_padding_mask(cache.key_mask)
    )
    return cache, mask


def count_params(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def init_params(config: GPTConfig, key: Array) -> dict:
    """Fresh parameters for a GPT of shape ``config``."""
    tokens = jnp.zeros((1, min(8, config.block_size)), jnp.int32)
    # flax types the variables as a FrozenDict or a dict; it returns a dict by default.
    return cast(dict, GPT(config).init(key, tokens)["params"])
