"""Masked-language-model inputs (BERT's pre-training task, Devlin et al., 2019).

As in the original BERT's data, ``round(rate · n)`` (at least one) of a sequence's ``n``
maskable tokens are chosen at random (15%); a chosen token becomes ``[MASK]`` 80% of the time,
a random token 10% of the time and stays itself 10% of the time, and the model is scored on
the chosen tokens only. With ``whole_word``, the tokens of a word are chosen together: whole
words in random order while the count stays within ``round(rate · n)``, so a few fewer may be
chosen (none, in a short sequence whose first drawn word is longer than its count). A pure
function of its key, so batches are a function of (seed, step)::

    key = jax.random.fold_in(jax.random.key(seed), step)
    batch = mask_tokens(tokens, maskable, key, mask_id=tok.mask_id, vocab_size=V)
    loss = cross_entropy(model(batch.inputs), batch.targets, batch.weights)

Since a sequence of ``T`` tokens never has more than ``MaskingConfig.max_predictions(T)``
chosen ones, ``batch.positions`` lists them in a fixed-size array, so the masked-word head
runs at those positions only (as the original BERT's ``gather_indexes``), not at all ``T``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Protocol

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxllm.config import require


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """How tokens are chosen and replaced.

    Attributes:
      rate: the share of a sequence's maskable tokens chosen: ``round(rate · n)`` of ``n``, at
        least one (with ``whole_word``, at most that many: see the module docstring).
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

    def max_predictions(self, seq_len: int) -> int:
        """The most tokens chosen in a sequence of ``seq_len``: the width of
        :attr:`MaskedBatch.positions`."""
        return min(seq_len, math.ceil(self.rate * seq_len) + 1)


@flax.struct.dataclass
class MaskedBatch:
    """Attributes:
    inputs: int32[batch, seq], the tokens with the chosen ones replaced.
    targets: int32[batch, seq], the original tokens.
    weights: float32[batch, seq], 1 at the chosen tokens (the ones scored), else 0.
    positions: int32[batch, max_predictions], every chosen token's position (in order), then
      unchosen positions (weight 0) to fill the row.
    """

    inputs: Array
    targets: Array
    weights: Array
    positions: Array


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
    maskable = maskable.astype(bool)
    if not (config.whole_word and word_ids is not None):  # (_check requires them for whole_word)
        word_ids = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    chosen = jax.vmap(_choose_words, in_axes=(0, 0, 0, None))(
        jax.random.split(choose_key, tokens.shape[0]), maskable, word_ids, config.rate
    )
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
        positions=jnp.argsort(~chosen, axis=1, stable=True)[
            :, : config.max_predictions(tokens.shape[1])
        ].astype(jnp.int32),
    )


def _choose_words(key: Array, maskable: Array, word_ids: Array, rate: float) -> Array:
    """bool[seq]: ``round(rate · n)`` (at least 1) of the ``n`` maskable tokens of one
    sequence, whole words at a time: words in a random order, taken while the count so far
    stays within the target (a word never straddles it, so with words of several pieces fewer
    may be chosen).

    ``word_ids`` int[seq]: each token's word (the position of its first piece; ``arange`` for
    one word per token).
    """
    seq = maskable.shape[0]
    word_ids = jnp.clip(word_ids, 0, seq - 1)
    target = jnp.maximum(jnp.round(rate * jnp.sum(maskable)), 1.0)
    draws = jax.random.uniform(key, (seq,))[word_ids]  # one draw per word
    order = jnp.lexsort((jnp.arange(seq), word_ids, draws))  # a word's pieces side by side
    counted = jnp.cumsum(maskable[order])  # maskable tokens up to each, in that order
    running = jnp.zeros(seq, counted.dtype).at[order].set(counted)
    word_end = jnp.zeros(seq, counted.dtype).at[word_ids].max(running)  # count at word's end
    return maskable & (word_end[word_ids] <= target)


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


def word_ids_from_pieces(tokens: ArrayLike, continues_word: ArrayLike) -> Array:
    """The ``word_ids`` of :func:`mask_tokens` for WordPiece tokens: each token's position if it
    starts a word, else the position of the nearest word start before it.

    Args:
      tokens: int[batch, seq] token ids.
      continues_word: bool[vocab], ``True`` at pieces that continue a word (``##ing``), e.g.
        :attr:`~jaxllm.data.WordPieceTokenizer.continues_word`.

    Returns:
      int32[batch, seq]
    """
    tokens = jnp.asarray(tokens)
    positions = jnp.arange(tokens.shape[-1], dtype=jnp.int32)
    starts = jnp.where(jnp.asarray(continues_word)[tokens], 0, positions)
    return jax.lax.cummax(starts, axis=tokens.ndim - 1)


class MaskingVocab(Protocol):
    """What MLM batches need of a tokenizer (:class:`~jaxllm.data.WordPieceTokenizer`)."""

    @property
    def vocab_size(self) -> int: ...

    cls_id: int
    sep_id: int
    mask_id: int
    pad_id: int

    @property
    def special_ids(self) -> np.ndarray: ...

    @property
    def continues_word(self) -> np.ndarray: ...


# A key stream for evaluation masks, apart from the training steps' fold_in(key(seed), step).
_EVAL_STREAM = 2**31 - 1


def _masked_batch(
    rows: np.ndarray, lengths: np.ndarray, vocab: MaskingVocab, key: Array, config: MaskingConfig
) -> dict[str, np.ndarray]:
    """Frame ``rows`` (int[batch, seq - 2] token windows, ``lengths`` real tokens each) as
    ``[CLS] window [SEP] [PAD]...`` and mask them: the numpy batch of
    :func:`~jaxllm.losses.masked_language_model_loss`."""
    batch, body = rows.shape
    real = np.arange(body)[None, :] < lengths[:, None]
    framed = np.full((batch, body + 2), vocab.pad_id, np.int32)
    framed[:, 0] = vocab.cls_id
    framed[:, 1:-1] = np.where(real, rows, vocab.pad_id)
    framed[np.arange(batch), lengths + 1] = vocab.sep_id
    attention = np.arange(body + 2)[None, :] < (lengths + 2)[:, None]
    maskable = attention & ~np.isin(framed, vocab.special_ids)
    word_ids = word_ids_from_pieces(framed, vocab.continues_word) if config.whole_word else None
    masked = _jitted_mask_tokens(
        framed,
        maskable,
        key,
        mask_id=vocab.mask_id,
        vocab_size=vocab.vocab_size,
        config=config,
        word_ids=word_ids,
    )
    out = {f.name: np.asarray(getattr(masked, f.name)) for f in dataclasses.fields(masked)}
    return out | {"attention_mask": attention}


_jitted_mask_tokens = jax.jit(mask_tokens, static_argnames=("mask_id", "vocab_size", "config"))


def mlm_batch(
    tokens: np.ndarray,
    vocab: MaskingVocab,
    *,
    seed: int,
    step: int,
    batch_size: int,
    seq_len: int,
    config: MaskingConfig = MaskingConfig(),
    process_index: int = 0,
    process_count: int = 1,
) -> dict[str, np.ndarray]:
    """This process's rows of the masked-language-model batch for ``step``: a pure function of
    (seed, step), whatever the number of processes.

    The global batch is ``batch_size`` windows of ``seq_len - 2`` tokens of the stream at the
    offsets :func:`~jaxllm.data.lm_batch` draws, each framed as ``[CLS] window [SEP]`` and
    masked with ``fold_in(key(seed), step)`` (special tokens, e.g. the ``[SEP]`` between
    documents, are never chosen).

    Returns:
      ``{"inputs", "targets": int32[B_local, seq_len], "weights": float32[B_local, seq_len],
      "attention_mask": bool[B_local, seq_len], "positions": int32[B_local, k]}``, ``B_local =
      batch_size // process_count``, ``k = config.max_predictions(seq_len)`` (see
      :class:`MaskedBatch`).
    """
    from jaxllm.data.batches import lm_batch

    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}.")
    windows = lm_batch(tokens, seed=seed, step=step, batch_size=batch_size, seq_len=seq_len - 2)
    lengths = np.full(batch_size, seq_len - 2)
    key = jax.random.fold_in(jax.random.key(seed), step)
    batch = _masked_batch(windows["inputs"], lengths, vocab, key, config)
    rows = batch_size // process_count
    return {k: v[process_index * rows : (process_index + 1) * rows] for k, v in batch.items()}


def mlm_eval_batches(
    tokens: np.ndarray,
    vocab: MaskingVocab,
    *,
    seed: int,
    batch_size: int,
    seq_len: int,
    config: MaskingConfig = MaskingConfig(),
    max_batches: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive windows of ``seq_len - 2`` tokens covering the stream once, framed and
    masked as :func:`mlm_batch`'s, with the same masks at every evaluation (batch ``i`` is
    masked with a key of its own drawn from ``seed``). The last window is padded (``[PAD]``,
    ``attention_mask`` False) and the last batch filled with empty rows that count for
    nothing."""
    body = seq_len - 2
    num_windows = -(-tokens.size // body)
    num_batches = -(-num_windows // batch_size)
    if max_batches is not None:
        num_batches = min(num_batches, max_batches)
    eval_key = jax.random.fold_in(jax.random.key(seed), _EVAL_STREAM)
    for index in range(num_batches):
        starts = (index * batch_size + np.arange(batch_size)) * body
        lengths = np.clip(tokens.size - starts, 0, body)
        positions = np.minimum(starts[:, None] + np.arange(body), tokens.size - 1)
        rows = tokens[positions].astype(np.int32)
        yield _masked_batch(rows, lengths, vocab, jax.random.fold_in(eval_key, index), config)
