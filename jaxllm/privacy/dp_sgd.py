"""DP-SGD (Abadi et al., 2016): each example's gradient clipped to a norm, Gaussian noise added
to their sum, as an option of :func:`jaxllm.train.make_train_step`.

Per-example gradients come from ``jax.vmap`` over the batch's leading axis, so one compiled
program computes all of them at once (Opacus hooks every layer instead). A step with
``DPConfig(clip_norm=C, noise_multiplier=σ)`` updates with

    ( Σ_i clip(g_i, C) + N(0, σ² C² I) ) / B,      clip(g, C) = g · min(1, C / ‖g‖),

``B`` the batch's examples (with Poisson sampling, the constant ``expected_batch_size`` instead),
``‖g‖`` the norm over every parameter. The sum runs over the
micro-batches of the step and over the devices of its ``axis_name``; the noise is drawn once,
from a key every device shares, so a split batch gets the update of the whole one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import Array

from jaxllm.config import require
from jaxllm.losses import LossFn

# The noise's random stream, apart from dropout's (a key folded with this, never with a device).
NOISE_STREAM = 0x0D9
# A batch key of per-example weights: 1 for a sampled example, 0 for padding (Poisson
# sampling's batches vary in size and are padded to a few fixed sizes).
EXAMPLE_WEIGHTS = "example_weights"


@dataclasses.dataclass(frozen=True)
class DPConfig:
    """DP-SGD's two settings.

    Attributes:
      clip_norm: ``C``: each example's gradient is scaled down to this L2 norm (over all
        parameters) when it is longer.
      noise_multiplier: ``σ``: the noise added to the sum of clipped gradients has standard
        deviation ``σ·C`` per coordinate (0: clipping alone, no privacy).
      expected_batch_size: with Poisson sampling (:class:`jaxllm.privacy.PoissonBatches`),
        the noisy sum is divided by this constant, ``q·n``, not by the examples drawn: how
        many were drawn must not change the update's scale (Opacus does the same). ``None``:
        divide by the batch's examples.
    """

    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    expected_batch_size: float | None = None

    def __post_init__(self):
        require(
            self.clip_norm > 0,
            f"DPConfig.clip_norm must be > 0 (the largest gradient norm an example keeps), "
            f"got {self.clip_norm}",
        )
        require(
            self.noise_multiplier >= 0,
            f"DPConfig.noise_multiplier must be >= 0 (0 adds no noise), got "
            f"{self.noise_multiplier}",
        )
        require(
            self.expected_batch_size is None or self.expected_batch_size > 0,
            f"DPConfig.expected_batch_size must be > 0 or None, got {self.expected_batch_size}",
        )


def clipped_part(
    loss_fn: LossFn, params: Any, clip_norm: float
) -> Callable[[dict, Array], tuple[Any, dict, Array]]:
    """``part(batch, key) -> (Σ_i w_i clip(g_i, C), {name: Σ_i w_i metric_i}, Σ_i w_i)`` over
    the examples of ``batch`` (every leaf's leading axis), each run alone as a batch of one
    with its own key; ``w_i`` is ``batch["example_weights"]`` (1 for an example, 0 for
    padding; all 1 when absent); ``clip_fraction`` counts the examples that were clipped.

    The clipped sum is one product of the per-example gradients with their scales
    (``tensordot``), not a scaling then a sum: XLA:CPU fused the latter with the scatter that
    makes an embedding table's per-example gradients and ran it ~600x slower (44 s a step for
    a 20,000-row table, batch 64).
    """

    def one(example: dict, key: Array) -> tuple[Any, dict, Array]:
        example = {name: value for name, value in example.items() if name != EXAMPLE_WEIGHTS}
        single = jax.tree.map(lambda x: x[None], example)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, single, key)
        metrics = {name: value for name, value in metrics.items() if name != "tokens"}
        return grads, metrics, optax.tree.norm(grads)

    def part(batch: dict, key: Array) -> tuple[Any, dict, Array]:
        rows = jax.tree.leaves(batch)[0].shape[0]
        weights = batch.get(EXAMPLE_WEIGHTS, jnp.ones(rows, jnp.float32)).astype(jnp.float32)
        grads, metrics, norms = jax.vmap(one)(batch, jax.random.split(key, rows))  # [B, ...]
        scales = weights * jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12))
        clipped_sum = jax.tree.map(lambda g: jnp.tensordot(scales.astype(g.dtype), g, 1), grads)
        metrics["clip_fraction"] = (norms > clip_norm).astype(jnp.float32)
        sums = jax.tree.map(lambda x: jnp.tensordot(weights, x.astype(jnp.float32), 1), metrics)
        return clipped_sum, sums, jnp.sum(weights)

    return part


def add_noise(gradient_sum: Any, key: Array, config: DPConfig) -> Any:
    """``gradient_sum`` plus independent ``N(0, (σ·C)²)`` noise on every coordinate."""
    leaves, treedef = jax.tree.flatten(gradient_sum)
    keys = jax.random.split(key, len(leaves))
    std = config.noise_multiplier * config.clip_norm
    noisy = [
        leaf + std * jax.random.normal(k, leaf.shape, leaf.dtype)
        for leaf, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)
