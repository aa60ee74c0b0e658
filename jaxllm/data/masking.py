"""Masked-language-model inputs (BERT's pre-training task, Devlin et al., 2019).

Each maskable token is chosen with probability ``rate`` (15%); a chosen token becomes
``[MASK]`` 80% of the time, a random token 10% of the time and stays itself 10% of the time,
and the model is scored on the chosen tokens only. With ``whole_word``, the tokens of a word
are chosen together. A pure function of its key, so batches are a function of (seed, step)::

    key = jax.random.fold_in(jax.random.key(seed), step)
    batch = mask_tokens(tokens, maskable, key, mask_id=tok.mask_id, vocab_size=V)
    loss = cross_entropy(model(batch.inputs), batch.targets, batch.weights)
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """How tokens are chosen and replaced.

    Attributes:
      rate: the probability that a maskable token (or, with ``whole_word``, a word) is chosen.
      mask_fraction: of the chosen tokens, the share replaced by ``[MASK]``.
      random_fraction: the share replaced by a token drawn uniformly from the vocabulary; the
        rest stay as they are.
      whole_word: choose every token of a word together (needs ``word_ids``).
    """

    rate: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    whole_word: bool = False

    def __post_init__(self):
        require(0.0 < self.rate < 1.0, f"MaskingConfig.rate must be in (0, 1), got {self.rate}")
        for name in ("mask_fraction", "random_fraction"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"MaskingConfig.{name} must be in [0, 1], got {value}")
        require(
            self.mask_fraction + self.random_fraction <= 1.0,
            "MaskingConfig.mask_fraction + random_fraction must be at most 1, got "
            f"{self.mask_fraction} + {self.random_fraction}",
        )


@flax.struct.dataclass
class MaskedBatch:
    """Attributes:
    inputs: int32[batch, seq], the tokens with the chosen ones replaced.
    targets: int32[batch, seq], the original tokens.
    weights: float32[batch, seq], 1 at the chosen tokens (the ones scored), else 0.
    """

    inputs: Array
    targets: Array
    weights: Array


def mask_tokens(
    tokens: Array,
    maskable: Array,
    key: Array,
    *,
    mask_id: int,
    vocab_size: int,
    config: MaskingConfig = MaskingConfig(),
    word_ids: Array | None = None,
) -> MaskedBatch:
    """Choose and replace tokens for masked-language-model training.

    Args:
      tokens: int[batch, seq] token ids.
      maskable: bool[batch, seq], ``False`` at special tokens (``[CLS]``, ``[SEP]``) and
        padding, which are never chosen.
      key: the PRNG key, e.g. ``fold_in(key(seed), step)``.
      mask_id: the ``[MASK]`` token's id.
      vocab_size: random replacements are drawn from ``[0, vocab_size)``.
      config: the rates.
      word_ids: int[batch, seq], for ``whole_word``: the position of the first token of the
        word each token belongs to (so the tokens of a word share it).

    Returns:
      a :class:`MaskedBatch`.

    Raises:
      ValueError: mismatched shapes, ``mask_id`` outside the vocabulary, or ``whole_word``
        without ``word_ids``.
    """
    _check(tokens, maskable, mask_id, vocab_size, config, word_ids)
    choose_key, how_key, random_key = jax.random.split(key, 3)
    draws = jax.random.uniform(choose_key, tokens.shape)
    if config.whole_word and word_ids is not None:  # (_check requires them)
        index = jnp.clip(word_ids, 0, tokens.shape[1] - 1)
        draws = jnp.take_along_axis(draws, index, axis=1)  # one draw per word
    chosen = (draws < config.rate) & maskable.astype(bool)
    how = jax.random.uniform(how_key, tokens.shape)
    random_tokens = jax.random.randint(random_key, tokens.shape, 0, vocab_size, tokens.dtype)
    replaced = jnp.where(how < config.mask_fraction, mask_id, tokens)
    replaced = jnp.where(
        (how >= config.mask_fraction) & (how < config.mask_fraction + config.random_fraction),
        random_tokens,
        replaced,
    )
    return MaskedBatch(
        inputs=jnp.where(chosen, replaced, tokens).astype(jnp.int32),
        targets=tokens.astype(jnp.int32),
        weights=chosen.astype(jnp.float32),
    )


def _check(
    tokens: Array,
    maskable: Array,
    mask_id: int,
    vocab_size: int,
    config: MaskingConfig,
    word_ids: Array | None,
) -> None:
    if tokens.ndim != 2 or maskable.shape != tokens.shape:
        raise ValueError(
            f"tokens and maskable must both be [batch, seq], got {tokens.shape} and "
            f"{maskable.shape}"
        )
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id {mask_id} is not a token id of a {vocab_size}-token vocabulary")
    if config.whole_word and (word_ids is None or word_ids.shape != tokens.shape):
        raise ValueError(
            "whole_word masking needs word_ids of the tokens' shape [batch, seq] (the position "
            "of each token's word's first token)"
        )


def word_ids_from_pieces(tokens: Array, continues_word: Array) -> Array:
    """The ``word_ids`` of :func:`mask_tokens` for WordPiece tokens: each token's position if it
    starts a word, else the position of the nearest word start before it.

    Args:
      tokens: int[batch, seq] token ids.
      continues_word: bool[vocab], ``True`` at pieces that continue a word (``##ing``), e.g.
        :attr:`~jaxllm.data.WordPieceTokenizer.continues_word`.

    Returns:
      int32[batch, seq]
    """
    positions = jnp.arange(tokens.shape[-1], dtype=jnp.int32)
    starts = jnp.where(jnp.asarray(continues_word)[tokens], 0, positions)
    return jax.lax.cummax(starts, axis=tokens.ndim - 1)
