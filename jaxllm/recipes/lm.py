"""The language-modelling recipe: corpus -> tokenizer -> GPT or LSTM -> fit -> evaluate ->
sample.

``train_lm(LMConfig(...))`` is what ``experiments/train_lm.py`` and ``make demo`` run; every
step is a call into the library, so a notebook can run the same pieces one by one.

A run folder ``<out_dir>/<name>/`` holds ``config.json`` (the resolved config),
``tokenizer.json``, ``metrics.jsonl``, ``loss.png``, ``tensorboard/``, ``checkpoints/``,
``sample.txt`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np
from jax import Array

from jaxllm.compress.distill import DistillationError, DistillConfig, distillation_loss
from jaxllm.config import ConfigError, load_config, save_config
from jaxllm.data import (
    DataConfig,
    Tokenizer,
    eval_batches,
    lm_batch,
    load_tokenizer,
)
from jaxllm.generate import generate_text
from jaxllm.losses import LossFn, language_model_loss
from jaxllm.metrics import perplexity
from jaxllm.models.gpt import GPT, GPTConfig, init_params, with_cpu_tuned_attention
from jaxllm.models.lstm_lm import LSTMLM, LSTMLMConfig, init_lstm_lm_params
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.privacy.budget import (
    PrivacySettings,
    describe_privacy,
    dp_config,
    json_report,
    privacy_report,
    resolve_privacy,
    sampling_rate,
)
from jaxllm.privacy.sampling import PoissonWindows, window_count
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
class LMConfig:
    """A language-model run: a GPT (``model_kind="gpt"``) or an LSTM (``"lstm"``).

    Attributes:
      name: run folder name under ``out_dir``.
      out_dir: parent folder of run folders.
      seed: seeds parameters, dropout and batches; the same seed gives the same run.
      batch_size: sequences per step; each is the trained model's ``block_size`` tokens long
        (:attr:`seq_len`).
      eval_batches: cap on validation batches per evaluation (0: the whole split).
      label_smoothing: label smoothing of the training loss.
      sample_tokens: tokens to generate after training (0: none).
      sample_prompt: prompt for the sample (empty: start from a newline).
      temperature, top_k: sampling settings for the sample (``top_k`` 0: no top-k filter).
      resume: continue the run in ``out_dir/name`` from its newest checkpoint that verifies.
      resume_step: with ``resume``, continue from this checkpoint instead (e.g. one before a
        divergence); the newer ones are moved to ``checkpoints-set-aside/``.
      resume_learning_rate: with ``resume``, the peak learning rate from here on (e.g. lower
        after a divergence), recorded in the run's ``resume-settings.json`` for later resumes
        (``None``: the run's own, or the last one recorded).
      compilation_cache: folder where compiled XLA programs are kept for later runs with the
        same shapes, which then skip most of the first step's compilation ('': none; a folder
        set through ``JAX_COMPILATION_CACHE_DIR`` takes precedence).
      cpu_tuned_attention: on a CPU, compute attention as
        :func:`~jaxllm.models.with_cpu_tuned_attention` picks for the machine (query blocks and
        row groups; this recipe's default model trains ~25% faster per step on 2 cores than
        with the portable ``jax.nn.dot_product_attention``), whatever ``model.attention``
        says, and record the choice in ``config.json``. ``False``: ``model.attention`` as
        given. No effect on other platforms, nor on an LSTM.
      token_cache: a folder where a corpus of one text file is cleaned, split and tokenised
        in pieces into memory-mapped token files (nanoGPT's ``train.bin``), which later runs
        on the same file map instead (:mod:`jaxllm.recipes.run_corpus`): a corpus of any size
        trains in little memory. ``''``: the corpus is held in memory. Either way the run is
        the same.
      teacher: a finished language-model run folder whose model teaches this one by
        distillation (:mod:`jaxllm.compress.distill`): the training loss mixes the teacher's
        softened next-token distribution with the true next token, as ``distill`` says. Its
        tokenizer must be the one this run makes (the same corpus and tokenizer settings);
        the validation and test losses stay the plain next-token cross-entropy. ``''``: no
        teacher.
      distill: the distillation's temperature and the soft term's weight (with ``teacher``).
      privacy: differentially private training (:class:`jaxllm.privacy.PrivacySettings`).
        With a ``target_epsilon`` (or a ``noise_multiplier``) the training stream is cut into
        windows of ``seq_len + 1`` tokens that share none, each window joins a step's batch
        with probability ``batch_size / windows`` (:class:`jaxllm.privacy.PoissonWindows`),
        and DP-SGD clips each window's gradient and noises their sum; σ is filled in for the
        planned steps and kept on resume, and ``summary.json`` reports the ε of the steps
        run. The unit protected is one window (adding or removing it); changing text inside
        ``k`` windows is covered as a group of ``2k``, and inserting or deleting text, which
        shifts every later window, is not covered. The tokenizer, fitted on the corpus, is not
        covered either (a character alphabet reveals which characters occur; BPE merges,
        frequent strings), nor are the logged training metrics. Off by default.
      data: the corpus and tokenizer.
      model_kind: which model trains: ``"gpt"`` (shaped by ``model``) or ``"lstm"`` (shaped by
        ``lstm``); the other one's settings are kept in ``config.json`` but unused.
      model: the GPT's shape (``model.vocab_size`` 0: taken from the tokenizer).
      lstm: the LSTM language model's shape (``lstm.vocab_size`` 0: taken from the tokenizer).
        On the default corpus (103 characters) its default has 1.08M parameters (2 layers of
        256) and the default GPT 0.82M; ``lstm.n_embd=224`` gives 0.83M.
      optimizer: the update rule; this recipe's default is AdamW with weight decay 0.1 and
        clipping at 1.0, warm-up, and cosine decay until the end of the run.
      loop: steps, logging, evaluation, checkpoints, early stopping, progress bars.
      parallel: devices, processes and gradient accumulation (a resumed run may change them).
    """

    name: str = "gpt"
    out_dir: str = "runs"
    seed: int = 0
    batch_size: int = 32
    eval_batches: int = 20
    label_smoothing: float = 0.0
    sample_tokens: int = 300
    sample_prompt: str = "The "
    temperature: float = 0.8
    top_k: int = 0
    resume: bool = False
    resume_step: int | None = None
    resume_learning_rate: float | None = None
    compilation_cache: str = DEFAULT_COMPILATION_CACHE
    cpu_tuned_attention: bool = True
    token_cache: str = ""
    teacher: str = ""
    distill: DistillConfig = DistillConfig()
    privacy: PrivacySettings = PrivacySettings()
    data: DataConfig = DataConfig()
    model_kind: Literal["gpt", "lstm"] = "gpt"
    model: GPTConfig = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    lstm: LSTMLMConfig = LSTMLMConfig(block_size=128, n_layer=2, n_embd=256, dropout=0.1)
    optimizer: OptimizerConfig = OptimizerConfig(
        learning_rate=2e-3, warmup_steps=40, decay_steps=-1, weight_decay=0.1, grad_clip=1.0
    )
    loop: LoopConfig = LoopConfig(num_steps=400, log_every=10, eval_every=100)
    parallel: ParallelConfig = ParallelConfig()

    def __post_init__(self):
        if self.batch_size <= 0 or self.eval_batches < 0 or self.sample_tokens < 0:
            raise ConfigError(
                "LMConfig.batch_size must be > 0, eval_batches and sample_tokens >= 0"
            )
        if self.temperature <= 0 or self.top_k < 0:
            raise ConfigError("LMConfig.temperature must be > 0 and top_k >= 0")
        check_resume_step(self.resume, self.resume_step, self.resume_learning_rate)
        if self.model_kind not in ("gpt", "lstm"):
            raise ConfigError(
                f"LMConfig.model_kind must be 'gpt' or 'lstm', got {self.model_kind!r}"
            )
        if self.teacher and self.privacy.enabled:
            raise ConfigError(
                "a teacher trained on the same corpus without DP-SGD would pass that text on, "
                "uncounted by the privacy guarantee: drop teacher or privacy"
            )
        if self.teacher and self.label_smoothing:
            raise ConfigError(
                "label_smoothing does not apply with a teacher: the teacher's softened "
                "distribution takes its place (set distill.alpha); leave label_smoothing at 0"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @property
    def seq_len(self) -> int:
        """Tokens per training and evaluation sequence: the trained model's ``block_size``."""
        return self.lstm.block_size if self.model_kind == "lstm" else self.model.block_size


# Settings a resumed run may change; anything else must match the saved config.
RESUMABLE = frozenset(
    {
        "resume",
        "resume_step",
        "out_dir",
        "compilation_cache",
        "cpu_tuned_attention",
        "sample_tokens",
        "sample_prompt",
        "temperature",
        "top_k",
        "loop",
        "parallel",
        "resume_learning_rate",
        "token_cache",
    }
)
# Settings resolved when a run starts, with the placeholders a user leaves them at. The
# attention implementation is resolved again on resume, for the machine the run continues on
# (every implementation computes the same function).
FILLED_AT_START = {
    "model.vocab_size": 0,
    "lstm.vocab_size": 0,
    "optimizer.decay_steps": -1,
    "model.attention": "jax",
    "model.attention_row_groups": 1,
    "privacy.delta": 0.0,
    "privacy.noise_multiplier": 0.0,
}


@dataclasses.dataclass
class LMRun:
    """Everything a finished run produced."""

    config: LMConfig
    tokenizer: Tokenizer
    model: GPT | LSTMLM
    state: TrainState
    fit: FitResult | None
    before: dict[str, float]
    after: dict[str, float]
    test: dict[str, float]
    sample: str
    run_dir: Path
    privacy: dict[str, Any] | None = None


def _check_prompt(config: LMConfig, tokenizer: Tokenizer) -> None:
    """The sample's prompt must be text the tokenizer encodes, checked before training rather
    than after it.

    Raises:
      ConfigError: naming the characters a char tokenizer lacks.
    """
    if not config.sample_tokens:
        return
    try:
        tokenizer.encode(config.sample_prompt or "\n")
    except ValueError as e:
        raise ConfigError(
            f"--sample-prompt {config.sample_prompt!r} cannot be encoded: {e} Or change the "
            "prompt, or pass --sample-tokens 0"
        ) from e


def resolve_config(config: LMConfig, tokenizer: Tokenizer, train_tokens: int) -> LMConfig:
    """Fill in what the config leaves to the run: the trained model's vocabulary size, the
    decay length, (for a GPT, with ``cpu_tuned_attention``) the attention for this machine,
    and with ``privacy`` its δ and σ for the ``train_tokens`` tokens' windows; check the
    sample's prompt."""
    field = "lstm" if config.model_kind == "lstm" else "model"  # the trained model's shape
    shape = getattr(config, field)
    if shape.vocab_size not in (0, tokenizer.vocab_size):
        raise ConfigError(
            f"{field}.vocab_size={shape.vocab_size} but the {tokenizer.kind} "
            f"tokenizer has {tokenizer.vocab_size} tokens; leave {field}.vocab_size "
            "at 0 to take it from the tokenizer"
        )
    _check_prompt(config, tokenizer)
    shape = dataclasses.replace(shape, vocab_size=tokenizer.vocab_size)
    optimizer = config.optimizer.with_decay_until(config.loop.num_steps)
    privacy = resolve_privacy(
        config.privacy, _private_windows(config, train_tokens), config.batch_size,
        config.loop.num_steps,
    )  # fmt: skip
    config = dataclasses.replace(config, **{field: shape}, optimizer=optimizer, privacy=privacy)
    tune = config.model_kind == "gpt" and config.cpu_tuned_attention
    if tune and jax.default_backend() == "cpu":
        portable = dataclasses.replace(config.model, attention="jax", attention_row_groups=1)
        model = with_cpu_tuned_attention(portable, "cpu", jax.device_count())
        config = dataclasses.replace(config, model=model)
    return config


def lm_eval_fn(
    eval_step: Callable,
    tokens: np.ndarray,
    *,
    batch_size: int,
    seq_len: int,
    max_batches: int | None,
) -> Callable[[Any], dict[str, float]]:
    """``params -> {"loss", "ppl", ...}`` over (at most ``max_batches`` batches of) ``tokens``."""

    def run(params: Any) -> dict[str, float]:
        metrics = evaluate(
            eval_step,
            params,
            eval_batches(tokens, batch_size=batch_size, seq_len=seq_len, max_batches=max_batches),
        )
        return metrics | {"ppl": perplexity(metrics["loss"])}

    return run


def _model_for(config: LMConfig) -> tuple[GPT | LSTMLM, Callable[[Array], dict]]:
    """The model ``config.model_kind`` names, and ``key -> fresh parameters`` for it."""
    if config.model_kind == "lstm":
        return LSTMLM(config.lstm), lambda key: init_lstm_lm_params(config.lstm, key)
    return GPT(config.model), lambda key: init_params(config.model, key)


def _initial_state(config: LMConfig, layout: Layout, checkpointer: Checkpointer) -> TrainState:
    """Fresh parameters placed for ``layout``, or the newest checkpoint on resume."""
    key_params, key_train = jax.random.split(jax.random.key(config.seed))
    _, init = _model_for(config)
    state = create_train_state(init(key_params), make_optimizer(config.optimizer), key_train)
    if config.resume:
        return layout.restore(checkpointer, state, config.resume_step)
    return layout.place_state(state)


def _private_windows(config: LMConfig, train_tokens: int) -> int:
    """DP-SGD's examples: the windows of ``seq_len + 1`` tokens the training stream holds.

    Raises:
      ConfigError: with ``privacy``, a stream shorter than one window.
    """
    windows = window_count(train_tokens, config.seq_len)
    if config.privacy.enabled and windows < 1:
        raise ConfigError(
            f"the training split has {train_tokens} tokens, fewer than one window of "
            f"{config.seq_len + 1} that DP-SGD samples: use a shorter block_size or more text"
        )
    return windows


def _private_batches(config: LMConfig, layout: Layout, tokens: np.ndarray) -> PoissonWindows:
    """Poisson-sampled windows, padded to sizes every device, process and micro-batch
    divides."""
    divisor = layout.local_batch_divisor * jax.process_count() * config.parallel.microbatches
    return PoissonWindows(
        tokens,
        config.seq_len,
        sampling_rate(_private_windows(config, len(tokens)), config.batch_size),
        config.seed,
        multiple=math.lcm(16, divisor),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )


def _batch_fn(config: LMConfig, layout: Layout, tokens: np.ndarray) -> Callable[[int], dict]:
    """``step -> batch``: this process's rows of the step's batch, a pure function of the step
    (with ``privacy``, Poisson-sampled windows)."""
    if config.privacy.enabled:
        return _private_batches(config, layout, tokens)

    def batch(step: int) -> dict:
        return lm_batch(
            tokens,
            seed=config.seed,
            step=step,
            batch_size=config.batch_size,
            seq_len=config.seq_len,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    return batch


def _train(
    config: LMConfig,
    layout: Layout,
    checkpointer: Checkpointer,
    tokenizer: Tokenizer,
    tokens: list[np.ndarray],
) -> tuple[GPT | LSTMLM, FitResult, dict, Callable]:
    """Build the model and steps, evaluate once, and ``fit``: (model, result, val metrics
    before training, the eval step)."""
    train_tokens, val_tokens, test_tokens = tokens
    metadata = run_metadata(config, checkpointer, tokenizer, tokens)
    metadata["tokenizer_kind"] = tokenizer.kind
    model, _ = _model_for(config)
    state = _initial_state(config, layout, checkpointer)
    batches = _batch_fn(config, layout, train_tokens)
    private = isinstance(batches, PoissonWindows)
    train_step = layout.train_step(
        _training_loss(config, model, tokenizer),
        make_optimizer(config.optimizer),
        microbatches=config.parallel.microbatches,
        privacy=dp_config(config.privacy, batches.windows, config.batch_size) if private else None,
    )
    eval_step = jax.jit(make_eval_step(language_model_loss(model)))
    val_fn = lm_eval_fn(
        eval_step,
        val_tokens,
        batch_size=config.batch_size,
        seq_len=config.seq_len,
        max_batches=config.eval_batches or None,
    )
    before = val_fn(layout.plain_state(state).params)
    say(
        config.name,
        f"{tokenizer.kind} tokenizer, vocab {tokenizer.vocab_size}; tokens train/val/test "
        f"{len(train_tokens):,}/{len(val_tokens):,}/{len(test_tokens):,}; {layout.describe()}; "
        f"step {int(layout.plain_state(state).step)}: val loss {before['loss']:.4f}, "
        f"perplexity {before['ppl']:.2f}",
    )
    result = fit_in_run_folder(
        config,
        layout,
        checkpointer,
        state,
        train_step,
        batches,
        val_fn,
        metadata,
    )
    return model, result, before, eval_step


def _training_loss(config: LMConfig, model: GPT | LSTMLM, tokenizer: Tokenizer) -> LossFn:
    """The next-token cross-entropy, or with ``config.teacher`` the distillation loss from
    that run's model.

    Raises:
      DistillationError: the teacher's tokenizer is not this run's.
    """
    if not config.teacher:
        return language_model_loss(model, label_smoothing=config.label_smoothing)
    teacher_config, teacher_tokenizer, teacher_params = load_lm_run(config.teacher)
    if teacher_tokenizer.fingerprint() != tokenizer.fingerprint():
        raise DistillationError(
            f"the teacher {config.teacher} was trained with another tokenizer "
            f"({teacher_tokenizer.kind}, vocab {teacher_tokenizer.vocab_size}) than this run's "
            f"({tokenizer.kind}, vocab {tokenizer.vocab_size}): distil on the teacher's "
            "corpus with its tokenizer settings (its config.json's `data`)"
        )
    if teacher_config.seq_len < config.seq_len:
        raise DistillationError(
            f"the teacher {config.teacher} reads {teacher_config.seq_len} tokens at most, this "
            f"run's sequences are {config.seq_len}: train the student with a block_size of at "
            f"most {teacher_config.seq_len}"
        )
    say(config.name, f"distilling from {config.teacher} ({config.distill})")
    return distillation_loss(model, model_for(teacher_config), teacher_params, config.distill)


def _privacy_guarantee(config: LMConfig, train_tokens: int, steps: int) -> dict | None:
    """With ``privacy``, the guarantee of the ``steps`` run (early stopping may cut them) as
    :func:`jaxllm.privacy.privacy_report` gives it, plus the unit it protects; logged."""
    if not config.privacy.enabled:
        return None
    windows = _private_windows(config, train_tokens)
    report = privacy_report(config.privacy, windows, config.batch_size, steps)
    say(config.name, f"privacy: {describe_privacy(report, config.privacy.target_epsilon)}")
    return report | {"unit": f"a window of {config.seq_len + 1} tokens", "windows": windows}


def _write_results(config: LMConfig, run: LMRun, params: Any) -> str:
    """Process 0's files: ``loss.png``, ``sample.txt`` and ``summary.json``; returns the sample."""
    from jaxllm.plots import plot_loss

    run_dir = config.run_dir
    plot_loss(
        read_metrics(run_dir / "metrics.jsonl"),
        run_dir / "loss.png",
        title=f"{config.name}: {config.model_kind.upper()} on {config.data.corpus}",
    )
    sample = ""
    if config.sample_tokens:
        prompt = config.sample_prompt or "\n"
        sample = generate_text(
            run.model,
            params,
            run.tokenizer,
            [prompt],
            max_new_tokens=config.sample_tokens,
            key=jax.random.key(config.seed),
            temperature=config.temperature,
            top_k=config.top_k or None,
        )[0]
        (run_dir / "sample.txt").write_text(prompt + sample)
    fit_result = run.fit
    summary = {
        "step": int(run.state.step),
        "before": run.before,
        "after": run.after,
        "test": run.test,
        "stop_reason": fit_result.stop_reason if fit_result else None,
        "best_val_loss": fit_result.best_val_loss if fit_result else None,
    }
    if run.privacy is not None:
        summary["privacy"] = json_report(run.privacy)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return sample


def _run_config(config: LMConfig) -> LMConfig:
    """The config to run with (:func:`prepare_run_dir`), its attention the given one also on
    resume (tuned for this machine by :func:`resolve_config`): every implementation computes
    the same function, and the machine may have changed."""
    given = config.model
    config = prepare_run_dir(config, RESUMABLE, FILLED_AT_START)
    attention = {"attention": given.attention, "attention_row_groups": given.attention_row_groups}
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **attention))


def train_lm(config: LMConfig) -> LMRun:
    """Run the whole recipe; see the module docstring for what lands in the run folder.

    With ``config.parallel`` naming several processes, every process runs this function with
    its own ``process_id``; each feeds its own rows of every batch, and process 0 writes the
    run folder's files (checkpoints are written by all together).
    """
    layout = setup_parallel(config.parallel)  # before any JAX work: may join other processes
    if config.compilation_cache:
        use_compilation_cache(config.compilation_cache)
    config = _run_config(config)
    corpus = RunCorpus(config)
    with Checkpointer(
        config.run_dir / "checkpoints",
        max_to_keep=config.loop.keep_checkpoints,
        cleanup_unfinished=True,
    ) as checkpointer:
        tokenizer = corpus.tokenizer(checkpointer)
        tokens = corpus.tokens(tokenizer)
        config = resolve_config(config, tokenizer, len(tokens[0]))
        if not config.resume and jax.process_index() == 0:
            save_config(config, config.run_dir / "config.json")  # first: marks a run's folder
            tokenizer.save(config.run_dir / "tokenizer.json")
        model, result, before, eval_step = _train(config, layout, checkpointer, tokenizer, tokens)
    state = result.state

    def evaluate_on(split: np.ndarray, max_batches: int | None) -> dict[str, float]:
        return lm_eval_fn(
            eval_step,
            split,
            batch_size=config.batch_size,
            seq_len=config.seq_len,
            max_batches=max_batches,
        )(state.params)

    after = evaluate_on(tokens[1], config.eval_batches or None)
    test = evaluate_on(tokens[2], None)  # the whole test split
    say(
        config.name,
        f"step {int(state.step)}: val loss {after['loss']:.4f}, perplexity "
        f"{after['ppl']:.2f}; test loss {test['loss']:.4f}, perplexity {test['ppl']:.2f} "
        f"({result.stop_reason})",
    )
    params = layout.host_copy(state.params)  # collective when parameters span processes
    run = LMRun(
        config=config,
        tokenizer=tokenizer,
        model=model,
        state=state,
        fit=result,
        before=before,
        after=after,
        test=test,
        sample="",
        run_dir=config.run_dir,
        privacy=_privacy_guarantee(config, len(tokens[0]), int(state.step)),
    )
    if jax.process_index() == 0:
        run.sample = _write_results(config, run, params)
    return run


def load_lm_run(run_dir: str | Path, step: int | None = None) -> tuple[LMConfig, Tokenizer, Any]:
    """A language-model run's config, tokenizer and parameters (its newest checkpoint, or
    ``step``'s), for :func:`~jaxllm.generate.generate_text` with ``model_for(config)``.

    Raises:
      FileNotFoundError: ``run_dir`` holds no run (no ``config.json`` or no checkpoint).
      CheckpointError: the tokenizer is not the one the checkpoint was trained with.
    """
    config = load_config(LMConfig, require_run(run_dir, "train_lm.py") / "config.json")
    tokenizer = load_tokenizer(Path(run_dir) / "tokenizer.json")
    _, init = _model_for(config)
    key_params, key_train = jax.random.split(jax.random.key(config.seed))
    fresh = create_train_state(init(key_params), make_optimizer(config.optimizer), key_train)
    return config, tokenizer, restore_params(run_dir, tokenizer, fresh, step)


def model_for(config: LMConfig) -> GPT | LSTMLM:
    """The model a run of ``config`` trains (``config.model_kind``)."""
    return _model_for(config)[0]
