"""A dense (fully connected) layer that multiplies as one 2-D matrix product."""

from __future__ import annotations

import typing
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

KernelLayout = Literal["in_out", "out_in"]
"""How :class:`Dense` stores its ``kernel``: ``"in_out"`` is ``[in, features]``
(``flax.linen.Dense``'s layout), ``"out_in"`` is ``[features, in]`` (``torch.nn.Linear``'s)."""
KERNEL_LAYOUTS: tuple[str, ...] = typing.get_args(KernelLayout)


class Dense(nn.Module):
    """``y = x W + b`` over the last axis, with ``x`` flattened to ``[rows, in]`` first.

    Parameters given as ``kernel_int8`` (int8[features, in]) and ``kernel_scale``
    (float32[features]) instead of ``kernel`` are weights quantised after training
    (:func:`jaxllm.compress.quantize_int8`): the layer multiplies by them, dequantised inside
    the product (:func:`int8_product`), whatever its ``kernel_layout``.

    Parameters: ``kernel`` (``W`` as laid out by ``kernel_layout``) and, with ``use_bias``,
    ``bias: [features]``. An ``"out_in"`` kernel is initialised to the transpose of the
    ``[in, features]`` matrix ``kernel_init`` would give. Both the flattening and the layout are
    for XLA:CPU's speed:

    - Flattening: XLA:CPU runs the backward pass of an N-D ``dot_general`` (weight gradients
      contract over the batch *and* sequence axes) far slower than the same maths as plain
      2-D matrix products.
    - Layout: the weight gradient ``xᵀ dy`` contracts over every row, and XLA:CPU runs that
      product at ~125 GFLOP/s when its result is tall and narrow (``[4·width, width]``, a GPT
      MLP's output projection) but ~175 when it is wide (``[width, 4·width]``), on a 2-core CPU
      with a ~200 GFLOP/s peak. Storing such a narrowing layer ``"out_in"`` makes its gradient
      the wide one: the GPT training step is ~3-4% faster. The model chooses it per layer
      (:class:`~jaxllm.models.GPT` does for its MLP output projection).

    Attributes:
      features: output width.
      use_bias: add a bias.
      kernel_init: initialiser of the ``[in, features]`` matrix.
      dtype: compute dtype; parameters stay float32.
      kernel_layout: ``"in_out"`` (``kernel: [in, features]``) or ``"out_in"``
        (``kernel: [features, in]``); the same maths either way.
    """

    features: int
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32
    kernel_layout: KernelLayout = "in_out"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """x: float[..., in] -> float[..., features]."""
        rows = x.reshape(-1, x.shape[-1]).astype(self.dtype)  # (N, in)
        if self.has_variable("params", "kernel_int8"):  # weights made int8 after training
            y = int8_product(
                rows,
                self.get_variable("params", "kernel_int8"),
                self.get_variable("params", "kernel_scale"),
            ).astype(self.dtype)
        elif self.kernel_layout == "out_in":
            kernel = self.param(
                "kernel", _transposed(self.kernel_init), (self.features, x.shape[-1]), jnp.float32
            )
            # (W xᵀ)ᵀ rather than x Wᵀ: XLA:CPU then reads W as stored, where x Wᵀ made it copy
            # W transposed on every call (a quarter of a batch-1 decoding step).
            y = (kernel.astype(self.dtype) @ rows.T).T  # (N, features)
        elif self.kernel_layout == "in_out":
            kernel = self.param(
                "kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32
            )
            y = rows @ kernel.astype(self.dtype)  # (N, features)
        else:
            raise ValueError(
                f"Dense.kernel_layout must be one of {list(KERNEL_LAYOUTS)}, "
                f"got {self.kernel_layout!r}"
            )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(
                self.dtype
            )
        return y.reshape(*x.shape[:-1], self.features)


# Up to this many rows, an int8 product is one fused multiply-and-sum that reads each int8
# weight once (XLA:CPU, one 768-4096-wide layer alone: as fast as the float32 product at 1
# row, 1.1-2.6x faster at 8; a whole GPT decoding step gains less); above it, the weights are
# converted to float once and multiplied as a matrix.
INT8_FUSED_ROWS = 16


def int8_product(rows: Array, kernel: Array, scale: Array) -> Array:
    """``rows @ (kernel · scale)ᵀ`` for per-output-channel int8 weights, float32[N, out].

    Args:
      rows: float[N, in].
      kernel: int8[out, in] (:func:`jaxllm.compress.quantize_int8` stores every layer so).
      scale: float32[out], each output channel's step: ``w ≈ kernel · scale``.
    """
    if rows.shape[0] == 1:  # as a [1, out, in] sum XLA:CPU ran it ~15x slower than 2-D
        y = jnp.sum(kernel.astype(jnp.float32) * rows.astype(jnp.float32), axis=-1)[None]
    elif rows.shape[0] <= INT8_FUSED_ROWS:
        weights = kernel.astype(jnp.float32)[None]  # converted inside the fused sum
        y = jnp.sum(weights * rows.astype(jnp.float32)[:, None, :], axis=-1)
    else:  # XLA:CPU runs a product with a converted operand ~20x slower than a plain one
        weights = jax.lax.optimization_barrier(kernel.astype(jnp.float32))
        y = (weights @ rows.astype(jnp.float32).T).T
    return y * scale


def _transposed(kernel_init: Any) -> Any:
    """An initialiser of ``[out, in]`` matrices: the transpose of ``kernel_init``'s
    ``[in, out]``."""

    def init(key: Array, shape: tuple[int, int], dtype: Any = jnp.float32) -> Array:
        return kernel_init(key, shape[::-1], dtype).T

    return init
