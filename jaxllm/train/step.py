"""Pure training and evaluation steps built from any ``loss_fn(params, batch, key)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import Array

from jaxllm.config import require
from jaxllm.losses import LossFn
from jaxllm.privacy.dp_sgd import (
    EXAMPLE_WEIGHTS,
    NOISE_STREAM,
    DPConfig,
    add_noise,
    clipped_part,
)
from jaxllm.train.state import TrainState

TrainStep = Callable[[TrainState, dict], tuple[TrainState, dict]]


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    microbatches: int = 1,
    axis_name: str | None = None,
    privacy: DPConfig | None = None,
) -> TrainStep:
    """``step(state, batch) -> (state, metrics)``: one gradient update, pure and jit-able.

    The gradient is that of the mean loss over every token of the batch, however the batch is
    split: into ``microbatches`` equal parts run one after another inside the step (gradient
    accumulation with ``lax.scan``, for batches too large for memory), and across the devices
    of ``axis_name`` when the step runs under ``jax.pmap``/``shard_map`` (each device passes its
    shard). Each part's gradient and metrics are weighted by its ``tokens`` metric (1 if the
    loss function reports none), summed, then divided by the total, so a padded part counts for
    what it holds and every split gives the update of the whole batch.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> (loss, metrics)``, the mean over its batch.
      optimizer: the optax transformation applied to the averaged gradient.
      microbatches: equal parts the batch (every leaf's leading axis) is split into.
      axis_name: the named device axis to sum gradients over, or ``None`` on one device.
      privacy: DP-SGD (:mod:`jaxllm.privacy.dp_sgd`): every example's gradient clipped and the
        sum noised, parts weighted by their examples rather than their tokens.

    Metrics are the loss function's (token-weighted means; ``tokens`` is the total; with
    ``privacy``, example means and ``clip_fraction``) plus ``grad_norm`` (before clipping).
    Randomness (dropout) is drawn from ``fold_in(rng, step)``, then folded with the device
    index and the micro-batch index (and the example's, with ``privacy``).
    """
    require(microbatches >= 1, f"microbatches must be >= 1, got {microbatches}", ValueError)

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        _check_example_weights(batch, privacy)
        step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        key = step_key
        if axis_name is not None:
            key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
        part = _part(loss_fn, state.params, privacy)
        grads, sums, weight = _gradient_sums(part, batch, key, microbatches)
        if axis_name is not None:
            grads, sums, weight = jax.lax.psum((grads, sums, weight), axis_name)
        if privacy is not None:  # one draw, the same on every device
            grads = add_noise(grads, jax.random.fold_in(step_key, NOISE_STREAM), privacy)
        grads = jax.tree.map(lambda g: g / _divisor(weight, privacy), grads)
        present = jnp.where(weight > 0, weight, 1.0)  # a Poisson draw may hold no example
        metrics = {name: total / present for name, total in sums.items()}
        if "tokens" in sums:
            metrics["tokens"] = weight
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        new_state = dataclasses.replace(
            state, step=state.step + 1, params=params, opt_state=opt_state
        )
        return new_state, metrics

    return step


def _check_example_weights(batch: dict, privacy: DPConfig | None) -> None:
    """Padded (Poisson-sampled) batches need DP-SGD with a fixed divisor: a draw of no example
    would otherwise divide by zero."""
    if EXAMPLE_WEIGHTS in batch and (privacy is None or privacy.expected_batch_size is None):
        raise ValueError(
            f"the batch has {EXAMPLE_WEIGHTS!r} (Poisson-sampled, padded rows), which only "
            "DP-SGD with DPConfig(expected_batch_size=q·n) reads; set it (the recipe's "
            "privacy settings do), or leave the key out"
        )


def _divisor(weight: Array, privacy: DPConfig | None) -> Array:
    """What the summed gradient is divided by: the batch's weight (tokens or examples), or
    with Poisson sampling the expected batch size, a constant."""
    if privacy is not None and privacy.expected_batch_size is not None:
        return jnp.float32(privacy.expected_batch_size)
    return weight


def _part(loss_fn: LossFn, params: Any, privacy: DPConfig | None) -> Callable:
    """The sums of one (micro-)batch: token-weighted, or clipped per example with ``privacy``."""
    if privacy is None:
        return _weighted_part(loss_fn, params)
    return clipped_part(loss_fn, params, privacy.clip_norm)


def _weighted_part(loss_fn: LossFn, params: Any) -> Callable[[dict, Array], tuple]:
    """``part(batch, key) -> (w·grad, {name: w·metric}, w)`` of one (micro-)batch, with ``w``
    its ``tokens`` metric (1 if absent)."""

    def weighted(batch: dict, key: Array) -> tuple[Any, dict, Array]:
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        weight = jnp.asarray(metrics.get("tokens", 1.0), jnp.float32)
        sums = {name: weight * value for name, value in metrics.items() if name != "tokens"}
        if "tokens" in metrics:
            sums["tokens"] = weight
        return jax.tree.map(lambda g: weight * g, grads), sums, weight

    return weighted


def _gradient_sums(
    weighted: Callable[[dict, Array], tuple], batch: dict, key: Array, microbatches: int
) -> tuple[Any, dict, Array]:
    """The sums ``weighted(part, key_i)`` returns, ``(gradients, metrics, weight)``, over the
    micro-batches of ``batch`` (``key_i``: ``key`` folded with the part's index)."""
    if microbatches == 1:
        return weighted(batch, key)
    parts = jax.tree.map(lambda x: _split_leading(x, microbatches), batch)

    def accumulate(carry, part):
        index, part = part
        out = weighted(part, jax.random.fold_in(key, index))
        return jax.tree.map(jnp.add, carry, out), None

    zeros = jax.tree.map(
        jnp.zeros_like, jax.eval_shape(weighted, jax.tree.map(lambda x: x[0], parts), key)
    )
    total, _ = jax.lax.scan(accumulate, zeros, (jnp.arange(microbatches), parts))
    return total


def _split_leading(x: Array, parts: int) -> Array:
    """[n, ...] -> [parts, n / parts, ...]."""
    if x.shape[0] % parts:
        raise ValueError(
            f"a batch of {x.shape[0]} rows cannot be split into {parts} equal "
            "micro-batches; choose a batch size divisible by the number of micro-batches"
        )
    return x.reshape(parts, x.shape[0] // parts, *x.shape[1:])


def make_eval_step(loss_fn: LossFn) -> Callable[[Any, dict], dict]:
    """``eval_step(params, batch) -> metrics`` with no dropout (the loss function gets
    ``key=None``)."""

    def eval_step(params: Any, batch: dict) -> dict:
        _, metrics = loss_fn(params, batch, None)
        return metrics

    return eval_step


def jit_train_step(step: TrainStep) -> TrainStep:
    """``jax.jit`` with the state donated: its buffers are reused for the new state."""
    return jax.jit(step, donate_argnums=0)


def evaluate(eval_step: Callable[[Any, dict], dict], params: Any, batches) -> dict[str, float]:
    """Token-weighted mean of each metric over ``batches`` (an iterable of batches).

    Each batch's metrics are weighted by its ``tokens`` metric (so padded, partial batches
    count for what they hold); returns plain floats.
    """
    totals: dict[str, float] = {}
    weight = 0.0
    for batch in batches:
        metrics = jax.device_get(eval_step(params, batch))
        n = float(metrics.get("tokens", 1.0))
        for name, value in metrics.items():
            if name != "tokens":
                totals[name] = totals.get(name, 0.0) + float(value) * n
        weight += n
    if weight == 0:
        raise ValueError("evaluation saw no tokens: the evaluation split is empty")
    return {name: total / weight for name, total in totals.items()} | {"tokens": weight}
