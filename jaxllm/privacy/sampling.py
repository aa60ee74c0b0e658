"""Poisson sampling, the batches DP-SGD's privacy analysis assumes: at every step each
training example joins the batch with probability ``q``, independently of the others and of
earlier steps, so batches vary in size.

The accountant (:mod:`jaxllm.privacy.accountant`) bounds ε for exactly this sampling. Shuffled
fixed-size batches are a common stand-in, but their privacy can be worse than the Poisson
bound claims (Chua et al., 2024), and length-bucketed batches depend on the data. Under ``jit``
a batch's size must be fixed, so a draw is padded to a multiple of ``multiple`` rows with
examples of weight 0 (``example_weights``), which DP-SGD leaves out
(:func:`jaxllm.privacy.dp_sgd.clipped_part`): a run compiles its step for a few sizes only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxllm.config import require
from jaxllm.data.batches import windows_at
from jaxllm.data.buckets import padded_rows
from jaxllm.privacy.dp_sgd import EXAMPLE_WEIGHTS


def poisson_indices(n: int, rate: float, *, seed: int, step: int, multiple: int = 16) -> tuple:
    """Step ``step``'s draw: ``(indices int64[m], weights float32[m])``, ``m`` the number of
    examples drawn rounded up to a multiple of ``multiple`` (at least one multiple); padding
    rows repeat example 0 with weight 0. Deterministic in ``(seed, step)``."""
    require(n >= 1, f"need at least one example, got {n}", ValueError)
    require(0 < rate <= 1, f"the sampling rate must be in (0, 1], got {rate}", ValueError)
    drawn = np.flatnonzero(np.random.default_rng([seed, step, 0x5A4D]).random(n) < rate)
    size = max(-(-len(drawn) // multiple), 1) * multiple
    indices = np.zeros(size, np.int64)
    indices[: len(drawn)] = drawn
    weights = np.zeros(size, np.float32)
    weights[: len(drawn)] = 1.0
    return indices, weights


@dataclasses.dataclass(frozen=True, eq=False)
class PoissonBatches:
    """``step -> batch`` of labelled sequences drawn by Poisson sampling, a pure function of
    the step (a resumed run draws what an uninterrupted one would).

    Attributes:
      ids: int[n, T] padded ids; lengths: int[n]; labels: int[n].
      rate: ``q``, each example's probability of joining a batch.
      max_len: the longest padded length.
      seed: the draws' seed.
      weights: float[n, T] per-token weights (TF-IDF values), or ``None``.
      multiple: batch sizes are rounded up to multiples of this.
    """

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    rate: float
    max_len: int
    seed: int
    weights: np.ndarray | None = None
    multiple: int = 16

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        """``tokens`` int32[m, L], ``mask`` bool[m, L], ``labels`` int32[m],
        ``example_weights`` float32[m] (and ``weights`` float32[m, L])."""
        index, present = poisson_indices(
            len(self.lengths), self.rate, seed=self.seed, step=step, multiple=self.multiple
        )
        batch = padded_rows(self.ids, self.lengths, index, self.max_len, self.weights)
        return batch | {"labels": self.labels[index].astype(np.int32), EXAMPLE_WEIGHTS: present}


def window_count(num_tokens: int, seq_len: int) -> int:
    """The windows of ``seq_len + 1`` tokens sharing none that ``num_tokens`` tokens hold:
    :class:`PoissonWindows`' examples."""
    return num_tokens // (seq_len + 1)


@dataclasses.dataclass(frozen=True, eq=False)
class PoissonWindows:
    """``step -> batch`` of language-model windows drawn by Poisson sampling, a pure function
    of the step: DP-SGD's examples for a token stream.

    The stream is cut into ``n = len(tokens) // (seq_len + 1)`` windows that share no token,
    window ``i`` being ``tokens[i (T+1) : (i+1) (T+1)]`` (its inputs the first ``T``, its
    targets the last ``T``); the tail shorter than a window is left out. Each window joins a
    step's batch with probability ``rate``. A window, ``T + 1`` consecutive tokens, is the
    unit the privacy guarantee protects (:func:`jaxllm.privacy.resolve_privacy` with ``n``
    examples).

    Attributes:
      tokens: int[num_tokens], the training stream (an array or a memory map).
      seq_len: ``T``, the model's context.
      rate: ``q``, each window's probability of joining a batch.
      seed: the draws' seed.
      multiple: global batch sizes are rounded up to multiples of this (a multiple of
        ``process_count`` and of what each process's rows must divide by).
      process_index, process_count: this process's rows of every global batch.
    """

    tokens: np.ndarray
    seq_len: int
    rate: float
    seed: int
    multiple: int = 16
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        require(
            self.windows >= 1,
            f"the training stream has {len(self.tokens)} tokens, fewer than one window of "
            f"seq_len + 1 = {self.seq_len + 1}: use a shorter context or more text",
            ValueError,
        )
        require(
            self.multiple % self.process_count == 0,
            f"multiple={self.multiple} must divide by process_count={self.process_count}",
            ValueError,
        )

    @property
    def windows(self) -> int:
        """``n``: the windows the stream holds."""
        return window_count(len(self.tokens), self.seq_len)

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows: ``inputs`` and ``targets`` int32[m / P, T],
        ``example_weights`` float32[m / P] (0 for padding rows)."""
        index, present = poisson_indices(
            self.windows, self.rate, seed=self.seed, step=step, multiple=self.multiple
        )
        rows = len(index) // self.process_count
        local = slice(self.process_index * rows, (self.process_index + 1) * rows)
        pairs = windows_at(self.tokens, index[local] * (self.seq_len + 1), self.seq_len)
        return pairs | {EXAMPLE_WEIGHTS: present[local]}
