"""Evaluation metrics as pure functions: classification (accuracy, precision, recall, F1,
confusion matrix, report; scikit-learn's conventions), language modelling (perplexity) and speech
recognition (character and word error rates)."""

from jaxllm.metrics.classification import (
    accuracy,
    classification_report,
    confusion_matrix,
    f1_score,
    format_report,
    precision,
    recall,
)
from jaxllm.metrics.language import perplexity
from jaxllm.metrics.speech import error_rates

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "error_rates",
    "f1_score",
    "format_report",
    "perplexity",
    "precision",
    "recall",
]
