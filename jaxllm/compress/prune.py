"""Magnitude pruning: the smallest weights set to zero, and kept there while the model is
fine-tuned.

Masks are pytrees shaped like the parameters: a bool array (``True``: kept) for every pruned
leaf, a scalar ``True`` for the rest. By default the weight matrices of dense layers are
pruned (leaves named ``kernel``, two or more axes); embeddings, biases and norms are kept::

    masks = magnitude_masks(params, 0.5)                         # half of all kernels' weights
    params = apply_masks(params, masks)
    optimizer = optax.chain(make_optimizer(cfg), keep_pruned(masks))   # pruned weights stay 0

Pruning is *global* (one threshold over every pruned leaf: layers lose different shares) or
*per layer* (each leaf loses the same share). :func:`sparsity_schedule` gives the sparsity of
each round of iterative pruning (Zhu and Gupta, 2017), each round followed by fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxllm.config import require

Scope = Literal["global", "layer"]
LeafFilter = Callable[[str, Any], bool]


class PruningError(ValueError):
    """A sparsity out of range, or masks that do not fit the parameters."""


def dense_kernels(path: str, leaf: Any) -> bool:
    """The default choice of pruned leaves: dense layers' ``kernel`` matrices."""
    return path.endswith("kernel") and getattr(leaf, "ndim", 0) >= 2


def magnitude_masks(
    params: Any,
    sparsity: float,
    *,
    scope: Scope = "global",
    prune: LeafFilter = dense_kernels,
) -> Any:
    """Masks that drop the ``sparsity`` share of the chosen weights with the smallest
    magnitudes: exactly ``round(sparsity · n)`` of them (ties broken by position).

    Args:
      params: the parameter pytree.
      sparsity: the share dropped, in [0, 1).
      scope: ``"global"``: one ranking over all chosen leaves; ``"layer"``: each leaf ranked
        (and pruned to ``sparsity``) on its own.
      prune: ``(path, leaf) -> bool``: which leaves are pruned (path: keys joined by ``/``).

    Returns:
      bool masks shaped like ``params`` (scalar ``True`` for the leaves not pruned).
    """
    require(
        0.0 <= sparsity < 1.0,
        f"sparsity must be in [0, 1) (the share of weights set to zero), got {sparsity}",
        PruningError,
    )
    require(scope in ("global", "layer"), f"scope must be 'global' or 'layer', got {scope!r}")
    paths, leaves, treedef = _flatten(params)
    chosen = [i for i, (p, leaf) in enumerate(zip(paths, leaves, strict=True)) if prune(p, leaf)]
    require(chosen != [], "no parameter leaf was chosen for pruning (check `prune`)", PruningError)
    magnitudes = [np.abs(np.asarray(leaves[i], np.float32)).reshape(-1) for i in chosen]
    if scope == "global":
        kept = np.split(_keep(np.concatenate(magnitudes), sparsity), np.cumsum(
            [m.size for m in magnitudes])[:-1])  # fmt: skip
    else:
        kept = [_keep(m, sparsity) for m in magnitudes]
    masks: list[Any] = [jnp.ones((), bool) for _ in leaves]
    for i, keep in zip(chosen, kept, strict=True):
        masks[i] = jnp.asarray(keep.reshape(leaves[i].shape))
    return jax.tree.unflatten(treedef, masks)


def _keep(magnitudes: np.ndarray, sparsity: float) -> np.ndarray:
    """bool[n]: all but the ``round(sparsity · n)`` smallest (a stable order breaks ties)."""
    drop = int(round(sparsity * magnitudes.size))
    keep = np.ones(magnitudes.size, bool)
    keep[np.argsort(magnitudes, kind="stable")[:drop]] = False
    return keep


def apply_masks(params: Any, masks: Any) -> Any:
    """``params`` with every masked-out weight set to zero.

    Raises:
      PruningError: masks whose structure or shapes do not fit ``params``.
    """
    _check_masks(params, masks)
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


class KeepPrunedState(NamedTuple):
    """:func:`keep_pruned` keeps no state."""


def keep_pruned(masks: Any) -> optax.GradientTransformation:
    """An optax transformation that zeroes the updates of masked-out weights; chained after an
    optimizer (``optax.chain(adamw, keep_pruned(masks))``), pruned weights stay zero while the
    rest train (weight decay included, since it is part of the update)."""

    def init(params: Any) -> KeepPrunedState:
        _check_masks(params, masks)
        return KeepPrunedState()

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, optax.OptState]:
        del params
        masked = jax.tree.map(lambda u, m: jnp.where(m, u, jnp.zeros_like(u)), updates, masks)
        return masked, state

    return optax.GradientTransformation(init, update)


def sparsity_of(params: Any, *, prune: LeafFilter = dense_kernels) -> float:
    """The share of exact zeros among the chosen leaves' weights."""
    paths, leaves, _ = _flatten(params)
    chosen = [np.asarray(leaf) for p, leaf in zip(paths, leaves, strict=True) if prune(p, leaf)]
    total = sum(leaf.size for leaf in chosen)
    return sum(int(np.sum(leaf == 0)) for leaf in chosen) / max(total, 1)


def sparsity_schedule(final: float, rounds: int, *, initial: float = 0.0) -> list[float]:
    """The sparsity after each of ``rounds`` prune-and-fine-tune rounds, rising from
    ``initial`` to ``final`` along Zhu and Gupta's cubic: fast at first, while there are
    redundant weights to drop, then slowly. ``s_r = final + (initial - final)(1 - r/rounds)³``.
    """
    require(
        0.0 <= initial <= final < 1.0,
        f"need 0 <= initial <= final < 1, got initial={initial}, final={final}",
        PruningError,
    )
    require(rounds >= 1, f"rounds must be >= 1, got {rounds}", PruningError)
    return [final + (initial - final) * (1 - r / rounds) ** 3 for r in range(1, rounds + 1)]


def _flatten(params: Any) -> tuple[list[str], list[Any], Any]:
    """Leaves with their paths (keys joined by ``/``), and the tree's structure."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = ["/".join(_key_name(k) for k in path) for path, _ in with_paths]
    return paths, [leaf for _, leaf in with_paths], treedef


def _key_name(key: Any) -> str:
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _check_masks(params: Any, masks: Any) -> None:
    ours, theirs = jax.tree.structure(params), jax.tree.structure(masks)
    require(
        ours == theirs,
        f"the masks' structure does not match the parameters': {theirs} vs {ours}; make masks "
        "with magnitude_masks(params, ...) from these parameters",
        PruningError,
    )
    for path, p, m in zip(_flatten(params)[0], jax.tree.leaves(params), jax.tree.leaves(masks),
                          strict=True):  # fmt: skip
        require(
            np.shape(m) in ((), np.shape(p)),
            f"the mask of {path} has shape {np.shape(m)}, its parameter {np.shape(p)}",
            PruningError,
        )


def leaf_sparsities(params: Any, *, prune: LeafFilter = dense_kernels) -> dict[str, float]:
    """The share of zeros of each chosen leaf, by path (how global pruning spread itself)."""
    paths, leaves, _ = _flatten(params)
    return {
        path: float(np.mean(np.asarray(leaf) == 0))
        for path, leaf in zip(paths, leaves, strict=True)
        if prune(path, leaf)
    }
