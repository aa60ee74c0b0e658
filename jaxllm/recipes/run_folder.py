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
import functools
import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import jax
import numpy as np

from jaxllm.config import ConfigError, config_to_dict, load_config
from jaxllm.data import (
    DataConfig,
    Tokenizer,
    encode_corpus,
    load_tokenizer,
    train_tokenizer,
)
from jaxllm.train import Checkpointer, CheckpointError
from jaxllm.train.processes import barrier, check_same_settings


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
    """The config saved in ``config.run_dir``, with the ``resumable`` settings taken from
    ``config``.

    Args:
      config: the config the user gave to resume with.
      resumable: settings a resume may change: top-level field names (a nested config named
        here may change as a whole, e.g. ``"loop"``) or dotted keys of single nested
        settings (e.g. ``"optimizer.learning_rate"``), which change only when ``config``
        gives another value than the default (the run's own stays otherwise).
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
        raise ConfigError(
            f"--resume with settings that differ from the run in {config.run_dir} "
            f"({listing}); pass the original settings, or start a new run with "
            "another --name"
        )
    for key in sorted(resumable):
        parts = key.split(".")
        value = _get_dotted(config, parts)
        if len(parts) > 1 and value == _field_default(type(config), parts):
            continue  # a single nested setting left at its default: the run's own stays
        saved = _replace_dotted(saved, parts, value)
    return saved


def _named(key: str, names: Collection[str]) -> bool:
    """Whether dotted ``key`` is one of ``names`` or lies inside one (``"loop.num_steps"`` is
    in ``"loop"``)."""
    return any(key == name or key.startswith(name + ".") for name in names)


def _field_default(cls: type, parts: list[str]) -> Any:
    """The default of the nested setting ``parts`` of dataclass ``cls``."""
    field = {f.name: f for f in dataclasses.fields(cls)}[parts[0]]
    default = field.default
    if default is dataclasses.MISSING:
        default = field.default_factory()  # type: ignore[misc]
    return _get_dotted(default, parts[1:])


def _get_dotted(config: Any, parts: list[str]) -> Any:
    for part in parts:
        config = getattr(config, part)
    return config


def _replace_dotted(config: Any, parts: list[str], value: Any) -> Any:
    """``config`` with the nested setting ``parts`` (e.g. ``["optimizer", "learning_rate"]``)
    replaced by ``value``."""
    if len(parts) == 1:
        return dataclasses.replace(config, **{parts[0]: value})
    inner = _replace_dotted(getattr(config, parts[0]), parts[1:], value)
    return dataclasses.replace(config, **{parts[0]: inner})


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


def check_resume_step(resume: bool, resume_step: int | None) -> None:
    """A recipe config's ``resume_step`` check: it needs ``resume`` and is a step (>= 0).

    Raises:
      ConfigError: naming the fix.
    """
    if resume_step is None:
        return
    if not resume:
        raise ConfigError(
            f"--resume-step {resume_step} needs --resume (it picks the checkpoint to resume from)"
        )
    if resume_step < 0:
        raise ConfigError(f"--resume-step must be a step >= 0, got {resume_step}")


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
        if not (run_dir / "config.json").is_file():
            raise FileNotFoundError(f"--resume: no run to resume in {run_dir} (no config.json)")
        resumed = resumed_config(config, resumable, filled_at_start)
        _record_changed_settings(run_dir, resumable, resumed)
        return resumed
    _check_free_for_a_new_run(run_dir)
    barrier("jaxllm: run folder checked")  # every process looked before anything moves
    if run_dir.is_dir() and jax.process_index() == 0:  # process 0 writes the folder's files
        set_aside_earlier_attempt(run_dir)
    barrier("jaxllm: earlier attempt set aside")
    return config


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


def _record_changed_settings(run_dir: Path, resumable: Collection[str], resumed: Any) -> None:
    """Write the single settings a resume changed (dotted ``resumable`` keys, e.g. the
    learning rate) into ``run_dir/config.json`` and say so, so that a later resume goes on
    with them; process 0 writes."""
    path = run_dir / "config.json"
    saved = json.loads(path.read_text())
    changed = []
    for key in sorted(k for k in resumable if "." in k):
        *outer, last = key.split(".")
        holder = functools.reduce(lambda d, part: d[part], outer, saved)
        value = _get_dotted(resumed, key.split("."))
        if holder.get(last) != value:
            changed.append(f"{key} {holder.get(last)!r} -> {value!r}")
            holder[last] = value
    if changed and jax.process_index() == 0:
        path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        print(f"[{run_dir.name}] resumed with {', '.join(changed)} (recorded in {path})")


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


def tokenizer_for_run(
    config: RunConfig, data: DataConfig, splits: Sequence[list[str]], checkpointer: Checkpointer
) -> Tokenizer:
    """A new tokenizer of ``data.tokenizer``'s kind, or on resume the run's saved
    ``tokenizer.json``, checked against the fingerprint its checkpoint recorded.

    A character alphabet is built from every split (as nanoGPT's, so no text has a character
    outside it); BPE and WordPiece learn from the training split (``splits[0]``) and encode any
    text.

    Raises:
      CheckpointError: on resume, the tokenizer is not the one the checkpoint was trained with.
    """
    path = config.run_dir / "tokenizer.json"
    if config.resume:
        tokenizer = load_tokenizer(path)
        recorded = checkpointer.newest_readable_metadata().get("tokenizer_fingerprint")
        if recorded != tokenizer.fingerprint():
            raise CheckpointError(
                f"the tokenizer in {path} does not match the one the checkpoint "
                "was trained with; restore the run's original tokenizer.json"
            )
        return tokenizer
    char = data.tokenizer == "char"
    texts = [doc for split in splits for doc in split] if char else splits[0]
    return train_tokenizer(data.tokenizer, texts, vocab_size=data.vocab_size)


def encode_splits(config: RunConfig, tokenizer: Tokenizer, splits: Sequence[list[str]]) -> list:
    """Each split as one token stream (:func:`~jaxllm.data.encode_corpus`).

    Raises:
      CheckpointError: on resume, the corpus holds text the run's tokenizer cannot encode
        (characters a character alphabet lacks): it is not the corpus the run was trained on.
    """
    try:
        return [encode_corpus(tokenizer, docs) for docs in splits]
    except ValueError as e:
        if not config.resume:
            raise
        raise CheckpointError(
            f"the corpus differs from the one the run in {config.run_dir} was trained on: "
            f"{e} Resume with the original text, or start a new run with another --name"
        ) from e


def run_metadata(
    config: RunConfig, checkpointer: Checkpointer, tokenizer: Tokenizer, tokens: Sequence[Any]
) -> dict:
    """What a token-stream run's checkpoints record of its data: the tokenizer's fingerprint,
    the vocabulary size, and a fingerprint of the encoded ``tokens`` (train, validation and
    test), so that a resumed run can tell that its corpus changed.

    Raises:
      CheckpointError: on resume, the corpus is not the one the checkpoints were trained on
        (checkpoints that predate the fingerprint are not checked).
    """
    digest = hashlib.sha256()
    for split in tokens:
        digest.update(np.asarray(split).astype("<i4").tobytes() + b"|")
    fingerprint = digest.hexdigest()[:32]
    check_same_settings({"corpus_fingerprint": fingerprint}, "corpora")
    if config.resume:
        recorded = checkpointer.newest_readable_metadata().get("corpus_fingerprint", fingerprint)
        if recorded != fingerprint:
            raise CheckpointError(
                f"the corpus differs from the one the checkpoints in {config.run_dir} were "
                "trained on (same settings, other text); resume with the original text, or "
                "start a new run with another --name"
            )
    return {
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "vocab_size": tokenizer.vocab_size,
        "corpus_fingerprint": fingerprint,
    }


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
