"""Reading and writing Hugging Face checkpoint folders: ``config.json`` beside
``model.safetensors`` (or its shards, listed in ``model.safetensors.index.json``), or a
``pytorch_model.bin`` read with ``torch.load(weights_only=True)``, which refuses pickled
objects other than tensors. Nothing is unpickled otherwise."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from jaxllm.data.json_files import write_json_atomically

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"


def read_hf_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's ``config.json``.

    Raises:
      FileNotFoundError: no such folder or no ``config.json`` in it.
    """
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist: a Hugging Face checkpoint folder holds config.json "
            f"beside {SAFETENSORS} (what `save_pretrained` writes)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def read_hf_tensors(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint in ``directory``, as NumPy arrays, by name.

    Raises:
      FileNotFoundError: none of the weight files is there.
      ValueError: a ``.bin`` that holds more than tensors (``torch.load`` with
        ``weights_only=True`` refuses it), or a ``.bin`` without PyTorch installed.
    """
    folder = Path(directory)
    if (folder / SAFETENSORS).is_file():  # first, as transformers reads them
        return _read_safetensors(folder / SAFETENSORS)
    if (folder / SAFETENSORS_INDEX).is_file():
        return _read_shards(folder)
    if (folder / PYTORCH_BIN).is_file():
        return _read_pytorch_bin(folder / PYTORCH_BIN)
    raise FileNotFoundError(
        f"{str(folder)!r} holds none of {SAFETENSORS}, {SAFETENSORS_INDEX}, {PYTORCH_BIN}"
    )


def write_hf_checkpoint(
    directory: str | os.PathLike[str],
    config: dict[str, Any],
    tensors: dict[str, np.ndarray],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (made if needed),
    each through a temporary file renamed into place; the folder's path. With ``overwrite``,
    the weights of an earlier checkpoint there (shards, their index, a ``.bin``) are deleted
    once the new ones are written, so no reader picks up old tensors.

    Raises:
      FileExistsError: the folder already holds a checkpoint and ``overwrite`` is False.
    """
    from safetensors.numpy import save_file

    folder = Path(directory)
    existing = _checkpoint_files(folder)
    if existing and not overwrite:
        raise FileExistsError(
            f"{str(folder)!r} already holds {existing[0].name}; choose another folder or pass "
            "overwrite=True"
        )
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (SAFETENSORS + ".partial")
    save_file(tensors, str(partial), metadata={"format": "pt"})
    os.replace(partial, folder / SAFETENSORS)
    write_json_atomically(config, folder / "config.json")
    for old in existing:
        if old.name not in (SAFETENSORS, "config.json"):
            old.unlink()
    return folder


def _checkpoint_files(folder: Path) -> list[Path]:
    """The config and weight files of a checkpoint in ``folder`` (none: an empty list)."""
    names = ["config.json", SAFETENSORS, SAFETENSORS_INDEX, PYTORCH_BIN]
    files = [folder / name for name in names if (folder / name).is_file()]
    if (folder / SAFETENSORS_INDEX).is_file():
        index = json.loads((folder / SAFETENSORS_INDEX).read_text(encoding="utf-8"))
        files += [folder / shard for shard in sorted(set(index["weight_map"].values()))]
    return [file for file in files if file.is_file()]


def _read_shards(folder: Path) -> dict[str, np.ndarray]:
    index = json.loads((folder / SAFETENSORS_INDEX).read_text(encoding="utf-8"))
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors.update(_read_safetensors(folder / shard))
    return tensors


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


def _read_pytorch_bin(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch  # pyright: ignore[reportMissingImports]
    except ImportError as error:
        raise ValueError(
            f"{str(path)!r} is a PyTorch pickle; reading it needs PyTorch (pip install torch), "
            f"or convert the checkpoint to {SAFETENSORS}"
        ) from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # what weights_only raises for other objects
        raise ValueError(
            f"{str(path)!r} holds more than tensors, and jaxllm does not unpickle arbitrary "
            f"objects: {error}"
        ) from error
    except Exception as error:
        raise ValueError(f"{str(path)!r} could not be read as a PyTorch file: {error}") from error
    # NumPy has no bfloat16: floats become float32, other dtypes stay as they are.
    return {
        name: (tensor.float() if tensor.is_floating_point() else tensor).numpy()
        for name, tensor in state.items()
    }
