"""Which Hugging Face tensor is which jaxllm parameter: one table per checkpoint layout,
followed both ways, so reading and writing cannot drift apart.

Hugging Face stores ``nn.Linear`` weights ``[out, in]`` (jaxllm's ``Dense``: ``[in, out]``),
GPT-2's ``Conv1D`` weights ``[in, out]``, and BERT's query, key and value projections
separately (jaxllm: one fused ``c_attn``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not fit its config or jaxllm's model: names the tensor."""


@dataclasses.dataclass(frozen=True)
class TensorMap:
    """One jaxllm parameter and the Hugging Face tensor(s) it is made of.

    Attributes:
      path: the parameter's path in jaxllm's tree, e.g. ``("h_0", "mlp", "c_fc", "kernel")``.
      names: the Hugging Face tensor names; several are concatenated along the last jaxllm
        axis (query, key, value into ``c_attn``).
      transpose: Hugging Face stores it transposed (``nn.Linear.weight``).
    """

    path: tuple[str, ...]
    names: tuple[str, ...]
    transpose: bool = False


@dataclasses.dataclass(frozen=True)
class CheckpointLayout:
    """The tensors of one Hugging Face architecture at one config.

    Attributes:
      architecture: the Hugging Face class name, e.g. ``"GPT2LMHeadModel"``.
      maps: every jaxllm parameter's :class:`TensorMap`.
      tied: tensors a checkpoint may also hold -> the tensor each must equal (a tied output
        layer, saved or not).
      ignored_suffixes: buffers some checkpoints carry that are not parameters.
    """

    architecture: str
    maps: tuple[TensorMap, ...]
    tied: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ignored_suffixes: tuple[str, ...] = ()


def linear_maps(path: tuple[str, ...], name: str, *, transpose: bool = True) -> list[TensorMap]:
    """A dense layer's kernel and bias from ``<name>.weight`` / ``<name>.bias``
    (``nn.Linear``: transposed; GPT-2's ``Conv1D``: ``transpose=False``)."""
    return [
        TensorMap((*path, "kernel"), (f"{name}.weight",), transpose=transpose),
        TensorMap((*path, "bias"), (f"{name}.bias",)),
    ]


def layer_norm_maps(path: tuple[str, ...], name: str) -> list[TensorMap]:
    """A LayerNorm's scale and bias from ``<name>.weight`` / ``<name>.bias``."""
    return [
        TensorMap((*path, "scale"), (f"{name}.weight",)),
        TensorMap((*path, "bias"), (f"{name}.bias",)),
    ]


def params_from_tensors(
    tensors: Mapping[str, np.ndarray], layout: CheckpointLayout, shapes: Any
) -> dict:
    """jaxllm parameters (float32 NumPy arrays) from a Hugging Face state dict.

    Every tensor of ``layout`` must be there with the shape ``shapes`` (the parameters'
    shapes, e.g. from ``jax.eval_shape``) implies, and no other tensor may be, besides the
    layout's tied and ignored ones (tied ones must equal what they are tied to).

    Raises:
      CheckpointMismatchError: naming the first missing, extra, misshapen or non-float tensor.
    """
    _check_names(tensors, layout)
    params: dict = {}
    for entry in layout.maps:
        for name in entry.names:
            _check_shape(name, tensors[name].shape, entry, _at(shapes, entry.path).shape)
        parts = [_float32(name, tensors[name]) for name in entry.names]
        parts = [part.T if entry.transpose else part for part in parts]
        _set(params, entry.path, parts[0] if len(parts) == 1 else np.concatenate(parts, -1))
    return params


def params_to_tensors(
    params: Mapping[str, Any], layout: CheckpointLayout, shapes: Any
) -> dict[str, np.ndarray]:
    """A Hugging Face state dict (float32, contiguous NumPy) from jaxllm parameters, whose
    shapes must be those ``shapes`` (what the config implies) gives.

    Raises:
      CheckpointMismatchError: naming the first parameter whose shape the config contradicts.
    """
    tensors: dict[str, np.ndarray] = {}
    for entry in layout.maps:
        value = np.asarray(_at(params, entry.path), np.float32)
        expected = tuple(_at(shapes, entry.path).shape)
        if value.shape != expected:
            raise CheckpointMismatchError(
                f"parameter {'/'.join(entry.path)} has shape {value.shape}, but the config "
                f"implies {expected}: were the parameters made with another config?"
            )
        parts = np.split(value, len(entry.names), axis=-1)
        for name, part in zip(entry.names, parts, strict=True):
            tensors[name] = np.ascontiguousarray(part.T if entry.transpose else part)
    return tensors


def _check_shape(
    name: str, stored: tuple[int, ...], entry: TensorMap, expected: tuple[int, ...]
) -> None:
    """Raise unless the stored tensor ``name`` is its share of the jaxllm parameter of shape
    ``expected`` (one of ``len(entry.names)`` equal slices of the last axis), as stored."""
    part = (*expected[:-1], expected[-1] // len(entry.names))
    want = tuple(reversed(part)) if entry.transpose else part
    if tuple(stored) != want:
        raise CheckpointMismatchError(
            f"tensor {name} has shape {tuple(stored)}, but the config implies {want}"
        )


def _check_names(tensors: Mapping[str, np.ndarray], layout: CheckpointLayout) -> None:
    """Raise naming the first missing or unexpected tensor, or a tied one that differs."""
    expected = {name for entry in layout.maps for name in entry.names}
    missing = sorted(expected - set(tensors))
    if missing:
        raise CheckpointMismatchError(
            f"the checkpoint lacks tensor {missing[0]!r} ({len(missing)} missing in all), which "
            f"a {layout.architecture} of its config has"
        )
    extra = sorted(
        name
        for name in set(tensors) - expected - set(layout.tied)
        if not name.endswith(layout.ignored_suffixes)
    )
    if extra:
        raise CheckpointMismatchError(
            f"the checkpoint has tensor {extra[0]!r} ({len(extra)} unexpected in all), which a "
            f"{layout.architecture} of its config does not: another architecture?"
        )
    for name, source in layout.tied.items():
        if name in tensors and not np.array_equal(tensors[name], tensors[source]):
            raise CheckpointMismatchError(
                f"tensor {name!r} differs from {source!r}; jaxllm ties them"
            )


def _float32(name: str, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):  # jnp's knows bfloat16
        raise CheckpointMismatchError(f"tensor {name!r} is {value.dtype}, not a float type")
    return value.astype(np.float32)


def _at(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def require_setting(
    hf: Mapping[str, Any], name: str, supported: tuple[Any, ...], model: str
) -> None:
    """Raise if ``config.json``'s ``name`` (when present) is not one of ``supported``."""
    if name in hf and hf[name] not in supported:
        raise CheckpointMismatchError(
            f"config.json has {name}={hf[name]!r}; jaxllm's {model} supports "
            f"{' or '.join(repr(value) for value in supported)} only"
        )


def require_fields(hf: Mapping[str, Any], names: tuple[str, ...]) -> None:
    """Raise naming the first of ``names`` that ``config.json`` lacks."""
    missing = [name for name in names if name not in hf]
    if missing:
        raise CheckpointMismatchError(
            f"config.json lacks {missing[0]!r}, which a checkpoint of this architecture needs"
        )
