"""Hugging Face BERT checkpoints in and out: ``BertModel``, ``BertForMaskedLM`` and
``BertForSequenceClassification`` as :class:`jaxllm.models.BERT` parameters, and back.

One table (:func:`bert_tensor_map`) says which Hugging Face tensor is which jaxllm parameter
and how it is laid out; reading and writing both follow it, so the two directions cannot
drift apart. Hugging Face stores ``nn.Linear`` weights ``[out, in]`` (jaxllm: ``[in, out]``)
and separate query, key and value projections (jaxllm: one fused ``c_attn``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxllm.models.bert import BertConfig, init_bert_params

ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
# Buffers some checkpoints carry that are not parameters.
IGNORED_TENSORS = ("embeddings.position_ids",)


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not fit its config or jaxllm's model: names the tensor."""


@dataclasses.dataclass(frozen=True)
class TensorMap:
    """One jaxllm parameter and the Hugging Face tensor(s) it is made of.

    Attributes:
      path: the parameter's path in jaxllm's tree, e.g. ``("h_0", "mlp", "c_fc", "kernel")``.
      names: the Hugging Face tensor names; several are concatenated along the last jaxllm
        axis (query, key, value into ``c_attn``).
      transpose: Hugging Face stores it transposed (``nn.Linear.weight``).
    """

    path: tuple[str, ...]
    names: tuple[str, ...]
    transpose: bool = False


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
    _require_setting(hf, "hidden_act", "gelu")
    _require_setting(hf, "position_embedding_type", "absolute")
    _require_setting(hf, "is_decoder", False)
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
    """The Hugging Face class holding the parts ``config`` has."""
    if config.num_classes:
        return "BertForSequenceClassification"
    if config.mlm_head:
        return "BertForMaskedLM"
    return "BertModel"


def bert_tensor_map(config: BertConfig) -> list[TensorMap]:
    """Every parameter of a jaxllm BERT of shape ``config`` and its Hugging Face tensors, named
    as the checkpoint of :func:`hf_architecture` names them."""
    base = "" if hf_architecture(config) == "BertModel" else "bert."
    maps = [
        TensorMap(("wte", "embedding"), (f"{base}embeddings.word_embeddings.weight",)),
        TensorMap(("wpe", "embedding"), (f"{base}embeddings.position_embeddings.weight",)),
        TensorMap(("wtt", "embedding"), (f"{base}embeddings.token_type_embeddings.weight",)),
        *_layer_norm_maps(("ln_embed",), f"{base}embeddings.LayerNorm"),
    ]
    for i in range(config.n_layer):
        maps += _block_maps(f"h_{i}", f"{base}encoder.layer.{i}.")
    if config.pooler:
        maps += _dense_maps(("pooler_dense",), f"{base}pooler.dense")
    if config.mlm_head:
        maps += _dense_maps(("mlm_dense",), "cls.predictions.transform.dense")
        maps += _layer_norm_maps(("mlm_ln",), "cls.predictions.transform.LayerNorm")
        maps.append(TensorMap(("mlm_bias",), ("cls.predictions.bias",)))
    if config.num_classes:
        maps += _dense_maps(("classifier",), "classifier")
    return maps


def _block_maps(block: str, prefix: str) -> list[TensorMap]:
    attention = f"{prefix}attention."
    qkv = [f"{attention}self.{part}" for part in ("query", "key", "value")]
    return [
        TensorMap((block, "attn", "c_attn", "kernel"), tuple(f"{n}.weight" for n in qkv), True),
        TensorMap((block, "attn", "c_attn", "bias"), tuple(f"{n}.bias" for n in qkv)),
        *_dense_maps((block, "attn", "c_proj"), f"{attention}output.dense"),
        *_layer_norm_maps((block, "ln_1"), f"{attention}output.LayerNorm"),
        *_dense_maps((block, "mlp", "c_fc"), f"{prefix}intermediate.dense"),
        *_dense_maps((block, "mlp", "c_proj"), f"{prefix}output.dense"),
        *_layer_norm_maps((block, "ln_2"), f"{prefix}output.LayerNorm"),
    ]


def _dense_maps(path: tuple[str, ...], name: str) -> list[TensorMap]:
    return [
        TensorMap((*path, "kernel"), (f"{name}.weight",), transpose=True),
        TensorMap((*path, "bias"), (f"{name}.bias",)),
    ]


def _layer_norm_maps(path: tuple[str, ...], name: str) -> list[TensorMap]:
    return [
        TensorMap((*path, "scale"), (f"{name}.weight",)),
        TensorMap((*path, "bias"), (f"{name}.bias",)),
    ]


def bert_params_from_hf(tensors: Mapping[str, np.ndarray], config: BertConfig) -> dict:
    """jaxllm parameters (float32 NumPy arrays) from a Hugging Face BERT state dict.

    Every tensor the config implies must be there with the right shape, and no other tensor
    may be (besides buffers such as ``position_ids``, and the MLM decoder's weight and bias,
    which are tied to the word embeddings and ``cls.predictions.bias``; they must equal them).

    Raises:
      CheckpointMismatchError: naming the first missing, extra or misshapen tensor.
    """

    shapes = jax.eval_shape(lambda: init_bert_params(config, jax.random.key(0)))  # no FLOPs
    maps = bert_tensor_map(config)
    _check_names(tensors, maps, config)
    params: dict = {}
    for entry in maps:
        parts = [_float32(name, tensors[name]) for name in entry.names]
        parts = [part.T if entry.transpose else part for part in parts]
        value = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        expected = _at(shapes, entry.path).shape
        if value.shape != expected:
            raise CheckpointMismatchError(
                f"tensor {' + '.join(entry.names)} has shape {_hf_shape(value, entry)}, but the "
                f"config implies {_hf_shape(np.empty(expected), entry)}"
            )
        _set(params, entry.path, value)
    return params


def bert_params_to_hf(params: Mapping[str, Any], config: BertConfig) -> dict[str, np.ndarray]:
    """A Hugging Face state dict (float32, contiguous NumPy) from jaxllm BERT parameters."""
    tensors: dict[str, np.ndarray] = {}
    for entry in bert_tensor_map(config):
        value = np.asarray(_at(params, entry.path), np.float32)
        parts = np.split(value, len(entry.names), axis=-1)
        for name, part in zip(entry.names, parts, strict=True):
            tensors[name] = np.ascontiguousarray(part.T if entry.transpose else part)
    return tensors


def _check_names(
    tensors: Mapping[str, np.ndarray], maps: list[TensorMap], config: BertConfig
) -> None:
    """Raise naming the first missing or unexpected tensor, or a tied one that differs."""
    expected = {name for entry in maps for name in entry.names}
    missing = sorted(expected - set(tensors))
    if missing:
        raise CheckpointMismatchError(
            f"the checkpoint lacks tensor {missing[0]!r} ({len(missing)} missing in all), which "
            f"a {hf_architecture(config)} of its config has"
        )
    tied = _tied_tensors(tensors)
    extra = sorted(
        name for name in set(tensors) - expected - set(tied) if not name.endswith(IGNORED_TENSORS)
    )
    if extra:
        raise CheckpointMismatchError(
            f"the checkpoint has tensor {extra[0]!r} ({len(extra)} unexpected in all), which a "
            f"{hf_architecture(config)} of its config does not: another architecture?"
        )
    for name, source in tied.items():
        if not np.array_equal(tensors[name], tensors[source]):
            raise CheckpointMismatchError(
                f"tensor {name!r} differs from {source!r}; jaxllm's BERT ties them"
            )


def _tied_tensors(tensors: Mapping[str, np.ndarray]) -> dict[str, str]:
    """MLM decoder tensors present in ``tensors`` -> the tensor each is tied to."""
    tied = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    return {name: source for name, source in tied.items() if name in tensors and source in tensors}


def _float32(name: str, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.floating):
        raise CheckpointMismatchError(f"tensor {name!r} is {value.dtype}, not a float type")
    return value.astype(np.float32)


def _hf_shape(value: np.ndarray, entry: TensorMap) -> tuple[int, ...]:
    """The shape as Hugging Face stores it (a fused tensor: jaxllm's, for the sum)."""
    return tuple(value.T.shape if entry.transpose and len(entry.names) == 1 else value.shape)


def _at(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _require_setting(hf: Mapping[str, Any], name: str, supported: Any) -> None:
    value = hf.get(name, supported)
    if value != supported:
        raise CheckpointMismatchError(
            f"config.json has {name}={value!r}; jaxllm's BERT supports {supported!r} only"
        )
