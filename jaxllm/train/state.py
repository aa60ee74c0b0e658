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


def create_train_state(params: Any, optimizer: optax.GradientTransformation, rng: Array) -> TrainState:
    """A state at step 0. ``rng`` may be a new-style typed key or a raw uint32[2] key."""
    if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)  # raw keys serialise in checkpoints
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=rng)
