"""Matplotlib figures of training runs, written as PNG files.

The figures are made without ``matplotlib.pyplot`` (:func:`subplots` builds a bare
``Figure``), so saving them needs no display and leaves matplotlib's backend, and the figures
``pyplot`` manages, as the user set them: ``plt.show()`` in the same session still opens
windows. matplotlib is imported when the first figure is made, not with jaxllm.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``plt.subplots``, on a ``Figure`` that pyplot does not track.

    ``kwargs`` go to ``Figure`` (e.g. ``figsize``); ``axes`` is one ``Axes`` or an array of
    them, as with ``plt.subplots``. Save it with :func:`save_figure`; in a notebook, display
    it by leaving ``fig`` as a cell's last expression.
    """
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    return fig, fig.subplots(nrows, ncols)


def save_figure(fig, path: str | Path) -> Path:
    """Lay ``fig`` out and write it as a PNG at ``path``."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def save_line_plot(fig, ax, path: str | Path, *, xlabel: str, ylabel: str, title: str) -> Path:
    """Label ``ax``'s axes, title it, add a light grid and the legend, and save ``fig`` (see
    :func:`save_figure`): the finish every line plot here shares."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_loss(
    history: list[dict],
    path: str | Path,
    *,
    title: str = "training",
    ylabel: str = "cross-entropy (nats / token)",
) -> Path:
    """Train loss (and validation loss where present) against step, saved as a PNG.

    Args:
      history: records with ``step``, ``loss`` and optionally ``val_loss`` (as in metrics.jsonl).
    """
    path = Path(path)
    train = [(r["step"], r["loss"]) for r in history if isinstance(r.get("loss"), (int, float))]
    val = [
        (r["step"], r["val_loss"]) for r in history if isinstance(r.get("val_loss"), (int, float))
    ]
    fig, ax = subplots(figsize=(7, 4.2))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", lw=1.2)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", lw=1.5, ms=4)
    return save_line_plot(fig, ax, path, xlabel="step", ylabel=ylabel, title=title)


def plot_scaling(
    results: list[dict], path: str | Path, *, title: str = "data-parallel training", note: str = ""
) -> Path:
    """Step time and tokens/s against the number of devices, one line per parallel mode.

    Args:
      results: records with ``mode``, ``devices``, ``ms_per_step`` and ``tokens_per_s``.
      note: a line printed under the title (e.g. what the hardware was).
    """
    path = Path(path)
    fig, axes = subplots(1, 2, figsize=(10, 4.2))
    counts = sorted({r["devices"] for r in results})
    for mode in dict.fromkeys(r["mode"] for r in results):
        rows = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["devices"])
        devices = [r["devices"] for r in rows]
        style = dict(marker="o" if len(rows) > 1 else "s", ms=5 if len(rows) > 1 else 9, label=mode)
        axes[0].plot(devices, [r["ms_per_step"] for r in rows], **style)
        axes[1].plot(devices, [r["tokens_per_s"] for r in rows], **style)
    for ax, label in zip(axes, ("ms per step", "tokens / s"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("devices")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=10)
    return save_figure(fig, path)


def plot_confusion_matrix(
    matrix: Any, label_names: Sequence[str], path: str | Path, *, title: str = "confusion matrix"
) -> Path:
    """A confusion matrix (``int[k, k]``, rows true classes, columns predictions) as a heat map
    with each cell's count and its share of the row, saved as a PNG."""
    import numpy as np

    counts = np.asarray(matrix)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(label_names)
    fig, ax = subplots(figsize=(1.4 * k + 2.5, 1.2 * k + 1.8))
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            color = "white" if shares[i, j] > 0.5 else "black"
            text = f"{counts[i, j]}\n{100 * shares[i, j]:.1f}%"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(k), label_names)
    ax.set_yticks(range(k), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_misclassified(
    images: Any,
    labels: Any,
    predicted: Any,
    label_names: Sequence[str],
    path: str | Path,
    *,
    title: str = "misclassified",
    limit: int = 40,
) -> Path:
    """The images whose prediction is wrong (at most ``limit``, in order), each titled
    ``true → predicted``, in a grid of up to 8 columns, saved as a PNG.

    Args:
      images: float[n, height, width, channels] in [0, 1] (1 channel: grey, 3: colour).
      labels: int[n] true class ids (names: ``label_names``).
      predicted: int[n] predicted class ids.
    """
    import numpy as np

    images, labels, predicted = np.asarray(images), np.asarray(labels), np.asarray(predicted)
    wrong = np.flatnonzero(labels != predicted)[:limit]
    columns = max(min(len(wrong), 8), 1)
    rows = max(-(-len(wrong) // columns), 1)
    fig, axes = subplots(rows, columns, figsize=(1.3 * columns + 0.5, 1.5 * rows + 0.6))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, wrong, strict=False):
        image = images[i, ..., 0] if images.shape[-1] == 1 else images[i]
        ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
        ax.set_title(f"{label_names[labels[i]]} → {label_names[predicted[i]]}", fontsize=9)
    if not len(wrong):
        axes[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(f"{title} ({len(np.flatnonzero(labels != predicted))} of {len(labels)})")
    return save_figure(fig, path)
