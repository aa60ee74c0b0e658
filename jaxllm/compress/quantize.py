"""Int8 weight-only quantisation: a trained model's dense-layer weights stored as int8 with one
float32 step per output channel (symmetric, per channel), dequantised inside each product.

The result is a parameter pytree the *same* model runs (``jaxllm.nn.Dense`` multiplies by
``kernel_int8`` and ``kernel_scale`` when it finds them), so generation, evaluation and
attributions take it unchanged::

    small = quantize_int8(model, params, tokens)           # tokens: any input the model reads
    generate(model, small, prompts, max_new_tokens=100)
    weight_bytes(small) / weight_bytes(params)             # the dense layers' part: ~1/4

Each weight row ``w`` (one output channel) becomes ``round(w / s)`` in ``[-127, 127]`` with
``s = max|w| / 127``, so its largest weight is exact and every weight is within ``s / 2``.
Embeddings, biases and norms stay float32.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxllm.config import require
from jaxllm.nn.dense import Dense


class QuantizationError(ValueError):
    """The model has no dense layer to quantise, or its parameters are already int8."""


def quantize_int8(model: nn.Module, params: Any, *args: Any, **kwargs: Any) -> Any:
    """``params`` with every :class:`~jaxllm.nn.Dense` layer's kernel as int8 weights and
    per-output-channel scales.

    Args:
      model: the Flax module the parameters belong to.
      params: its trained (float) parameters.
      *args: any input the model reads (e.g. ``tokens`` int[1, 8]): one call finds the dense
        layers and how each stores its kernel.
      **kwargs: the model's keyword inputs for that call.

    Returns:
      the parameters with each dense layer's ``kernel`` replaced by ``kernel_int8``
      (int8[out, in]) and ``kernel_scale`` (float32[out]).
    """
    layouts = _dense_layouts(model, params, *args, **kwargs)
    flat: dict[tuple, Any] = dict(traverse_util.flatten_dict(params))
    require(
        not any(path[-1] == "kernel_int8" for path in flat),
        "these parameters are already int8",
        QuantizationError,
    )
    for module, layout in layouts.items():
        kernel = np.asarray(flat.pop((*module, "kernel")), np.float32)
        rows = kernel if layout == "out_in" else kernel.T  # [out, in]
        flat[(*module, "kernel_int8")], flat[(*module, "kernel_scale")] = int8_rows(rows)
    return traverse_util.unflatten_dict(flat)


def int8_rows(weights: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """float[out, in] -> (int8[out, in], float32[out]): each row scaled so its largest
    magnitude is 127 (a row of zeros keeps scale 1)."""
    largest = np.max(np.abs(weights), axis=1)
    scale = np.where(largest > 0, largest / 127.0, 1.0).astype(np.float32)
    scale = np.maximum(scale, np.finfo(np.float32).tiny)  # a subnormal row: no 0 / 0
    quantized = np.clip(np.round(weights / scale[:, None]), -127, 127).astype(np.int8)
    return jnp.asarray(quantized), jnp.asarray(scale)


def weight_bytes(params: Any) -> int:
    """Bytes the parameters occupy."""
    return sum(int(np.prod(leaf.shape)) * leaf.dtype.itemsize for leaf in jax.tree.leaves(params))


def _dense_layouts(model: nn.Module, params: Any, *args: Any, **kwargs: Any) -> dict:
    """``{module path: kernel layout}`` of the Dense layers a call of ``model`` runs."""
    layouts: dict[tuple[str, ...], str] = {}

    def record(next_fun: Any, call_args: tuple, call_kwargs: dict, context: Any) -> Any:
        module = context.module
        if isinstance(module, Dense) and context.method_name == "__call__":
            layouts[tuple(module.path)] = module.kernel_layout
        return next_fun(*call_args, **call_kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda p: model.apply({"params": p}, *args, **kwargs), params)
    require(
        layouts != {},
        f"{type(model).__name__} ran no jaxllm.nn.Dense layer: nothing to quantise",
        QuantizationError,
    )
    return layouts
