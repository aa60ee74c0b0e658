"""The stages (trace, compile, first run, steady run) of jaxllm's linear-model programs,
prepared exactly as ``fit_linear`` and ``predict`` prepare them (padded to their bucket sizes),
for :func:`harness.timing.compile_stages`."""

from __future__ import annotations

import numpy as np

from harness.timing import compile_stages
from jaxllm.classic import LinearConfig, LinearModel, linear


def fit_stages(X, y, config: LinearConfig) -> dict[str, float]:
    """The stages of ``fit_linear(X, y, config)``'s compiled solve."""
    labels, k, _ = linear._check_problem(X, y, config, None)
    padded, labels, weights = linear._padded_problem(X, labels)
    args = (padded, labels, weights, np.float32(config.C), linear._settings(config))
    static = {"config": linear._program(config), "k": k}
    return compile_stages(linear._fit_jit, *args, static=static)


def predict_stages(model: LinearModel, X) -> dict[str, float]:
    """The stages of ``predict(model, X)``'s compiled product."""
    padded = linear._padded_features(X, linear.bucket_size(X.shape[0]), X.shape[1])
    return compile_stages(linear._scores_jit, model.params, padded)
