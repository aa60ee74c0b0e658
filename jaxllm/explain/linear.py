"""The traditional counterpart of attributions: a linear model over TF-IDF features explains
itself by its weights. Top features per class, and each term's part in one document's score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jax.experimental import sparse

from jaxllm.classic.linear import LinearModel
from jaxllm.config import require


def top_features(
    model: LinearModel, terms: Sequence[str], k: int = 10
) -> dict[int, list[tuple[str, float]]]:
    """The ``k`` terms that most raise each class's score, with their weights.

    A two-class model has one weight column: its largest weights speak for class 1, its most
    negative for class 0 (reported as positive numbers, the score they give class 0).

    Args:
      model: a fitted linear classifier (:func:`jaxllm.classic.fit_linear`).
      terms: the feature names in column order (``Vectorizer.terms``).
      k: terms per class.

    Returns:
      ``{class: [(term, weight), ...]}``, largest first.
    """
    weights = _class_weights(model, terms)
    require(k >= 1, f"k must be >= 1, got {k}")
    return {
        label: [(terms[int(j)], float(column[j])) for j in np.argsort(-column, kind="stable")[:k]]
        for label, column in enumerate(weights.T)
    }


def feature_contributions(
    model: LinearModel, terms: Sequence[str], row: sparse.BCOO | np.ndarray, label: int, k: int = 10
) -> list[tuple[str, float]]:
    """The ``k`` terms of one document that move class ``label``'s score most, by ``x_j · w_j``
    (largest magnitude first, signed: negative ones speak against ``label``). Together with
    the bias they add up to the score.

    Args:
      model: a fitted linear classifier.
      terms: the feature names in column order (``Vectorizer.terms``).
      row: the document's features, float[1, n_features] (a ``Vectorizer.transform`` row) or
        float[n_features].
      label: the class explained.
    """
    weights = _class_weights(model, terms)
    require(
        0 <= label < weights.shape[1],
        f"label must be in [0, {weights.shape[1]}), got {label}",
    )
    x = np.asarray(row.todense() if isinstance(row, sparse.BCOO) else row, np.float64).reshape(-1)
    require(
        x.shape[0] == len(terms),
        f"the row has {x.shape[0]} features, the model {len(terms)}: transform the document with "
        "the vectorizer the model was trained on",
    )
    parts = x * weights[:, label]
    order = [j for j in np.argsort(-np.abs(parts), kind="stable")[:k] if parts[j] != 0]
    return [(terms[int(j)], float(parts[j])) for j in order]


def _class_weights(model: LinearModel, terms: Sequence[str]) -> np.ndarray:
    """float64[n_features, classes]: the score each feature adds to each class (two classes:
    ``[-w, w]``)."""
    require(
        model.num_classes >= 2,
        "top features and contributions explain a classifier; this model is a regression",
    )
    kernel = np.asarray(model.params["kernel"], np.float64)
    require(
        kernel.shape[0] == len(terms),
        f"the model has {kernel.shape[0]} features but {len(terms)} terms were given: pass the "
        "terms of the vectorizer it was trained on",
    )
    return np.concatenate([-kernel, kernel], axis=1) if kernel.shape[1] == 1 else kernel
