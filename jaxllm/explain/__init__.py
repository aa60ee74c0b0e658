"""Interpretability: what a prediction rests on.

- :func:`attention_maps`: every attention layer's weights (GPT, BERT, the Transformer
  classifier), drawn by :func:`plot_attention`.
- :func:`gradient_x_input` and :func:`integrated_gradients`: each input token's part in a
  score (a class logit, a next-token logit), over the token embeddings of any Flax model;
  drawn by :func:`plot_token_attributions`.
- :func:`top_features` and :func:`feature_contributions`: the traditional counterpart, a
  TF-IDF linear model's weights per class and per document.
"""

from jaxllm.explain.attention import NoAttentionError, attention_maps
from jaxllm.explain.attributions import (
    AttributionError,
    Attributions,
    class_logit,
    gradient_x_input,
    integrated_gradients,
    next_token_logit,
)
from jaxllm.explain.linear import feature_contributions, top_features
from jaxllm.explain.plots import plot_attention, plot_token_attributions

__all__ = [
    "AttributionError",
    "Attributions",
    "NoAttentionError",
    "attention_maps",
    "class_logit",
    "feature_contributions",
    "gradient_x_input",
    "integrated_gradients",
    "next_token_logit",
    "plot_attention",
    "plot_token_attributions",
    "top_features",
]
