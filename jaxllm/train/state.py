"""The training state: an immutable pytree of everything a step reads and writes."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax import Array


@flax.struct.dataclass
class TrainState:
    """Attributes:
    step: int32[] number of updates applied so far.
    params: the model's parameters.
    opt_state: the optimiser's state.
    rng: PRNG key; step ``s`` draws its randomness from ``fold_in(rng, s)``, so a resumed run
      draws exactly what an uninterrupted one would.
    """

    step: Array
    params: Any
    opt_state: Any
    rng: Array


def create_train_state(
    params: Any, optimizer: optax.GradientTransformation, rng: Array
) -> TrainState:
    """A state at step 0. ``rng`` may be a new-style typed key or a raw uint32[2] key.

    The state holds its own copy of ``params``, made by XLA, for two reasons: a step that
    donates the state (:func:`jaxllm.train.jit_train_step`) then never deletes the caller's
    arrays; and every leaf can be updated in place from the first step on. Arrays that
    ``jax.device_put`` made from NumPy need not have the alignment XLA:CPU writes into, so
    the first step would allocate new buffers for some of them after its temporaries, and
    the heap would keep a second set of temporaries for the rest of the run.
    """
    if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)  # raw keys serialise in checkpoints
    params = _copy_tree(params)
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params), rng=rng
    )


@jax.jit
def _copy_tree(tree: Any) -> Any:
    """Every leaf of ``tree`` copied into a buffer XLA allocated (same placement)."""
    return jax.tree.map(jnp.copy, tree)
