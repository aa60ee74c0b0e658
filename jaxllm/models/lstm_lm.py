"""An LSTM language model (Zaremba et al., 2014; Merity et al., 2018's AWD-LSTM, without its
weight drop): token embeddings, a stack of :class:`~jaxllm.nn.LSTM` layers, and the output layer
tied to the embedding (Press & Wolf, 2017; Inan et al., 2017), so the hidden size is the
embedding size. Called as :class:`~jaxllm.models.GPT` is, so the same loss, training step and
recipe train it::

    model = LSTMLM(LSTMLMConfig(vocab_size=65))
    params = init_lstm_lm_params(model.config, key)
    logits = model.apply({"params": params}, tokens)                        # (B, T, V)
    logits = model.apply({"params": params}, tokens, train=True, rngs={"dropout": key})

Decoding goes on from a state instead of re-reading its context: :func:`lstm_lm_prefill` reads
a prompt once and returns each layer's ``(c, h)`` after it, :func:`lstm_lm_step` feeds one
token from such a state (:func:`jaxllm.generate.generate` loops it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.models.gpt import check_token_ids
from jaxllm.nn.lstm import FINAL_STATE, LSTM, final_states, lstm_step, word_type_dropout

# Each layer's (c, h), each float[batch, n_embd].
LSTMState = tuple[tuple[Array, Array], ...]

# N(0, 1), torch.nn.Embedding's default. The embedding is also the output layer, and logits
# are h · e_v with every |h_i| < 1 (small at first): rows of GPT's 0.02 (whose output layer
# reads a LayerNorm) made the default run's first 60 steps reach val loss 3.1, these 2.1.
EMBEDDING_INIT_STD = 1.0


@dataclasses.dataclass(frozen=True)
class LSTMLMConfig:
    """Shape of an LSTM language model.

    Attributes:
      vocab_size: number of token ids; 0 means "take it from the tokenizer" (recipes fill it in,
        a model can't be built with 0).
      block_size: length of the training sequences (the state is reset for each); the model
        itself reads and generates sequences of any length.
      n_layer: stacked LSTM layers.
      n_embd: embedding size, which is also every layer's hidden size (the output layer is the
        embedding, transposed).
      dropout: variational dropout (one mask per sequence, the same at every step) on each
        layer's inputs, on the recurrent state and on the last layer's outputs.
      embedding_dropout: word-type dropout: each sequence drops each vocabulary entry with this
        probability, at every position it occurs (:func:`~jaxllm.nn.word_type_dropout`).
    """

    vocab_size: int = 0
    block_size: int = 128
    n_layer: int = 2
    n_embd: int = 256
    dropout: float = 0.1
    embedding_dropout: float = 0.0

    def __post_init__(self):
        require(
            isinstance(self.vocab_size, int) and self.vocab_size >= 0,
            f"LSTMLMConfig.vocab_size must be an int >= 0, got {self.vocab_size!r}",
        )
        for name in ("block_size", "n_layer", "n_embd"):
            value = getattr(self, name)
            require(
                isinstance(value, int) and value > 0,
                f"LSTMLMConfig.{name} must be a positive int, got {value!r}",
            )
        for name in ("dropout", "embedding_dropout"):
            value = getattr(self, name)
            require(0.0 <= value < 1.0, f"LSTMLMConfig.{name} must be in [0, 1), got {value}")


class LSTMLM(nn.Module):
    """Embedding -> LSTM layers -> tied output layer.

    Parameters: ``wte/embedding: [vocab, n_embd]`` (also the output layer's weights),
    ``output_bias: [vocab]`` and ``lstm/layer_<l>_forward/...`` (see
    :class:`~jaxllm.nn.LSTMDirection`).
    """

    config: LSTMLMConfig

    @nn.compact
    def __call__(
        self, tokens: Array, *, train: bool = False, padding_mask: Array | None = None
    ) -> Array:
        """Next-token logits.

        Args:
          tokens: int[batch, seq] token ids.
          train: apply dropout (needs ``rngs={"dropout": key}``).
          padding_mask: bool[batch, seq], ``False`` at padding, which may only end a sequence.

        Returns:
          float32[batch, seq, vocab] logits (those at padding are those of a zero state).
        """
        cfg = self.config
        require(
            cfg.vocab_size > 0,
            "LSTMLMConfig.vocab_size is 0: set it to the tokenizer's vocab_size",
        )
        check_token_ids(tokens, cfg.vocab_size)
        init = nn.initializers.normal(EMBEDDING_INIT_STD)
        wte = nn.Embed(cfg.vocab_size, cfg.n_embd, embedding_init=init, name="wte")
        x = wte(tokens)  # (B, T, C)
        if train and cfg.embedding_dropout > 0.0:
            keep = word_type_dropout(
                self.make_rng("dropout"), tokens, cfg.vocab_size, cfg.embedding_dropout
            )
            x = x * keep[..., None]
        x, _ = LSTM(cfg.n_embd, num_layers=cfg.n_layer, dropout_rate=cfg.dropout, name="lstm")(
            x, padding_mask, deterministic=not train
        )
        # A bias per token lets the tied layer learn the unigram distribution directly, as
        # tied LSTM LMs have (the embedding's norm would otherwise have to carry it, slowly).
        self.param("output_bias", nn.initializers.zeros, (cfg.vocab_size,), jnp.float32)
        return tied_logits(self.variables["params"], x)  # weight tying: (B, T, C) @ (C, V)


def init_lstm_lm_params(config: LSTMLMConfig, key: Array) -> dict:
    """Fresh parameters for an LSTM language model of shape ``config``."""
    tokens = jnp.zeros((1, min(8, config.block_size)), jnp.int32)
    # flax types the variables as a FrozenDict or a dict; it returns a dict by default.
    return cast(dict, LSTMLM(config).init(key, tokens)["params"])


def tied_logits(params: Any, h: Array) -> Array:
    """The output layer, the embedding transposed plus a bias: ``h Eᵀ + b``,
    float[..., n_embd] -> float32[..., vocab]."""
    return (h @ params["wte"]["embedding"].T + params["output_bias"]).astype(jnp.float32)


def lstm_lm_prefill(
    model: LSTMLM, params: Any, tokens: Array, mask: Array
) -> tuple[Array, LSTMState]:
    """Read right-padded prompts once: the logits of the token after each one, and the state
    to decode from.

    Args:
      tokens: int[batch, seq] prompts, padded at the end.
      mask: bool[batch, seq], ``True`` at real tokens (each row has at least one).

    Returns:
      ``(logits float32[batch, vocab], each layer's (c, h) after the row's last real token)``.
    """
    _, variables = model.apply(
        {"params": params}, tokens, padding_mask=mask, mutable=[FINAL_STATE]
    )  # the unused [B, T, V] logits are dropped under jit
    states = final_states(variables[FINAL_STATE]["lstm"], model.config.n_layer)
    return tied_logits(params, states[-1][1]), states


def lstm_lm_step(params: Any, tokens: Array, states: LSTMState) -> tuple[Array, LSTMState]:
    """Feed one token per row from ``states``: int[batch] -> (logits float32[batch, vocab],
    the new states). The same function as :class:`LSTMLM` over the whole sequence."""
    x = params["wte"]["embedding"][tokens]  # (B, C)
    h, states = lstm_step(params["lstm"], x, states)
    return tied_logits(params, h), states
