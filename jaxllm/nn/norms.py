"""Normalisation layers shared by every Transformer in jaxllm."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


def layer_norm(
    *,
    use_bias: bool = True,
    dtype: Any = jnp.float32,
    epsilon: float = 1e-5,
    name: str | None = None,
) -> nn.LayerNorm:
    """LayerNorm over the last axis, eps 1e-5 as in GPT-2/PyTorch (BERT's is 1e-12); optional
    bias (nanoGPT's ``bias``).

    Statistics are computed in float32 whatever the compute dtype.
    """
    return nn.LayerNorm(
        epsilon=epsilon, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, name=name
    )
