"""Models: GPT, BERT, an LSTM language model, text classifiers, encoder-decoders for
translation (a Transformer and an attentional LSTM), image classifiers (a CNN and a patch
Transformer) and a CTC acoustic model for speech, built from :mod:`jaxllm.nn` layers, and a
multilayer perceptron written as its equations, with hand-derived back-propagation
(:mod:`jaxllm.models.mlp`)."""

from jaxllm.models.asr import (
    AcousticConfig,
    AcousticModel,
    encoder_lengths,
    init_acoustic_params,
    normalize_features,
)
from jaxllm.models.bert import BERT, BertConfig, init_bert_params
from jaxllm.models.classifiers import (
    ENCODERS,
    ClassifierConfig,
    TextClassifier,
    init_classifier,
    with_embeddings,
    with_pretrained_encoder,
)
from jaxllm.models.cnn import CNN, CNNConfig
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
from jaxllm.models.image_classifiers import init_image_classifier
from jaxllm.models.lstm_lm import (
    LSTMLM,
    LSTMLMConfig,
    LSTMState,
    init_lstm_lm_params,
    lstm_lm_prefill,
    lstm_lm_step,
    tied_logits,
)
from jaxllm.models.lstm_seq2seq import (
    LSTMDecodeState,
    LSTMSeq2Seq,
    LSTMSeq2SeqConfig,
    attentional_logits,
    init_lstm_seq2seq_params,
    lstm_decode_step,
    lstm_decoding,
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
from jaxllm.models.seq2seq import (
    Seq2SeqCache,
    Seq2SeqConfig,
    Seq2SeqTransformer,
    init_seq2seq_cache,
    init_seq2seq_params,
    reorder_cache,
    transformer_decoding,
)
from jaxllm.models.vit import ViT, ViTConfig, image_patches

__all__ = [
    "AcousticConfig",
    "AcousticModel",
    "encoder_lengths",
    "init_acoustic_params",
    "normalize_features",
    "CNN",
    "CNNConfig",
    "ViT",
    "ViTConfig",
    "image_patches",
    "init_image_classifier",
    "LSTMDecodeState",
    "LSTMSeq2Seq",
    "LSTMSeq2SeqConfig",
    "Seq2SeqCache",
    "Seq2SeqConfig",
    "Seq2SeqTransformer",
    "attentional_logits",
    "init_lstm_seq2seq_params",
    "init_seq2seq_cache",
    "init_seq2seq_params",
    "lstm_decode_step",
    "lstm_decoding",
    "reorder_cache",
    "transformer_decoding",
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
