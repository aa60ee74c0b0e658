"""``fit``: the one impure place -- iterate, log, evaluate, early-stop, checkpoint, show progress."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxllm.config import require
from jaxllm.train.checkpoint import Checkpointer
from jaxllm.train.logging import MetricsWriter
from jaxllm.train.state import TrainState


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """How ``fit`` drives training.

    Attributes:
      num_steps: train until the state's step reaches this (a resumed run continues to it).
      log_every: write averaged training metrics every N steps.
      eval_every: evaluate every N steps (and at the last step).
      checkpoint_every: save every N steps; 0 saves at each evaluation and at the end.
      keep_checkpoints: keep the newest N checkpoints.
      patience: stop after this many evaluations without a validation-loss improvement of at
        least ``min_delta`` (0 disables early stopping).
      min_delta: smallest decrease of the validation loss that counts as an improvement.
      progress: show a tqdm progress bar.
    """

    num_steps: int
    log_every: int = 10
    eval_every: int = 100
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    patience: int = 0
    min_delta: float = 0.0
    progress: bool = True

    def __post_init__(self):
        require(self.num_steps >= 0, f"LoopConfig.num_steps must be >= 0, got {self.num_steps}")
        require(self.log_every > 0 and self.eval_every > 0, "log_every and eval_every must be > 0")
        require(self.checkpoint_every >= 0 and self.keep_checkpoints > 0,
                "checkpoint_every must be >= 0 and keep_checkpoints > 0")
        require(self.patience >= 0, "LoopConfig.patience must be >= 0")


@dataclasses.dataclass
class FitResult:
    """What ``fit`` returns: the final state, every logged record, and why it stopped."""

    state: TrainState
    history: list[dict]
    best_val_loss: float | None
    best_step: int | None
    stop_reason: str  # "completed" | "early_stopping"


def _check_finite(metrics: list[dict], first_step: int, last_good: int | None, where: str) -> None:
    for i, m in enumerate(metrics):
        bad = {k: float(v) for k, v in m.items() if not math.isfinite(float(v))}
        if bad:
            raise NonFiniteLossError(
                f"training diverged at step {first_step + i}: {bad}. Training stopped; the last "
                f"good checkpoint is {'step ' + str(last_good) + ' in ' + where if last_good is not None else 'none (none was saved)'}. "
                "Lower the learning rate, raise warm-up or clip gradients, then resume from it.")


def _alive(state: TrainState) -> bool:
    """False once the state's buffers were donated to a step that did not complete."""
    return not any(getattr(leaf, "is_deleted", lambda: False)() for leaf in jax.tree.leaves(state))


def _mean(metrics: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([float(m[k]) for m in metrics])) for k in metrics[0]}


def fit(state: TrainState, train_step: Callable[[TrainState, dict], tuple[TrainState, dict]],
        batch_fn: Callable[[int], dict], config: LoopConfig, *,
        eval_fn: Callable[[Any], dict[str, float]] | None = None,
        writer: MetricsWriter | None = None, checkpointer: Checkpointer | None = None,
        checkpoint_metadata: dict | None = None,
        learning_rate_fn: Callable[[int], float] | None = None,
        plain_state: Callable[[TrainState], TrainState] | None = None) -> FitResult:
    """Train ``state`` from its current step to ``config.num_steps``.

    Args:
      state: the train state (fresh, or restored from a checkpoint to resume).
      train_step: compiled ``step(state, batch) -> (state, metrics)``; metrics include ``loss``
        and ``tokens``.
      batch_fn: ``batch_fn(step) -> batch``, a pure function of the step so that a resumed run
        sees the batches an uninterrupted one would.
      eval_fn: ``eval_fn(params) -> {"loss": ..., ...}`` on the validation split; its metrics are
        logged with a ``val_`` prefix and drive early stopping.
      writer: where metrics go (JSON lines, TensorBoard).
      checkpointer: saves the state (with ``checkpoint_metadata`` and the latest ``val_loss``).
      learning_rate_fn: schedule, to log the learning rate.
      plain_state: maps the state ``train_step`` works on to one logical copy for evaluation,
        checkpoints and the result (a parallel layout's ``plain_state``; default: itself).

    In a multi-process run every process calls ``fit`` (evaluation and checkpoints are
    collective); only process 0 writes metrics and shows progress.

    Raises:
      NonFiniteLossError: a loss or gradient norm became NaN/inf; nothing after the last finite
        step is checkpointed, so the newest checkpoint on disk is a good one.
    """
    plain = plain_state or (lambda s: s)
    primary = jax.process_index() == 0
    writer = writer if primary else None
    start = int(plain(state).step)
    history: list[dict] = []
    best_val, best_step, evals_since_best = None, None, 0
    stop_reason = "completed"
    last_good = checkpointer.latest_step() if checkpointer else None
    where = str(checkpointer.directory) if checkpointer else ""
    pending: list[dict] = []
    interval_start, interval_tokens = time.perf_counter(), 0.0

    bar = tqdm(total=config.num_steps, initial=start, disable=not (config.progress and primary),
               desc="train", unit="step", dynamic_ncols=True)
    try:
        for s in range(start, config.num_steps):
            state, metrics = train_step(state, batch_fn(s))
            pending.append(metrics)
            step = s + 1
            last = step == config.num_steps
            do_eval = eval_fn is not None and (step % config.eval_every == 0 or last)
            do_save = checkpointer is not None and (
                last or (config.checkpoint_every and step % config.checkpoint_every == 0)
                or (not config.checkpoint_every and do_eval))
            bar.update(1)
            if not (step % config.log_every == 0 or do_eval or do_save or last):
                continue

            fetched = jax.device_get(pending)
            _check_finite(fetched, step - len(fetched) + 1, last_good, where)
            interval_tokens += sum(float(m.get("tokens", 0.0)) for m in fetched)
            elapsed = time.perf_counter() - interval_start
            record = _mean(fetched)
            record.pop("tokens", None)
            record["tokens_per_s"] = interval_tokens / max(elapsed, 1e-9)
            if learning_rate_fn is not None:
                record["lr"] = float(learning_rate_fn(s))
            pending = []

            if do_eval:
                val = eval_fn(plain(state).params)
                record |= {f"val_{k}": float(v) for k, v in val.items() if k != "tokens"}
                val_loss = record["val_loss"]
                if best_val is None or val_loss < best_val - config.min_delta:
                    best_val, best_step, evals_since_best = val_loss, step, 0
                else:
                    evals_since_best += 1
            if writer is not None:
                writer.write(step, record)
            history.append({"step": step} | record)
            if do_save:
                meta = dict(checkpoint_metadata or {})
                if "val_loss" in record:
                    meta["val_loss"] = record["val_loss"]
                checkpointer.save(step, plain(state), meta)
                last_good = step
            bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "val_loss", "tokens_per_s")
                             if k in record})
            interval_start, interval_tokens = time.perf_counter(), 0.0
            if config.patience and evals_since_best >= config.patience:
                stop_reason = "early_stopping"
                bar.write(f"early stopping at step {step}: no validation improvement in "
                          f"{config.patience} evaluations (best {best_val:.4f} at step {best_step})")
                break
    except KeyboardInterrupt:
        # Stopping by hand keeps the work done so far: save the last completed step, then stop.
        if checkpointer is not None and _alive(state) and int(plain(state).step) != last_good:
            fetched = jax.device_get(pending)
            done = int(plain(state).step)
            _check_finite(fetched, done - len(fetched) + 1, last_good, where)
            checkpointer.save(done, plain(state), checkpoint_metadata)
            bar.write(f"interrupted: saved step {done} in {where}; resume to continue")
        raise
    finally:
        bar.close()
    return FitResult(state=plain(state), history=history, best_val_loss=best_val, best_step=best_step,
                     stop_reason=stop_reason)
