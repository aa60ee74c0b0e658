"""Batches of variable-length sequences with little padding: length bucketing.

An epoch shuffles the examples, cuts the order into chunks of ``chunk_batches`` batches,
sorts each chunk by length and cuts it into batches, then shuffles the batches: each batch
holds sequences of similar length, and every batch is padded to a multiple of ``multiple``
tokens (at most ``max_len``), so a run compiles its step for a handful of shapes only.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jaxllm.data.vocab import PAD_ID


def padded_length(
    longest: int, max_len: int, multiple: int = 16, *, geometric: bool = False
) -> int:
    """``longest`` rounded up to a multiple of ``multiple`` (with ``geometric``, to
    ``multiple`` times a power of two: for widths that range over orders of magnitude, such
    as a document's TF-IDF features), at most ``max_len``."""
    if geometric:
        return min(max_len, multiple * 2 ** max(int(np.ceil(np.log2(longest / multiple))), 0))
    return min(max_len, -(-longest // multiple) * multiple)


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Full batches that hold ``n`` examples once each (the last one filled up)."""
    return -(-n // batch_size)


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, chunk_batches: int = 50
) -> list[np.ndarray]:
    """One epoch's batches of example indices, each ``int64[batch_size]``.

    Every example is in one batch; the last batch is filled up with examples from the start
    of the epoch's order, so all batches are full. Deterministic in ``(seed, epoch)``.
    """
    n = len(lengths)
    if n == 0 or batch_size < 1:
        raise ValueError(f"need examples and batch_size >= 1, got {n} examples, {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    count = batches_per_epoch(n, batch_size)
    order = np.resize(order, count * batch_size)  # filled up from the start, cyclically
    chunk = chunk_batches * batch_size
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        order[start : start + chunk] = part[np.argsort(lengths[part], kind="stable")]
    batches = order.reshape(count, batch_size)
    return list(batches[rng.permutation(count)])


def padded_rows(
    ids: np.ndarray,
    lengths: np.ndarray,
    index: np.ndarray,
    max_len: int,
    weights: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Rows ``index`` of padded ``ids`` (``int[n, T]``) cut to their bucket's length ``L``:
    ``{"tokens": int32[b, L], "mask": bool[b, L]}`` and ``"weights": float32[b, L]`` if given
    (weighted rows are TF-IDF features, whose widths are padded geometrically)."""
    length = padded_length(int(lengths[index].max()), max_len, geometric=weights is not None)
    tokens = np.full((len(index), length), PAD_ID, np.int32)
    width = min(length, ids.shape[1])
    tokens[:, :width] = ids[index, :width]
    batch = {"tokens": tokens, "mask": np.arange(length)[None, :] < lengths[index, None]}
    if weights is not None:
        batch["weights"] = np.zeros((len(index), length), np.float32)
        batch["weights"][:, :width] = weights[index, :width]
    return batch


@dataclasses.dataclass(frozen=True, eq=False)
class BatchOrder:
    """``step -> int64[batch_size]``: the examples of each step's batch, a pure function of the
    step (a resumed run sees the batches an uninterrupted one would), from
    :func:`bucketed_batches` of epoch ``step // steps_per_epoch``.

    Attributes:
      lengths: int[n] each example's length (all equal: plain shuffled batches).
      batch_size, seed: see :func:`bucketed_batches`.
    """

    lengths: np.ndarray
    batch_size: int
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        return batches_per_epoch(len(self.lengths), self.batch_size)

    @functools.lru_cache(maxsize=2)  # noqa: B019 (the current epoch's order, kept while in use)
    def _epoch(self, epoch: int) -> list[np.ndarray]:
        return bucketed_batches(self.lengths, self.batch_size, seed=self.seed, epoch=epoch)

    def __call__(self, step: int) -> np.ndarray:
        """int64[batch_size] indices of the examples of step ``step`` (0-based)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        return self._epoch(epoch)[position]


@dataclasses.dataclass(frozen=True, eq=False)
class Batches:
    """``step -> batch`` over labelled sequences, a pure function of the step (a resumed run
    sees the batches an uninterrupted one would).

    Attributes:
      ids: int[n, T] padded ids; lengths: int[n]; labels: int[n].
      weights: float[n, T] per-token weights (TF-IDF values), or ``None``.
      batch_size, max_len, seed: see :func:`bucketed_batches` and :func:`padded_length`.
    """

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    batch_size: int
    max_len: int
    seed: int
    weights: np.ndarray | None = None

    @functools.cached_property
    def order(self) -> BatchOrder:
        return BatchOrder(self.lengths, self.batch_size, self.seed)

    @property
    def steps_per_epoch(self) -> int:
        return self.order.steps_per_epoch

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        """The batch of step ``step`` (0-based): ``tokens`` int32[batch, L], ``mask``
        bool[batch, L], ``labels`` int32[batch] (and ``weights`` float32[batch, L])."""
        index = self.order(step)
        batch = padded_rows(self.ids, self.lengths, index, self.max_len, self.weights)
        return batch | {"labels": self.labels[index].astype(np.int32)}
