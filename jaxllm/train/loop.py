"""``fit``: the one impure place -- iterate, log, evaluate, early-stop, checkpoint, show
progress."""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxllm.config import require
from jaxllm.train.checkpoint import Checkpointer, NonFiniteStateError
from jaxllm.train.logging import MetricsWriter
from jaxllm.train.state import TrainState
from jaxllm.train.stops import SecondSignal, StopSignals, TrainingInterrupted


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
        require(
            self.checkpoint_every >= 0 and self.keep_checkpoints > 0,
            "checkpoint_every must be >= 0 and keep_checkpoints > 0",
        )
        require(self.patience >= 0, "LoopConfig.patience must be >= 0")


@dataclasses.dataclass
class FitResult:
    """What ``fit`` returns: the final state, every logged record, and why it stopped."""

    state: TrainState
    history: list[dict]
    best_val_loss: float | None
    best_step: int | None
    stop_reason: str  # "completed" | "early_stopping"


def _diverged(step: int, what: str, last_good: int | None, where: str) -> NonFiniteLossError:
    """The error for a run that diverged at ``step`` (``what`` says how)."""
    good = "none (none was saved)" if last_good is None else f"step {last_good} in {where}"
    return NonFiniteLossError(
        f"training diverged at step {step}: {what}. Training stopped; the last good "
        f"checkpoint is {good}. Resume from it with a lower learning rate (the experiment "
        "scripts for language models and BERT: --resume --resume-step N --resume-learning-rate "
        "LR), or start again with "
        "more warm-up or gradient clipping"
    )


def _check_finite(metrics: list[dict], first_step: int, last_good: int | None, where: str) -> None:
    for i, m in enumerate(metrics):
        bad = {k: float(v) for k, v in m.items() if not math.isfinite(float(v))}
        if bad:
            raise _diverged(first_step + i, str(bad), last_good, where)


def _alive(state: TrainState) -> bool:
    """False once the state's buffers were donated to a step that did not complete."""
    return not any(getattr(leaf, "is_deleted", lambda: False)() for leaf in jax.tree.leaves(state))


def _mean(metrics: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([float(m[k]) for m in metrics])) for k in metrics[0]}


# Checkpoint metadata: [best validation loss, its step, evaluations since it].
_EARLY_STOPPING_KEY = "early_stopping"


@dataclasses.dataclass
class _LoopProgress:
    """What ``fit`` carries from one step to the next.

    Attributes:
      last_good: step of the newest checkpoint on disk (None: none yet).
      checkpoint_dir: where checkpoints go, named in error messages ("" without a checkpointer).
      pending: the metrics (still on device) of the steps since the last logged record.
      interval_start: when those steps began, for tokens/s.
      history: every logged record, ``{"step": ..., **metrics}``.
      best_val, best_step: the lowest validation loss so far and the step that reached it.
      evals_since_best: evaluations since ``best_val`` last improved (drives early stopping).
      stop_reason: ``"completed"`` or ``"early_stopping"``.
    """

    last_good: int | None
    checkpoint_dir: str
    pending: list[dict] = dataclasses.field(default_factory=list)
    interval_start: float = dataclasses.field(default_factory=time.perf_counter)
    history: list[dict] = dataclasses.field(default_factory=list)
    best_val: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0
    stop_reason: str = "completed"

    @classmethod
    def at_start(
        cls, checkpointer: Checkpointer | None, patience: int, start: int
    ) -> _LoopProgress:
        """Nothing logged yet at step ``start``; the last good checkpoint is ``start``'s when
        there is one (a resumed run), else the newest on disk, and the early-stopping record
        (best loss, its step, evaluations since) is the one it saved, so a resumed run stops
        where an uninterrupted one would (at once, if it had stopped)."""
        steps = checkpointer.steps() if checkpointer else []
        latest = start if start in steps else (steps[-1] if steps else None)
        progress = cls(
            last_good=latest, checkpoint_dir=str(checkpointer.directory) if checkpointer else ""
        )
        if checkpointer is not None and latest is not None:
            saved = checkpointer.read_metadata(latest).get(_EARLY_STOPPING_KEY)
            if saved:
                progress.best_val, progress.best_step, progress.evals_since_best = saved
        if patience and progress.evals_since_best >= patience:
            progress.stop_reason = "early_stopping"
        return progress

    def result(self, state: TrainState) -> FitResult:
        """What ``fit`` returns when it ends with ``state``."""
        return FitResult(
            state=state,
            history=self.history,
            best_val_loss=self.best_val,
            best_step=self.best_step,
            stop_reason=self.stop_reason,
        )


@dataclasses.dataclass(frozen=True)
class _FitHooks:
    """``fit``'s optional collaborators, as its arguments of the same names (``writer`` is
    None off process 0; ``plain`` is ``plain_state``, by default the identity)."""

    eval_fn: Callable[[Any], dict[str, float]] | None
    writer: MetricsWriter | None
    checkpointer: Checkpointer | None
    checkpoint_metadata: dict | None
    learning_rate_fn: optax.Schedule | None
    plain: Callable[[TrainState], TrainState]


def _due(
    step: int, config: LoopConfig, evaluating: bool, checkpointing: bool
) -> tuple[bool, bool, bool]:
    """Whether ``step`` (steps done so far) logs a record, evaluates, and saves a checkpoint.

    Evaluation runs every ``eval_every`` steps and at the last step; a checkpoint is saved
    every ``checkpoint_every`` steps (with each evaluation when 0) and at the last step; a
    record is logged every ``log_every`` steps and whenever either of the others happens.
    """
    last = step == config.num_steps
    evaluate = evaluating and (step % config.eval_every == 0 or last)
    save = checkpointing and bool(
        last
        or (config.checkpoint_every and step % config.checkpoint_every == 0)
        or (not config.checkpoint_every and evaluate)
    )
    log = step % config.log_every == 0 or evaluate or save or last
    return log, evaluate, save


def _log_record(
    progress: _LoopProgress, step: int, learning_rate_fn: optax.Schedule | None
) -> dict[str, float]:
    """The record of the steps since the last one, up to ``step``: their mean metrics,
    ``tokens_per_s`` (``steps_per_s`` when the metrics count no tokens) over the interval and
    the learning rate; empties ``progress.pending``.

    Raises:
      NonFiniteLossError: one of those steps had a NaN or infinite metric.
    """
    fetched = jax.device_get(progress.pending)
    _check_finite(fetched, step - len(fetched) + 1, progress.last_good, progress.checkpoint_dir)
    elapsed = max(time.perf_counter() - progress.interval_start, 1e-9)
    record = _mean(fetched)
    if "tokens" in record:  # a language model's; a classifier's steps count examples
        record.pop("tokens")
        record["tokens_per_s"] = sum(float(m["tokens"]) for m in fetched) / elapsed
    else:
        record["steps_per_s"] = len(fetched) / elapsed
    if learning_rate_fn is not None:
        # The schedule's count before the update.
        record["lr"] = float(np.asarray(learning_rate_fn(step - 1)))
    progress.pending = []
    return record


def _evaluate_and_track_best(
    progress: _LoopProgress,
    eval_fn: Callable[[Any], dict[str, float]],
    params: Any,
    step: int,
    min_delta: float,
) -> dict[str, float]:
    """``eval_fn(params)``'s metrics prefixed ``val_`` (without ``tokens``); the best validation
    loss moves to ``step`` when this one is lower by more than ``min_delta``."""
    val = {f"val_{k}": float(v) for k, v in eval_fn(params).items() if k != "tokens"}
    val_loss = val["val_loss"]
    if not math.isfinite(val_loss):
        raise _diverged(
            step, f"validation loss {val_loss}", progress.last_good, progress.checkpoint_dir
        )
    if progress.best_val is None or val_loss < progress.best_val - min_delta:
        progress.best_val, progress.best_step, progress.evals_since_best = val_loss, step, 0
    else:
        progress.evals_since_best += 1
    return val


def _save(
    checkpointer: Checkpointer,
    progress: _LoopProgress,
    step: int,
    state: TrainState,
    metadata: dict | None,
    record: dict[str, float],
) -> None:
    """Checkpoint ``state`` at ``step`` with ``metadata`` and the record's ``val_loss`` (when it
    has one); it becomes the last good checkpoint."""
    meta = dict(metadata or {})
    if "val_loss" in record:
        meta["val_loss"] = record["val_loss"]
    if progress.best_val is not None:
        meta[_EARLY_STOPPING_KEY] = [
            progress.best_val,
            progress.best_step,
            progress.evals_since_best,
        ]
    try:
        checkpointer.save(step, state, meta)
    except NonFiniteStateError as e:
        raise _diverged(step, str(e), progress.last_good, progress.checkpoint_dir) from e
    progress.last_good = step


def _save_last_completed(hooks: _FitHooks, progress: _LoopProgress, state: TrainState) -> int:
    """Save ``state``'s step, the last completed one, for a stop, unless it is on disk already
    (perhaps saved just before the stop); its unlogged metrics are checked first, so a
    diverged state is never saved. Returns the step (the caller checks there is a
    checkpointer)."""
    checkpointer, plain = hooks.checkpointer, hooks.plain
    assert checkpointer is not None
    done = int(plain(state).step)
    if done != progress.last_good and done not in checkpointer.steps():
        fetched = jax.device_get(progress.pending)
        first = done - len(fetched) + 1
        _check_finite(fetched, first, progress.last_good, progress.checkpoint_dir)
        _save(checkpointer, progress, done, plain(state), hooks.checkpoint_metadata, {})
    return done


def _save_on_interrupt(
    hooks: _FitHooks, progress: _LoopProgress, state: TrainState, bar: tqdm
) -> None:
    """Stopping by hand (a ``KeyboardInterrupt`` where no signal handler runs) keeps the work
    done so far: the last completed step is saved, unless its buffers went to the step that
    was interrupted."""
    if hooks.checkpointer is None or not _alive(state):
        return
    done = _save_last_completed(hooks, progress, state)
    bar.write(f"interrupted: step {done} is saved in {progress.checkpoint_dir}; resume to continue")


def _stop_on_signal(
    hooks: _FitHooks, progress: _LoopProgress, state: TrainState, signum: int
) -> TrainingInterrupted:
    """Save the last completed step for a stop that ``signum`` asked for, and return the
    error that says so."""
    done = int(hooks.plain(state).step)
    saved = "nothing was saved (no checkpointer)"
    if hooks.checkpointer is not None:
        _save_last_completed(hooks, progress, state)
        saved = f"step {done} is saved in {progress.checkpoint_dir}; resume to continue"
    name = signal.Signals(signum).name
    return TrainingInterrupted(f"stopped by {name} after step {done}: {saved}", signum, done)


def _progress_bar(config: LoopConfig, start: int, shown: bool) -> tqdm:
    """A bar of the steps done out of ``config.num_steps``, hidden unless ``shown``."""
    return tqdm(
        total=config.num_steps,
        initial=start,
        disable=not (config.progress and shown),
        desc="train",
        unit="step",
        dynamic_ncols=True,
    )


def _publish_record(
    progress: _LoopProgress,
    step: int,
    record: dict[str, float],
    writer: MetricsWriter | None,
    bar: tqdm,
) -> None:
    """Send ``step``'s record where it is read: the metrics writer, the history, and the
    progress bar (loss, validation loss, tokens/s)."""
    if writer is not None:
        writer.write(step, record)
    progress.history.append({"step": step} | record)
    bar.set_postfix(
        {
            k: f"{record[k]:.4g}"
            for k in ("loss", "val_loss", "tokens_per_s", "steps_per_s")
            if k in record
        }
    )


def _patience_ran_out(progress: _LoopProgress, config: LoopConfig, step: int, bar: tqdm) -> bool:
    """Whether early stopping ends training at ``step``: ``config.patience`` evaluations in a
    row did not improve the validation loss. If so it records why and says so on the bar."""
    if not (config.patience and progress.evals_since_best >= config.patience):
        return False
    progress.stop_reason = "early_stopping"
    bar.write(
        f"early stopping at step {step}: no validation improvement in {config.patience} "
        f"evaluations (best {progress.best_val:.4f} at step {progress.best_step})"
    )
    return True


def _after_step(
    progress: _LoopProgress,
    hooks: _FitHooks,
    config: LoopConfig,
    step: int,
    state: TrainState,
    metrics: dict,
    bar: tqdm,
) -> bool:
    """Account for ``step`` (steps done, ``metrics`` its own): log a record, evaluate and save a
    checkpoint when they are due. Returns whether early stopping ends training there."""
    progress.pending.append(metrics)
    bar.update(1)
    evaluating, checkpointing = hooks.eval_fn is not None, hooks.checkpointer is not None
    log, evaluate, save = _due(step, config, evaluating, checkpointing)
    if not log:
        return False
    record = _log_record(progress, step, hooks.learning_rate_fn)
    if evaluate and hooks.eval_fn is not None:
        params = hooks.plain(state).params
        record |= _evaluate_and_track_best(progress, hooks.eval_fn, params, step, config.min_delta)
    _publish_record(progress, step, record, hooks.writer, bar)
    if save and hooks.checkpointer is not None:
        logical = hooks.plain(state)
        _save(hooks.checkpointer, progress, step, logical, hooks.checkpoint_metadata, record)
    progress.interval_start = time.perf_counter()  # evaluating and saving is not training
    return _patience_ran_out(progress, config, step, bar)


def fit(
    state: TrainState,
    train_step: Callable[[TrainState, dict], tuple[TrainState, dict]],
    batch_fn: Callable[[int], dict],
    config: LoopConfig,
    *,
    eval_fn: Callable[[Any], dict[str, float]] | None = None,
    writer: MetricsWriter | None = None,
    checkpointer: Checkpointer | None = None,
    checkpoint_metadata: dict | None = None,
    learning_rate_fn: optax.Schedule | None = None,
    plain_state: Callable[[TrainState], TrainState] | None = None,
) -> FitResult:
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

    SIGINT (Ctrl-C) or SIGTERM (what job schedulers send) stops training after the step in
    progress: that step is saved and :class:`TrainingInterrupted` raised; a second signal
    stops at once. Several processes stop together at the next logged step.

    Raises:
      NonFiniteLossError: a loss, gradient norm, validation loss or the state to be saved
        became NaN/inf; nothing after the last finite step is checkpointed, so the newest
        checkpoint on disk is a good one.
      TrainingInterrupted: a signal stopped training (a ``KeyboardInterrupt``).
    """
    primary = jax.process_index() == 0
    hooks = _FitHooks(
        eval_fn=eval_fn,
        writer=writer if primary else None,
        checkpointer=checkpointer,
        checkpoint_metadata=checkpoint_metadata,
        learning_rate_fn=learning_rate_fn,
        plain=plain_state or (lambda s: s),
    )
    start = int(hooks.plain(state).step)
    progress = _LoopProgress.at_start(checkpointer, config.patience, start)
    end = start if progress.stop_reason == "early_stopping" else config.num_steps
    bar = _progress_bar(config, start, shown=primary)
    try:
        state = _train_steps(state, train_step, batch_fn, config, hooks, progress, bar, end)
    finally:
        bar.close()
    return progress.result(hooks.plain(state))


def _train_steps(
    state: TrainState,
    train_step: Callable[[TrainState, dict], tuple[TrainState, dict]],
    batch_fn: Callable[[int], dict],
    config: LoopConfig,
    hooks: _FitHooks,
    progress: _LoopProgress,
    bar: tqdm,
    end: int,
) -> TrainState:
    """``fit``'s loop: the steps after ``state``'s up to ``end`` (or early stopping), each
    accounted for by :func:`_after_step`; a signal stops it after the step in progress (and a
    signal during the last step, once it is saved; without a checkpointer the finished state
    is returned). Returns the final state.

    Raises:
      TrainingInterrupted: a signal stopped training.
    """
    with StopSignals() as signals:
        try:
            for step in range(int(hooks.plain(state).step) + 1, end + 1):  # steps done after it
                state, metrics = train_step(state, batch_fn(step - 1))
                if _after_step(progress, hooks, config, step, state, metrics, bar):
                    break
                signum = signals.agreed(step, config.log_every)
                if signum is not None and step < end:
                    raise _stop_on_signal(hooks, progress, state, signum)
            signum = signals.agreed(0, 1)  # every process asks, once more
            if signum is not None and hooks.checkpointer is not None:  # else: return the state
                raise _stop_on_signal(hooks, progress, state, signum)
        except KeyboardInterrupt as e:  # not a signal's stop: Ctrl-C where no handler runs
            if not isinstance(e, (TrainingInterrupted, SecondSignal)):
                _save_on_interrupt(hooks, progress, state, bar)
            raise
    return state
