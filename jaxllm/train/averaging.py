"""Checkpoint averaging: one model whose parameters are the element-wise mean of several
checkpoints of the same run, as Vaswani et al. (2017) scored the average of their last
checkpoints and ESPnet scores the average of the n best by validation.

Checkpoints late in one run lie close together in a basin of the loss; their mean sits nearer
its centre than any one of them, and often generalises a little better, at no cost at test
time (on a run still improving it can do worse: the speech guide measures one)::

    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        params = average_checkpoints(checkpointer, fresh_state, [9000, 9500, 10000])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxllm.train.checkpoint import Checkpointer, CheckpointError


def average_checkpoints(checkpointer: Checkpointer, target: Any, steps: Sequence[int]) -> Any:
    """The element-wise mean of the ``params`` of checkpoints ``steps``, each restored (and
    verified) into the structure of ``target``, a train state as
    :meth:`Checkpointer.restore` takes it. The sum is kept in float64 and the mean cast back
    to each array's dtype; arrays that are not floating point (counters, ids) must agree and
    are taken as they are. One step gives that checkpoint's parameters unchanged.

    Returns:
      The averaged parameters, a pytree of NumPy arrays shaped as ``target.params``.

    Raises:
      CheckpointError: no step, a step given twice, a step the checkpointer does not keep,
        or integer arrays that differ between the checkpoints.
    """
    if not steps or len(set(steps)) != len(steps):
        raise CheckpointError(f"average_checkpoints needs distinct steps, got {list(steps)}")
    missing = sorted(set(steps) - set(checkpointer.steps()))
    if missing:
        raise CheckpointError(
            f"steps {missing} are not among the checkpoints kept in {checkpointer.directory} "
            f"({checkpointer.steps()}): average kept ones"
        )
    first = total = None
    for step in steps:
        state, _ = checkpointer.restore(target, step)
        params = jax.tree.map(np.asarray, jax.device_get(state.params))
        if first is None:
            first, total = params, jax.tree.map(np.zeros_like, params)
        total = jax.tree.map(_add, total, params, first)
    return jax.tree.map(lambda summed, like: _mean(summed, like, len(steps)), total, first)


def _add(total: np.ndarray, array: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``total + array`` in float64 for floating-point arrays; others must equal ``first``."""
    if not _is_float(array):
        if not np.array_equal(array, first):
            raise CheckpointError("integer parameters differ between the averaged checkpoints")
        return total
    return total.astype(np.float64) + array


def _mean(total: np.ndarray, like: np.ndarray, count: int) -> np.ndarray:
    return (total / count).astype(like.dtype) if _is_float(like) else like


def _is_float(array: np.ndarray) -> bool:
    return bool(jnp.issubdtype(array.dtype, jnp.floating))  # bfloat16 too
