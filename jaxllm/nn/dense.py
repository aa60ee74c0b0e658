"""A dense (fully connected) layer that multiplies as one 2-D matrix product."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array


class Dense(nn.Module):
    """``y = x W + b`` over the last axis, with ``x`` flattened to ``[rows, in]`` first.

    Same parameters as ``flax.linen.Dense`` (``kernel: [in, features]``, ``bias: [features]``).
    Flattening matters for speed: XLA:CPU runs the backward pass of an N-D ``dot_general``
    (weight gradients contract over the batch *and* sequence axes) far slower than the same
    maths as plain 2-D matrix products.

    Attributes:
      features: output width.
      use_bias: add a bias.
      kernel_init: initialiser of the kernel.
      dtype: compute dtype; parameters stay float32.
    """

    features: int
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """x: float[..., in] -> float[..., features]."""
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        rows = x.reshape(-1, x.shape[-1]).astype(self.dtype)  # (N, in)
        y = rows @ kernel.astype(self.dtype)  # (N, features)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
        return y.reshape(*x.shape[:-1], self.features)
