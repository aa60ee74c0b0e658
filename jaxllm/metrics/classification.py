"""Classification metrics as pure functions of integer label arrays, following scikit-learn.

Every metric is built from one confusion matrix ``C`` (rows: true class, columns: predicted),
so for class ``c``: ``tp = C[c, c]``, ``predicted = Σ_i C[i, c]``, ``support = Σ_j C[c, j]``.

Conventions match ``sklearn.metrics`` with ``labels=range(num_classes)`` and its default
``zero_division="warn"``: an ill-defined ratio (0/0, e.g. precision of a class never predicted)
is 0.0, silently. Macro averages run over all ``num_classes`` classes, including those that never
occur.

The metrics work under ``jax.jit`` with ``num_classes``, ``average`` and ``pos_label`` static::

    macro_f1 = jax.jit(functools.partial(f1_score, num_classes=5, average="macro"))

Input checks: shapes (1-D, equal length, non-empty) and dtypes (integer or bool) are static, so
they are checked under ``jit`` too. Label *values* can only be checked on concrete arrays: under
``jit`` a label outside ``[0, num_classes)`` is silently left out of the confusion matrix (so of
precision, recall and F1; ``accuracy`` still compares it), and ``num_classes`` cannot be inferred.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

Average = Literal["binary", "macro", "micro", "weighted"] | None
AVERAGES = ("binary", "macro", "micro", "weighted", None)
REPORT_METRICS = ("precision", "recall", "f1-score")


# ------------------------------------------------------------------------------------------------
# Input checks (Python, before tracing)
# ------------------------------------------------------------------------------------------------


def _is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _as_labels(y: Any, name: str) -> Array:
    """``y`` as a 1-D integer JAX array, or a ValueError that says what is wrong and the fix."""
    if not _is_traced(y) and not isinstance(y, jax.Array):
        y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per example), got shape {tuple(y.shape)}: flatten it "
            "with `.reshape(-1)` (dropping padding first), or take `.argmax(-1)` of one-hot rows "
            "or class scores"
        )
    if y.shape[0] == 0:
        raise ValueError(
            f"{name} is empty: metrics of no examples are undefined; check the "
            "evaluation split, or the mask that selected the examples"
        )
    dtype = np.dtype(y.dtype)
    if dtype.kind not in "iub":
        raise ValueError(
            f"{name} must hold integer class ids, got dtype {dtype}: map class names to ids "
            "(e.g. `np.unique(y, return_inverse=True)`), take `.argmax(-1)` of scores, or cast "
            "integral floats with `.astype(int)`"
        )
    return jnp.asarray(y).astype(jnp.int32) if dtype.kind == "b" else jnp.asarray(y)


def _check_pair(y_true: Any, y_pred: Any) -> tuple[Array, Array]:
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.shape[0]} and "
            f"{y_pred.shape[0]}: pass one prediction per example, aligned with the true labels"
        )
    return y_true, y_pred


def _check_range(y: Array, name: str, num_classes: int, average: Average = None) -> None:
    if _is_traced(y):
        return  # values are unknown under jit; out-of-range labels are dropped (module docstring)
    values = np.asarray(y)
    bad = np.unique(values[(values < 0) | (values >= num_classes)])
    if bad.size == 0:
        return
    shown = ", ".join(map(str, bad[:10])) + (", ..." if bad.size > 10 else "")
    if average == "binary":
        raise ValueError(
            f"{name} holds labels {shown} but average='binary' needs labels in {{0, 1}}: use "
            "average='macro', 'micro', 'weighted' or None with num_classes for multiclass data"
        )
    raise ValueError(
        f"{name} holds labels outside [0, {num_classes}): {shown}; pass a num_classes larger "
        f"than the largest label, or remap the labels to 0..num_classes-1"
    )


def _infer_num_classes(y_true: Array, y_pred: Array) -> int:
    if _is_traced(y_true) or _is_traced(y_pred):
        raise ValueError(
            "num_classes cannot be inferred under jit (label values are unknown while tracing): "
            "pass num_classes as a static Python int, e.g. "
            "`jax.jit(functools.partial(f1_score, num_classes=10, average='macro'))`"
        )
    return int(max(np.max(y_true), np.max(y_pred))) + 1


def _checked_labels(
    y_true: Any, y_pred: Any, num_classes: int | None, average: Average = None
) -> tuple[Array, Array, int]:
    """Validated ``(y_true, y_pred, num_classes)``; ``num_classes`` inferred when ``None``."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    if average == "binary":
        if num_classes not in (None, 2):
            raise ValueError(
                f"average='binary' is for two classes, got num_classes={num_classes}: use "
                "average='macro', 'micro', 'weighted' or None for multiclass data"
            )
        num_classes = 2
    elif num_classes is None:
        num_classes = _infer_num_classes(y_true, y_pred)
    if not isinstance(num_classes, int | np.integer) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive Python int, got {num_classes!r}")
    _check_range(y_true, "y_true", int(num_classes), average)
    _check_range(y_pred, "y_pred", int(num_classes), average)
    return y_true, y_pred, int(num_classes)


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=2)  # one dispatch when called eagerly
def _confusion_counts(y_true: Array, y_pred: Array, num_classes: int) -> Array:
    # One scatter-add, O(n) memory; invalid pairs add 0 at [0, 0] rather than wrapping around as
    # negative indices would.
    valid = (y_true >= 0) & (y_true < num_classes) & (y_pred >= 0) & (y_pred < num_classes)
    rows, cols = jnp.where(valid, y_true, 0), jnp.where(valid, y_pred, 0)
    counts = jnp.zeros((num_classes, num_classes), jnp.int32)
    return counts.at[rows, cols].add(valid.astype(jnp.int32))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> Array:
    """Counts ``C[i, j]`` of examples with true class ``i`` predicted as class ``j``.

    Args:
      y_true: int[n] true class ids in ``[0, num_classes)``.
      y_pred: int[n] predicted class ids in ``[0, num_classes)``.
      num_classes: static; inferred as ``max label + 1`` from concrete inputs when ``None``.

    Returns:
      int32[num_classes, num_classes], rows = true class, columns = predicted (as scikit-learn).
    """
    y_true, y_pred, num_classes = _checked_labels(y_true, y_pred, num_classes)
    return _confusion_counts(y_true, y_pred, num_classes)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Fraction of examples with ``y_pred == y_true``.

    Args:
      y_true: int[n]
      y_pred: int[n]

    Returns:
      float32[] scalar.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    return jnp.mean((y_true == y_pred).astype(jnp.float32))


def _ratio(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, 0 where the denominator is 0 (scikit-learn's zero_division)."""
    numerator, denominator = numerator.astype(jnp.float32), denominator.astype(jnp.float32)
    return jnp.where(denominator > 0, numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)


def _class_counts(counts: Array) -> tuple[Array, Array, Array]:
    """``(true_positives, predicted, support)`` per class, each int32[num_classes]."""
    return jnp.diagonal(counts), jnp.sum(counts, axis=0), jnp.sum(counts, axis=1)


def _prf_from_counts(tp: Array, predicted: Array, support: Array, metric: str) -> Array:
    if metric == "precision":
        return _ratio(tp, predicted)
    if metric == "recall":
        return _ratio(tp, support)
    return _ratio(2 * tp, predicted + support)  # F1 = 2tp / (2tp + fp + fn)


def _averaged(
    y_true: Any, y_pred: Any, metric: str, average: Average, pos_label: int, num_classes: int | None
) -> Array:
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    if average == "binary" and pos_label not in (0, 1):
        raise ValueError(f"pos_label must be 0 or 1 for average='binary', got {pos_label!r}")
    y_true, y_pred, num_classes = _checked_labels(y_true, y_pred, num_classes, average)
    tp, predicted, support = _class_counts(_confusion_counts(y_true, y_pred, num_classes))
    if average == "micro":
        return _prf_from_counts(jnp.sum(tp), jnp.sum(predicted), jnp.sum(support), metric)
    per_class = _prf_from_counts(tp, predicted, support, metric)
    if average is None:
        return per_class
    if average == "binary":
        return per_class[pos_label]
    if average == "macro":
        return jnp.mean(per_class)
    return _ratio(jnp.sum(per_class * support), jnp.sum(support))  # weighted by support


def precision(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: Average = "binary",
    pos_label: int = 1,
    num_classes: int | None = None,
) -> Array:
    """Precision ``tp / (tp + fp)``: of the examples predicted as a class, the fraction in it.

    Args:
      y_true: int[n] true class ids in ``[0, num_classes)``.
      y_pred: int[n] predicted class ids in ``[0, num_classes)``.
      average: ``"binary"`` (the ``pos_label`` class of two), ``"macro"`` (unweighted mean over
        all ``num_classes`` classes, including absent ones), ``"micro"`` (from counts summed
        over classes; equals accuracy), ``"weighted"`` (mean weighted by support) or ``None``
        (one value per class).
      pos_label: the positive class for ``average="binary"``: 0 or 1.
      num_classes: static; 2 for ``"binary"``, else inferred as ``max label + 1`` from concrete
        inputs when ``None`` (pass it under ``jit``, and whenever the top class may be absent).

    Returns:
      float32[] scalar, or float32[num_classes] when ``average`` is ``None``. A ratio 0/0 (a
      class never predicted) counts as 0.0, as scikit-learn's default ``zero_division``.
    """
    return _averaged(y_true, y_pred, "precision", average, pos_label, num_classes)


def recall(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: Average = "binary",
    pos_label: int = 1,
    num_classes: int | None = None,
) -> Array:
    """Recall ``tp / (tp + fn)``: of the examples in a class, the fraction predicted as it.

    Arguments, shapes and the 0/0 convention as :func:`precision`.
    """
    return _averaged(y_true, y_pred, "recall", average, pos_label, num_classes)


def f1_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: Average = "binary",
    pos_label: int = 1,
    num_classes: int | None = None,
) -> Array:
    """F1 ``2·tp / (2·tp + fp + fn)``, the harmonic mean of precision and recall.

    Arguments, shapes and the 0/0 convention as :func:`precision`; ``"macro"`` averages the
    per-class F1 (not the F1 of the averaged precision and recall), as scikit-learn.
    """
    return _averaged(y_true, y_pred, "f1", average, pos_label, num_classes)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def classification_report(
    y_true: ArrayLike, y_pred: ArrayLike, label_names: Sequence[str]
) -> dict[str, Any]:
    """Per-class and averaged precision, recall, F1 and support, as plain Python floats.

    The layout is scikit-learn's ``classification_report(..., output_dict=True)`` with
    ``labels=range(len(label_names))``: ``{name: {"precision", "recall", "f1-score",
    "support"}}`` for each class, then ``"accuracy"`` (a float), ``"macro avg"`` and
    ``"weighted avg"`` (support: the number of examples). Not jit-able (it returns Python
    floats); the counts are computed once.

    Args:
      y_true: int[n] true class ids in ``[0, len(label_names))``.
      y_pred: int[n] predicted class ids.
      label_names: one distinct name per class, in class-id order.
    """
    names = [str(name) for name in label_names]
    if len(set(names)) != len(names) or {"accuracy", "macro avg", "weighted avg"} & set(names):
        raise ValueError(
            f"label_names must be distinct and must not be 'accuracy', 'macro avg' "
            f"or 'weighted avg' (they would collide in the report), got {names}"
        )
    if not names:
        raise ValueError("label_names is empty: pass one name per class, in class-id order")
    y_true, y_pred, num_classes = _checked_labels(y_true, y_pred, len(names))
    tp, predicted, support = _class_counts(_confusion_counts(y_true, y_pred, num_classes))
    per_class = {
        m: np.asarray(_prf_from_counts(tp, predicted, support, m.split("-")[0]), np.float64)
        for m in REPORT_METRICS
    }
    support = np.asarray(support, np.float64)
    total = float(support.sum())
    report: dict[str, Any] = {
        name: {**{m: float(per_class[m][c]) for m in REPORT_METRICS}, "support": float(support[c])}
        for c, name in enumerate(names)
    }
    report["accuracy"] = float(np.asarray(tp).sum() / total)
    report["macro avg"] = {
        **{m: float(per_class[m].mean()) for m in REPORT_METRICS},
        "support": total,
    }
    report["weighted avg"] = {
        **{m: float((per_class[m] * support).sum() / total) for m in REPORT_METRICS},
        "support": total,
    }
    return report


def format_report(report: dict[str, Any], digits: int = 3) -> str:
    """A :func:`classification_report` dict as a Markdown table (one row per class, then the
    accuracy and the macro and weighted averages)."""

    def cell(value: float) -> str:
        return f"{value:.{digits}f}"

    def row(name: str, values: list[str]) -> str:
        return "| " + " | ".join([name.replace("|", "\\|"), *values]) + " |"

    lines = [row("class", [*REPORT_METRICS, "support"]), "|---|---:|---:|---:|---:|"]
    for name, scores in report.items():
        if name == "accuracy":
            total = report.get("macro avg", {}).get("support")
            lines.append(row(name, ["", "", cell(scores), "" if total is None else f"{total:.0f}"]))
        else:
            lines.append(
                row(name, [*(cell(scores[m]) for m in REPORT_METRICS), f"{scores['support']:.0f}"])
            )
    return "\n".join(lines)
