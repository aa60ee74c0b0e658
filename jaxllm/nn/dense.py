"""A dense (fully connected) layer that multiplies as one 2-D matrix product."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array


class Dense(nn.Module):
    """``y = x W + b`` over the last axis, with ``x`` flattened to ``[rows, in]`` first.

    Parameters: a widening or square layer (``features >= in``) has ``flax.linen.Dense``'s
    ``kernel: [in, features]``; a narrowing one (``features < in``) stores the same matrix
    transposed, ``weight: [features, in]`` (``torch.nn.Linear``'s layout), initialised to the
    transpose of the kernel ``kernel_init`` would give. Both choices are for XLA:CPU's speed:

    - Flattening: XLA:CPU runs the backward pass of an N-D ``dot_general`` (weight gradients
      contract over the batch *and* sequence axes) far slower than the same maths as plain
      2-D matrix products.
    - Orientation: the weight gradient ``xᵀ dy`` contracts over every row, and XLA:CPU runs that
      product at ~125 GFLOP/s when its result is tall and narrow (``[4·width, width]``, a GPT
      MLP's output projection) but ~175 when it is wide (``[width, 4·width]``), on a 2-core CPU
      with a ~200 GFLOP/s peak. Storing narrowing layers as ``[features, in]`` makes their
      gradient the wide one: the GPT training step is ~3-4% faster.

    Attributes:
      features: output width.
      use_bias: add a bias.
      kernel_init: initialiser of the ``[in, features]`` matrix.
      dtype: compute dtype; parameters stay float32.
    """

    features: int
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """x: float[..., in] -> float[..., features]."""
        rows = x.reshape(-1, x.shape[-1]).astype(self.dtype)  # (N, in)
        if self.features < x.shape[-1]:
            weight = self.param("weight", _transposed(self.kernel_init), (self.features, x.shape[-1]),
                                jnp.float32)
            # (W xᵀ)ᵀ rather than x Wᵀ: XLA:CPU then reads W as stored, where x Wᵀ made it copy
            # W transposed on every call (a quarter of a batch-1 decoding step).
            y = (weight.astype(self.dtype) @ rows.T).T  # (N, features)
        else:
            kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
            y = rows @ kernel.astype(self.dtype)  # (N, features)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
        return y.reshape(*x.shape[:-1], self.features)


def _transposed(kernel_init: Any) -> Any:
    """An initialiser of ``[out, in]`` matrices: the transpose of ``kernel_init``'s ``[in, out]``."""
    def init(key: Array, shape: tuple[int, int], dtype: Any = jnp.float32) -> Array:
        return kernel_init(key, shape[::-1], dtype).T
    return init
