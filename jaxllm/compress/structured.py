"""Structured pruning of a GPT: whole attention heads and MLP neurons removed, so its matrices
shrink and it runs faster (zeros alone do not make a dense product faster).

Every layer keeps the same number of heads and of MLP neurons, so the pruned model is again a
:class:`~jaxllm.models.GPT`, of a config with ``n_head`` heads of the original width
(``head_size``) and an ``mlp_width``-wide MLP::

    config, params = prune_heads_and_neurons(config, params, heads=2, mlp_width=256)
    GPT(config).apply({"params": params}, tokens)

Each layer keeps its heads with the largest weights (the squared norm of a head's query, key
and value columns and of its output-projection rows), and its neurons with the largest
``‖input column‖ · ‖output column‖``, in their original order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxllm.compress.prune import PruningError
from jaxllm.config import require
from jaxllm.models.gpt import MLP_OUTPUT_KERNEL_LAYOUT, GPTConfig


def prune_heads_and_neurons(
    config: GPTConfig, params: Any, *, heads: int, mlp_width: int
) -> tuple[GPTConfig, Any]:
    """A smaller GPT: ``heads`` heads and ``mlp_width`` MLP neurons kept in every layer.

    Args:
      config: the trained GPT's shape.
      params: its parameters (float).
      heads: heads kept per layer, in [1, ``config.n_head``].
      mlp_width: MLP neurons kept per layer, in [1, the MLP's width].

    Returns:
      ``(config, params)`` of the pruned model: the same function as the original with the
      dropped heads' and neurons' outputs set to zero.
    """
    mlp = config.mlp_hidden
    require(
        all("kernel" in params[f"h_{i}"]["mlp"]["c_fc"] for i in range(config.n_layer)),
        "structured pruning needs float weights: prune before quantize_int8",
        PruningError,
    )
    require(
        1 <= heads <= config.n_head,
        f"heads must be in [1, {config.n_head}] (heads per layer kept), got {heads}",
        PruningError,
    )
    require(
        1 <= mlp_width <= mlp,
        f"mlp_width must be in [1, {mlp}] (MLP neurons per layer kept), got {mlp_width}",
        PruningError,
    )
    require(
        MLP_OUTPUT_KERNEL_LAYOUT == "out_in",
        "the GPT's MLP output kernel is expected as [out, in]",
        PruningError,
    )
    pruned = {name: value for name, value in params.items() if not name.startswith("h_")}
    for i in range(config.n_layer):
        block = params[f"h_{i}"]
        kept_heads = _top_heads(block["attn"], config.n_head, config.head_dim, heads)
        kept_neurons = _top_neurons(block["mlp"], mlp_width)
        pruned[f"h_{i}"] = {
            **block,
            "attn": _attention_slice(block["attn"], kept_heads, config.n_head, config.head_dim),
            "mlp": _mlp_slice(block["mlp"], kept_neurons),
        }
    shape = dataclasses.replace(
        config,
        n_head=heads,
        # 0 where the width is the standard one, so an unpruned shape stays GPT-2's
        head_size=0 if heads * config.head_dim == config.n_embd else config.head_dim,
        mlp_width=0 if mlp_width == 4 * config.n_embd else mlp_width,
    )
    return shape, jax.tree.map(jnp.asarray, pruned)


def _head_rows(heads: np.ndarray, head_dim: int) -> np.ndarray:
    """The positions of ``heads`` in a ``[heads · head_dim]`` axis (heads side by side)."""
    return (heads[:, None] * head_dim + np.arange(head_dim)[None, :]).reshape(-1)


def _head_columns(heads: np.ndarray, n_head: int, head_dim: int) -> np.ndarray:
    """The columns of the fused ``[q | k | v]`` projection that belong to ``heads``."""
    within = _head_rows(heads, head_dim)
    return np.concatenate([part * n_head * head_dim + within for part in range(3)])


def _top_heads(attn: dict, n_head: int, head_dim: int, keep: int) -> np.ndarray:
    """The ``keep`` heads with the largest weights, in their original order."""
    qkv = np.asarray(attn["c_attn"]["kernel"]).reshape(-1, 3, n_head, head_dim)  # [C, 3, H, D]
    out = np.asarray(attn["c_proj"]["kernel"]).reshape(n_head, head_dim, -1)  # [H, D, C]
    scores = np.sum(qkv**2, axis=(0, 1, 3)) + np.sum(out**2, axis=(1, 2))
    return np.sort(np.argsort(-scores, kind="stable")[:keep])


def _top_neurons(mlp: dict, keep: int) -> np.ndarray:
    """The ``keep`` neurons with the largest ``‖input column‖ · ‖output column‖``, in order."""
    inputs = np.linalg.norm(np.asarray(mlp["c_fc"]["kernel"]), axis=0)  # [C, M] -> [M]
    outputs = np.linalg.norm(np.asarray(mlp["c_proj"]["kernel"]), axis=0)  # [C, M] (out_in)
    return np.sort(np.argsort(-(inputs * outputs), kind="stable")[:keep])


def _attention_slice(attn: dict, heads: np.ndarray, n_head: int, head_dim: int) -> dict:
    columns = _head_columns(heads, n_head, head_dim)
    rows = _head_rows(heads, head_dim)
    c_attn = {"kernel": np.asarray(attn["c_attn"]["kernel"])[:, columns]}
    if "bias" in attn["c_attn"]:
        c_attn["bias"] = np.asarray(attn["c_attn"]["bias"])[columns]
    c_proj = {**attn["c_proj"], "kernel": np.asarray(attn["c_proj"]["kernel"])[rows]}
    return {**attn, "c_attn": c_attn, "c_proj": c_proj}


def _mlp_slice(mlp: dict, neurons: np.ndarray) -> dict:
    c_fc = {"kernel": np.asarray(mlp["c_fc"]["kernel"])[:, neurons]}
    if "bias" in mlp["c_fc"]:
        c_fc["bias"] = np.asarray(mlp["c_fc"]["bias"])[neurons]
    c_proj = {**mlp["c_proj"], "kernel": np.asarray(mlp["c_proj"]["kernel"])[:, neurons]}
    return {**mlp, "c_fc": c_fc, "c_proj": c_proj}
