"""Pure training and evaluation steps built from any ``loss_fn(params, batch, key)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxllm.losses import LossFn
from jaxllm.train.state import TrainState

TrainStep = Callable[[TrainState, dict], tuple[TrainState, dict]]


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation) -> TrainStep:
    """``step(state, batch) -> (state, metrics)``: one gradient update, pure and jit-able.

    Metrics are the loss function's plus ``grad_norm`` (before clipping).
    """

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step


def make_eval_step(loss_fn: LossFn) -> Callable[[Any, dict], dict]:
    """``eval_step(params, batch) -> metrics`` with no dropout (the loss function gets ``key=None``)."""

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


def perplexity(loss: float) -> float:
    """exp(mean next-token cross-entropy)."""
    return float(jnp.exp(loss))
