"""Neural text classifiers: one module, four encoders, the same head.

::

    model = TextClassifier(ClassifierConfig("bilstm", vocab_size=20_000, num_classes=2))
    params = init_classifier(model.config, key)
    logits = model.apply({"params": params}, tokens, mask)                      # (B, K)
    logits = model.apply({"params": params}, tokens, mask, train=True, rngs={"dropout": key})

Encoders (``ClassifierConfig.encoder``), each reading ``tokens int[batch, seq]`` right-padded
with ``mask bool[batch, seq]`` ``True`` at real tokens:

* ``"bag"``: a bag of embeddings, their mean over the sequence, then a ReLU layer (a deep
  averaging network, Iyyer et al., 2015). Its table can start from word2vec vectors.
* ``"tfidf_mlp"``: an MLP over TF-IDF features: ``tokens`` are the feature ids present in a
  document and ``weights`` their TF-IDF values, so the first layer ``Σ_j x_j W_j + b`` is the
  sparse product ``x W + b`` and a ReLU layer follows.
* ``"lstm"`` / ``"bilstm"``: :class:`jaxllm.nn.LSTM` with variational dropout; the last layer's
  final state of each direction (each sequence's own last token) is the summary.
* ``"transformer"``: learned positions and pre-LayerNorm :class:`jaxllm.nn.TransformerBlock` s
  without a causal mask, padded keys masked; the mean of the final states is the summary.

Embedding dropout drops whole word types (:func:`jaxllm.nn.word_type_dropout`); dropout is
applied to the summary before the output layer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, cast, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.nn import LSTM, Dense, TransformerBlock, layer_norm, padding_mask, word_type_dropout

EncoderName = Literal["bag", "tfidf_mlp", "lstm", "bilstm", "transformer"]
ENCODERS: tuple[str, ...] = get_args(EncoderName)


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Shape of a :class:`TextClassifier`.

    Attributes:
      encoder: one of ``ENCODERS`` (see the module docstring).
      vocab_size: word (or TF-IDF feature) ids; 0: filled in by the recipe from its vocabulary.
      num_classes: output classes; 0: filled in by the recipe from the labels.
      embed_dim: width of the embeddings (the first layer's width for ``"tfidf_mlp"``; the model
        width for ``"transformer"``).
      hidden_size: the LSTM's state per direction, or the ReLU layer of ``"bag"``.
      num_layers: stacked LSTM layers or Transformer blocks.
      num_heads: attention heads of ``"transformer"``.
      max_len: the longest sequence (the Transformer's position table).
      dropout: dropout on the summary before the output layer, inside the Transformer, and the
        LSTM's variational dropout.
      embedding_dropout: the probability that a word type is dropped from a sequence.
      lstm_summary: what sums up a sequence read by an LSTM: ``"final"``, the last layer's
        final state (of each direction), or ``"max"``, the maximum of its outputs over the
        sequence's real tokens, feature by feature (Conneau et al., 2017).
    """

    encoder: EncoderName = "bilstm"
    vocab_size: int = 0
    num_classes: int = 0
    embed_dim: int = 300
    hidden_size: int = 256
    num_layers: int = 1
    num_heads: int = 4
    max_len: int = 128
    dropout: float = 0.3
    embedding_dropout: float = 0.1
    lstm_summary: Literal["final", "max"] = "final"

    def __post_init__(self):
        require(
            self.encoder in ENCODERS,
            f"ClassifierConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}",
        )
        for name in ("vocab_size", "num_classes"):
            require(getattr(self, name) >= 0, f"ClassifierConfig.{name} must be >= 0")
        for name in ("embed_dim", "hidden_size", "num_layers", "num_heads", "max_len"):
            require(getattr(self, name) > 0, f"ClassifierConfig.{name} must be > 0")
        require(
            0.0 <= self.dropout < 1.0 and 0.0 <= self.embedding_dropout < 1.0,
            "ClassifierConfig.dropout and embedding_dropout must be in [0, 1), got "
            f"{self.dropout}, {self.embedding_dropout}",
        )
        require(
            self.lstm_summary in ("final", "max"),
            f"ClassifierConfig.lstm_summary must be 'final' or 'max', got {self.lstm_summary!r}",
        )
        require(
            self.encoder != "transformer" or self.embed_dim % self.num_heads == 0,
            f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})",
        )


class TextClassifier(nn.Module):
    """Sequence -> class logits."""

    config: ClassifierConfig

    @nn.compact
    def __call__(
        self,
        tokens: Array,
        mask: Array,
        weights: Array | None = None,
        *,
        train: bool = False,
    ) -> Array:
        """Class logits.

        Args:
          tokens: int[batch, seq] word ids (feature ids for ``"tfidf_mlp"``).
          mask: bool[batch, seq], ``True`` at real tokens, padding only at the end.
          weights: float[batch, seq], the TF-IDF values (``"tfidf_mlp"`` only).
          train: dropout on (needs ``rngs={"dropout": key}``).

        Returns:
          float32[batch, num_classes]
        """
        cfg = self.config
        require(
            cfg.vocab_size > 0 and cfg.num_classes > 0,
            "ClassifierConfig.vocab_size and num_classes are 0: fill them in from the data",
        )
        require(tokens.ndim == 2 and mask.shape == tokens.shape, "need tokens and mask [B, T]")
        require(
            (weights is not None) == (cfg.encoder == "tfidf_mlp"),
            "weights (TF-IDF values) are taken by the 'tfidf_mlp' encoder only, and needed by it",
        )
        summary = self._encode(tokens, mask.astype(bool), weights, train)  # (B, D)
        summary = nn.Dropout(cfg.dropout)(summary, deterministic=not train)
        return Dense(cfg.num_classes, name="output")(summary).astype(jnp.float32)

    @nn.nowrap
    def _encode(self, tokens: Array, mask: Array, weights: Array | None, train: bool) -> Array:
        cfg = self.config
        if cfg.encoder == "tfidf_mlp":
            return _WeightedBag(cfg, name="encoder")(tokens, mask, cast(Array, weights))
        x = nn.Embed(cfg.vocab_size, cfg.embed_dim, name="embedding")(tokens)  # (B, T, E)
        if train and cfg.embedding_dropout > 0:
            rng = self.make_rng("dropout")
            x = x * word_type_dropout(rng, tokens, cfg.vocab_size, cfg.embedding_dropout)[..., None]
        if cfg.encoder == "bag":
            hidden = Dense(cfg.hidden_size, name="hidden")(_masked_mean(x, mask))
            return jax.nn.relu(hidden)
        if cfg.encoder in ("lstm", "bilstm"):
            lstm = LSTM(
                cfg.hidden_size,
                num_layers=cfg.num_layers,
                bidirectional=cfg.encoder == "bilstm",
                dropout_rate=cfg.dropout,
                name="lstm",
            )
            outputs, final = lstm(x, mask, deterministic=not train)
            if cfg.lstm_summary == "final":
                return final
            pooled = jnp.max(jnp.where(mask[..., None], outputs, -jnp.inf), axis=1)
            return jnp.where(jnp.any(mask, axis=1)[:, None], pooled, 0.0)  # no token: zeros
        return _TransformerEncoder(cfg, name="encoder")(x, mask, train)


class _WeightedBag(nn.Module):
    """``relu(Σ_j w_j W[t_j] + b)``: the first layer of an MLP over sparse features."""

    config: ClassifierConfig

    @nn.compact
    def __call__(self, tokens: Array, mask: Array, weights: Array) -> Array:
        table = nn.Embed(self.config.vocab_size, self.config.embed_dim, name="input")(tokens)
        bias = self.param("bias", nn.initializers.zeros, (self.config.embed_dim,))
        x = jnp.einsum("bt,bte->be", weights * mask, table) + bias
        return jax.nn.relu(x)


class _TransformerEncoder(nn.Module):
    """Embeddings + learned positions -> bidirectional blocks -> LayerNorm -> masked mean."""

    config: ClassifierConfig

    @nn.compact
    def __call__(self, x: Array, mask: Array, train: bool) -> Array:
        cfg = self.config
        require(
            x.shape[1] <= cfg.max_len,
            f"sequence of {x.shape[1]} tokens is longer than max_len={cfg.max_len}",
            ValueError,
        )
        init = nn.initializers.normal(0.02)
        x = x + nn.Embed(cfg.max_len, cfg.embed_dim, embedding_init=init, name="positions")(
            jnp.arange(x.shape[1])
        )
        x = nn.Dropout(cfg.dropout)(x, deterministic=not train)
        keys = padding_mask(mask)
        for i in range(cfg.num_layers):
            block = TransformerBlock(cfg.num_heads, dropout_rate=cfg.dropout, name=f"block_{i}")
            x, _ = block(x, mask=keys, deterministic=not train)
        return _masked_mean(layer_norm(name="ln_f")(x), mask)


def _masked_mean(x: Array, mask: Array) -> Array:
    """float[batch, seq, d], bool[batch, seq] -> float[batch, d]: the mean over real tokens."""
    m = mask[..., None].astype(x.dtype)
    return jnp.sum(x * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


def init_classifier(config: ClassifierConfig, key: Array) -> dict[str, Any]:
    """Fresh parameters of a :class:`TextClassifier` of shape ``config``."""
    tokens = jnp.zeros((1, 4), jnp.int32)
    mask = jnp.ones((1, 4), bool)
    weights = jnp.ones((1, 4)) if config.encoder == "tfidf_mlp" else None
    return cast(dict, TextClassifier(config).init(key, tokens, mask, weights)["params"])


def with_embeddings(params: dict[str, Any], vectors: Any) -> dict[str, Any]:
    """``params`` with the embedding table replaced by ``vectors`` (float[vocab, embed_dim]),
    e.g. word2vec vectors in the vocabulary's id order."""
    table = params["embedding"]["embedding"]
    require(
        vectors.shape == table.shape,
        f"vectors of shape {tuple(vectors.shape)} for an embedding table of {table.shape}",
        ValueError,
    )
    return params | {"embedding": {"embedding": jnp.asarray(vectors, table.dtype)}}
