"""Models: GPT, BERT, an LSTM language model and text classifiers (built from
:mod:`jaxllm.nn` layers), and a
multilayer perceptron written as its equations, with hand-derived back-propagation
(:mod:`jaxllm.models.mlp`)."""

from jaxllm.models.bert import BERT, BertConfig, init_bert_params
from jaxllm.models.classifiers import (
    ENCODERS,
    ClassifierConfig,
    TextClassifier,
    init_classifier,
    with_embeddings,
    with_pretrained_encoder,
)
from jaxllm.models.gpt import (
    GPT,
    GPTCache,
    GPTConfig,
    check_token_ids,
    check_tokens,
    count_params,
    init_cache,
    init_params,
    with_cpu_tuned_attention,
)
from jaxllm.models.lstm_lm import (
    LSTMLM,
    LSTMLMConfig,
    LSTMState,
    init_lstm_lm_params,
    lstm_lm_prefill,
    lstm_lm_step,
    tied_logits,
)
from jaxllm.models.mlp import (
    MLPConfig,
    init_mlp,
    mlp_apply,
    mlp_forward,
    mlp_gradient_descent,
    mlp_gradients,
    mlp_loss,
)

__all__ = [
    "BERT",
    "BertConfig",
    "init_bert_params",
    "ENCODERS",
    "ClassifierConfig",
    "TextClassifier",
    "init_classifier",
    "with_embeddings",
    "with_pretrained_encoder",
    "GPT",
    "GPTCache",
    "GPTConfig",
    "LSTMLM",
    "LSTMLMConfig",
    "LSTMState",
    "MLPConfig",
    "check_token_ids",
    "check_tokens",
    "count_params",
    "init_cache",
    "init_lstm_lm_params",
    "init_mlp",
    "init_params",
    "lstm_lm_prefill",
    "lstm_lm_step",
    "mlp_apply",
    "mlp_forward",
    "mlp_gradient_descent",
    "mlp_gradients",
    "mlp_loss",
    "tied_logits",
    "with_cpu_tuned_attention",
]
