"""Evaluation metrics as pure functions: classification (accuracy, precision, recall, F1,
confusion matrix, report; scikit-learn's conventions) and language modelling (perplexity)."""

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

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "f1_score",
    "format_report",
    "perplexity",
    "precision",
    "recall",
]
