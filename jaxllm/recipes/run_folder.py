"""The run folder every recipe writes, and the policy for resuming a run in it.

A recipe's config names its folder (``config.run_dir``, i.e. ``<out_dir>/<name>``) and says
whether to continue the run there (``config.resume``). The folder holds ``config.json`` (the
resolved config, written when the run starts) and ``checkpoints/``, beside whatever the recipe
adds. A new run never overwrites a folder that holds checkpoints, and a resumed run must be
the same run: only the settings the recipe declares resumable may change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import jax

from jaxllm.config import ConfigError, config_to_dict, load_config
from jaxllm.data import Tokenizer
from jaxllm.data.json_files import write_json_atomically
from jaxllm.train import Checkpointer, CheckpointError
from jaxllm.train.processes import barrier, check_same_settings, everywhere


class RunConfig(Protocol):
    """What this module needs of a recipe's config (a frozen dataclass)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def name(self) -> str: ...

    @property
    def resume(self) -> bool: ...

    @property
    def run_dir(self) -> Path: ...


C = TypeVar("C", bound=RunConfig)
T = TypeVar("T")


def flat_config(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"n_layer": 4}}`` -> ``{"model.n_layer": 4}``: a nested config's leaves."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out |= flat_config(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def resumed_config(
    config: C, resumable: Collection[str], filled_at_start: Mapping[str, Any] = {}
) -> C:
    """The config saved in ``config.run_dir``, with the ``resumable`` top-level settings taken
    from ``config``.

    Args:
      config: the config the user gave to resume with.
      resumable: top-level field names a resume may change (a nested config named here may
        change as a whole, e.g. ``"loop"``).
      filled_at_start: dotted keys the recipe resolves when a run starts (e.g.
        ``{"model.vocab_size": 0}``, or a nested config such as ``{"model.bert": None}``),
        with the placeholder value a user leaves them at.

    Raises:
      ConfigError: any other setting differs from the saved one (it would not be the same run).
    """
    saved = load_config(type(config), config.run_dir / "config.json")
    given, stored = flat_config(config_to_dict(config)), flat_config(config_to_dict(saved))
    diffs = {
        key: (value, given.get(key))
        for key, value in stored.items()
        if not _named(key, resumable)
        and value != given.get(key)
        and not _left_to_fill(key, given, filled_at_start)
    }
    if diffs:
        listing = ", ".join(
            f"{k}: saved {a!r} vs given {b!r}" for k, (a, b) in sorted(diffs.items())
        )
        lower = hasattr(config, "resume_learning_rate") and "optimizer.learning_rate" in diffs
        raise ConfigError(
            f"--resume with settings that differ from the run in {config.run_dir} "
            f"({listing}); pass the original settings, or start a new run with "
            "another --name"
            + ("; to change the learning rate, pass --resume-learning-rate" if lower else "")
        )
    return dataclasses.replace(saved, **{k: getattr(config, k) for k in resumable})


def _named(key: str, names: Collection[str]) -> bool:
    """Whether dotted ``key`` is one of ``names`` or lies inside one (``"loop.num_steps"`` is
    in ``"loop"``)."""
    return any(key == name or key.startswith(name + ".") for name in names)


def _left_to_fill(key: str, given: Mapping[str, Any], filled_at_start: Mapping[str, Any]) -> bool:
    """Whether saved setting ``key`` was filled in at the start and the user left it (or the
    nested config holding it, e.g. ``"model.bert"``) at its placeholder."""
    return any(
        _named(key, [filled]) and given.get(filled, ...) == placeholder
        for filled, placeholder in filled_at_start.items()
    )


def check_run_name(name: str) -> None:
    """A run's ``name`` must be a plain folder name, so its folder lies inside ``out_dir``.

    Raises:
      ConfigError: an empty name, ``.`` or ``..``, or one holding a path separator.
    """
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ConfigError(
            f"--name {name!r} must be a plain folder name (no '/', '\\', '.' or '..'): the run "
            "folder is <out-dir>/<name>; choose where it goes with --out-dir"
        )


def check_resume_step(
    resume: bool, resume_step: int | None, resume_learning_rate: float | None = None
) -> None:
    """A recipe config's resume settings: ``resume_step`` (a step >= 0) and
    ``resume_learning_rate`` (> 0) need ``resume``.

    Raises:
      ConfigError: naming the fix.
    """
    for flag, value in (
        ("--resume-step", resume_step),
        ("--resume-learning-rate", resume_learning_rate),
    ):
        if value is not None and not resume:
            raise ConfigError(f"{flag} {value} needs --resume (it applies to a resumed run)")
    if resume_step is not None and resume_step < 0:
        raise ConfigError(f"--resume-step must be a step >= 0, got {resume_step}")
    if resume_learning_rate is not None and not resume_learning_rate > 0:
        raise ConfigError(f"--resume-learning-rate must be > 0, got {resume_learning_rate}")


def prepare_run_dir(
    config: C, resumable: Collection[str], filled_at_start: Mapping[str, Any] = {}
) -> C:
    """Check ``config.run_dir`` against ``config.resume``; return the config to run with.

    A new run needs a folder without checkpoints (what an earlier attempt left there is set
    aside, :func:`set_aside_earlier_attempt`); a resumed one, a folder with a saved config
    (see :func:`resumed_config`). The folder is created by the first file the run writes, so
    a run that fails on its settings or data leaves none behind.

    Raises:
      ConfigError: ``config.name`` is not a plain folder name.
      FileExistsError: a new run in a folder that holds checkpoints, or in a folder that is
        not a run's (nothing is written there).
      FileNotFoundError: ``resume`` without a run in the folder.
    """
    check_run_name(config.name)
    given = flat_config(config_to_dict(config))
    given.pop("parallel.process_id", None)  # the one setting each process has its own
    check_same_settings(given)
    run_dir = config.run_dir
    if config.resume:
        saved = on_every_process(lambda: _saved_run(config, resumable, filled_at_start))
        return _with_resume_learning_rate(saved)
    on_every_process(lambda: _check_free_for_a_new_run(run_dir))
    barrier("jaxllm: run folder checked")  # every process looked before anything moves
    if run_dir.is_dir() and jax.process_index() == 0:  # process 0 writes the folder's files
        set_aside_earlier_attempt(run_dir)
    barrier("jaxllm: earlier attempt set aside")
    return config


def _saved_run(config: C, resumable: Collection[str], filled_at_start: Mapping[str, Any]) -> C:
    """The config of the run ``config`` resumes (:func:`resumed_config`).

    Raises:
      FileNotFoundError: the folder holds no run.
    """
    if not (config.run_dir / "config.json").is_file():
        raise FileNotFoundError(f"--resume: no run to resume in {config.run_dir} (no config.json)")
    return resumed_config(config, resumable, filled_at_start)


def on_every_process(check: Callable[[], T], what: str = "use the run folder") -> T:
    """``check()``, which must succeed on every process of the run, or fail on all of them:
    one whose files differ (a folder per host, a stale network file system) must not go on
    alone into a collective. ``what`` says what ``check`` does, for the other processes'
    message.

    Raises:
      Exception: ``check``'s own error, or on the processes where it passed, a
        ``ConfigError`` saying that another process's check failed.
    """
    error: Exception | None = None
    try:
        result = check()
    except Exception as e:  # raised below, once every process knows
        error = e
    if not everywhere(error is None):
        raise error or ConfigError(
            f"another process of this run could not {what} (its error says why); every "
            "process must see the same files"
        )
    return result  # type: ignore[possibly-undefined]


def _check_free_for_a_new_run(run_dir: Path) -> None:
    """A new run may use ``run_dir`` if it holds no checkpoint (an unfinished save's
    temporary folder is none) and is a run's folder or holds no file (an earlier attempt's
    ``earlier-<n>/`` aside).

    Raises:
      FileExistsError: naming the folder and the fix.
    """
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir()):
        raise FileExistsError(
            f"{run_dir} already holds checkpoints; pass --resume to continue "
            "that run, or choose another --name (nothing was overwritten)"
        )
    files = run_dir.rglob("*") if run_dir.is_dir() else []
    outside_earlier = (
        p for p in files if not p.relative_to(run_dir).parts[0].startswith("earlier-")
    )
    if any(p.is_file() for p in outside_earlier) and not (run_dir / "config.json").is_file():
        raise FileExistsError(
            f"{run_dir} exists and is not a jaxllm run folder (no config.json); choose another "
            "--name or --out-dir (nothing was written there)"
        )


# Settings changed on resume, in the run folder: {"learning_rate": ...}. config.json stays
# the config the run began with.
RESUME_SETTINGS = "resume-settings.json"


def _with_resume_learning_rate(config: C) -> C:
    """``config`` (a resumed run's) with the learning rate from the last
    ``resume_learning_rate`` given to this run (recipes that have one): this resume's, or
    else the one an earlier resume recorded in the run's ``resume-settings.json``, whatever
    step the run resumes from. A new one is recorded there by process 0, atomically, after
    every process has read the file and found the same.

    Raises:
      ConfigError: the file is not what this function writes, or the processes disagree.
    """
    if not hasattr(config, "resume_learning_rate"):
        return config
    path = config.run_dir / RESUME_SETTINGS
    recorded = _recorded_resume_settings(path)
    given = config.resume_learning_rate  # type: ignore[attr-defined]
    rate = recorded.get("learning_rate") if given is None else given
    check_same_settings({"learning_rate": rate}, "resume settings")
    if rate is None:
        return config
    if rate != recorded.get("learning_rate") and jax.process_index() == 0:
        write_json_atomically(recorded | {"learning_rate": rate}, path, indent=2)
    barrier("jaxllm: resume settings written")
    began = config.optimizer.learning_rate  # type: ignore[attr-defined]
    say(config.name, f"learning rate {rate} (the run began with {began}; recorded in {path})")
    optimizer = dataclasses.replace(config.optimizer, learning_rate=rate)  # type: ignore[attr-defined]
    return dataclasses.replace(config, optimizer=optimizer)


def _recorded_resume_settings(path: Path) -> dict:
    """The settings earlier resumes recorded at ``path`` (none: ``{}``).

    Raises:
      ConfigError: the file does not hold a JSON object with a positive ``learning_rate``.
    """
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); fix or remove it") from e
    rate = recorded.get("learning_rate") if isinstance(recorded, dict) else None
    if not (isinstance(rate, (int, float)) and rate > 0):
        raise ConfigError(
            f'{path} should hold {{"learning_rate": <a number > 0>}}; fix or remove it'
        )
    return recorded


def set_aside_earlier_attempt(run_dir: Path) -> Path | None:
    """Move what an earlier run left in ``run_dir`` without a checkpoint (it stopped before
    its first one) into ``run_dir/earlier-<n>/``, so that the new run's ``metrics.jsonl`` and
    ``tensorboard/`` start empty and nothing is lost. Returns that folder, if anything moved."""
    leftovers = [p for p in run_dir.iterdir() if not p.name.startswith("earlier-")]
    if not leftovers:
        return None
    n = 1
    while (run_dir / f"earlier-{n}").exists():
        n += 1
    destination = run_dir / f"earlier-{n}"
    destination.mkdir()
    for path in leftovers:
        path.rename(destination / path.name)
    return destination


def say(name: str, message: str) -> None:
    """Print ``[name] message`` on process 0 (in a multi-process run it speaks for all)."""
    if jax.process_index() == 0:
        print(f"[{name}] {message}")


def require_run(run_dir: str | Path, script: str) -> Path:
    """``run_dir`` as a Path, if it holds a run's ``config.json``.

    Raises:
      FileNotFoundError: naming ``script`` (``experiments/<script>``), which makes one, and the
        Hugging Face import.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} holds no run (no config.json); make one with experiments/{script} "
            "or import one with `python -m jaxllm.interop import PATH --out RUN_DIR`"
        )
    return run_dir


def restore_params(
    run_dir: str | Path, tokenizer: Tokenizer, fresh: Any, step: int | None = None
) -> Any:
    """The parameters of checkpoint ``step`` (the newest: ``None``) of the run in ``run_dir``,
    as host arrays; ``fresh`` (a train state of the run's config) gives shapes and dtypes.

    Raises:
      FileNotFoundError: the run has no checkpoint.
      CheckpointError: ``tokenizer`` is not the one the checkpoint was trained with.
    """
    run_dir = Path(run_dir)
    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        if checkpointer.latest_step() is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to load")
        recorded = checkpointer.read_metadata(step).get("tokenizer_fingerprint")
        if recorded != tokenizer.fingerprint():
            raise CheckpointError(
                f"the tokenizer in {run_dir / 'tokenizer.json'} is not the one the checkpoint "
                "was trained with; restore the run's original tokenizer.json"
            )
        state, _ = checkpointer.restore(fresh, step)
    return jax.device_get(state.params)


def fit_in_run_folder(
    config: Any,
    layout: Any,
    checkpointer: Checkpointer,
    state: Any,
    train_step: Callable,
    batch_fn: Callable[[int], dict],
    eval_fn: Callable[[Any], dict],
    metadata: dict,
) -> Any:
    """``fit`` as the token-stream recipes run it: metrics (JSON lines and TensorBoard) in
    ``config.run_dir`` from process 0, checkpoints with ``metadata``, the learning rate of
    ``config.optimizer`` logged, ``config.loop``'s steps. Returns ``fit``'s result."""
    from jaxllm.optim import learning_rate_schedule
    from jaxllm.train import MetricsWriter, fit

    primary = jax.process_index() == 0
    start = int(layout.plain_state(state).step)
    writer = MetricsWriter(config.run_dir, keep_until=start) if primary else None
    with writer or contextlib.nullcontext():
        return fit(
            state,
            train_step,
            batch_fn,
            config.loop,
            eval_fn=eval_fn,
            writer=writer,
            checkpointer=checkpointer,
            checkpoint_metadata=metadata,
            learning_rate_fn=learning_rate_schedule(config.optimizer),
            plain_state=layout.plain_state,
        )
