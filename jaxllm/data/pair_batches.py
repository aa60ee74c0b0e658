"""Batches of sentence pairs for encoder-decoder training: each pair's source and target are
encoded with one tokenizer, ended with its end token, and batched by length.

A batch holds pairs of similar length (:func:`jaxllm.data.buckets.bucketed_batches`, by the
longer side), both sides padded to the same multiple of 16 tokens, so a run compiles its step
for a handful of shapes. The decoder reads ``target_in`` (the start token, then the target
shifted right) and learns to predict ``target_out`` (the target, then the end token).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from jaxllm.data.buckets import batches_per_epoch, bucketed_batches, padded_length
from jaxllm.data.tokenizers import Tokenizer
from jaxllm.data.vocab import PAD_ID


@dataclasses.dataclass(frozen=True, eq=False)
class EncodedPairs:
    """Sentence pairs as padded ids.

    Attributes:
      source: int32[n, S], each source's ids and the end token, then ``PAD_ID``.
      source_lengths: int64[n], real tokens of each (the end token included).
      target: int32[n, T], each target's ids and the end token, then ``PAD_ID``.
      target_lengths: int64[n].
      truncated: pairs of which a side was cut to ``max_len`` tokens (its end token kept).
    """

    source: np.ndarray
    source_lengths: np.ndarray
    target: np.ndarray
    target_lengths: np.ndarray
    truncated: int

    def __len__(self) -> int:
        return len(self.source_lengths)

    @property
    def lengths(self) -> np.ndarray:
        """The longer side of each pair, int64[n]."""
        return np.maximum(self.source_lengths, self.target_lengths)


def _encode_side(
    tokenizer: Tokenizer, texts: Sequence[str], max_len: int, end_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids int32[n, longest], lengths int64[n], whether each was cut bool[n])."""
    encoded = [tokenizer.encode(text) for text in texts]
    cut = np.array([len(ids) > max_len - 1 for ids in encoded], bool)
    rows = [ids[: max_len - 1] for ids in encoded]
    lengths = np.array([len(row) + 1 for row in rows], np.int64)
    ids = np.full((len(rows), int(lengths.max(initial=1))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        ids[i, len(row)] = end_id
    return ids, lengths, cut


def encode_pairs(
    tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]], max_len: int, end_id: int
) -> EncodedPairs:
    """Encode ``(source, target)`` pairs, each side cut to ``max_len`` tokens (its end token
    included) and counted in ``truncated``.

    Raises:
      ValueError: no pairs, an empty side (it would be the end token alone), or
        ``max_len < 2``.
    """
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2 (a token and the end token), got {max_len}")
    if not pairs:
        raise ValueError("no sentence pairs to encode")
    for number, (source, target) in enumerate(pairs, 1):
        if not source.strip() or not target.strip():
            side = "source" if not source.strip() else "target"
            raise ValueError(f"pair {number} has an empty {side}: remove it or give it text")
    source, source_lengths, source_cut = _encode_side(
        tokenizer, [s for s, _ in pairs], max_len, end_id
    )
    target, target_lengths, target_cut = _encode_side(
        tokenizer, [t for _, t in pairs], max_len, end_id
    )
    truncated = int(np.sum(source_cut | target_cut))
    return EncodedPairs(source, source_lengths, target, target_lengths, truncated)


def pair_batch(pairs: EncodedPairs, index: np.ndarray, max_len: int, start_id: int) -> dict:
    """The pairs ``index`` as one batch, both sides padded to the same length ``L`` (the
    longest, rounded up to a multiple of 16, at most ``max_len``).

    Returns:
      ``source`` int32[b, L], ``source_mask`` bool[b, L], ``target_in`` int32[b, L],
      ``target_out`` int32[b, L], ``target_mask`` bool[b, L].
    """
    longest = int(pairs.lengths[index].max())
    if longest > max_len:
        raise ValueError(
            f"a pair of {longest} tokens does not fit max_len={max_len}: encode the pairs with "
            "the max_len they are batched with"
        )
    length = padded_length(longest, max_len)

    def side(ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.full((len(index), length), PAD_ID, np.int32)
        width = min(length, ids.shape[1])
        rows[:, :width] = ids[index, :width]
        return rows, np.arange(length)[None, :] < lengths[index, None]

    source, source_mask = side(pairs.source, pairs.source_lengths)
    target_out, target_mask = side(pairs.target, pairs.target_lengths)
    target_in = np.concatenate(
        [np.full((len(index), 1), start_id, np.int32), target_out[:, :-1]], axis=1
    )
    return {
        "source": source,
        "source_mask": source_mask,
        "target_in": target_in,
        "target_out": target_out,
        "target_mask": target_mask,
    }


@dataclasses.dataclass(frozen=True, eq=False)
class PairBatches:
    """``step -> batch`` over sentence pairs, a pure function of the step (a resumed run sees
    the batches an uninterrupted one would): every epoch holds every pair once, in batches of
    similar lengths (see :func:`jaxllm.data.buckets.bucketed_batches`). With several
    processes, each gets its own equal share of every batch's rows (padded to the whole
    batch's length)."""

    pairs: EncodedPairs
    batch_size: int
    max_len: int
    seed: int
    start_id: int
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if not 0 <= self.process_index < self.process_count:
            raise ValueError(
                f"process_index must be in [0, {self.process_count}), got {self.process_index}"
            )
        if self.batch_size < 1 or self.batch_size % self.process_count:
            raise ValueError(
                f"batch_size={self.batch_size} must be >= 1 and divisible by "
                f"process_count={self.process_count}: every process gets the same rows"
            )

    @property
    def steps_per_epoch(self) -> int:
        return batches_per_epoch(len(self.pairs), self.batch_size)

    @functools.lru_cache(maxsize=2)  # noqa: B019 (the current epoch's order, kept while in use)
    def _epoch(self, epoch: int) -> list[np.ndarray]:
        return bucketed_batches(self.pairs.lengths, self.batch_size, seed=self.seed, epoch=epoch)

    def __call__(self, step: int) -> dict:
        """This process's rows of the batch of step ``step`` (0-based); see
        :func:`pair_batch`."""
        epoch, position = divmod(step, self.steps_per_epoch)
        batch = pair_batch(self.pairs, self._epoch(epoch)[position], self.max_len, self.start_id)
        if self.process_count == 1:
            return batch
        share = self.batch_size // self.process_count
        rows = slice(self.process_index * share, (self.process_index + 1) * share)
        return {name: value[rows] for name, value in batch.items()}


def pair_eval_batches(
    pairs: EncodedPairs, batch_size: int, max_len: int, start_id: int, max_batches: int = 0
) -> list[dict]:
    """Every pair once (the first ``max_batches`` batches of them if > 0), in batches of
    similar lengths, each as :func:`pair_batch` returns it (``[b, L]`` arrays); the last batch
    may be smaller."""
    order = np.argsort(pairs.lengths, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if max_batches:
        batches = batches[:max_batches]
    return [pair_batch(pairs, index, max_len, start_id) for index in batches]
