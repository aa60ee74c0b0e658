"""Hugging Face BERT checkpoints in and out: ``BertModel``, ``BertForMaskedLM`` and
``BertForSequenceClassification`` as :class:`jaxllm.models.BERT` parameters, and back.

One table (:func:`bert_layout`) says which Hugging Face tensor is which jaxllm parameter
and how it is laid out; reading and writing both follow it, so the two directions cannot
drift apart. Hugging Face stores ``nn.Linear`` weights ``[out, in]`` (jaxllm: ``[in, out]``)
and separate query, key and value projections (jaxllm: one fused ``c_attn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxllm.interop.tensor_map import (
    CheckpointLayout,
    CheckpointMismatchError,
    TensorMap,
    layer_norm_maps,
    linear_maps,
    params_from_tensors,
    params_to_tensors,
    require_fields,
    require_setting,
)
from jaxllm.models.bert import BertConfig, init_bert_params

ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
_BERT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
)


def bert_config_from_hf(hf: Mapping[str, Any]) -> tuple[BertConfig, str]:
    """A :class:`BertConfig` and the architecture name from a Hugging Face ``config.json``.

    Raises:
      CheckpointMismatchError: an architecture or setting jaxllm's BERT does not have.
    """
    architectures = hf.get("architectures") or ["BertModel"]
    architecture = architectures[0]
    if hf.get("model_type", "bert") != "bert" or architecture not in ARCHITECTURES:
        raise CheckpointMismatchError(
            f"unsupported architecture {architecture!r} (model_type "
            f"{hf.get('model_type')!r}); jaxllm reads {list(ARCHITECTURES)}"
        )
    require_setting(hf, "hidden_act", ("gelu",), "BERT")
    require_setting(hf, "position_embedding_type", ("absolute",), "BERT")
    require_setting(hf, "is_decoder", (False,), "BERT")
    require_setting(hf, "tie_word_embeddings", (True,), "BERT")
    require_fields(hf, _BERT_FIELDS)
    width, hidden = hf["hidden_size"], hf["intermediate_size"]
    if hidden % width:
        raise CheckpointMismatchError(
            f"intermediate_size {hidden} is not a multiple of hidden_size {width}: jaxllm's "
            "MLP width is mlp_ratio x n_embd"
        )
    num_classes = hf.get("num_labels") or len(hf.get("id2label") or {}) or 2
    config = BertConfig(
        vocab_size=hf["vocab_size"],
        max_len=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2),
        n_layer=hf["num_hidden_layers"],
        n_head=hf["num_attention_heads"],
        n_embd=width,
        mlp_ratio=hidden // width,
        dropout=hf.get("hidden_dropout_prob", 0.1),
        layer_norm_epsilon=hf.get("layer_norm_eps", 1e-12),
        pooler=architecture != "BertForMaskedLM",
        mlm_head=architecture == "BertForMaskedLM",
        num_classes=num_classes if architecture == "BertForSequenceClassification" else 0,
    )
    return config, architecture


def bert_config_to_hf(config: BertConfig) -> dict[str, Any]:
    """The Hugging Face ``config.json`` of a jaxllm BERT (post-LN only)."""
    if config.norm_position != "post":
        raise CheckpointMismatchError(
            "Hugging Face's BertModel has post-LN blocks only; a pre-LN BERT has no "
            "Hugging Face equivalent"
        )
    hf: dict[str, Any] = {
        "architectures": [hf_architecture(config)],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "intermediate_size": config.mlp_ratio * config.n_embd,
        "hidden_act": "gelu",
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.dropout,
        "max_position_embeddings": config.max_len,
        "type_vocab_size": config.type_vocab_size,
        "layer_norm_eps": config.layer_norm_epsilon,
        "initializer_range": 0.02,
        "pad_token_id": 0,
        "tie_word_embeddings": True,
    }
    if config.num_classes:
        hf["id2label"] = {str(i): f"LABEL_{i}" for i in range(config.num_classes)}
        hf["label2id"] = {f"LABEL_{i}": i for i in range(config.num_classes)}
    return hf


def hf_architecture(config: BertConfig) -> str:
    """The Hugging Face class holding exactly the parts ``config`` has.

    Raises:
      CheckpointMismatchError: no Hugging Face class has those parts (naming what to change).
    """
    parts = (config.pooler, config.mlm_head, config.num_classes > 0)
    classes = {
        (True, False, True): "BertForSequenceClassification",
        (False, True, False): "BertForMaskedLM",
        (True, False, False): "BertModel",
    }
    if parts not in classes:
        raise CheckpointMismatchError(
            f"no Hugging Face BERT class has pooler={config.pooler}, "
            f"mlm_head={config.mlm_head}, num_classes={config.num_classes}: BertModel has the "
            "pooler only, BertForMaskedLM the MLM head only (pooler=False), "
            "BertForSequenceClassification the pooler and a classifier (mlm_head=False)"
        )
    return classes[parts]


def bert_layout(config: BertConfig, base: str | None = None) -> CheckpointLayout:
    """Every parameter of a jaxllm BERT of shape ``config`` and its Hugging Face tensors, named
    as the checkpoint of :func:`hf_architecture` names them (the encoder's under ``base``,
    by default ``""`` for a ``BertModel`` and ``"bert."`` for the others); the MLM decoder's
    weight and bias are tied to the word embeddings and ``cls.predictions.bias``."""
    architecture = hf_architecture(config)
    if base is None:
        base = "" if architecture == "BertModel" else "bert."
    maps = [
        TensorMap(("wte", "embedding"), (f"{base}embeddings.word_embeddings.weight",)),
        TensorMap(("wpe", "embedding"), (f"{base}embeddings.position_embeddings.weight",)),
        TensorMap(("wtt", "embedding"), (f"{base}embeddings.token_type_embeddings.weight",)),
        *layer_norm_maps(("ln_embed",), f"{base}embeddings.LayerNorm"),
    ]
    for i in range(config.n_layer):
        maps += _block_maps(f"h_{i}", f"{base}encoder.layer.{i}.")
    if config.pooler:
        maps += linear_maps(("pooler_dense",), f"{base}pooler.dense")
    if config.mlm_head:
        maps += linear_maps(("mlm_dense",), "cls.predictions.transform.dense")
        maps += layer_norm_maps(("mlm_ln",), "cls.predictions.transform.LayerNorm")
        maps.append(TensorMap(("mlm_bias",), ("cls.predictions.bias",)))
    if config.num_classes:
        maps += linear_maps(("classifier",), "classifier")
    tied = {}
    if config.mlm_head:
        tied = {
            "cls.predictions.decoder.weight": f"{base}embeddings.word_embeddings.weight",
            "cls.predictions.decoder.bias": "cls.predictions.bias",
        }
    return CheckpointLayout(architecture, tuple(maps), tied, ("embeddings.position_ids",))


def _block_maps(block: str, prefix: str) -> list[TensorMap]:
    attention = f"{prefix}attention."
    qkv = [f"{attention}self.{part}" for part in ("query", "key", "value")]
    return [
        TensorMap((block, "attn", "c_attn", "kernel"), tuple(f"{n}.weight" for n in qkv), True),
        TensorMap((block, "attn", "c_attn", "bias"), tuple(f"{n}.bias" for n in qkv)),
        *linear_maps((block, "attn", "c_proj"), f"{attention}output.dense"),
        *layer_norm_maps((block, "ln_1"), f"{attention}output.LayerNorm"),
        *linear_maps((block, "mlp", "c_fc"), f"{prefix}intermediate.dense"),
        *linear_maps((block, "mlp", "c_proj"), f"{prefix}output.dense"),
        *layer_norm_maps((block, "ln_2"), f"{prefix}output.LayerNorm"),
    ]


def bert_params_from_hf(tensors: Mapping[str, np.ndarray], config: BertConfig) -> dict:
    """jaxllm parameters (float32 NumPy arrays) from a Hugging Face BERT state dict.

    Every tensor the config implies must be there with the right shape, and no other tensor
    may be (besides buffers such as ``position_ids``, and the MLM decoder's weight and bias,
    which are tied to the word embeddings and ``cls.predictions.bias``; they must equal them).

    Raises:
      CheckpointMismatchError: naming the first missing, extra or misshapen tensor.
    """
    tensors = {_modern_name(name): value for name, value in tensors.items()}
    # A BertModel saved as the base of another class has "bert."-prefixed names, and back.
    base = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""
    layout = bert_layout(config, base)
    shapes = jax.eval_shape(lambda: init_bert_params(config, jax.random.key(0)))  # no FLOPs
    return params_from_tensors(tensors, layout, shapes)


def _modern_name(name: str) -> str:
    """Original BERT checkpoints name LayerNorm parameters ``gamma`` / ``beta``."""
    if name.endswith(".gamma"):
        return name[: -len("gamma")] + "weight"
    if name.endswith(".beta"):
        return name[: -len("beta")] + "bias"
    return name


def bert_params_to_hf(params: Mapping[str, Any], config: BertConfig) -> dict[str, np.ndarray]:
    """A Hugging Face state dict (float32, contiguous NumPy) from jaxllm BERT parameters."""
    shapes = jax.eval_shape(lambda: init_bert_params(config, jax.random.key(0)))
    return params_to_tensors(params, bert_layout(config), shapes)
