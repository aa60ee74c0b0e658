"""Minibatch epochs over an in-memory data set, as Keras's ``fit`` runs them, in one compiled call.

    result = fit_epochs(loss_fn, params, optax.sgd(0.01), {"x": x, "y": y},
                        batch_size=32, epochs=100, key=jax.random.key(42))
    params, opt_state, losses = result

The whole training -- every epoch, every batch, the shuffles -- is one ``jax.jit``-compiled
``lax.scan`` over epochs around a ``lax.scan`` over batches, so a small model trains at the
speed of its arithmetic rather than of a Python loop. For streamed data, evaluation,
checkpoints and logging use :func:`jaxllm.train.fit`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

BatchLossFn = Callable[[Any, dict], Array]


class EpochsResult(NamedTuple):
    """What :func:`fit_epochs` returns; unpacks as ``params, opt_state, losses``.

    Attributes:
      params: the parameters after the last epoch.
      opt_state: the optimiser state after the last epoch (pass it back to continue).
      losses: float32[epochs], each epoch's training loss as Keras's ``history["loss"]``
        reports it: the mean of the batch losses weighted by the rows in each batch, each batch's
        loss taken at the parameters *before* that batch's update.
    """

    params: Any
    opt_state: Any
    losses: Array


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """Rows in each batch of an epoch over ``n`` rows: full batches, then the remainder if any.

    ``batch_sizes(100, 32) == [32, 32, 32, 4]``, as Keras batches 100 rows.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    full, rest = divmod(n, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def epoch_orders(key: Array, n: int, epochs: int) -> Array:
    """The row order of every epoch, ``int32[epochs, n]``: epoch ``e`` is a permutation drawn
    with ``jax.random.fold_in(key, e)``, the order :func:`fit_epochs` uses with ``shuffle=True``."""
    return jax.vmap(lambda e: _permutation(key, e, n))(jnp.arange(epochs))


def _permutation(key: Array, epoch: Array, n: int) -> Array:
    return jax.random.permutation(jax.random.fold_in(key, epoch), n).astype(jnp.int32)


def fit_epochs(
    loss_fn: BatchLossFn,
    params: Any,
    optimizer: optax.GradientTransformation,
    data: dict[str, Any],
    *,
    batch_size: int,
    epochs: int,
    key: Array | None = None,
    order: Any = None,
    shuffle: bool = True,
    opt_state: Any = None,
) -> EpochsResult:
    """Train ``params`` for ``epochs`` passes over ``data`` in minibatches, with Keras's semantics.

    Each epoch visits every row once, in batches of ``batch_size`` rows in the epoch's order;
    the last batch keeps the remaining ``n % batch_size`` rows (100 rows in batches of 32 are
    batches of 32, 32, 32 and 4), and its loss is ``loss_fn`` on those rows alone, so its
    gradient is the mean over its real rows exactly as in Keras -- no padding, no mask. One
    optimiser update per batch: ``g = ∇ loss_fn(params, batch)``,
    ``params ← optax.apply_updates(params, optimizer.update(g, opt_state, params))``.

    The epoch's order is, in priority: ``order[e]`` if given; else a fresh permutation from
    ``jax.random.fold_in(key, e)`` (see :func:`epoch_orders`) when ``shuffle``; else ``0..n-1``.

    Compiled once per ``(loss_fn, optimizer, batch_size, epochs, shuffle)`` and data shapes: pass
    the same ``loss_fn`` and ``optimizer`` objects to reuse the compiled program.

    Args:
      loss_fn: ``loss_fn(params, batch) -> float32[]``, the mean loss over a batch, where
        ``batch`` is ``data`` with every array cut to the batch's rows (``[b, ...]``).
      params: the initial parameters, any pytree of arrays (not modified).
      optimizer: an optax gradient transformation.
      data: name -> array ``[n, ...]``, every array with the same number of rows ``n``.
      batch_size: rows per batch (the last may have fewer).
      epochs: passes over the data.
      key: PRNG key of the shuffles; needed when ``shuffle`` and no ``order``.
      order: int[epochs, n], optional: each epoch's row order (a permutation of ``0..n-1``,
        e.g. to feed another framework the same batches).
      shuffle: draw a fresh permutation each epoch (ignored when ``order`` is given).
      opt_state: the optimiser state to start from (default ``optimizer.init(params)``), to
        continue an earlier call.

    Returns:
      :class:`EpochsResult` ``(params, opt_state, losses: float32[epochs])``.
    """
    n = _checked_rows(data, batch_size, epochs)
    if order is not None:
        order = _checked_order(order, epochs, n)
    elif shuffle and key is None:
        raise ValueError("shuffle=True needs a key (or pass an explicit order, or shuffle=False)")
    if opt_state is None:
        opt_state = optimizer.init(params)
    shuffled = shuffle and order is None
    return _fit_epochs(
        loss_fn, optimizer, batch_size, epochs, shuffled, params, opt_state, data, key, order
    )


def _checked_rows(data: dict[str, Any], batch_size: int, epochs: int) -> int:
    """The number of rows ``n`` every array of ``data`` has, once the arguments are checked."""
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data holds no arrays")
    n = int(np.shape(leaves[0])[0])
    if any(np.shape(a)[:1] != (n,) for a in leaves):
        raise ValueError(
            f"every array in data needs the same number of rows; got "
            f"{ {k: np.shape(v) for k, v in data.items()} }"
        )
    batch_sizes(n, batch_size)  # validates n and batch_size
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    return n


def _checked_order(order: Any, epochs: int, n: int) -> Array:
    """``order`` as int32[epochs, n], or a ValueError naming the shape it needs."""
    if np.shape(order) != (epochs, n):
        raise ValueError(f"order must be int[epochs, n] = [{epochs}, {n}], got {np.shape(order)}")
    return jnp.asarray(order, jnp.int32)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _fit_epochs(
    loss_fn: BatchLossFn,
    optimizer: optax.GradientTransformation,
    batch_size: int,
    epochs: int,
    shuffle: bool,
    params: Any,
    opt_state: Any,
    data: dict,
    key: Array | None,
    order: Array | None,
) -> EpochsResult:
    n = jax.tree.leaves(data)[0].shape[0]
    full, rest = divmod(n, batch_size)

    def step(carry: tuple, rows: Array) -> tuple[tuple, Array]:
        """One update on the batch of ``rows: int32[b]``; returns the loss before the update."""
        params, opt_state = carry
        batch = jax.tree.map(lambda a: a[rows], data)  # [b, ...]
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss.astype(jnp.float32)

    def epoch(carry: tuple, xs: tuple) -> tuple[tuple, Array]:
        index, given = xs
        if given is not None:
            rows = given
        elif shuffle:
            assert key is not None  # fit_epochs requires a key to shuffle
            rows = _permutation(key, index, n)
        else:
            rows = jnp.arange(n, dtype=jnp.int32)
        total = jnp.zeros((), jnp.float32)  # Σ rows × loss over the batches, as Keras's Mean
        if full:
            carry, losses = jax.lax.scan(
                step, carry, rows[: full * batch_size].reshape(full, batch_size)
            )
            total += batch_size * jnp.sum(losses)
        if rest:  # the ragged last batch: its own static shape, so its mean is over its rows
            carry, loss = step(carry, rows[full * batch_size :])
            total += rest * loss
        return carry, total / n

    (params, opt_state), losses = jax.lax.scan(
        epoch, (params, opt_state), (jnp.arange(epochs), order), length=epochs
    )
    return EpochsResult(params, opt_state, losses)
