"""Orbax checkpoints of a :class:`TrainState` plus JSON metadata: atomic, verified, keep N,
resume.

Orbax writes each step into a temporary folder and renames it when complete, so a crash
mid-save never leaves a half-written checkpoint that looks finished. Each checkpoint also
records a checksum of every array (:mod:`jaxllm.train.integrity`), compared when it is read
back, and only a state whose arrays are all finite is saved. A checkpoint that cannot be read,
fails its checksums or holds NaNs raises :class:`CorruptCheckpointError` and is never deleted;
restoring "the newest" falls back to the newest one that verifies.

Orbax is imported by the methods that use it, so ``import jaxllm`` does not load it (about a
second, and its own dependencies).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax

from jaxllm.train.integrity import checksums, leaves_by_path, nonfinite_paths
from jaxllm.train.processes import barrier, everywhere, worst_everywhere

if TYPE_CHECKING:
    import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model being restored."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's files cannot be read, its arrays differ from their recorded checksums, or
    it holds NaN or infinite values."""


class NonFiniteStateError(CheckpointError, FloatingPointError):
    """A state to be saved holds NaN or infinite values (it is not written)."""


# Metadata key of the per-array checksums.
CHECKSUMS_KEY = "checksums"


@contextlib.contextmanager
def _quiet_orbax_logging() -> Iterator[None]:
    """Orbax logs each failure of its writer threads at ERROR level before raising it; jaxllm
    reports the raised error (in one line), so the log is held back meanwhile."""
    _silence_orbax_echoes()
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _is_orbax_echo(exc_value: object, text: str) -> bool:
    """Whether an error reported after the fact is the echo of a failed orbax read: its
    cancelled reads finish on an event loop that has closed, or leave their tasks' errors
    unretrieved."""
    closed_loop = isinstance(exc_value, RuntimeError) and "Event loop is closed" in str(exc_value)
    return closed_loop or ("orbax" in text and "Task exception was never retrieved" in text)


class _OrbaxEchoFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage() + str(getattr(record, "future", ""))
        return not _is_orbax_echo(None, text + str(record.args))


_ECHO_LOG_FILTERED = False  # whether the asyncio logger has its filter (added once)


def _silence_orbax_echoes() -> None:
    """When orbax fails to read or write a checkpoint, its other reads and writes end later,
    each printing a traceback (hundreds of lines in all) that says nothing the raised error
    does not: drop those, and only those, from the first checkpoint operation on (installed
    once per process; every other unraisable error and asyncio log record passes)."""
    global _ECHO_LOG_FILTERED
    if not _ECHO_LOG_FILTERED:
        logging.getLogger("asyncio").addFilter(_OrbaxEchoFilter())
        _ECHO_LOG_FILTERED = True
    if getattr(sys.unraisablehook, "_jaxllm_filter", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not _is_orbax_echo(unraisable.exc_value, ""):
            previous(unraisable)

    hook._jaxllm_filter = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _one_line(error: BaseException, limit: int = 300) -> str:
    """``"Type: first line of the message"``, cut to ``limit`` characters: orbax and
    tensorstore errors can run to hundreds of lines."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# What says a failed read was not the files' fault (memory, permissions, a busy or absent
# file system): such a checkpoint is left where it is. Any other failure (tensorstore raises
# ValueError for every failure, its status code in the message) is taken for damage.
_ENVIRONMENT_TYPES = (MemoryError, PermissionError, TimeoutError, ConnectionError)
_ENVIRONMENT_CODES = (
    "RESOURCE_EXHAUSTED",
    "PERMISSION_DENIED",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "ABORTED",
    "CANCELLED",
)


def _is_damage(error: Exception) -> bool:
    """Whether a failed read is taken for damage to the checkpoint's files (then ``restore``
    may fall back to an older checkpoint and set this one aside, never deleting it)."""
    if isinstance(error, _ENVIRONMENT_TYPES):
        return False
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
        return False
    return not any(code in str(error) for code in _ENVIRONMENT_CODES)


class Checkpointer:
    """Saves and restores ``(state, metadata)`` pairs under ``directory/<step>/``.

    Args:
      directory: folder of the checkpoints (created on first save).
      max_to_keep: keep only the newest N checkpoints (older ones are removed after a save).
      cleanup_unfinished: remove what a save cut short left behind (orbax's temporary
        folders). Only the run that writes the folder may: a reader could otherwise remove
        a save in progress.
    """

    def __init__(
        self, directory: str | Path, max_to_keep: int = 3, *, cleanup_unfinished: bool = False
    ):
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=False,
            cleanup_tmp_directories=cleanup_unfinished,
        )
        handlers = {
            "state": ocp.StandardCheckpointHandler(),
            "metadata": ocp.JsonCheckpointHandler(),
        }
        self._manager: ocp.CheckpointManager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=handlers
        )

    def steps(self) -> list[int]:
        """Steps of the finished checkpoints, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any, metadata: dict | None = None) -> Path:
        """Write ``state`` (any pytree of arrays) and JSON ``metadata`` as checkpoint ``step``,
        with the checksum of every array (metadata key ``"checksums"``).

        Raises:
          NonFiniteStateError: an array of ``state`` holds NaN or infinite values; nothing is
            written, so the checkpoints on disk stay the last good ones.
        """
        import orbax.checkpoint as ocp

        bad = nonfinite_paths(state)
        if bad:
            raise NonFiniteStateError(
                f"step {step} was not saved: {', '.join(bad[:3])}"
                f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''} hold NaN or infinite "
                f"values; the checkpoints in {self.directory} were left as they are"
            )
        if int(step) in self.steps():
            raise CheckpointError(
                f"checkpoint step {step} already exists in {self.directory}; it was left as it "
                "is (restore it to continue, or save under another step)"
            )
        self._check_free_space(step, state)
        meta = dict(metadata or {}, step=int(step)) | {CHECKSUMS_KEY: checksums(state)}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), metadata=ocp.args.JsonSave(meta)
        )
        try:
            with _quiet_orbax_logging():
                self._manager.save(int(step), args=args, force=True)
                self._manager.wait_until_finished()
        except Exception as e:  # a full disk, a denied permission: tensorstore's ValueErrors
            raise CheckpointError(
                f"step {step} could not be saved in {self.directory} ({_one_line(e)}); the "
                "checkpoints already there were left as they are. Free some space or fix the "
                "folder's permissions, then resume"
            ) from e
        return self.directory / str(int(step))

    def _check_free_space(self, step: int, state: Any) -> None:
        """Refuse to start a save that the disk may not hold, since a write cut short by a
        full disk fails in many threads at once. The estimate is the arrays' size plus a
        fifth and 256 kB for orbax's files and the file system's blocks (orbax compresses
        what it can, so a save takes less in most cases)."""
        arrays = sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(state))
        need = int(1.2 * arrays) + 2**18
        folder = self.directory
        while not folder.exists():
            folder = folder.parent
        free = shutil.disk_usage(folder).free
        if not everywhere(free >= need):
            raise CheckpointError(
                f"step {step} was not saved: it needs up to {need / 1e6:.1f} MB and "
                f"{self.directory} has {free / 1e6:.1f} MB free (on this process). Free some "
                "space (the checkpoints already there were left as they are), then resume"
            )

    def read_metadata(self, step: int | None = None) -> dict:
        """The JSON metadata of checkpoint ``step`` (default: the newest), without the arrays."""
        import orbax.checkpoint as ocp

        step = self._existing_step(step)
        try:
            with _quiet_orbax_logging():
                restored = self._manager.restore(
                    step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore())
                )
        except Exception as e:
            raise CorruptCheckpointError(
                f"metadata of checkpoint step {step} in {self.directory} could not be "
                f"read ({_one_line(e)}); it was left untouched"
            ) from e
        return dict(restored["metadata"] or {})

    def newest_readable_metadata(self) -> dict:
        """The metadata of the newest checkpoint whose metadata can be read (what every
        checkpoint of a run records alike, such as its tokenizer's fingerprint).

        Raises:
          CheckpointError: there is no checkpoint, or no metadata can be read.
        """
        errors = []
        for step in reversed(self.steps()):
            try:
                return self.read_metadata(step)
            except CorruptCheckpointError as e:
                errors.append(str(e))
        raise CheckpointError("; ".join(errors) or self._none_found())

    def _none_found(self) -> str:
        return (
            f"no checkpoint found in {self.directory}; start without --resume "
            "or point to the run folder that holds the checkpoints"
        )

    def _existing_step(self, step: int | None) -> int:
        steps = self.steps()
        if not steps:
            raise CheckpointError(self._none_found())
        step = steps[-1] if step is None else int(step)
        if step not in steps:
            raise CheckpointError(
                f"no checkpoint for step {step} in {self.directory}; available: {steps}"
            )
        return step

    def restore(
        self, target: Any, step: int | None = None, *, set_aside: bool = False
    ) -> tuple[Any, dict]:
        """Read checkpoint ``step`` into the structure of ``target`` and verify it.

        ``target`` is a pytree with the expected shapes and dtypes (e.g. a freshly created
        state, placed as the restored one should be); the restored arrays must match it
        exactly. With ``step=None`` the newest checkpoint that verifies is restored; a newer
        one that is corrupt is reported on stderr.

        ``set_aside`` is for a run that continues from the restored checkpoint: every newer
        checkpoint (corrupt, or superseded when ``step`` names an older one) is moved into
        ``<directory>-set-aside/``, never deleted, so the run's next saves do not meet it.
        In a multi-process run every process calls this alike.

        Raises:
          CheckpointError: no checkpoint, one whose parameters or shapes differ from
            ``target``'s, or one that could not be read for another reason than its files
            (e.g. memory).
          CorruptCheckpointError: the checkpoint (every one, for ``step=None``) cannot be
            read, fails its checksums or holds non-finite values.
        """
        barrier("jaxllm: checkpoints listed")  # before any process moves one
        steps = self.steps()
        candidates = [self._existing_step(step)] if step is not None else steps[::-1]
        failed: dict[int, CorruptCheckpointError] = {}
        for candidate in candidates:
            try:
                restored = self._restore_step(target, candidate)
            except CorruptCheckpointError as e:
                if step is not None:
                    raise
                failed[candidate] = e
                continue
            newer = [s for s in steps if s > candidate] if set_aside else sorted(failed)
            self._after_restore(candidate, newer, failed, set_aside)
            return restored
        if not failed:
            raise CheckpointError(self._none_found())
        raise CorruptCheckpointError(
            f"no checkpoint in {self.directory} verifies: "
            + "; ".join(str(e) for e in failed.values())
        )

    def _after_restore(
        self,
        restored: int,
        newer: list[int],
        failed: dict[int, CorruptCheckpointError],
        set_aside: bool,
    ) -> None:
        """Report the ``newer`` checkpoints than ``restored`` on stderr (process 0): why each
        was passed over (``failed``), and with ``set_aside`` move them out of the way."""
        primary = jax.process_index() == 0
        barrier("jaxllm: checkpoint restored")  # every process has read what it needs
        for step in newer:
            why = str(failed.get(step, f"checkpoint step {step} is newer than step {restored}"))
            moved = f"; moved to {self._set_aside(step)}" if set_aside and primary else ""
            if primary:
                print(f"warning: {why}{moved}; using step {restored}", file=sys.stderr)
        barrier("jaxllm: newer checkpoints set aside")
        self._manager.reload()

    def _set_aside(self, step: int) -> Path:
        """Move checkpoint ``step`` into ``<directory>-set-aside/`` (a fresh name there)."""
        folder = self.directory.with_name(self.directory.name + "-set-aside")
        folder.mkdir(exist_ok=True)
        destination, n = folder / str(step), 1
        while destination.exists():
            n += 1
            destination = folder / f"{step}-{n}"
        (self.directory / str(step)).rename(destination)
        return destination

    def _restore_step(self, target: Any, step: int) -> tuple[Any, dict]:
        """Checkpoint ``step`` read into ``target``'s structure and verified (every process
        agrees whether it could be read before any verifies it: the checksums of arrays
        spread over processes are collectives)."""
        import orbax.checkpoint as ocp

        self._check_shapes(target, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), metadata=ocp.args.JsonRestore()
        )
        error, severity = None, 0  # 1: damaged files, 2: the environment's failure
        try:
            with _quiet_orbax_logging():
                restored = self._manager.restore(step, args=args)
        except Exception as e:  # orbax and tensorstore raise many types
            error, severity = e, 1 if _is_damage(e) else 2
        severity = worst_everywhere(severity)  # every process raises alike, or none does
        cause = _one_line(error) if error else "another process could not read its part"
        if severity == 2:
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} could not be read ({cause}); it "
                "was left untouched"
            ) from error
        if severity == 1:
            raise CorruptCheckpointError(
                f"checkpoint step {step} in {self.directory} could not be read: it is corrupt, "
                f"incomplete, or from a different model ({cause})"
            ) from error
        state, metadata = restored["state"], dict(restored["metadata"] or {})
        self._verify(state, metadata, step)
        return state, metadata

    def _verify(self, state: Any, metadata: dict, step: int) -> None:
        """Compare ``state`` with the checksums its metadata recorded (checkpoints written
        before checksums were recorded have none) and check that it is finite."""
        recorded = metadata.get(CHECKSUMS_KEY)
        if recorded is not None:
            actual = checksums(state)
            keys = actual.keys() | recorded.keys()
            differ = sorted(p for p in keys if actual.get(p) != recorded.get(p))
            if differ:
                raise CorruptCheckpointError(
                    f"checkpoint step {step} in {self.directory} is corrupt: "
                    f"{', '.join(differ[:3])}{' and more' if len(differ) > 3 else ''} differ "
                    "from the checksums recorded when it was saved"
                )
        bad = nonfinite_paths(state)
        if bad:
            raise CorruptCheckpointError(
                f"checkpoint step {step} in {self.directory} holds NaN or infinite values "
                f"({', '.join(bad[:3])}); it was saved from a diverged run"
            )

    def _check_shapes(self, target: Any, step: int) -> None:
        """Compare the stored array shapes with ``target``'s before reading any array, so a
        checkpoint of another model gets a message naming the first parameter that differs."""
        try:
            stored = self._manager.item_metadata(step)["state"]
            stored = _shapes_by_path(getattr(stored, "tree", stored))
        except Exception:  # unreadable metadata: let the restore report it
            return
        if not stored:
            return
        expected = _shapes_by_path(target)
        missing = sorted(expected.keys() - stored.keys())
        extra = sorted(stored.keys() - expected.keys())
        if missing or extra:
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} holds other parameters than the "
                f"model being restored (missing {missing[:3]}, unexpected {extra[:3]}); it was "
                "written with another model config"
            )
        for path, shape in expected.items():
            if stored[path] != shape:
                raise CheckpointError(
                    f"checkpoint step {step} in {self.directory}: {path} has shape "
                    f"{stored[path]}, the model expects {shape}; the checkpoint was written with "
                    "another model config"
                )

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shapes_by_path(tree: Any) -> dict[str, tuple]:
    """``{"params/h_0/attn/c_attn/kernel": shape, ...}`` for any pytree (dataclasses included)."""
    return {path: tuple(leaf.shape) for path, leaf in leaves_by_path(tree).items()}
