"""Shared by the Hugging Face interop tests."""

import jax


def perturbed(params, seed: int, scale: float = 0.05):
    """``params`` plus small Gaussian noise on every leaf: zero biases and unit LayerNorm
    scales become distinct values, so a swapped, transposed or dropped tensor shows."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(tree, noisy)
