"""The traditional way of computing with text: TF-IDF features and linear models, in JAX, and
a character n-gram language model."""

from jaxllm.classic.char_ngram import CharLMError, CharNGramLM, fit_char_ngram, load_char_ngram
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
    "CharLMError",
    "CharNGramLM",
    "FeaturesError",
    "LinearConfig",
    "LinearModel",
    "NotProbabilisticError",
    "TargetsError",
    "TfidfConfig",
    "Vectorizer",
    "decision_function",
    "fit_char_ngram",
    "fit_linear",
    "fit_regularization_path",
    "fit_transform",
    "fit_vectorizer",
    "least_squares",
    "load_char_ngram",
    "predict",
    "predict_proba",
    "top_terms",
]
