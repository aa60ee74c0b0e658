"""Orbax checkpoints of a :class:`TrainState` plus JSON metadata: atomic, keep N, resume.

Orbax writes each step into a temporary folder and renames it when complete, so a crash
mid-save never leaves a half-written checkpoint that looks finished. A checkpoint that cannot
be read raises :class:`CheckpointError` and is never deleted: the user decides what to do.

Orbax is imported by the methods that use it, so ``import jaxllm`` does not load it (about a
second, and its own dependencies).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax

if TYPE_CHECKING:
    import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model being restored."""


class Checkpointer:
    """Saves and restores ``(state, metadata)`` pairs under ``directory/<step>/``.

    Args:
      directory: folder of the checkpoints (created on first save).
      max_to_keep: keep only the newest N checkpoints (older ones are removed after a save).
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 3):
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
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
        """Write ``state`` (any pytree of arrays) and JSON ``metadata`` as checkpoint ``step``."""
        import orbax.checkpoint as ocp

        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                metadata=ocp.args.JsonSave(dict(metadata or {}, step=int(step))),
            ),
            force=True,
        )
        self._manager.wait_until_finished()
        return self.directory / str(int(step))

    def read_metadata(self, step: int | None = None) -> dict:
        """The JSON metadata of checkpoint ``step`` (default: the newest), without the arrays."""
        import orbax.checkpoint as ocp

        step = self._existing_step(step)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore())
            )
        except Exception as e:
            raise CheckpointError(
                f"metadata of checkpoint step {step} in {self.directory} could not be "
                f"read ({type(e).__name__}: {e}); it was left untouched"
            ) from e
        return dict(restored["metadata"] or {})

    def _existing_step(self, step: int | None) -> int:
        steps = self.steps()
        if not steps:
            raise CheckpointError(
                f"no checkpoint found in {self.directory}; start without --resume "
                "or point to the run folder that holds the checkpoints"
            )
        step = steps[-1] if step is None else int(step)
        if step not in steps:
            raise CheckpointError(
                f"no checkpoint for step {step} in {self.directory}; available: {steps}"
            )
        return step

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Read checkpoint ``step`` (default: the newest) into the structure of ``target``.

        ``target`` is a pytree with the expected shapes and dtypes (e.g. a freshly created
        state); the restored arrays must match it exactly.

        Raises:
          CheckpointError: no checkpoint, a corrupt one, or one whose parameters or shapes
            differ from ``target``'s.
        """
        import orbax.checkpoint as ocp

        step = self._existing_step(step)
        others = [s for s in self.steps() if s != step]
        self._check_shapes(target, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), metadata=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # orbax/tensorstore raise many types for unreadable files
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory / str(step)} could not be read: it is "
                f"corrupt, incomplete, or from a different model ({type(e).__name__}: {e}). "
                f"It was left untouched. Other checkpoints: {others or 'none'}; move the broken "
                "folder away to resume from the newest of them, or pass its step to restore()."
            ) from e
        return restored["state"], dict(restored["metadata"] or {})

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


def _path_string(path: tuple) -> str:
    """``"params/h_0/attn/c_attn/kernel"`` for a pytree key path (dataclasses included)."""
    return "/".join(re.findall(r"\w+", jax.tree_util.keystr(path)))


def _leaves_by_path(tree: Any) -> dict[str, Any]:
    leaves = jax.tree.flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {_path_string(path): leaf for path, leaf in leaves}


def _shapes_by_path(tree: Any) -> dict[str, tuple]:
    """``{"params/h_0/attn/c_attn/kernel": shape, ...}`` for any pytree (dataclasses included)."""
    return {path: tuple(leaf.shape) for path, leaf in _leaves_by_path(tree).items()}
