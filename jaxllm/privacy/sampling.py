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
