"""Matplotlib figures of training runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # files, not windows: scripts run headless
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss(history: list[dict], path: str | Path, *, title: str = "training") -> Path:
    """Train loss (and validation loss where present) against step, saved as a PNG.

    Args:
      history: records with ``step``, ``loss`` and optionally ``val_loss`` (as in metrics.jsonl).
    """
    path = Path(path)
    train = [(r["step"], r["loss"]) for r in history if isinstance(r.get("loss"), (int, float))]
    val = [(r["step"], r["val_loss"]) for r in history if isinstance(r.get("val_loss"), (int, float))]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", lw=1.2)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", lw=1.5, ms=4)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
