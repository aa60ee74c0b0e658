"""A Hugging Face checkpoint folder as a jaxllm run folder.

``import_hf_run(PATH, RUN_DIR)`` (``python -m jaxllm.interop import PATH --out RUN_DIR``)
writes what the recipes write when a run starts: ``config.json`` (an
:class:`~jaxllm.recipes.LMConfig` for a GPT-2, an :class:`~jaxllm.recipes.mlm.MLMConfig` for a
``BertForMaskedLM``), ``tokenizer.json`` (the checkpoint's own tokenizer, in jaxllm's form)
and ``checkpoints/0`` (the weights, with a fresh optimizer state). So
:func:`jaxllm.recipes.lm.load_lm_run` / :func:`jaxllm.recipes.mlm.load_mlm_run` read it back
for generation or masked words, and ``--resume`` with the recipe's CLI continues training it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax

from jaxllm.config import save_config
from jaxllm.data import (
    BPETokenizer,
    DataConfig,
    Tokenizer,
    WordPieceTokenizer,
    check_tokenizer_fits,
    load_hf_tokenizer,
)
from jaxllm.interop.hf_bert import hf_architecture
from jaxllm.interop.hf_files import read_hf_config
from jaxllm.interop.tensor_map import CheckpointMismatchError
from jaxllm.optim import make_optimizer
from jaxllm.train import Checkpointer, create_train_state


def import_hf_run(checkpoint: str | os.PathLike[str], run_dir: str | os.PathLike[str]) -> Path:
    """Make ``run_dir`` a run folder holding the Hugging Face checkpoint in ``checkpoint``
    (``GPT2LMHeadModel`` / ``GPT2Model``, or ``BertForMaskedLM``) and its ``tokenizer.json``.

    Raises:
      FileNotFoundError: the checkpoint, its config, weights or ``tokenizer.json`` is missing.
      FileExistsError: ``run_dir`` already holds a run (nothing is overwritten).
      CheckpointMismatchError: another architecture, tensors that do not fit the config, or a
        tokenizer of another kind or vocabulary size than the model's.
    """
    from jaxllm.interop import load_hf_bert, load_hf_gpt2

    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists() or (run_dir / "checkpoints").exists():
        raise FileExistsError(f"{run_dir} already holds a run; choose another --out")
    model_type = read_hf_config(checkpoint).get("model_type")
    tokenizer = load_hf_tokenizer(checkpoint)
    if model_type == "gpt2":
        model, params = load_hf_gpt2(checkpoint)
        config: Any = _lm_config(run_dir, model, _require(tokenizer, BPETokenizer, model_type))
    elif model_type == "bert":
        model, params = load_hf_bert(checkpoint)
        _require_mlm(model, hf_architecture(model))
        config = _mlm_config(run_dir, model, _require(tokenizer, WordPieceTokenizer, model_type))
    else:
        raise CheckpointMismatchError(
            f"{checkpoint} holds a {model_type!r} model; runs can be made from 'gpt2' and "
            "'bert' (BertForMaskedLM) checkpoints"
        )
    try:
        check_tokenizer_fits(tokenizer, model.vocab_size, f"the {model_type} checkpoint")
    except ValueError as err:
        raise CheckpointMismatchError(str(err)) from err
    _write_run(run_dir, config, tokenizer, params)
    return run_dir


def _require(tokenizer: Tokenizer, kind: type, model_type: str) -> Any:
    if not isinstance(tokenizer, kind):
        raise CheckpointMismatchError(
            f"a {model_type} checkpoint with a {tokenizer.kind} tokenizer.json; jaxllm runs "
            f"pair {model_type} with {kind.__name__}"
        )
    return tokenizer


def _require_mlm(model: Any, architecture: str) -> None:
    if not model.mlm_head:
        raise CheckpointMismatchError(
            f"a {architecture} checkpoint has no masked-word head, which the BERT recipe "
            "trains; import a BertForMaskedLM, or read this one with jaxllm.interop.load_hf_bert"
        )


def _lm_config(run_dir: Path, model: Any, tokenizer: BPETokenizer) -> Any:
    from jaxllm.recipes import LMConfig

    config = LMConfig(
        name=run_dir.name,
        out_dir=str(run_dir.parent),
        data=DataConfig(tokenizer="bpe", bpe_vocab_size=tokenizer.vocab_size),
        model=model,
    )
    return _with_decay_resolved(config)


def _mlm_config(run_dir: Path, model: Any, tokenizer: WordPieceTokenizer) -> Any:
    from jaxllm.recipes.mlm import MLMConfig

    data = DataConfig(tokenizer="wordpiece", wordpiece_vocab_size=tokenizer.vocab_size)
    config = MLMConfig(
        name=run_dir.name,
        out_dir=str(run_dir.parent),
        seq_len=min(MLMConfig.seq_len, model.max_len),
        data=data,
        model=model,
    )
    return _with_decay_resolved(config)


def _with_decay_resolved(config: Any) -> Any:
    """The recipe's optimizer with its decay length resolved as a new run would resolve it."""
    optimizer = config.optimizer.with_decay_until(config.loop.num_steps)
    return dataclasses.replace(config, optimizer=optimizer)


def _write_run(run_dir: Path, config: Any, tokenizer: Tokenizer, params: Any) -> None:
    """``config.json``, ``tokenizer.json`` and checkpoint 0 with a fresh optimizer state."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _, key_train = jax.random.split(jax.random.key(config.seed))
    state = create_train_state(params, make_optimizer(config.optimizer), key_train)
    metadata = {
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "tokenizer_kind": tokenizer.kind,
        "vocab_size": tokenizer.vocab_size,
    }
    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        checkpointer.save(0, state, metadata)
    tokenizer.save(run_dir / "tokenizer.json")
    save_config(config, run_dir / "config.json")
