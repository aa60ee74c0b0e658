"""The translation recipe: sentence pairs -> one byte-level BPE for both languages -> an
encoder-decoder Transformer or an attentional LSTM -> fit -> BLEU and chrF, greedy and beam.

``train_translator(TranslateConfig(...))`` is what ``experiments/translate.py train`` runs. The
default data are the King James and Reina-Valera Bibles paired verse by verse
(:func:`jaxllm.data.load_bible_pairs`, after ``make data``), whole books held out for
validation and test; any file of ``source<TAB>target`` lines serves too. Training shares the
other recipes' ``fit``, checkpoints, resume and parallel modes.

A run folder ``<out_dir>/<name>/`` holds ``config.json``, ``tokenizer.json``,
``metrics.jsonl``, ``loss.png``, ``tensorboard/``, ``checkpoints/``, ``summary.json`` (loss,
BLEU and chrF on the test pairs by greedy and beam search, parameters, times),
``translations.tsv`` (source, reference, greedy, beam) and ``attention.png`` (cross-attention
of sample pairs). :func:`load_translator` reads a run back as a
:class:`~jaxllm.recipes.translator.Translator`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

from jaxllm.config import ConfigError, load_config, require, save_config
from jaxllm.data import BPETokenizer, load_tokenizer
from jaxllm.data.pair_batches import EncodedPairs, PairBatches, encode_pairs, pair_eval_batches
from jaxllm.losses import sequence_to_sequence_loss
from jaxllm.metrics import perplexity
from jaxllm.models.gpt import count_params
from jaxllm.models.lstm_seq2seq import (
    LSTMSeq2Seq,
    LSTMSeq2SeqConfig,
    init_lstm_seq2seq_params,
    lstm_decoding,
)
from jaxllm.models.seq2seq import (
    Seq2SeqConfig,
    Seq2SeqTransformer,
    init_seq2seq_params,
    transformer_decoding,
)
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.recipes.run_corpus import run_metadata, saved_tokenizer
from jaxllm.recipes.run_folder import (
    check_resume_step,
    fit_in_run_folder,
    prepare_run_dir,
    require_run,
    restore_params,
    say,
)
from jaxllm.recipes.translator import Translator, corpus_scores, require_sacrebleu
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
)
from jaxllm.train.parallel import ParallelConfig, setup_parallel

Pairs = list[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class TranslateConfig:
    """A translation run.

    Attributes:
      name, out_dir: the run folder is ``out_dir/name``.
      seed: seeds parameters, dropout, batches and (for a file) the split.
      data: ``"bible"`` (English -> Spanish verses, ``make data``) or a file of
        ``source<TAB>target`` lines, split at random into ``valid_fraction`` and
        ``test_fraction`` of its pairs and the rest.
      data_dir: where ``make data`` put the Bibles (``''``: ``$JAXLLM_DATA_DIR`` or
        ``~/.cache/jaxllm``).
      valid_fraction, test_fraction: the held-out shares of a file's pairs.
      vocab_size: the shared byte-level BPE's size, learnt on the training pairs.
      model_kind: ``"transformer"`` (``transformer``'s shape) or ``"lstm"`` (``lstm``'s).
      batch_size: sentence pairs per step, grouped by length.
      label_smoothing: of the training loss (the logged loss is the plain one).
      eval_batches: cap on validation batches per evaluation (0: all of them).
      beam_size, length_penalty: the beam search the test pairs are scored with (greedy
        search too).
      test_sentences: cap on the test pairs translated for BLEU (0: all).
      resume, resume_step, resume_learning_rate: continue the run, as the LM recipe's do.
      compilation_cache: folder for compiled XLA programs (``''``: none).
    """

    name: str = "translate"
    out_dir: str = "runs"
    seed: int = 0
    data: str = "bible"
    data_dir: str = ""
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    vocab_size: int = 8000
    model_kind: Literal["transformer", "lstm"] = "transformer"
    transformer: Seq2SeqConfig = Seq2SeqConfig(max_len=128, n_encoder_layer=3, n_decoder_layer=3)
    lstm: LSTMSeq2SeqConfig = LSTMSeq2SeqConfig(max_len=128)
    batch_size: int = 64
    label_smoothing: float = 0.1
    eval_batches: int = 0
    beam_size: int = 4
    length_penalty: float = 1.0
    test_sentences: int = 0
    resume: bool = False
    resume_step: int | None = None
    resume_learning_rate: float | None = None
    compilation_cache: str = DEFAULT_COMPILATION_CACHE
    optimizer: OptimizerConfig = OptimizerConfig(
        learning_rate=7e-4, warmup_steps=400, decay_steps=-1, weight_decay=0.01, grad_clip=1.0
    )
    loop: LoopConfig = LoopConfig(num_steps=4000, log_every=50, eval_every=1000)
    parallel: ParallelConfig = ParallelConfig()

    def __post_init__(self):
        require(
            self.model_kind in ("transformer", "lstm"),
            f"TranslateConfig.model_kind must be 'transformer' or 'lstm', got {self.model_kind!r}",
        )
        require(
            self.batch_size > 0 and self.eval_batches >= 0 and self.test_sentences >= 0,
            "TranslateConfig.batch_size must be > 0, eval_batches and test_sentences >= 0",
        )
        require(
            self.beam_size >= 1 and math.isfinite(self.length_penalty),
            f"TranslateConfig.beam_size must be >= 1 and length_penalty finite, got "
            f"{self.beam_size}, {self.length_penalty}",
        )
        require(
            0.0 <= self.label_smoothing < 1.0,
            f"TranslateConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        require(
            0.0 < self.valid_fraction and 0.0 < self.test_fraction
            and self.valid_fraction + self.test_fraction < 1.0,
            "TranslateConfig.valid_fraction and test_fraction must be > 0 with a sum below 1",
        )  # fmt: skip
        require(self.vocab_size > 257, "TranslateConfig.vocab_size must be > 257 (the bytes)")
        check_resume_step(self.resume, self.resume_step, self.resume_learning_rate)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @property
    def max_len(self) -> int:
        """The longest source and target the chosen model takes."""
        return self.lstm.max_len if self.model_kind == "lstm" else self.transformer.max_len


RESUMABLE = frozenset(
    {"resume", "resume_step", "out_dir", "compilation_cache", "loop", "parallel",
     "resume_learning_rate", "eval_batches", "test_sentences", "beam_size", "length_penalty"}
)  # fmt: skip
FILLED_AT_START = {"transformer.vocab_size": 0, "lstm.vocab_size": 0, "optimizer.decay_steps": -1}


@dataclasses.dataclass
class TranslateRun:
    """Everything a finished translation run produced."""

    config: TranslateConfig
    translator: Translator
    state: TrainState
    fit: FitResult
    summary: dict[str, Any]
    run_dir: Path


def load_translation_pairs(config: TranslateConfig) -> dict[str, Pairs]:
    """``{"train", "valid", "test"}`` sentence pairs of ``config.data``: the Bible split by
    book, or a file's pairs split at random (seeded)."""
    from jaxllm.data.parallel_text import load_bible_pairs, read_parallel_tsv, split_by_book

    if config.data == "bible":
        corpus = load_bible_pairs(config.data_dir or None)
        splits = split_by_book(corpus.pairs)
        return {name: [(p.source, p.target) for p in pairs] for name, pairs in splits.items()}
    pairs = read_parallel_tsv(config.data)
    order = np.random.default_rng(config.seed).permutation(len(pairs))
    n_valid = max(1, round(config.valid_fraction * len(pairs)))
    n_test = max(1, round(config.test_fraction * len(pairs)))
    if len(pairs) < n_valid + n_test + 1:
        raise ValueError(
            f"{config.data} has {len(pairs)} pairs: too few to hold out validation and test "
            "pairs and train on the rest"
        )
    parts = np.split(order, [n_valid, n_valid + n_test])
    valid, test, train = ([pairs[i] for i in part] for part in parts)
    return {"train": train, "valid": valid, "test": test}


def resolve_config(config: TranslateConfig, tokenizer: BPETokenizer) -> TranslateConfig:
    """Fill in the vocabulary size (the tokenizer's) and the decay length (the run's)."""
    shapes = {}
    for field in ("transformer", "lstm"):
        shape = getattr(config, field)
        if shape.vocab_size not in (0, tokenizer.vocab_size):
            raise ConfigError(
                f"{field}.vocab_size={shape.vocab_size} but the tokenizer has "
                f"{tokenizer.vocab_size} tokens; leave it at 0 to take it from the tokenizer"
            )
        shapes[field] = dataclasses.replace(shape, vocab_size=tokenizer.vocab_size)
    optimizer = config.optimizer.with_decay_until(config.loop.num_steps)
    return dataclasses.replace(config, optimizer=optimizer, **shapes)


def model_for(config: TranslateConfig) -> tuple[Any, Any]:
    """The model ``config.model_kind`` names, and its decoding functions."""
    if config.model_kind == "lstm":
        model = LSTMSeq2Seq(config.lstm)
        return model, lstm_decoding(model)
    model = Seq2SeqTransformer(config.transformer)
    return model, transformer_decoding(model)


def fresh_state(config: TranslateConfig) -> TrainState:
    """Initial parameters and optimizer state of a run of ``config`` (vocabulary resolved)."""
    key_params, key_train = jax.random.split(jax.random.key(config.seed))
    if config.model_kind == "lstm":
        params = init_lstm_seq2seq_params(config.lstm, key_params)
    else:
        params = init_seq2seq_params(config.transformer, key_params)
    return create_train_state(params, make_optimizer(config.optimizer), key_train)


def _tokenizer(config: TranslateConfig, train: Pairs, checkpointer: Checkpointer) -> BPETokenizer:
    """The run's tokenizer: learnt on both sides of the training pairs, or the saved one
    (checked against the checkpoints')."""
    if config.resume:
        return _bpe(
            saved_tokenizer(config.run_dir / "tokenizer.json", checkpointer), config.run_dir
        )
    texts = [text for pair in train for text in pair]
    return BPETokenizer.train(texts, vocab_size=config.vocab_size)


def load_translation_tokenizer(run_dir: str | Path) -> BPETokenizer:
    """The ``tokenizer.json`` of a translation run folder.

    Raises:
      CheckpointError: it is not a byte-level BPE (the folder is another recipe's run).
    """
    return _bpe(load_tokenizer(Path(run_dir) / "tokenizer.json"), run_dir)


def _bpe(tokenizer: Any, run_dir: str | Path) -> BPETokenizer:
    if not isinstance(tokenizer, BPETokenizer):
        raise CheckpointError(
            f"{run_dir} has a {tokenizer.kind} tokenizer, not the byte-level BPE translation "
            "runs use: it is not a translation run"
        )
    return tokenizer


def _encode_splits(
    config: TranslateConfig, tokenizer: BPETokenizer, splits: dict[str, Pairs]
) -> dict[str, EncodedPairs]:
    encoded = {
        name: encode_pairs(tokenizer, pairs, config.max_len, tokenizer.eos_id)
        for name, pairs in splits.items()
    }
    say(
        config.name,
        "pairs " + ", ".join(
            f"{name} {len(pairs):,} ({pairs.truncated} cut to {config.max_len} tokens)"
            for name, pairs in encoded.items()
        ),
    )  # fmt: skip
    return encoded


def _eval_fn(config: TranslateConfig, eval_step: Any, pairs: EncodedPairs, start_id: int):
    """``params -> {"loss", "ppl", "tokens"}`` on ``pairs`` (teacher-forced)."""
    batches = pair_eval_batches(pairs, config.batch_size, config.max_len, start_id,
                                config.eval_batches)  # fmt: skip

    def run(params: Any) -> dict[str, float]:
        metrics = evaluate(eval_step, params, batches)
        return metrics | {"ppl": perplexity(metrics["loss"])}

    return run


def _train(
    config: TranslateConfig,
    layout: Layout,
    checkpointer: Checkpointer,
    tokenizer: BPETokenizer,
    encoded: dict[str, EncodedPairs],
) -> tuple[FitResult, Any]:
    """``fit`` the model in the run folder: (result, the jitted evaluation step)."""
    model, _ = model_for(config)
    arrays = [getattr(p, f) for p in encoded.values() for f in ("source", "target")]
    metadata = run_metadata(config, checkpointer, tokenizer, arrays)
    fresh = fresh_state(config)
    state = (
        layout.restore(checkpointer, fresh, config.resume_step)
        if config.resume
        else layout.place_state(fresh)
    )
    loss = sequence_to_sequence_loss(model, label_smoothing=config.label_smoothing)
    train_step = layout.train_step(
        loss, make_optimizer(config.optimizer), microbatches=config.parallel.microbatches
    )
    eval_step = jax.jit(make_eval_step(sequence_to_sequence_loss(model)))
    start_id = tokenizer.eos_id
    batches = PairBatches(
        encoded["train"], config.batch_size, config.max_len, config.seed, start_id,
        jax.process_index(), jax.process_count(),
    )  # fmt: skip
    say(
        config.name,
        f"{config.model_kind}, {count_params(fresh.params):,} parameters; BPE vocab "
        f"{tokenizer.vocab_size}; {layout.describe()}",
    )
    result = fit_in_run_folder(
        config, layout, checkpointer, state, train_step, batches,
        _eval_fn(config, eval_step, encoded["valid"], start_id), metadata,
    )  # fmt: skip
    return result, eval_step


def train_translator(
    config: TranslateConfig, splits: dict[str, Pairs] | None = None
) -> TranslateRun:
    """Run the whole recipe; see the module docstring for what lands in the run folder.

    Args:
      config: the run.
      splits: ``{"train", "valid", "test"}`` sentence pairs to use instead of ``config.data``.
    """
    require_sacrebleu()  # the scores at the end need it: say so before training
    layout = setup_parallel(config.parallel)  # before any JAX work: may join other processes
    if config.compilation_cache:
        use_compilation_cache(config.compilation_cache)
    config = prepare_run_dir(config, RESUMABLE, FILLED_AT_START)
    splits = splits if splits is not None else load_translation_pairs(config)
    with Checkpointer(
        config.run_dir / "checkpoints",
        max_to_keep=config.loop.keep_checkpoints,
        cleanup_unfinished=True,
    ) as checkpointer:
        tokenizer = _tokenizer(config, splits["train"], checkpointer)
        config = resolve_config(config, tokenizer)
        if not config.resume and jax.process_index() == 0:
            save_config(config, config.run_dir / "config.json")  # first: marks a run's folder
            tokenizer.save(config.run_dir / "tokenizer.json")
        encoded = _encode_splits(config, tokenizer, splits)
        start = time.perf_counter()
        result, eval_step = _train(config, layout, checkpointer, tokenizer, encoded)
        fit_seconds = time.perf_counter() - start
    params = layout.host_copy(result.state.params)
    model, decoding = model_for(config)
    translator = Translator(model, params, tokenizer, decoding, config.max_len)
    test = _eval_fn(config, eval_step, encoded["test"], tokenizer.eos_id)(params)
    summary = {
        "step": int(result.state.step), "test": test, "stop_reason": result.stop_reason,
        "parameters": count_params(params), "fit_seconds": round(fit_seconds, 2),
    }  # fmt: skip
    run = TranslateRun(config, translator, result.state, result, summary, config.run_dir)
    if jax.process_index() == 0:
        _write_results(run, splits["test"])
    return run


def score_translations(
    translator: Translator, pairs: Pairs, *, beam_size: int, length_penalty: float
) -> tuple[dict[str, Any], list[tuple[str, ...]]]:
    """BLEU and chrF of greedy and beam search on ``pairs``, with the time each took
    (compilation included, once per length bucket): (scores, rows of (source, reference,
    greedy, beam))."""
    sources = translator.encode_sources([s for s, _ in pairs], truncate=True)
    references = [t for _, t in pairs]
    scores: dict[str, Any] = {}
    outputs = {}
    for search, k in (("greedy", 1), (f"beam{beam_size}", beam_size)):
        start = time.perf_counter()
        ids, unfinished = translator.search_ids(sources, beam_size=k, length_penalty=length_penalty)
        seconds = time.perf_counter() - start
        outputs[search] = [translator.tokenizer.decode(row) for row in ids]
        scores[search] = corpus_scores(outputs[search], references) | {
            "seconds": round(seconds, 2), "sentences_per_second": round(len(pairs) / seconds, 1),
            "unfinished": unfinished,
        }  # fmt: skip
    rows = list(zip([s for s, _ in pairs], references, *outputs.values(), strict=True))
    return scores, rows


def pairs_fingerprint(pairs: Pairs) -> str:
    """A fingerprint of sentence pairs, to tell that a later evaluation reads the same ones."""
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return digest.hexdigest()[:32]


def _write_results(run: TranslateRun, test_pairs: Pairs) -> None:
    """Process 0's files: ``loss.png``, ``summary.json``, ``translations.tsv``,
    ``attention.png``."""
    from jaxllm.plots import plot_loss
    from jaxllm.train import read_metrics

    config, run_dir = run.config, run.run_dir
    plot_loss(read_metrics(run_dir / "metrics.jsonl"), run_dir / "loss.png",
              title=f"{config.name}: {config.model_kind} translation loss",
              ylabel="cross-entropy per target token (nats)")  # fmt: skip
    pairs = test_pairs[: config.test_sentences] if config.test_sentences else test_pairs
    scores, rows = score_translations(
        run.translator, pairs, beam_size=config.beam_size, length_penalty=config.length_penalty
    )
    run.summary |= {"test_sentences": len(pairs),
                    "test_fingerprint": pairs_fingerprint(test_pairs), **scores}  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(run.summary, indent=2) + "\n")
    lines = ["source\treference\tgreedy\tbeam"] + [
        "\t".join(" ".join(text.split()) for text in row)
        for row in rows  # one line a row
    ]
    (run_dir / "translations.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_cross_attention(run.translator, [row[0] for row in rows[:2]], run_dir / "attention.png",
                         beam_size=config.beam_size)  # fmt: skip
    say(config.name, " ".join(
        f"{search}: BLEU {s['bleu']:.2f}, chrF {s['chrf']:.2f};"
        for search, s in scores.items()
    ))  # fmt: skip


def plot_cross_attention(
    translator: Translator, sources: list[str], path: str | Path, *, beam_size: int = 4
) -> Path:
    """Heat maps of what each token of a translation attends to in its source, one per
    sentence of ``sources``, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from jaxllm.explain import plot_attention

    tokenizer = translator.tokenizer
    outputs, _ = translator.search_ids(translator.encode_sources(sources), beam_size=beam_size)
    fig, axes = plt.subplots(1, len(sources), figsize=(9 * len(sources), 9), squeeze=False)
    for ax, source, output in zip(axes[0], sources, outputs, strict=True):
        output = output[: translator.max_len - 1]
        weights = translator.cross_attention(source, output)
        src = [token_label(tokenizer, i) for i in tokenizer.encode(source)] + ["</s>"]
        out = [token_label(tokenizer, i) for i in output] + ["</s>"]
        plot_attention(weights, out, src, ax=ax, title="cross-attention (token written ← source)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def token_label(tokenizer: Any, token: int) -> str:
    """A token as a plot shows it: its text, or, for a piece of a character (one byte of
    several) or a control character, its byte-level form (``"Ã³"``, ``"Ċ"``)."""
    text = tokenizer.decode([token])
    if text.isprintable() and "\ufffd" not in text:
        return text
    return str(tokenizer.hf_tokenizer.id_to_token(token))


def load_test_pairs(run_dir: str | Path) -> Pairs:
    """The test pairs of the run in ``run_dir``, from its data as its config names them.

    Raises:
      CheckpointError: they are not the pairs the run was scored on when it finished (its
        ``summary.json`` records their fingerprint): the data changed since.
    """
    run_dir = Path(run_dir)
    config = load_config(TranslateConfig, run_dir / "config.json")
    pairs = load_translation_pairs(config)["test"]
    summary = run_dir / "summary.json"
    recorded = (
        json.loads(summary.read_text()).get("test_fingerprint") if summary.is_file() else None
    )
    if recorded not in (None, pairs_fingerprint(pairs)):
        raise CheckpointError(
            f"the test pairs of {config.data} differ from those {run_dir} was scored on: the "
            "data changed since the run; restore it to compare scores"
        )
    return pairs


def load_translator(run_dir: str | Path, step: int | None = None) -> Translator:
    """A translation run's model, ready to translate: its newest checkpoint (or ``step``'s).

    Raises:
      FileNotFoundError: ``run_dir`` holds no run, or no checkpoint.
      CheckpointError: the run is not a translation run, or its tokenizer is not the one the
        checkpoint was trained with.
    """
    run_dir = require_run(run_dir, "translate.py train")
    try:
        config = load_config(TranslateConfig, run_dir / "config.json")
    except ConfigError as error:
        raise CheckpointError(f"{run_dir} is not a translation run: {error}") from None
    tokenizer = load_translation_tokenizer(run_dir)
    params = restore_params(run_dir, tokenizer, fresh_state(config), step)
    model, decoding = model_for(config)
    return Translator(model, params, tokenizer, decoding, config.max_len)
