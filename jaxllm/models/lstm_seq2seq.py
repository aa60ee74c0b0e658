"""The recurrent baseline of translation: an attentional LSTM encoder-decoder (Luong et al.,
2015, "global attention" with the "general" score).

A bidirectional LSTM reads the source; a unidirectional LSTM reads the target (teacher
forcing, one ``lax.scan`` over the whole target). At every target position ``t`` the decoder's
state ``h_t`` attends to the source states ``s``: ``a_t = softmax(h_t W_a sᵀ)`` over the real
source tokens, ``c_t = a_t s``, ``h̃_t = tanh(W_c [c_t; h_t])``, and the next token's logits are
``(h̃_t W_o) Eᵀ + b`` with ``E`` the embedding table source and target share. Without input
feeding, the decoder's recurrence does not depend on the attention, so training runs it over
the whole target at once::

    model = LSTMSeq2Seq(LSTMSeq2SeqConfig(vocab_size=8000))
    params = init_lstm_seq2seq_params(model.config, key)
    logits = model.apply({"params": params}, source, source_mask, target_in)     # (B, T, V)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.models.seq2seq import check_side
from jaxllm.nn import LSTM, lstm_step
from jaxllm.seq2seq_decode import Seq2SeqDecoding


@dataclasses.dataclass(frozen=True)
class LSTMSeq2SeqConfig:
    """Shape of an attentional LSTM encoder-decoder.

    Attributes:
      vocab_size: ids source and target share; 0: "take it from the tokenizer".
      max_len: the longest source, and the longest target.
      n_embd: embedding width (also the width the output layer projects to, to reuse the
        embedding as its weights).
      hidden_size: the decoder's state width; each of the encoder's two directions has half.
      n_layer: LSTM layers on each side.
      dropout: variational dropout in the LSTMs, and dropout on the attentional state.
    """

    vocab_size: int = 0
    max_len: int = 256
    n_embd: int = 256
    hidden_size: int = 256
    n_layer: int = 2
    dropout: float = 0.2

    def __post_init__(self):
        for field in ("max_len", "n_embd", "hidden_size", "n_layer"):
            value = getattr(self, field)
            require(
                isinstance(value, int) and value > 0,
                f"LSTMSeq2SeqConfig.{field} must be a positive int, got {value!r}",
            )
        require(
            isinstance(self.vocab_size, int) and self.vocab_size >= 0,
            f"LSTMSeq2SeqConfig.vocab_size must be an int >= 0, got {self.vocab_size!r}",
        )
        require(
            self.hidden_size % 2 == 0,
            f"LSTMSeq2SeqConfig.hidden_size must be even (two encoder directions of half of "
            f"it), got {self.hidden_size}",
        )
        require(
            0.0 <= self.dropout < 1.0,
            f"LSTMSeq2SeqConfig.dropout must be in [0, 1), got {self.dropout}",
        )


LSTMStates = tuple[tuple[Array, Array], ...]


@flax.struct.dataclass
class LSTMDecodeState:
    """Decoding state of a batch of sources.

    Attributes:
      states: each decoder layer's ``(c, h)``, float32[batch, hidden_size] each.
      memory: float32[batch, source_len, hidden_size], the encoder's states.
      source_mask: bool[batch, source_len].
    """

    states: LSTMStates
    memory: Array
    source_mask: Array


def attentional_logits(
    params: Any,
    h: Array,
    memory: Array,
    source_mask: Array,
    dropout: Callable[[Array], Array] | None = None,
) -> tuple[Array, Array]:
    """Luong attention and the tied output layer, from the decoder's states.

    Args:
      params: an :class:`LSTMSeq2Seq`'s parameters.
      h: float[batch, target_len, hidden_size], the decoder LSTM's outputs.
      memory: float[batch, source_len, hidden_size], the encoder's.
      source_mask: bool[batch, source_len].
      dropout: applied to the attentional state ``h̃`` (training).

    Returns:
      ``(logits float32[batch, target_len, vocab], attention weights float32[batch,
      target_len, source_len])``.
    """
    scores = jnp.einsum("bth,bsh->bts", h @ params["attention"], memory)
    scores = jnp.where(source_mask[:, None, :], scores, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
    context = jnp.einsum("bts,bsh->bth", weights, memory)
    combined = jnp.tanh(
        jnp.concatenate([context, h], axis=-1) @ params["combine"] + params["combine_bias"]
    )
    if dropout is not None:
        combined = dropout(combined)
    return output_logits(params, combined), weights


def output_logits(params: Any, combined: Array) -> Array:
    """``(h̃ W_o) Eᵀ + b``: float[..., hidden_size] -> float32[..., vocab]."""
    out = combined @ params["output"]
    return (out @ params["embed"]["embedding"].T + params["output_bias"]).astype(jnp.float32)


class LSTMSeq2Seq(nn.Module):
    """Attentional LSTM encoder-decoder; see the module docstring."""

    config: LSTMSeq2SeqConfig

    def setup(self) -> None:
        cfg = self.config
        require(
            cfg.vocab_size > 0,
            "LSTMSeq2SeqConfig.vocab_size is 0: set it to the tokenizer's vocab_size",
        )
        hidden = cfg.hidden_size
        self.embed = nn.Embed(
            cfg.vocab_size, cfg.n_embd, embedding_init=nn.initializers.normal(0.1)
        )
        self.encoder = LSTM(
            hidden // 2, num_layers=cfg.n_layer, bidirectional=True, dropout_rate=cfg.dropout
        )
        self.decoder = LSTM(hidden, num_layers=cfg.n_layer, dropout_rate=cfg.dropout)
        init = nn.initializers.lecun_normal()
        self.attention = self.param("attention", init, (hidden, hidden), jnp.float32)
        self.combine = self.param("combine", init, (2 * hidden, hidden), jnp.float32)
        self.combine_bias = self.param("combine_bias", nn.initializers.zeros, (hidden,))
        self.output = self.param("output", init, (hidden, cfg.n_embd), jnp.float32)
        self.output_bias = self.param("output_bias", nn.initializers.zeros, (cfg.vocab_size,))
        self.combined_dropout = nn.Dropout(cfg.dropout)

    def __call__(
        self, source: Array, source_mask: Array, target: Array, *, train: bool = False
    ) -> Array:
        """Teacher-forced next-token logits, float32[batch, target_len, vocab]; arguments as
        :class:`~jaxllm.models.seq2seq.Seq2SeqTransformer`'s. The attention weights,
        float32[batch, 1, target_len, source_len], are sown as
        ``intermediates/attention_weights`` when that collection is mutable."""
        memory = self.encode(source, source_mask, train=train)
        self._check(target, "target")
        h, _ = self.decoder(self.embed(target), deterministic=not train)
        dropout = None
        if train and self.config.dropout > 0.0:
            dropout = lambda c: self.combined_dropout(c, deterministic=False)  # noqa: E731
        logits, weights = attentional_logits(
            self.variables["params"], h, memory, source_mask, dropout
        )
        if self.is_mutable_collection("intermediates"):
            self.sow("intermediates", "attention_weights", weights[:, None])
        return logits

    def encode(self, source: Array, source_mask: Array, *, train: bool = False) -> Array:
        """The encoder's states, float32[batch, source_len, hidden_size] (0 at padding)."""
        self._check(source, "source")
        memory, _ = self.encoder(self.embed(source), source_mask, deterministic=not train)
        return memory

    def _check(self, tokens: Array, side: str) -> None:
        check_side(tokens, side, self.config.vocab_size, self.config.max_len)


def init_lstm_seq2seq_params(config: LSTMSeq2SeqConfig, key: Array) -> dict[str, Any]:
    """Fresh parameters for an attentional LSTM encoder-decoder of shape ``config``."""
    source = jnp.zeros((1, min(8, config.max_len)), jnp.int32)
    variables = LSTMSeq2Seq(config).init(key, source, jnp.ones(source.shape, bool), source)
    return cast(dict, variables["params"])


def lstm_decode_step(
    params: Any, tokens: Array, state: LSTMDecodeState
) -> tuple[Array, LSTMDecodeState]:
    """Feed one target token per row: int[batch] -> (logits float32[batch, vocab], the new
    state); the same maths as :class:`LSTMSeq2Seq` over a whole target."""
    x = params["embed"]["embedding"][tokens]
    h, states = lstm_step(params["decoder"], x, state.states)
    logits, _ = attentional_logits(params, h[:, None], state.memory, state.source_mask)
    return logits[:, 0], dataclasses.replace(state, states=states)


def lstm_decoding(model: LSTMSeq2Seq) -> Seq2SeqDecoding:
    """Decoding functions of an attentional LSTM encoder-decoder (see
    :mod:`jaxllm.seq2seq_decode`): the source encoded once, the decoder's states carried."""
    cfg = model.config

    def start(params: Any, source: Array, source_mask: Array, tokens: Array, max_len: int):
        del max_len  # the state does not grow
        memory = cast(
            Array,
            model.apply({"params": params}, source, source_mask, method=LSTMSeq2Seq.encode),
        )
        zeros = jnp.zeros((source.shape[0], cfg.hidden_size), jnp.float32)
        states = tuple((zeros, zeros) for _ in range(cfg.n_layer))
        return lstm_decode_step(params, tokens, LSTMDecodeState(states, memory, source_mask))

    def reorder(state: LSTMDecodeState, rows: Array, same_sources: bool) -> LSTMDecodeState:
        states = jax.tree.map(lambda leaf: leaf[rows], state.states)
        if same_sources:
            return dataclasses.replace(state, states=states)
        return LSTMDecodeState(states, state.memory[rows], state.source_mask[rows])

    return Seq2SeqDecoding(start, lstm_decode_step, reorder, cfg.vocab_size)
