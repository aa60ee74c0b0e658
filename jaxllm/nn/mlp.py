"""The position-wise feed-forward block of a Transformer."""

from __future__ import annotations

import functools
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.dense import Dense, KernelLayout

Activation = Literal["gelu_tanh", "gelu"]
"""The MLP's GELU: ``"gelu_tanh"``, GPT-2's tanh approximation, or ``"gelu"``, the exact
``x Φ(x)`` with the error function (BERT's)."""
ACTIVATIONS = {
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
}


class MLP(nn.Module):
    """``Dense(hidden) -> GELU -> Dense(width) -> Dropout``.

    Attributes:
      hidden_dim: width of the hidden layer (4 × the model width in GPT-2).
      dropout_rate: dropout on the output.
      use_bias: biases in both dense layers.
      out_init_std: std of the output projection's init (GPT-2 scales it by 1/sqrt(2·layers)).
      dtype: compute dtype; parameters stay float32.
      output_kernel_layout: layout of the output projection's kernel (see
        :class:`~jaxllm.nn.Dense`; ``"out_in"`` trains faster on XLA:CPU).
      activation: ``"gelu_tanh"`` (GPT-2) or ``"gelu"`` (exact, BERT).
    """

    hidden_dim: int
    dropout_rate: float = 0.0
    use_bias: bool = True
    out_init_std: float = 0.02
    dtype: Any = jnp.float32
    output_kernel_layout: KernelLayout = "in_out"
    activation: Activation = "gelu_tanh"

    @nn.compact
    def __call__(self, x: Array, *, deterministic: bool = True) -> Array:
        """x: float[..., width] -> float[..., width]."""
        width = x.shape[-1]
        init = nn.initializers.normal(0.02)
        h = Dense(
            self.hidden_dim, use_bias=self.use_bias, kernel_init=init, dtype=self.dtype, name="c_fc"
        )(x)
        # Recomputed in the backward pass from its input: autodiff would otherwise keep the
        # GELU's tanh intermediates, a [tokens, hidden] buffer per layer (72 MiB of the 6-layer
        # benchmark GPT's 595 MiB of activations), and the recomputation costs no measurable time.
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"MLP.activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}"
            )
        h = jax.checkpoint(ACTIVATIONS[self.activation])(h)
        h = Dense(
            width,
            use_bias=self.use_bias,
            kernel_init=nn.initializers.normal(self.out_init_std),
            dtype=self.dtype,
            kernel_layout=self.output_kernel_layout,
            name="c_proj",
        )(h)
        return nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
