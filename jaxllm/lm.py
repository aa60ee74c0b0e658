"""The language-modelling recipe: corpus -> tokenizer -> GPT -> fit -> evaluate -> sample.

``train_lm(LMConfig(...))`` is what ``experiments/train_lm.py`` and ``make demo`` run; every
step is a call into the library, so a notebook can run the same pieces one by one.

A run folder ``<out_dir>/<name>/`` holds ``config.json`` (the resolved config),
``tokenizer.json``, ``metrics.jsonl``, ``loss.png``, ``tensorboard/`` and ``checkpoints/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxllm.config import ConfigError, config_to_dict, load_config, require, save_config
from jaxllm.data import (
    Tokenizer,
    clean_corpus,
    encode_corpus,
    eval_batches,
    lm_batch,
    load_corpus,
    load_tokenizer,
    split_corpus,
    train_tokenizer,
)
from jaxllm.generate import generate_text
from jaxllm.losses import language_model_loss
from jaxllm.models.gpt import GPT, GPTConfig, init_params
from jaxllm.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from jaxllm.plots import plot_loss
from jaxllm.runtime import DEFAULT_COMPILATION_CACHE, use_compilation_cache
from jaxllm.train import (
    Checkpointer,
    CheckpointError,
    FitResult,
    LoopConfig,
    MetricsWriter,
    TrainState,
    create_train_state,
    evaluate,
    fit,
    make_eval_step,
    perplexity,
    read_metrics,
)
from jaxllm.train.parallel import ParallelConfig, setup_parallel


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it becomes tokens.

    Attributes:
      corpus: ``"pydoc"`` (bundled with Python), ``"shakespeare"`` (``make data``), or a path to
        a text file or a folder of text files.
      tokenizer: ``"char"`` or ``"bpe"`` (byte-level BPE).
      bpe_vocab_size: vocabulary size when training a BPE tokenizer.
      val_fraction, test_fraction: share of the corpus held out for validation and test.
    """

    corpus: str = "pydoc"
    tokenizer: str = "char"
    bpe_vocab_size: int = 1024
    val_fraction: float = 0.05
    test_fraction: float = 0.05

    def __post_init__(self):
        require(self.tokenizer in ("char", "bpe"), f"DataConfig.tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        require(self.bpe_vocab_size >= 257, "DataConfig.bpe_vocab_size must be >= 257 (256 bytes + end of text)")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """A GPT language-model run.

    Attributes:
      name: run folder name under ``out_dir``.
      out_dir: parent folder of run folders.
      seed: seeds parameters, dropout and batches; the same seed gives the same run.
      steps: total optimisation steps (a resumed run continues up to this).
      batch_size: sequences per step; each is ``model.block_size`` tokens long.
      eval_every: evaluate on the validation split every N steps.
      eval_batches: cap on validation batches per evaluation (0: the whole split).
      log_every: write training metrics every N steps.
      checkpoint_every: checkpoint every N steps (0: at each evaluation).
      keep_checkpoints: how many checkpoints to keep.
      patience: early stopping after N evaluations without improvement (0: off).
      label_smoothing: label smoothing of the training loss.
      sample_tokens: tokens to generate after training (0: none).
      sample_prompt: prompt for the sample (empty: start from a newline).
      temperature, top_k: sampling settings for the sample.
      resume: continue the run in ``out_dir/name`` from its newest checkpoint.
      progress: show progress bars.
      compilation_cache: folder where compiled XLA programs are kept for later runs with the
        same shapes, which then skip most of the first step's compilation ('': none; a folder
        set through ``JAX_COMPILATION_CACHE_DIR`` takes precedence).
      data, model, optimizer: the nested configs (``model.vocab_size`` comes from the tokenizer).
      parallel: devices, processes and gradient accumulation (a resumed run may change them).
    """

    name: str = "gpt"
    out_dir: str = "runs"
    seed: int = 0
    steps: int = 400
    batch_size: int = 32
    eval_every: int = 100
    eval_batches: int = 20
    log_every: int = 10
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    patience: int = 0
    label_smoothing: float = 0.0
    sample_tokens: int = 300
    sample_prompt: str = "The "
    temperature: float = 0.8
    top_k: int = 0
    resume: bool = False
    progress: bool = True
    compilation_cache: str = DEFAULT_COMPILATION_CACHE
    data: DataConfig = DataConfig()
    model: GPTConfig = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=2e-3, warmup_steps=40,
                                                 decay_steps=-1, weight_decay=0.1)
    parallel: ParallelConfig = ParallelConfig()

    def __post_init__(self):
        require(self.steps >= 0 and self.batch_size > 0, "steps must be >= 0 and batch_size > 0")
        require(self.eval_every > 0 and self.log_every > 0, "eval_every and log_every must be > 0")
        require(self.eval_batches >= 0 and self.sample_tokens >= 0, "eval_batches and sample_tokens must be >= 0")
        require(self.temperature > 0, "temperature must be > 0")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


# Settings a resumed run may change; anything else must match the saved config.
RESUMABLE_KEYS = {"steps", "resume", "progress", "compilation_cache", "sample_tokens",
                  "sample_prompt", "temperature", "top_k", "eval_every", "log_every",
                  "checkpoint_every", "patience", "out_dir", "parallel"}


@dataclasses.dataclass
class LMRun:
    """Everything a finished run produced."""

    config: LMConfig
    tokenizer: Tokenizer
    model: GPT
    state: TrainState
    fit: FitResult | None
    before: dict[str, float]
    after: dict[str, float]
    test: dict[str, float]
    sample: str
    run_dir: Path


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve_resumed_config(config: LMConfig) -> LMConfig:
    """The saved config of ``config.run_dir``, with the settings a resume may change taken from
    ``config``; raises if anything else differs (it would not be the same run)."""
    saved_path = config.run_dir / "config.json"
    saved = load_config(LMConfig, saved_path)
    given, stored = _flat(config_to_dict(config)), _flat(config_to_dict(saved))
    auto = {"model.vocab_size": 0, "optimizer.decay_steps": -1}  # resolved when the run started
    diffs = {k: (stored[k], given.get(k)) for k in stored
             if k.split(".")[0] not in RESUMABLE_KEYS and stored[k] != given.get(k)
             and given.get(k) != auto.get(k)}
    if diffs:
        listing = ", ".join(f"{k}: saved {a!r} vs given {b!r}" for k, (a, b) in sorted(diffs.items()))
        raise ConfigError(f"--resume with settings that differ from the run in {config.run_dir} "
                          f"({listing}); pass the original settings, or start a new run with another --name")
    changes = {k: getattr(config, k) for k in RESUMABLE_KEYS}
    return dataclasses.replace(saved, **changes)


def prepare_run_dir(config: LMConfig) -> LMConfig:
    """Check the run folder against ``config.resume`` and return the config to run with."""
    run_dir = config.run_dir
    has_checkpoints = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
    if config.resume:
        if not (run_dir / "config.json").is_file():
            raise FileNotFoundError(f"--resume: no run to resume in {run_dir} (no config.json)")
        return resolve_resumed_config(config)
    if has_checkpoints:
        raise FileExistsError(f"{run_dir} already holds checkpoints; pass --resume to continue that run, "
                              "or choose another --name (nothing was overwritten)")
    return config


def load_data(config: DataConfig) -> tuple[list[str], list[str], list[str]]:
    """Clean documents split into train / validation / test."""
    docs = clean_corpus(load_corpus(config.corpus))
    return split_corpus(docs, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=0)


def _eval_fn(eval_step, tokens: np.ndarray, *, batch_size: int, seq_len: int, max_batches: int | None):
    """``params -> {"loss", "ppl", ...}`` over (at most ``max_batches`` batches of) ``tokens``."""

    def run(params: Any) -> dict[str, float]:
        metrics = evaluate(eval_step, params, eval_batches(
            tokens, batch_size=batch_size, seq_len=seq_len, max_batches=max_batches))
        return metrics | {"ppl": perplexity(metrics["loss"])}

    return run


def _tokenizer_for_run(config: LMConfig, splits: tuple[list[str], ...], checkpointer: Checkpointer) -> Tokenizer:
    """A new tokenizer, or on resume the run's saved one, checked against its checkpoint."""
    path = config.run_dir / "tokenizer.json"
    if config.resume:
        tokenizer = load_tokenizer(path)
        if checkpointer.read_metadata().get("tokenizer_fingerprint") != tokenizer.fingerprint():
            raise CheckpointError(f"the tokenizer in {path} does not match the one the checkpoint was "
                                  "trained with; restore the run's original tokenizer.json")
        return tokenizer
    bpe = config.data.tokenizer == "bpe"
    # A character alphabet must cover every split (nanoGPT builds it from the whole text);
    # BPE learns its merges from the training split only and encodes any text.
    texts = splits[0] if bpe else [doc for split in splits for doc in split]
    return train_tokenizer(config.data.tokenizer, texts, vocab_size=config.data.bpe_vocab_size if bpe else None)


def resolve_config(config: LMConfig, tokenizer: Tokenizer) -> LMConfig:
    """Fill in what the config leaves to the run: the vocabulary size and the decay length."""
    if config.model.vocab_size not in (0, tokenizer.vocab_size):
        raise ConfigError(f"model.vocab_size={config.model.vocab_size} but the {tokenizer.kind} tokenizer has "
                          f"{tokenizer.vocab_size} tokens; leave model.vocab_size at 0 to take it from the tokenizer")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size))
    if config.optimizer.decay_steps == -1:
        decay = max(config.steps - config.optimizer.warmup_steps, 0)
        config = dataclasses.replace(config, optimizer=dataclasses.replace(config.optimizer, decay_steps=decay))
    return config


def train_lm(config: LMConfig) -> LMRun:
    """Run the whole recipe; see the module docstring for what lands in the run folder.

    With ``config.parallel`` naming several processes, every process runs this function with
    its own ``process_id``; each feeds its own rows of every batch, and process 0 writes the
    run folder's files (checkpoints are written by all together).
    """
    layout = setup_parallel(config.parallel)  # before any JAX work: may join other processes
    if config.compilation_cache:
        use_compilation_cache(config.compilation_cache)
    primary = jax.process_index() == 0
    config = prepare_run_dir(config)
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = load_data(config.data)
    require(all(splits), "a train, validation or test split is empty; use a larger corpus or other fractions")

    with Checkpointer(run_dir / "checkpoints", max_to_keep=config.keep_checkpoints) as checkpointer:
        tokenizer = _tokenizer_for_run(config, splits, checkpointer)
        config = resolve_config(config, tokenizer)
        if not config.resume and primary:
            tokenizer.save(run_dir / "tokenizer.json")
            save_config(config, run_dir / "config.json")
        train_tokens, val_tokens, test_tokens = (encode_corpus(tokenizer, docs) for docs in splits)

        model = GPT(config.model)
        optimizer = make_optimizer(config.optimizer)
        key_params, key_train = jax.random.split(jax.random.key(config.seed))
        state = create_train_state(init_params(config.model, key_params), optimizer, key_train)
        state = layout.restore(checkpointer, state) if config.resume else layout.place_state(state)

        train_step = layout.train_step(
            language_model_loss(model, label_smoothing=config.label_smoothing), optimizer,
            microbatches=config.parallel.microbatches)
        eval_step = jax.jit(make_eval_step(language_model_loss(model)))
        seq_len = config.model.block_size
        val_fn = _eval_fn(eval_step, val_tokens, batch_size=config.batch_size, seq_len=seq_len,
                          max_batches=config.eval_batches or None)

        def batch_fn(step: int) -> dict:
            return lm_batch(train_tokens, seed=config.seed, step=step, batch_size=config.batch_size,
                            seq_len=seq_len, process_index=jax.process_index(),
                            process_count=jax.process_count())

        before = val_fn(layout.plain_state(state).params)
        say = print if primary else (lambda *_: None)
        say(f"[{config.name}] {tokenizer.kind} tokenizer, vocab {tokenizer.vocab_size}; tokens "
            f"train/val/test {len(train_tokens):,}/{len(val_tokens):,}/{len(test_tokens):,}; "
            f"{layout.describe()}; step {int(layout.plain_state(state).step)}: val loss "
            f"{before['loss']:.4f}, perplexity {before['ppl']:.2f}")
        loop = LoopConfig(num_steps=config.steps, log_every=config.log_every, eval_every=config.eval_every,
                          checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
                          patience=config.patience, progress=config.progress)
        metadata = {"tokenizer_fingerprint": tokenizer.fingerprint(), "tokenizer_kind": tokenizer.kind,
                    "vocab_size": tokenizer.vocab_size}
        with MetricsWriter(run_dir) if primary else contextlib.nullcontext() as writer:
            result = fit(state, train_step, batch_fn, loop, eval_fn=val_fn, writer=writer,
                         checkpointer=checkpointer, checkpoint_metadata=metadata,
                         learning_rate_fn=learning_rate_schedule(config.optimizer),
                         plain_state=layout.plain_state)
    state = result.state

    after = val_fn(state.params)
    test = _eval_fn(eval_step, test_tokens, batch_size=config.batch_size, seq_len=seq_len,
                    max_batches=None)(state.params)  # the whole test split
    say(f"[{config.name}] step {int(state.step)}: val loss {after['loss']:.4f}, perplexity "
        f"{after['ppl']:.2f}; test loss {test['loss']:.4f}, perplexity {test['ppl']:.2f} "
        f"({result.stop_reason})")
    params = layout.host_copy(state.params)  # collective when parameters span processes
    sample = ""
    if primary:
        plot_loss(read_metrics(run_dir / "metrics.jsonl"), run_dir / "loss.png",
                  title=f"{config.name}: GPT on {config.data.corpus}")
        if config.sample_tokens:
            prompt = config.sample_prompt or "\n"
            sample = generate_text(model, params, tokenizer, [prompt], max_new_tokens=config.sample_tokens,
                                   key=jax.random.key(config.seed), temperature=config.temperature,
                                   top_k=config.top_k or None)[0]
            (run_dir / "sample.txt").write_text(prompt + sample)
        summary = {"step": int(state.step), "before": before, "after": after, "test": test,
                   "stop_reason": result.stop_reason, "best_val_loss": result.best_val_loss}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return LMRun(config=config, tokenizer=tokenizer, model=model, state=state, fit=result, before=before,
                 after=after, test=test, sample=sample, run_dir=run_dir)
