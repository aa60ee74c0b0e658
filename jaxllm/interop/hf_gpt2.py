"""Hugging Face GPT-2 checkpoints in and out: ``GPT2LMHeadModel`` (or ``GPT2Model``) as
:class:`jaxllm.models.GPT` parameters (learned positions, biases, tied output layer), and
back. GPT-2 stores its projections as ``Conv1D`` weights, ``[in, out]`` like jaxllm's
``Dense``, except the MLP output projection, which jaxllm keeps ``[out, in]``."""

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
from jaxllm.models.gpt import GPTConfig, init_params

ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")


def gpt2_config_from_hf(hf: Mapping[str, Any]) -> tuple[GPTConfig, str]:
    """A :class:`GPTConfig` and the architecture name from a GPT-2 ``config.json``.

    Raises:
      CheckpointMismatchError: an architecture or setting jaxllm's GPT does not have.
    """
    architecture = (hf.get("architectures") or ["GPT2LMHeadModel"])[0]
    if hf.get("model_type", "gpt2") != "gpt2" or architecture not in ARCHITECTURES:
        raise CheckpointMismatchError(
            f"unsupported architecture {architecture!r} (model_type {hf.get('model_type')!r}); "
            f"jaxllm reads {list(ARCHITECTURES)} as a GPT"
        )
    require_setting(hf, "activation_function", ("gelu_new", "gelu_pytorch_tanh"), "GPT")
    require_setting(hf, "layer_norm_epsilon", (1e-5,), "GPT")
    require_setting(hf, "scale_attn_weights", (True,), "GPT")
    require_setting(hf, "scale_attn_by_inverse_layer_idx", (False,), "GPT")
    require_setting(hf, "tie_word_embeddings", (True,), "GPT")
    require_fields(hf, ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd"))
    require_setting(hf, "n_inner", (None, 4 * hf["n_embd"]), "GPT (MLP width 4 x n_embd)")
    config = GPTConfig(
        vocab_size=hf["vocab_size"],
        block_size=hf["n_positions"],
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        n_embd=hf["n_embd"],
        dropout=hf.get("resid_pdrop", 0.0),
        bias=True,
    )
    return config, architecture


def gpt2_config_to_hf(config: GPTConfig) -> dict[str, Any]:
    """The ``config.json`` of a ``GPT2LMHeadModel`` holding a jaxllm GPT.

    Raises:
      CheckpointMismatchError: a GPT without biases or with rotary positions (GPT-2 has
        neither), or with structurally pruned heads or MLP (GPT-2's are full width).
    """
    if not config.bias or config.positions != "learned":
        raise CheckpointMismatchError(
            "GPT-2 has biases and learned positions: only a GPTConfig with bias=True and "
            "positions='learned' can be saved as one"
        )
    if config.head_size or config.mlp_width:
        raise CheckpointMismatchError(
            "GPT-2's heads span n_embd and its MLP is 4 x n_embd wide: a structurally pruned "
            f"GPT (head_size={config.head_size}, mlp_width={config.mlp_width}) has no GPT-2 form"
        )
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
    }


def gpt2_layout(config: GPTConfig, architecture: str = "GPT2LMHeadModel") -> CheckpointLayout:
    """Every parameter of a jaxllm GPT of shape ``config`` and its GPT-2 tensors; the output
    layer ``lm_head.weight``, when saved, is tied to the token embedding."""
    base = "transformer." if architecture == "GPT2LMHeadModel" else ""
    maps = [
        TensorMap(("wte", "embedding"), (f"{base}wte.weight",)),
        TensorMap(("wpe", "embedding"), (f"{base}wpe.weight",)),
    ]
    for i in range(config.n_layer):
        block, name = f"h_{i}", f"{base}h.{i}."
        maps += [
            *layer_norm_maps((block, "ln_1"), f"{name}ln_1"),
            *linear_maps((block, "attn", "c_attn"), f"{name}attn.c_attn", transpose=False),
            *linear_maps((block, "attn", "c_proj"), f"{name}attn.c_proj", transpose=False),
            *layer_norm_maps((block, "ln_2"), f"{name}ln_2"),
            *linear_maps((block, "mlp", "c_fc"), f"{name}mlp.c_fc", transpose=False),
            *linear_maps((block, "mlp", "c_proj"), f"{name}mlp.c_proj", transpose=True),
        ]
    maps += layer_norm_maps(("ln_f",), f"{base}ln_f")
    tied = {"lm_head.weight": f"{base}wte.weight"} if base else {}
    # Older checkpoints carry the causal mask and its fill value as buffers.
    return CheckpointLayout(architecture, tuple(maps), tied, (".attn.bias", ".attn.masked_bias"))


def gpt2_params_from_hf(
    tensors: Mapping[str, np.ndarray], config: GPTConfig, architecture: str = "GPT2LMHeadModel"
) -> dict:
    """jaxllm GPT parameters (float32 NumPy) from a GPT-2 state dict; see
    :func:`jaxllm.interop.tensor_map.params_from_tensors` for the checks."""
    # The original GPT-2 checkpoints name the GPT2Model's tensors without "transformer.".
    if architecture == "GPT2LMHeadModel" and "transformer.wte.weight" not in tensors:
        architecture = "GPT2Model" if "wte.weight" in tensors else architecture
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))  # no FLOPs
    return params_from_tensors(tensors, gpt2_layout(config, architecture), shapes)


def gpt2_params_to_hf(params: Mapping[str, Any], config: GPTConfig) -> dict[str, np.ndarray]:
    """A ``GPT2LMHeadModel`` state dict (float32 NumPy) from jaxllm GPT parameters."""
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    return params_to_tensors(params, gpt2_layout(config), shapes)
