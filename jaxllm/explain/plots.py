"""Pictures of explanations: an attention map as a heat map, token attributions as bars.

Both draw on a given Matplotlib ``ax`` or on a new figure (:func:`jaxllm.plots.subplots`,
untracked by pyplot), and return the figure; save it with :func:`jaxllm.plots.save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxllm.config import require
from jaxllm.plots import subplots


def plot_attention(
    weights: Any,
    query_labels: Sequence[str],
    key_labels: Sequence[str] | None = None,
    *,
    ax: Any = None,
    title: str = "attention",
) -> Any:
    """A heat map of one head's weights, float[q_len, k_len]: row ``i`` is what query ``i``
    (labelled ``query_labels[i]``) attends to; ``key_labels`` default to the query labels."""
    weights = np.asarray(weights, np.float32)
    key_labels = list(query_labels) if key_labels is None else list(key_labels)
    require(
        weights.ndim == 2 and weights.shape == (len(query_labels), len(key_labels)),
        f"weights of shape {weights.shape} need {len(query_labels)} query and "
        f"{len(key_labels)} key labels, one per row and column (pick one example and head: "
        "maps[layer][example, head])",
    )
    fig, ax = _figure(ax, (0.4 * len(key_labels) + 2, 0.4 * len(query_labels) + 1.5))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    ax.set_xticks(range(len(key_labels)), key_labels, rotation=90)
    ax.set_yticks(range(len(query_labels)), query_labels)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def plot_token_attributions(
    values: Any, labels: Sequence[str], *, ax: Any = None, title: str = "attributions"
) -> Any:
    """One bar per token, float[seq] (e.g. ``Attributions.per_token[i]``): red for tokens
    that raise the score, blue for those that lower it."""
    values = np.asarray(values, np.float32).reshape(-1)
    require(
        values.shape[0] == len(labels),
        f"{values.shape[0]} attributions need as many labels, got {len(labels)}",
    )
    fig, ax = _figure(ax, (0.45 * len(labels) + 2, 3.0))
    ax.bar(range(len(labels)), values, color=np.where(values >= 0, "tab:red", "tab:blue"))
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_ylabel("attribution")
    ax.set_title(title)
    return fig


def _figure(ax: Any, size: tuple[float, float]) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    return subplots(figsize=(min(size[0], 16.0), min(size[1], 12.0)))
