"""BERT: a bidirectional Transformer encoder (Devlin et al., 2019).

Token, position and segment embeddings summed and normalised, a stack of post-LayerNorm
blocks (or pre-LN, ``norm_position="pre"``) with exact GELU, padding masks, and three heads
on top: the pooler (``tanh`` of a dense layer over the first token, ``[CLS]``), the masked
language model head tied to the token embedding, and a classification head over the pooler::

    model = BERT(BertConfig(vocab_size=30522, num_classes=2))
    params = init_bert_params(model.config, key)
    hidden = model.apply({"params": params}, tokens, attention_mask=mask)        # (B, T, C)
    logits = model.apply({"params": params}, tokens, method=BERT.mlm_logits)     # (B, T, V)
    logits = model.apply({"params": params}, tokens, method=BERT.class_logits)   # (B, classes)

Parameter names follow GPT's (``wte``, ``wpe``, ``h_<i>``) where the two models share a part;
:mod:`jaxllm.interop` maps them to and from Hugging Face's ``BertModel`` names.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, cast

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require, require_transformer_shape
from jaxllm.models.gpt import DTYPES
from jaxllm.nn import Dense, TransformerBlock, layer_norm
from jaxllm.nn.masks import padding_mask
from jaxllm.nn.mlp import ACTIVATIONS

INIT_STD = 0.02  # BERT's initializer_range


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Shape of a BERT.

    Attributes:
      vocab_size: number of token ids (0: "take it from the tokenizer"; a model can't be built
        with 0).
      max_len: longest sequence (learned positions; Hugging Face's
        ``max_position_embeddings``).
      type_vocab_size: segment ids (2: sentence A and B).
      n_layer, n_head, n_embd: depth, heads per layer and width.
      mlp_ratio: the MLP's hidden width over ``n_embd`` (``intermediate_size / hidden_size``).
      dropout: on embeddings, attention weights, residual branches and the classifier's input.
      layer_norm_epsilon: 1e-12, as BERT's.
      norm_position: ``"post"`` (the original BERT) or ``"pre"`` (pre-LN blocks, with a final
        LayerNorm after the last block, which train more stably at depth).
      pooler: the ``[CLS]`` pooler (needed by the classification head).
      mlm_head: the masked-language-model head.
      num_classes: classes of the classification head (0: no head).
      dtype: compute dtype, ``"float32"`` or ``"bfloat16"``; parameters stay float32 and the
        heads return float32.
    """

    vocab_size: int = 0
    max_len: int = 512
    type_vocab_size: int = 2
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    mlp_ratio: int = 4
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-12
    norm_position: Literal["post", "pre"] = "post"
    pooler: bool = True
    mlm_head: bool = True
    num_classes: int = 0
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    def __post_init__(self):
        require_transformer_shape(
            self, ("max_len", "type_vocab_size", "n_layer", "n_head", "n_embd", "mlp_ratio")
        )
        require(
            0.0 <= self.dropout < 1.0, f"BertConfig.dropout must be in [0, 1), got {self.dropout}"
        )
        require(
            self.norm_position in ("post", "pre"),
            f"BertConfig.norm_position must be 'post' or 'pre', got {self.norm_position!r}",
        )
        require(
            isinstance(self.num_classes, int) and self.num_classes >= 0,
            f"BertConfig.num_classes must be an int >= 0, got {self.num_classes!r}",
        )
        require(
            self.num_classes == 0 or self.pooler,
            "BertConfig.num_classes > 0 needs the pooler (pooler=True): the classification "
            "head reads the pooled [CLS] state",
        )
        require(
            self.dtype in DTYPES,
            f"BertConfig.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}",
        )


class BERT(nn.Module):
    """Embeddings -> blocks -> (pooler, MLM head, classification head).

    ``__call__`` returns the final hidden states; :meth:`pooled`, :meth:`mlm_logits` and
    :meth:`class_logits` (through ``apply(..., method=...)``) run the encoder and a head.
    """

    config: BertConfig

    def setup(self) -> None:
        cfg = self.config
        if cfg.vocab_size == 0:
            raise ValueError("BertConfig.vocab_size is 0: set it to the tokenizer's vocab_size")
        init = nn.initializers.normal(INIT_STD)
        dtype = DTYPES[cfg.dtype]
        self.wte = nn.Embed(cfg.vocab_size, cfg.n_embd, embedding_init=init, dtype=dtype)
        self.wpe = nn.Embed(cfg.max_len, cfg.n_embd, embedding_init=init, dtype=dtype)
        self.wtt = nn.Embed(cfg.type_vocab_size, cfg.n_embd, embedding_init=init, dtype=dtype)
        self.ln_embed = layer_norm(epsilon=cfg.layer_norm_epsilon, dtype=dtype)
        self.blocks = [
            TransformerBlock(
                cfg.n_head,
                mlp_ratio=cfg.mlp_ratio,
                dropout_rate=cfg.dropout,
                norm_position=cfg.norm_position,
                layer_norm_epsilon=cfg.layer_norm_epsilon,
                mlp_activation="gelu",
                dtype=dtype,
                name=f"h_{i}",
            )
            for i in range(cfg.n_layer)
        ]
        if cfg.norm_position == "pre":
            self.ln_f = layer_norm(epsilon=cfg.layer_norm_epsilon, dtype=dtype)
        if cfg.pooler:
            self.pooler_dense = Dense(cfg.n_embd, kernel_init=init, dtype=dtype)
        if cfg.mlm_head:
            self.mlm_dense = Dense(cfg.n_embd, kernel_init=init, dtype=dtype)
            self.mlm_ln = layer_norm(epsilon=cfg.layer_norm_epsilon, dtype=dtype)
            self.mlm_bias = self.param("mlm_bias", nn.initializers.zeros, (cfg.vocab_size,))
        if cfg.num_classes:
            self.classifier = Dense(cfg.num_classes, kernel_init=init, dtype=dtype)
        self.dropout = nn.Dropout(cfg.dropout)

    def __call__(
        self,
        tokens: Array,
        token_types: Array | None = None,
        attention_mask: Array | None = None,
        *,
        deterministic: bool = True,
    ) -> Array:
        """Encode a batch.

        Args:
          tokens: int[batch, seq] token ids, ``seq <= max_len``.
          token_types: int[batch, seq] segment ids (``None``: all 0).
          attention_mask: bool or 0/1 int[batch, seq], ``True`` at real tokens (``None``: all
            real). Padding is never attended to; its own hidden states are computed but mean
            nothing.
          deterministic: no dropout when ``True``; otherwise the ``"dropout"`` RNG is used.

        Returns:
          float[batch, seq, n_embd], in the compute dtype
        """
        return self._encode(tokens, token_types, attention_mask, deterministic=deterministic)

    def _encode(
        self,
        tokens: Array,
        token_types: Array | None = None,
        attention_mask: Array | None = None,
        *,
        deterministic: bool = True,
        last_queries: int | None = None,
    ) -> Array:
        """``__call__``; with ``last_queries``, the last block computes that many first
        positions only: float[batch, last_queries, n_embd]."""
        _check_inputs(self.config, tokens, token_types, attention_mask)
        positions = jnp.arange(tokens.shape[1])[None, :]
        types = jnp.zeros_like(tokens) if token_types is None else token_types
        x = self.wte(tokens) + self.wpe(positions) + self.wtt(types)
        x = self.dropout(self.ln_embed(x), deterministic=deterministic)
        mask = None if attention_mask is None else padding_mask(attention_mask)
        for i, block in enumerate(self.blocks):
            queries = last_queries if i == len(self.blocks) - 1 else None
            x, _ = block(x, mask=mask, deterministic=deterministic, queries=queries)
        return self.ln_f(x) if self.config.norm_position == "pre" else x

    def pooled(self, tokens: Array, *args, deterministic: bool = True, **kwargs) -> Array:
        """``tanh(Dense(hidden[:, 0]))``: float[batch, n_embd], the ``[CLS]`` summary.
        Takes ``__call__``'s arguments. The last block computes the ``[CLS]`` position only
        (the one read), which spares most of that block's work."""
        _require_part(self.config.pooler, "the pooler", "pooler=True")
        hidden = self._encode(tokens, *args, deterministic=deterministic, last_queries=1, **kwargs)
        return jnp.tanh(self.pooler_dense(hidden[:, 0]))

    def mlm_logits(
        self,
        tokens: Array,
        *args,
        positions: Array | None = None,
        deterministic: bool = True,
        **kwargs,
    ) -> Array:
        """Masked-word logits float32[batch, seq, vocab]: ``LN(GELU(Dense(hidden)))`` times
        the token embedding's transpose, plus a bias per word. Takes ``__call__``'s
        arguments; with ``positions`` (int[batch, k], e.g.
        :attr:`jaxllm.data.MaskedBatch.positions`) only those positions' logits,
        float32[batch, k, vocab], which spares the head's work at the tokens not scored."""
        _require_part(self.config.mlm_head, "an MLM head", "mlm_head=True")
        hidden = self(tokens, *args, deterministic=deterministic, **kwargs)
        if positions is not None:
            hidden = jnp.take_along_axis(hidden, positions[..., None], axis=1)  # (B, k, C)
        h = self.mlm_ln(ACTIVATIONS["gelu"](self.mlm_dense(hidden)))  # the blocks' exact GELU
        return self.wte.attend(h).astype(jnp.float32) + self.mlm_bias

    def class_logits(self, tokens: Array, *args, deterministic: bool = True, **kwargs) -> Array:
        """Classification logits float32[batch, num_classes] from the dropped-out pooled
        state. Takes ``__call__``'s arguments."""
        _require_part(self.config.num_classes > 0, "a classification head", "num_classes > 0")
        pooled = self.pooled(tokens, *args, deterministic=deterministic, **kwargs)
        logits = self.classifier(self.dropout(pooled, deterministic=deterministic))
        return logits.astype(jnp.float32)

    def every_part(self, tokens: Array) -> tuple[Array, ...]:
        """Run every part the config has (for ``init``): the hidden states and each head."""
        outputs = [self(tokens)]
        if self.config.mlm_head:
            outputs.append(self.mlm_logits(tokens))
        if self.config.num_classes:
            outputs.append(self.class_logits(tokens))
        elif self.config.pooler:
            outputs.append(self.pooled(tokens))
        return tuple(outputs)


def init_bert_params(config: BertConfig, key: Array) -> dict:
    """Fresh parameters of every part ``config`` has."""
    tokens = jnp.zeros((1, 2), jnp.int32)
    return cast(dict, BERT(config).init(key, tokens, method=BERT.every_part)["params"])


def _require_part(present: bool, part: str, setting: str) -> None:
    if not present:
        raise ValueError(f"this BERT has no {part}: build it with BertConfig({setting})")


def _check_inputs(
    config: BertConfig, tokens: Array, token_types: Array | None, attention_mask: Array | None
) -> None:
    """Raise ``ValueError`` naming what is wrong with a batch's shapes or types."""
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"BERT tokens must be int[batch, seq], got {tokens.dtype}{tokens.shape}")
    if tokens.shape[1] > config.max_len:
        raise ValueError(
            f"sequence of {tokens.shape[1]} tokens is longer than BertConfig.max_len "
            f"({config.max_len}); truncate it or use a model with more positions"
        )
    for name, array in (("token_types", token_types), ("attention_mask", attention_mask)):
        if array is not None and array.shape != tokens.shape:
            raise ValueError(
                f"{name} must be [batch, seq] = {tokens.shape} like tokens, got {array.shape}"
            )
    if attention_mask is not None and jnp.issubdtype(attention_mask.dtype, jnp.floating):
        raise ValueError(
            "attention_mask must be bool or 0/1 integers (True at real tokens), not floats"
        )
