"""An encoder-decoder Transformer (Vaswani et al., 2017) for sequence-to-sequence tasks such as
translation, from the blocks GPT and BERT share.

The encoder reads the source with bidirectional self-attention under a padding mask; the
decoder reads the target with causal self-attention and attends to the encoder's output
through cross-attention. Source and target share one vocabulary and one embedding table, which
is also the output layer (Press & Wolf, 2017), scaled by ``sqrt(n_embd)`` and added to fixed
sinusoidal positions. Blocks are pre-LayerNorm, with a final LayerNorm on each side::

    model = Seq2SeqTransformer(Seq2SeqConfig(vocab_size=8000))
    params = init_seq2seq_params(model.config, key)
    logits = model.apply({"params": params}, source, source_mask, target_in)   # (B, T, V)

Decoding (:mod:`jaxllm.seq2seq_decode`) encodes a source once, projects its keys and values
for every decoder layer's cross-attention on the first step, then runs one token at a time
over a KV cache (:meth:`Seq2SeqTransformer.decode_step`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, cast

import flax.linen as nn
import flax.struct
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require, require_transformer_shape
from jaxllm.models.gpt import DTYPES, MLP_OUTPUT_KERNEL_LAYOUT, check_token_ids
from jaxllm.nn import (
    DecoderLayerCache,
    KVCache,
    TransformerBlock,
    causal_mask,
    layer_norm,
    padding_mask,
    sinusoidal_positions,
)
from jaxllm.seq2seq_decode import Seq2SeqDecoding


@dataclasses.dataclass(frozen=True)
class Seq2SeqConfig:
    """Shape of an encoder-decoder Transformer.

    Attributes:
      vocab_size: ids of the vocabulary source and target share; 0 means "take it from the
        tokenizer" (recipes fill it in; a model can't be built with 0).
      max_len: the longest source, and the longest target (the decoder's input), in tokens.
      n_encoder_layer, n_decoder_layer: depth of each side.
      n_head, n_embd: heads per attention layer and the width.
      mlp_ratio: MLP hidden width / width.
      dropout: on embeddings, attention weights and residual branches.
      bias: biases in dense layers and LayerNorms.
      dtype: compute dtype; parameters and logits stay float32.
    """

    vocab_size: int = 0
    max_len: int = 256
    n_encoder_layer: int = 4
    n_decoder_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    mlp_ratio: int = 4
    dropout: float = 0.1
    bias: bool = True
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    def __post_init__(self):
        require_transformer_shape(
            self, ("max_len", "n_encoder_layer", "n_decoder_layer", "n_head", "n_embd",
                   "mlp_ratio")
        )  # fmt: skip
        require(self.n_embd % 2 == 0, f"Seq2SeqConfig.n_embd must be even, got {self.n_embd}")
        require(
            0.0 <= self.dropout < 1.0,
            f"Seq2SeqConfig.dropout must be in [0, 1), got {self.dropout}",
        )
        require(
            self.dtype in DTYPES,
            f"Seq2SeqConfig.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}",
        )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


@flax.struct.dataclass
class Seq2SeqCache:
    """Decoding state of a batch of sources.

    Attributes:
      layers: one :class:`~jaxllm.nn.DecoderLayerCache` per decoder layer: the target's keys
        and values so far (float[batch · heads, max_len, head_dim]) and the source's, projected
        once (float[batch · heads, source_len, head_dim]; ``None`` before the first step).
      source_mask: bool[batch, source_len], ``True`` at real source tokens.
      index: int32[] target tokens decoded so far.
    """

    layers: tuple[DecoderLayerCache, ...]
    source_mask: Array
    index: Array

    @property
    def max_len(self) -> int:
        return self.layers[0].self_attention.keys.shape[1]


def init_seq2seq_cache(
    config: Seq2SeqConfig, source_mask: Array, max_len: int | None = None
) -> Seq2SeqCache:
    """An empty cache to decode up to ``max_len`` (default: the model's) tokens for each
    source of ``source_mask`` (bool[batch, source_len])."""
    max_len = config.max_len if max_len is None else max_len
    if not 1 <= max_len <= config.max_len:
        raise ValueError(
            f"cannot decode {max_len} tokens: the model's targets hold 1 to {config.max_len} "
            "(Seq2SeqConfig.max_len); ask for fewer new tokens"
        )
    batch = source_mask.shape[0]
    layer = KVCache.zeros(batch, max_len, config.n_head, config.head_dim, DTYPES[config.dtype])
    return Seq2SeqCache(
        layers=tuple(DecoderLayerCache(layer) for _ in range(config.n_decoder_layer)),
        source_mask=source_mask.astype(bool),
        index=jnp.zeros((), jnp.int32),
    )


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer; see the module docstring."""

    config: Seq2SeqConfig

    def setup(self) -> None:
        cfg = self.config
        require(
            cfg.vocab_size > 0,
            "Seq2SeqConfig.vocab_size is 0: set it to the tokenizer's vocab_size",
        )
        dtype = DTYPES[cfg.dtype]
        self.embed = nn.Embed(
            cfg.vocab_size, cfg.n_embd, embedding_init=nn.initializers.normal(cfg.n_embd**-0.5),
            dtype=dtype,
        )  # fmt: skip
        self.encoder_blocks = [
            self._block(False, f"encoder_{i}") for i in range(cfg.n_encoder_layer)
        ]
        self.decoder_blocks = [
            self._block(True, f"decoder_{i}") for i in range(cfg.n_decoder_layer)
        ]
        self.encoder_norm = layer_norm(use_bias=cfg.bias, dtype=dtype)
        self.decoder_norm = layer_norm(use_bias=cfg.bias, dtype=dtype)
        self.embed_dropout = nn.Dropout(cfg.dropout)

    def _block(self, cross_attention: bool, name: str) -> TransformerBlock:
        cfg = self.config
        depth = cfg.n_decoder_layer if cross_attention else cfg.n_encoder_layer
        return TransformerBlock(
            cfg.n_head,
            mlp_ratio=cfg.mlp_ratio,
            dropout_rate=cfg.dropout,
            use_bias=cfg.bias,
            cross_attention=cross_attention,
            out_init_std=0.02 / (2 * depth) ** 0.5,
            dtype=DTYPES[cfg.dtype],
            mlp_output_kernel_layout=MLP_OUTPUT_KERNEL_LAYOUT,  # GPT's, faster on XLA:CPU
            name=name,
        )

    def __call__(
        self,
        source: Array,
        source_mask: Array,
        target: Array,
        *,
        train: bool = False,
    ) -> Array:
        """Teacher-forced next-token logits.

        Args:
          source: int[batch, source_len] ids, right-padded.
          source_mask: bool[batch, source_len], ``False`` at padding.
          target: int[batch, target_len], the decoder's input: the start token, then the
            target shifted right. Padding at its end needs no mask: causal attention never
            lets a real position see it.
          train: apply dropout (needs ``rngs={"dropout": key}``).

        Returns:
          float32[batch, target_len, vocab]
        """
        memory = self.encode(source, source_mask, train=train)
        return self.decode(target, memory, source_mask, train=train)

    def encode(self, source: Array, source_mask: Array, *, train: bool = False) -> Array:
        """The encoder's output, float[batch, source_len, n_embd] (meaningless at padding)."""
        self._check(source, "source")
        x = self._embed(source, jnp.arange(source.shape[1]), train)
        mask = padding_mask(source_mask)
        for block in self.encoder_blocks:
            x, _ = block(x, mask=mask, deterministic=not train)
        return self.encoder_norm(x)

    def decode(
        self, target: Array, memory: Array, source_mask: Array, *, train: bool = False
    ) -> Array:
        """Teacher-forced logits float32[batch, target_len, vocab] of ``target`` (int[batch,
        target_len]) given the encoder's output ``memory`` (float[batch, source_len, n_embd])."""
        self._check(target, "target")
        x = self._embed(target, jnp.arange(target.shape[1]), train)
        context_mask = padding_mask(source_mask)
        for block in self.decoder_blocks:
            x, _ = block(
                x, causal=True, context=memory, context_mask=context_mask,
                deterministic=not train,
            )  # fmt: skip
        return self._logits(x)

    def decode_step(
        self, tokens: Array, cache: Seq2SeqCache, memory: Array | None = None
    ) -> tuple[Array, Seq2SeqCache]:
        """Logits of the next token after ``tokens`` (int[batch], each sequence's newest token),
        float32[batch, vocab], and the cache with that token added.

        The first step (``cache.index == 0``, the cross-attention caches still ``None``)
        needs the encoder output ``memory`` and projects it for every layer; later steps read
        the projections from the cache.
        """
        index = cache.index
        x = self._embed(tokens[:, None], index[None], train=False)  # (B, 1, C)
        self_mask = causal_mask(1, cache.max_len, offset=index)
        context_mask = padding_mask(cache.source_mask)
        layers = []
        for block, layer in zip(self.decoder_blocks, cache.layers, strict=True):
            x, layer = block(
                x, mask=self_mask, context=memory, context_mask=context_mask, cache=layer,
                cache_index=index,
            )  # fmt: skip
            layers.append(layer)
        logits = self._logits(x)[:, 0]
        return logits, Seq2SeqCache(tuple(layers), cache.source_mask, index + 1)

    def _embed(self, tokens: Array, positions: Array, train: bool) -> Array:
        """Scaled token embeddings plus sinusoidal positions: float[batch, len, n_embd]."""
        cfg = self.config
        x = self.embed(tokens) * jnp.sqrt(float(cfg.n_embd)).astype(self.embed.dtype)
        x = x + sinusoidal_positions(positions, cfg.n_embd).astype(x.dtype)
        return self.embed_dropout(x, deterministic=not train)

    def _logits(self, x: Array) -> Array:
        return self.embed.attend(self.decoder_norm(x)).astype(jnp.float32)

    def _check(self, tokens: Array, side: str) -> None:
        check_side(tokens, side, self.config.vocab_size, self.config.max_len)


def check_side(tokens: Array, side: str, vocab_size: int, max_len: int) -> None:
    """Raise ``ValueError`` naming ``side`` (``"source"`` or ``"target"``) unless ``tokens``
    are int[batch, len] ids in ``[0, vocab_size)``, at most ``max_len`` long."""
    try:
        check_token_ids(tokens, vocab_size, context=max_len)
    except ValueError as error:
        raise ValueError(f"{side}: {error}") from None


def reorder_cache(cache: Seq2SeqCache, rows: Array, *, same_sources: bool = False) -> Seq2SeqCache:
    """The cache of the sequences ``rows`` (int[new_batch], indices into the batch).

    With ``same_sources``, each row is replaced by one with the same source (a beam search's
    surviving beams come from the same sentence's beams), so the sources' projected keys and
    values, identical along such rows, are kept as they are rather than copied.
    """

    def take(kv: KVCache | None) -> KVCache | None:
        if kv is None:
            return None

        def gather(buffer: Array) -> Array:
            heads = buffer.shape[0] // cache.source_mask.shape[0]
            by_sequence = buffer.reshape(-1, heads, *buffer.shape[1:])
            return by_sequence[rows].reshape(-1, *buffer.shape[1:])

        return KVCache(gather(kv.keys), gather(kv.values))

    layers = tuple(
        DecoderLayerCache(
            cast(KVCache, take(layer.self_attention)),
            layer.cross_attention if same_sources else take(layer.cross_attention),
        )
        for layer in cache.layers
    )
    source_mask = cache.source_mask if same_sources else cache.source_mask[rows]
    return Seq2SeqCache(layers, source_mask, cache.index)


def init_seq2seq_params(config: Seq2SeqConfig, key: Array) -> dict[str, Any]:
    """Fresh parameters for an encoder-decoder of shape ``config``."""
    source = jnp.zeros((1, min(8, config.max_len)), jnp.int32)
    variables = Seq2SeqTransformer(config).init(key, source, jnp.ones(source.shape, bool), source)
    return cast(dict, variables["params"])


def transformer_decoding(model: Seq2SeqTransformer) -> Seq2SeqDecoding:
    """Decoding functions of an encoder-decoder Transformer: the source encoded once, its
    keys and values projected once per layer, the target's kept in a KV cache."""

    def start(params: Any, source: Array, source_mask: Array, tokens: Array, max_len: int):
        variables = {"params": params}
        memory = model.apply(variables, source, source_mask, method=Seq2SeqTransformer.encode)
        cache = init_seq2seq_cache(model.config, source_mask, max_len)
        return model.apply(variables, tokens, cache, memory, method=Seq2SeqTransformer.decode_step)

    def step(params: Any, tokens: Array, cache: Any):
        return model.apply({"params": params}, tokens, cache, method=Seq2SeqTransformer.decode_step)

    def reorder(cache: Any, rows: Array, same_sources: bool):
        return reorder_cache(cache, rows, same_sources=same_sources)

    return Seq2SeqDecoding(start, step, reorder, model.config.vocab_size)
