"""Hugging Face checkpoints in and out: BERT (``BertModel``, ``BertForMaskedLM``,
``BertForSequenceClassification``) as :class:`jaxllm.models.BERT` parameters and GPT-2
(``GPT2LMHeadModel``, ``GPT2Model``) as :class:`jaxllm.models.GPT` parameters, from and to a
``save_pretrained`` folder, with the tensors read from safetensors (or a weights-only PyTorch
``.bin``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax

from jaxllm.interop.hf_bert import (
    CheckpointMismatchError,
    bert_config_from_hf,
    bert_config_to_hf,
    bert_layout,
    bert_params_from_hf,
    bert_params_to_hf,
    hf_architecture,
)
from jaxllm.interop.hf_files import read_hf_config, read_hf_tensors, write_hf_checkpoint
from jaxllm.interop.hf_gpt2 import (
    gpt2_config_from_hf,
    gpt2_config_to_hf,
    gpt2_layout,
    gpt2_params_from_hf,
    gpt2_params_to_hf,
)
from jaxllm.interop.tensor_map import CheckpointLayout, TensorMap
from jaxllm.models.bert import BertConfig
from jaxllm.models.gpt import GPTConfig


def load_hf_bert(directory: str | os.PathLike[str]) -> tuple[BertConfig, dict]:
    """``(config, params)`` of the Hugging Face BERT checkpoint in ``directory``; the
    parameters are jax arrays, ready for ``BERT(config).apply({"params": params}, ...)``.

    Raises:
      FileNotFoundError: the folder, its ``config.json`` or its weights are missing.
      CheckpointMismatchError: an unsupported architecture or setting, or tensors that do not
        fit the config (each names the field or tensor). Nothing is returned half-loaded.
    """
    config, _ = bert_config_from_hf(read_hf_config(directory))
    params = bert_params_from_hf(read_hf_tensors(directory), config)
    return config, jax.tree_util.tree_map(jax.numpy.asarray, params)


def save_hf_bert(
    directory: str | os.PathLike[str], config: BertConfig, params: Any, *, overwrite: bool = False
) -> Path:
    """Write jaxllm BERT parameters as a Hugging Face checkpoint folder that
    ``transformers``' ``from_pretrained`` reads (:func:`hf_architecture` picks the class)."""
    return write_hf_checkpoint(
        directory, bert_config_to_hf(config), bert_params_to_hf(params, config), overwrite=overwrite
    )


def load_hf_gpt2(directory: str | os.PathLike[str]) -> tuple[GPTConfig, dict]:
    """``(config, params)`` of the Hugging Face GPT-2 checkpoint in ``directory``, ready for
    ``GPT(config)`` and :func:`jaxllm.generate.generate`.

    Raises:
      FileNotFoundError, CheckpointMismatchError: as :func:`load_hf_bert`.
    """
    config, architecture = gpt2_config_from_hf(read_hf_config(directory))
    params = gpt2_params_from_hf(read_hf_tensors(directory), config, architecture)
    return config, jax.tree_util.tree_map(jax.numpy.asarray, params)


def save_hf_gpt2(
    directory: str | os.PathLike[str], config: GPTConfig, params: Any, *, overwrite: bool = False
) -> Path:
    """Write jaxllm GPT parameters as a ``GPT2LMHeadModel`` checkpoint folder."""
    return write_hf_checkpoint(
        directory, gpt2_config_to_hf(config), gpt2_params_to_hf(params, config), overwrite=overwrite
    )


__all__ = [
    "CheckpointLayout",
    "TensorMap",
    "gpt2_config_from_hf",
    "gpt2_config_to_hf",
    "gpt2_layout",
    "gpt2_params_from_hf",
    "gpt2_params_to_hf",
    "load_hf_gpt2",
    "save_hf_gpt2",
    "CheckpointMismatchError",
    "bert_config_from_hf",
    "bert_config_to_hf",
    "bert_params_from_hf",
    "bert_params_to_hf",
    "bert_layout",
    "hf_architecture",
    "load_hf_bert",
    "read_hf_config",
    "read_hf_tensors",
    "save_hf_bert",
    "write_hf_checkpoint",
]
