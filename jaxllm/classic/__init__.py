"""The traditional way of computing with text: TF-IDF features and linear models, in JAX."""

from jaxllm.classic.linear import (
    FeaturesError,
    LinearConfig,
    LinearModel,
    NotProbabilisticError,
    TargetsError,
    decision_function,
    fit_linear,
    fit_regularization_path,
    least_squares,
    predict,
    predict_proba,
)
from jaxllm.classic.tfidf import TfidfConfig, Vectorizer, fit_transform, fit_vectorizer, top_terms

__all__ = [
    "FeaturesError",
    "LinearConfig",
    "LinearModel",
    "NotProbabilisticError",
    "TargetsError",
    "TfidfConfig",
    "Vectorizer",
    "decision_function",
    "fit_linear",
    "fit_regularization_path",
    "fit_transform",
    "fit_vectorizer",
    "least_squares",
    "predict",
    "predict_proba",
    "top_terms",
]
