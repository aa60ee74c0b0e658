"""Neural text classifiers: one module, five encoders, the same head.

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
* ``"bert"``: a :class:`jaxllm.models.bert.BERT` of shape ``ClassifierConfig.bert`` reading
  WordPiece ids framed ``[CLS] ... [SEP]``; its pooled ``[CLS]`` state is the summary (as in
  ``BertForSequenceClassification``). Its parameters sit under ``"bert"``, named as a
  pre-training run's, so a pre-trained encoder drops in (:func:`with_pretrained_encoder`).

Embedding dropout drops whole word types (:func:`jaxllm.nn.word_type_dropout`; not in
``"bert"``, which has its own dropout); dropout is applied to the summary before the output
layer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, cast, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import ConfigError, require
from jaxllm.models.bert import BERT, BertConfig
from jaxllm.nn import LSTM, Dense, TransformerBlock, layer_norm, padding_mask, word_type_dropout

EncoderName = Literal["bag", "tfidf_mlp", "lstm", "bilstm", "transformer", "bert"]
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
      bert: the shape of the ``"bert"`` encoder (its ``vocab_size`` is taken from
        ``vocab_size``; the pooler is always built, the MLM and classification heads never);
        ``None`` until the recipe fills it in from the pre-training run. ``embed_dim``,
        ``hidden_size``, ``num_layers`` and ``num_heads`` do not apply to it; ``max_len``
        caps the WordPiece sequence, ``[CLS]`` and ``[SEP]`` included.
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
    bert: BertConfig | None = None

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
        require(
            self.bert is None or self.encoder == "bert",
            f"ClassifierConfig.bert is the 'bert' encoder's shape; the {self.encoder!r} encoder "
            "takes none (leave it None)",
        )
        require(
            self.encoder != "bert" or self.max_len >= 3,
            f"ClassifierConfig.max_len must leave room for [CLS], a piece and [SEP] (>= 3), got "
            f"{self.max_len}",
        )
        if self.bert is not None:
            require(
                self.max_len <= self.bert.max_len,
                f"ClassifierConfig.max_len ({self.max_len}) is longer than the BERT's "
                f"positions (bert.max_len={self.bert.max_len}); lower max_len",
            )

    def bert_encoder(self) -> BertConfig:
        """The ``"bert"`` encoder's config: ``bert`` with this vocabulary, the pooler and no
        heads."""
        if self.bert is None:
            raise ConfigError(
                "ClassifierConfig.bert is None: the 'bert' encoder needs a BertConfig (the "
                "classification recipe takes it from ClassifyConfig.pretrained's run)"
            )
        return dataclasses.replace(
            self.bert, vocab_size=self.vocab_size, pooler=True, mlm_head=False, num_classes=0
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
        if cfg.encoder == "bert":
            bert = BERT(cfg.bert_encoder(), name="bert")
            return bert.pooled(tokens, attention_mask=mask, deterministic=not train)
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


def with_pretrained_encoder(
    params: dict[str, Any], pretrained: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """``params`` of a ``"bert"`` classifier with its encoder's tensors taken from
    ``pretrained`` (a BERT's parameters, e.g. :func:`jaxllm.recipes.load_mlm_run`'s), and the
    names of the encoder's parts ``pretrained`` lacks (left as initialised: the pooler of an
    MLM-only run). ``pretrained``'s heads (MLM, classification) are left out.

    Raises:
      ValueError: a tensor's shape differs, ``pretrained`` has a part the encoder lacks (e.g. a
        deeper model's blocks), or no part matched at all.
    """
    fresh = params["bert"]
    extra = sorted(set(pretrained) - set(fresh) - BERT_HEADS)
    if extra:
        raise ValueError(
            f"the pre-trained BERT has parts the classifier's encoder lacks ({extra}): "
            "the encoder must have the pre-trained run's shape"
        )
    for name, part in fresh.items():
        if name not in pretrained:
            continue
        for path, want, got in _paired_leaves(part, pretrained[name], f"bert/{name}"):
            if want.shape != got.shape:
                raise ValueError(
                    f"pre-trained {path} has shape {tuple(got.shape)}, the classifier's "
                    f"encoder {tuple(want.shape)}: the configs disagree"
                )
    missing = sorted(name for name in fresh if name not in pretrained)
    if len(missing) == len(fresh):
        raise ValueError(
            f"none of the encoder's parts ({sorted(fresh)}) is in the pre-trained parameters "
            f"({sorted(pretrained)}); pass a BERT's parameters"
        )
    merged = {name: pretrained.get(name, part) for name, part in fresh.items()}
    return params | {"bert": jax.tree.map(jnp.asarray, merged)}, missing


BERT_HEADS = frozenset({"mlm_dense", "mlm_ln", "mlm_bias", "classifier"})


def _paired_leaves(ours: Any, theirs: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """``(path, our leaf, their leaf)`` of two pytrees of the same structure.

    Raises:
      ValueError: the structures differ (naming ``prefix``).
    """
    flat_ours, tree_ours = jax.tree_util.tree_flatten_with_path(ours)
    flat_theirs, tree_theirs = jax.tree_util.tree_flatten_with_path(theirs)
    if tree_ours != tree_theirs:
        raise ValueError(f"pre-trained {prefix} holds other tensors than the classifier's")
    return [
        (prefix + jax.tree_util.keystr(path), a, b)
        for (path, a), (_, b) in zip(flat_ours, flat_theirs, strict=True)
    ]


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
