"""The masked-language-model recipe (BERT pre-training): corpus -> WordPiece tokenizer -> BERT
-> fit on masked words -> evaluate -> fill in masks.

``train_mlm(MLMConfig(...))`` is what ``experiments/pretrain_bert.py`` runs. It shares the
language-model recipe's corpus loading, tokenizer handling, ``fit``, checkpoints, resume and
parallel modes; only the batches (masked windows, :func:`jaxllm.data.mlm_batch`), the model
and the loss differ.

A run folder ``<out_dir>/<name>/`` holds ``config.json``, ``tokenizer.json`` (jaxllm's; the
Hugging Face ``tokenizer.json`` is in ``hf_tokenizer.json``), ``metrics.jsonl``, ``loss.png``,
``tensorboard/``, ``checkpoints/`` and ``summary.json``. :func:`load_mlm_run` reads it back
(config, tokenizer, parameters), e.g. to fill in masks or fine-tune the encoder.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxllm.config import ConfigError, load_config, require, save_config
from jaxllm.data import (
    DataConfig,
    MaskingConfig,
    WordPieceTokenizer,
    load_tokenizer,
    mlm_batch,
    mlm_eval_batches,
)
from jaxllm.losses import masked_language_model_loss
from jaxllm.metrics import perplexity
from jaxllm.models.bert import BERT, BertConfig, init_bert_params
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.recipes.run_corpus import RunCorpus, run_metadata
from jaxllm.recipes.run_folder import (
    check_resume_step,
    fit_in_run_folder,
    prepare_run_dir,
    require_run,
    restore_params,
    say,
)
from jaxllm.runtime import DEFAULT_COMPILATION_CACHE, use_compilation_cache
from jaxllm.train import (
    Checkpointer,
    CheckpointError,
    FitResult,
    Layout,
    LoopConfig,
    TrainState,
    create_train_state,
    evaluate,
    make_eval_step,
    read_metrics,
)
from jaxllm.train.parallel import ParallelConfig, setup_parallel


@dataclasses.dataclass(frozen=True)
class MLMConfig:
    """A BERT pre-training run.

    Attributes:
      name, out_dir: the run folder is ``out_dir/name``.
      seed: seeds parameters, dropout, batches and masks; the same seed gives the same run.
      batch_size: sequences per step, each ``seq_len`` tokens (``[CLS]`` and ``[SEP]``
        included).
      seq_len: tokens per training sequence (BERT trained at 128 most of the time);
        ``<= model.max_len``.
      eval_batches: cap on validation batches per evaluation (0: the whole split).
      resume, resume_step, resume_learning_rate: continue the run, as
        :class:`~jaxllm.recipes.LMConfig`'s do.
      compilation_cache: folder for compiled XLA programs ('': none).
      token_cache: a folder where a corpus of one text file is tokenised in pieces into
        memory-mapped token files, reused by later runs (:mod:`jaxllm.recipes.run_corpus`;
        WordPiece's trainer still holds the training split's text); ``''``: in memory.
      data: the corpus; its tokenizer must be ``"wordpiece"``.
      model: the BERT's shape (``vocab_size`` 0: taken from the tokenizer). Pre-training
        trains the MLM head; the pooler (trained by BERT's next-sentence task, which RoBERTa
        showed unneeded) is left out by default, as in ``BertForMaskedLM``.
      masking: the masking rates and whole-word masking.
      optimizer: AdamW with weight decay 0.01, warm-up then cosine decay, clipping at 1.0.
      loop: steps, logging, evaluation, checkpoints, early stopping, progress bars.
      parallel: devices, processes and gradient accumulation (a resumed run may change them).
    """

    name: str = "bert"
    out_dir: str = "runs"
    seed: int = 0
    batch_size: int = 32
    seq_len: int = 128
    eval_batches: int = 20
    resume: bool = False
    resume_step: int | None = None
    resume_learning_rate: float | None = None
    compilation_cache: str = DEFAULT_COMPILATION_CACHE
    token_cache: str = ""
    data: DataConfig = DataConfig(tokenizer="wordpiece", wordpiece_vocab_size=8192)
    model: BertConfig = BertConfig(max_len=512, n_layer=4, n_head=4, n_embd=256, pooler=False)
    masking: MaskingConfig = MaskingConfig()
    optimizer: OptimizerConfig = OptimizerConfig(
        learning_rate=5e-4, warmup_steps=100, decay_steps=-1, weight_decay=0.01, grad_clip=1.0
    )
    loop: LoopConfig = LoopConfig(num_steps=1000, log_every=20, eval_every=200)
    parallel: ParallelConfig = ParallelConfig()

    def __post_init__(self):
        require(
            self.batch_size > 0 and self.eval_batches >= 0,
            "MLMConfig.batch_size must be > 0 and eval_batches >= 0",
        )
        require(
            3 <= self.seq_len <= self.model.max_len,
            f"MLMConfig.seq_len must be in [3, model.max_len={self.model.max_len}] (room for "
            f"[CLS], a token and [SEP]), got {self.seq_len}",
        )
        require(
            self.data.tokenizer == "wordpiece",
            "MLMConfig.data.tokenizer must be 'wordpiece' (BERT's special tokens: [CLS], "
            f"[SEP], [MASK]...), got {self.data.tokenizer!r}",
        )
        require(self.model.mlm_head, "MLMConfig.model needs its MLM head (mlm_head=True)")
        check_resume_step(self.resume, self.resume_step, self.resume_learning_rate)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


RESUMABLE = frozenset(
    {
        "resume",
        "resume_step",
        "out_dir",
        "compilation_cache",
        "loop",
        "parallel",
        "resume_learning_rate",
        "token_cache",
    }
)
FILLED_AT_START = {"model.vocab_size": 0, "optimizer.decay_steps": -1}


@dataclasses.dataclass
class MLMRun:
    """Everything a finished pre-training run produced."""

    config: MLMConfig
    tokenizer: WordPieceTokenizer
    model: BERT
    state: TrainState
    fit: FitResult
    before: dict[str, float]
    after: dict[str, float]
    test: dict[str, float]
    run_dir: Path
    fit_seconds: float = 0.0


def resolve_config(config: MLMConfig, tokenizer: WordPieceTokenizer) -> MLMConfig:
    """Fill in the vocabulary size (from the tokenizer) and the decay length (the run's)."""
    if config.model.vocab_size not in (0, tokenizer.vocab_size):
        raise ConfigError(
            f"model.vocab_size={config.model.vocab_size} but the tokenizer has "
            f"{tokenizer.vocab_size} tokens; leave model.vocab_size at 0 to take it from the "
            "tokenizer"
        )
    model = dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size)
    optimizer = config.optimizer.with_decay_until(config.loop.num_steps)
    return dataclasses.replace(config, model=model, optimizer=optimizer)


def fresh_state(config: MLMConfig) -> TrainState:
    """Initial parameters and optimizer state of a run of ``config`` (vocabulary resolved)."""
    key_params, key_train = jax.random.split(jax.random.key(config.seed))
    params = init_bert_params(config.model, key_params)
    return create_train_state(params, make_optimizer(config.optimizer), key_train)


def mlm_eval_fn(
    eval_step: Callable,
    config: MLMConfig,
    tokenizer: WordPieceTokenizer,
    tokens: np.ndarray,
    max_batches: int | None,
) -> Callable[[Any], dict[str, float]]:
    """``params -> {"loss", "accuracy", "ppl", "tokens"}`` on ``tokens`` with fixed masks,
    ``eval_step`` (:func:`~jaxllm.train.make_eval_step` of the masked-word loss) run on each
    batch."""

    def run(params: Any) -> dict[str, float]:
        batches = mlm_eval_batches(
            tokens,
            tokenizer,
            seed=config.seed,
            batch_size=config.batch_size,
            seq_len=config.seq_len,
            config=config.masking,
            max_batches=max_batches,
        )
        metrics = evaluate(eval_step, params, batches)
        return metrics | {"ppl": perplexity(metrics["loss"])}

    return run


def _batch_fn(config: MLMConfig, tokenizer: WordPieceTokenizer, tokens: np.ndarray) -> Callable:
    """``step -> batch``: this process's rows of the step's masked batch."""

    def batch(step: int) -> dict:
        return mlm_batch(
            tokens,
            tokenizer,
            seed=config.seed,
            step=step,
            batch_size=config.batch_size,
            seq_len=config.seq_len,
            config=config.masking,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    return batch


def _train(
    config: MLMConfig,
    layout: Layout,
    checkpointer: Checkpointer,
    tokenizer: WordPieceTokenizer,
    tokens: list[np.ndarray],
    eval_step: Callable,
) -> tuple[FitResult, dict]:
    """Evaluate once, then ``fit``: (result, validation metrics before training)."""
    metadata = run_metadata(config, checkpointer, tokenizer, tokens)
    fresh = fresh_state(config)
    if config.resume:
        state = layout.restore(checkpointer, fresh, config.resume_step)
    else:
        state = layout.place_state(fresh)
    train_step = layout.train_step(
        masked_language_model_loss(BERT(config.model)),
        make_optimizer(config.optimizer),
        microbatches=config.parallel.microbatches,
    )
    val_fn = mlm_eval_fn(eval_step, config, tokenizer, tokens[1], config.eval_batches or None)
    before = val_fn(layout.plain_state(state).params)
    say(
        config.name,
        f"wordpiece vocab {tokenizer.vocab_size}; tokens train/val/test "
        f"{'/'.join(f'{len(t):,}' for t in tokens)}; {layout.describe()}; step "
        f"{int(layout.plain_state(state).step)}: val MLM loss {before['loss']:.4f}",
    )
    result = fit_in_run_folder(
        config,
        layout,
        checkpointer,
        state,
        train_step,
        _batch_fn(config, tokenizer, tokens[0]),
        val_fn,
        metadata,
    )
    return result, before


def _start(config: MLMConfig, checkpointer: Checkpointer, corpus: RunCorpus) -> tuple:
    """The run's tokenizer and resolved config, written to the run folder on a new run."""
    tokenizer = corpus.tokenizer(checkpointer)
    assert isinstance(tokenizer, WordPieceTokenizer)  # MLMConfig requires "wordpiece"
    config = resolve_config(config, tokenizer)
    if not config.resume and jax.process_index() == 0:
        save_config(config, config.run_dir / "config.json")  # first: marks a run's folder
        tokenizer.save(config.run_dir / "tokenizer.json")
        tokenizer.save_hf(config.run_dir / "hf_tokenizer.json")
    return tokenizer, config


def train_mlm(config: MLMConfig) -> MLMRun:
    """Run the whole recipe; see the module docstring for what lands in the run folder.

    With ``config.parallel`` naming several processes, every process runs this function with
    its own ``process_id``; process 0 writes the run folder's files.
    """
    layout = setup_parallel(config.parallel)  # before any JAX work: may join other processes
    if config.compilation_cache:
        use_compilation_cache(config.compilation_cache)
    config = prepare_run_dir(config, RESUMABLE, FILLED_AT_START)
    corpus = RunCorpus(config)
    with Checkpointer(
        config.run_dir / "checkpoints",
        max_to_keep=config.loop.keep_checkpoints,
        cleanup_unfinished=True,
    ) as checkpointer:
        tokenizer, config = _start(config, checkpointer, corpus)
        tokens = corpus.tokens(tokenizer)
        eval_step = jax.jit(make_eval_step(masked_language_model_loss(BERT(config.model))))
        start = time.perf_counter()
        result, before = _train(config, layout, checkpointer, tokenizer, tokens, eval_step)
        seconds = time.perf_counter() - start
    params = result.state.params
    after = mlm_eval_fn(eval_step, config, tokenizer, tokens[1], config.eval_batches or None)(
        params
    )
    test = mlm_eval_fn(eval_step, config, tokenizer, tokens[2], None)(params)
    say(
        config.name,
        f"step {int(result.state.step)}: val MLM loss {after['loss']:.4f}, accuracy "
        f"{after['accuracy']:.3f}; test loss {test['loss']:.4f}, accuracy "
        f"{test['accuracy']:.3f} ({result.stop_reason})",
    )
    run = MLMRun(config, tokenizer, BERT(config.model), result.state, result, before, after, test,
                 config.run_dir, seconds)  # fmt: skip
    if jax.process_index() == 0:
        _write_results(run)
    return run


def _write_results(run: MLMRun) -> None:
    """Process 0's files: ``loss.png`` and ``summary.json``."""
    from jaxllm.plots import plot_loss

    run_dir = run.config.run_dir
    plot_loss(
        read_metrics(run_dir / "metrics.jsonl"),
        run_dir / "loss.png",
        title=f"{run.config.name}: BERT masked-word loss on {run.config.data.corpus}",
        ylabel="cross-entropy on masked tokens (nats)",
    )
    summary = {
        "step": int(run.state.step),
        "before": run.before,
        "after": run.after,
        "test": run.test,
        "stop_reason": run.fit.stop_reason,
        "best_val_loss": run.fit.best_val_loss,
        "fit_seconds": round(run.fit_seconds, 2),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def load_mlm_run(
    run_dir: str | Path, step: int | None = None
) -> tuple[MLMConfig, WordPieceTokenizer, dict]:
    """A pre-training run's config, tokenizer and parameters (its newest checkpoint, or
    ``step``'s), e.g. to fine-tune or to fill in masks.

    Raises:
      FileNotFoundError: ``run_dir`` holds no run (no ``config.json`` or no checkpoint).
      CheckpointError: the tokenizer is not the one the checkpoint was trained with.
    """
    config = load_config(MLMConfig, require_run(run_dir, "pretrain_bert.py") / "config.json")
    tokenizer = load_wordpiece_tokenizer(run_dir)
    params = restore_params(run_dir, tokenizer, fresh_state(config), step)
    return config, tokenizer, params


def load_wordpiece_tokenizer(run_dir: str | Path) -> WordPieceTokenizer:
    """The ``tokenizer.json`` of a BERT run folder (pre-training or fine-tuning).

    Raises:
      FileNotFoundError: no ``tokenizer.json``.
      CheckpointError: the tokenizer is not BERT's WordPiece.
    """
    tokenizer = load_tokenizer(Path(run_dir) / "tokenizer.json")
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise CheckpointError(
            f"{run_dir} has a {tokenizer.kind} tokenizer, not BERT's WordPiece: it is not a BERT "
            "run"
        )
    return tokenizer


def fill_mask(
    model: BERT, params: Any, tokenizer: WordPieceTokenizer, text: str, top_k: int = 5
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` likeliest pieces (with probabilities) for each ``[MASK]`` in ``text``,
    as Hugging Face's fill-mask pipeline gives them."""
    ids = tokenizer.with_specials(tokenizer.encode(text), model.config.max_len)
    where = np.flatnonzero(ids == tokenizer.mask_id)
    if where.size == 0:
        raise ValueError(f"no [MASK] in {text!r}: write [MASK] where a word should be guessed")
    logits = model.apply({"params": params}, ids[None], method=BERT.mlm_logits)[0]
    probs = np.asarray(jax.nn.softmax(logits[where], axis=-1))
    best = np.argsort(-probs, axis=-1)[:, :top_k]
    return [
        [(tokenizer.hf_tokenizer.id_to_token(int(i)), float(p[i])) for i in row]
        for row, p in zip(best, probs, strict=True)
    ]
