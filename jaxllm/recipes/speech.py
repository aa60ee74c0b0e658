"""The speech-recognition recipe: a speech set (WAV files and transcripts) -> log-mel features
-> an acoustic model (BiLSTM or Transformer over sub-sampled frames) trained with CTC on
characters -> ``fit`` with the validation loss and character error rate -> the checkpoint of
the lowest validation loss or error rate (or the average of the few lowest) scored on test, by
best path and by prefix beam search, with and without a character language model.

``train_speech_recognizer(SpeechRunConfig(...))`` is what ``experiments/speech.py train``
runs. ``data=""`` is the synthetic speech set ``make data`` builds with espeak-ng
(:func:`jaxllm.data.load_speech_set`; its test split holds voices *and* sentences that
training never saw); any other value is a folder of the same layout. Pass
``utterances={"train": ..., "valid": ..., "test": ...}`` to train on your own.

A run folder ``<out_dir>/<name>/`` holds ``config.json``, ``metrics.jsonl``, ``tensorboard/``,
``checkpoints/``, ``loss.png``, ``alignment.png`` (a test utterance's spectrogram under the
model's per-frame character probabilities), ``transcripts.tsv`` (every test utterance's
reference and both decodings) and ``summary.json`` (CER and WER, overall and per noise level).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import jax
import numpy as np

from jaxllm.classic.char_ngram import CharNGramLM
from jaxllm.config import ConfigError, load_config, require, save_config
from jaxllm.ctc_decode import Fusion
from jaxllm.data import SPEECH_ALPHABET, SpeechSetError, Utterance, load_speech_set
from jaxllm.data.audio import AudioError
from jaxllm.data.batches import pad_sequences
from jaxllm.data.buckets import BatchOrder, padded_length
from jaxllm.data.json_files import replaced_atomically, write_json_atomically
from jaxllm.data.log_mel import MelConfig
from jaxllm.data.spec_augment import SpecAugmentConfig
from jaxllm.data.spec_augment import spec_augment as spec_augment_features
from jaxllm.losses import LossFn, ctc_feasible, ctc_loss
from jaxllm.metrics import error_rates
from jaxllm.metrics.speech import require_jiwer
from jaxllm.models.asr import AcousticConfig, AcousticModel, encoder_lengths, init_acoustic_params
from jaxllm.models.gpt import count_params
from jaxllm.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from jaxllm.recipes.classify import best_checkpoint_step
from jaxllm.recipes.run_folder import check_resume_step, prepare_run_dir, require_run, say
from jaxllm.recipes.speech_lm import (
    LM_FILE,
    SpeechLMConfig,
    fit_speech_lm,
    saved_fusion,
    set_corpus,
    tune_fusion,
)
from jaxllm.recipes.transcriber import (
    BLANK_ID,
    CharacterAlphabet,
    CharLMScorer,
    Transcriber,
    decode_logits,
    jitted_apply,
    padded_features,
    utterance_features,
)
from jaxllm.runtime import DEFAULT_COMPILATION_CACHE, use_compilation_cache
from jaxllm.train import (
    Checkpointer,
    CheckpointError,
    FitResult,
    LoopConfig,
    MetricsWriter,
    average_checkpoints,
    create_train_state,
    fit,
    make_eval_step,
    make_train_step,
    read_metrics,
)
from jaxllm.train.step import evaluate, jit_train_step

SPLITS = ("train", "valid", "test")
LABEL_BUCKET = 16


@dataclasses.dataclass(frozen=True)
class SpeechRunConfig:
    """A speech-recognition run.

    Attributes:
      name, out_dir: the run folder is ``out_dir/name``.
      seed: seeds the parameters, dropout and batch order.
      data: a speech set folder (``manifest.jsonl``; ``""``: the one ``make data`` builds).
      alphabet: the characters transcripts are written in (the model adds the CTC blank).
      mel: the log-mel features (16 kHz audio, 25 ms windows, 10 ms hops, 80 bands).
      model: the acoustic model (``vocab_size`` 0: the alphabet's, filled in).
      spec_augment: the bands and spans of the features masked in every training batch
        (:mod:`jaxllm.data.spec_augment`; ``SpecAugmentConfig(0, 0, 0, 0)``: none).
      batch_size: utterances per training step (grouped by length).
      num_steps, eval_every, log_every: training steps; validation (loss and a greedy
        character error rate) and a checkpoint every ``eval_every`` steps and at the end.
      patience: stop after this many evaluations without a lower validation loss (0: never).
      select_by: the validation figure whose best checkpoint is scored on test: ``"loss"``
        (the CTC loss over every validation utterance) or ``"cer"`` (the best path's
        character error rate over the first ``eval_utterances``), the target's own measure.
      average: checkpoints averaged into the model scored on test
        (:func:`jaxllm.train.average_checkpoints`): the ``average`` kept ones with the lowest
        validation ``select_by``, the best first (1: the best alone).
      eval_utterances: validation utterances decoded for the error rate at each evaluation
        (0: all); the loss is always over all of them.
      beam_size: the prefix beam search that scores the test split beside the best path.
      lm: the character language model fused into the beam search, its weight tuned on
        validation utterances (:mod:`jaxllm.recipes.speech_lm`; ``order=0``: none).
      max_seconds: the longest utterance the run trains on and transcribes.
      resume: continue the run in ``out_dir/name`` from its newest checkpoint (a larger
        ``num_steps`` may be given); resume_step: from that checkpoint instead.
      progress: show progress bars.
      compilation_cache: see :class:`jaxllm.recipes.LMConfig`.
      optimizer: AdamW at 1e-3, warm-up, cosine decay over the run, clipping at 1.
    """

    name: str = "speech"
    out_dir: str = "runs"
    seed: int = 0
    data: str = ""
    alphabet: str = SPEECH_ALPHABET
    mel: MelConfig = MelConfig()
    model: AcousticConfig = AcousticConfig()
    spec_augment: SpecAugmentConfig = SpecAugmentConfig()
    batch_size: int = 32
    num_steps: int = 6000
    eval_every: int = 500
    log_every: int = 50
    patience: int = 0
    select_by: Literal["loss", "cer"] = "loss"
    average: int = 1
    eval_utterances: int = 200
    beam_size: int = 8
    lm: SpeechLMConfig = SpeechLMConfig()
    max_seconds: float = 20.0
    resume: bool = False
    resume_step: int | None = None
    progress: bool = True
    compilation_cache: str = DEFAULT_COMPILATION_CACHE
    optimizer: OptimizerConfig = OptimizerConfig(
        name="adamw", learning_rate=1e-3, warmup_steps=300, decay_steps=-1, grad_clip=1.0
    )

    def __post_init__(self):
        CharacterAlphabet(self.alphabet)  # distinct characters
        for name in ("batch_size", "num_steps", "eval_every", "log_every", "beam_size", "average"):
            require(getattr(self, name) >= 1, f"SpeechRunConfig.{name} must be >= 1")
        require(
            self.patience >= 0 and self.eval_utterances >= 0,
            "SpeechRunConfig.patience and eval_utterances must be >= 0",
        )
        require(self.max_seconds > 0, f"max_seconds must be > 0, got {self.max_seconds}")
        require(
            self.select_by in ("loss", "cer"),
            f"select_by must be 'loss' or 'cer', got {self.select_by!r}",
        )
        require(
            self.lm.order == 0 or self.beam_size > 1,
            "the language model is fused into the beam search: give --beam-size 2 or more, or "
            "--lm.order 0",
        )
        require(
            self.model.n_mels == self.mel.n_mels,
            f"model.n_mels ({self.model.n_mels}) must equal mel.n_mels ({self.mel.n_mels})",
        )
        check_resume_step(self.resume, self.resume_step)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def loop(self) -> LoopConfig:
        """``fit``'s settings: every evaluation's checkpoint kept while it may be the best."""
        evaluations = -(-self.num_steps // self.eval_every) + 1
        return LoopConfig(
            num_steps=self.num_steps, log_every=self.log_every, eval_every=self.eval_every,
            keep_checkpoints=(self.patience or evaluations) + 2, patience=self.patience,
            progress=self.progress,
        )  # fmt: skip


RESUMABLE = frozenset(
    {"resume", "resume_step", "out_dir", "progress", "compilation_cache", "num_steps",
     "select_by", "average", "lm"}
)  # fmt: skip
FILLED_AT_START = {"model.vocab_size": 0, "optimizer.decay_steps": -1}


@dataclasses.dataclass(frozen=True)
class EncodedUtterances:
    """Utterances as the model reads them.

    Attributes:
      features: float16[frames_i, n_mels] log-mel features of each utterance.
      labels: int32[characters_i] character ids of each transcript.
      texts: the transcripts; snr_db: each utterance's noise level (``inf``: clean).
    """

    features: list[np.ndarray]
    labels: list[np.ndarray]
    texts: list[str]
    snr_db: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    @property
    def frames(self) -> np.ndarray:
        """int[n] frames of each utterance."""
        return np.array([len(f) for f in self.features])

    def subset(self, index: Sequence[int] | np.ndarray) -> EncodedUtterances:
        """Utterances ``index``, in that order."""
        return EncodedUtterances(
            [self.features[i] for i in index], [self.labels[i] for i in index],
            [self.texts[i] for i in index], self.snr_db[np.asarray(index, np.int64)],
        )  # fmt: skip

    def rows(self, index: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """The batch of utterances ``index``, padded to bucketed lengths: ``features``
        float32[B, T, n_mels], ``frame_mask`` bool[B, T], ``labels`` int32[B, L],
        ``label_mask`` bool[B, L]."""
        features, frame_mask = padded_features([self.features[i] for i in index])
        chars = [self.labels[i] for i in index]
        width = padded_length(max(max(len(c) for c in chars), 1), 1 << 30, LABEL_BUCKET)
        labels, label_mask = pad_sequences(chars, 0, length=width)
        return {
            "features": features,
            "frame_mask": frame_mask,
            "labels": labels,
            "label_mask": label_mask,
        }


def encode_utterances(
    utterances: Sequence[Utterance], config: SpeechRunConfig, split: str
) -> EncodedUtterances:
    """Read, featurise (:func:`utterance_features`) and label ``utterances``.

    Raises:
      AudioError: an utterance longer than ``max_seconds`` or unreadable.
      TranscriptError: a transcript with characters outside the alphabet.
    """
    alphabet = CharacterAlphabet(config.alphabet)
    audios = [u.audio(config.mel.sample_rate) for u in utterances]
    longest = max((len(a) for a in audios), default=0) / config.mel.sample_rate
    if longest > config.max_seconds:
        raise AudioError(
            f"the {split} split holds an utterance of {longest:.1f} s, longer than "
            f"max_seconds={config.max_seconds:g}: raise --max-seconds or cut the audio"
        )
    features = utterance_features(audios, config.mel)
    labels = [alphabet.encode(u.text, f"the {split} transcript of {u.path}") for u in utterances]
    snr = np.array([u.snr_db for u in utterances], np.float64)
    return EncodedUtterances(features, labels, [u.text for u in utterances], snr)


@dataclasses.dataclass(frozen=True, eq=False)
class SpeechBatches:
    """``step -> batch``: utterances grouped by length into batches of ``batch_size``, each
    epoch a new order drawn from ``(seed, epoch)`` (:class:`jaxllm.data.buckets.BatchOrder`):
    a pure function of the step."""

    data: EncodedUtterances
    batch_size: int
    seed: int

    @functools.cached_property
    def order(self) -> BatchOrder:
        return BatchOrder(self.data.frames, self.batch_size, self.seed)

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        return self.data.rows(self.order(step))


def speech_loss(model: AcousticModel, spec_augment: SpecAugmentConfig | None = None) -> LossFn:
    """CTC loss of ``model`` on a batch of :meth:`EncodedUtterances.rows` as ``loss_fn(params,
    batch, key)``: while training (``key`` given), ``spec_augment`` masks the features first
    and dropout is on; ``key=None`` evaluates. Metrics: ``loss`` (per character, averaged over
    utterances) and ``tokens`` (utterances: every part of a split batch counts for what it
    holds)."""

    def loss_fn(params: Any, batch: dict, key: jax.Array | None) -> tuple[jax.Array, dict]:
        features, frame_mask, rngs = batch["features"], batch["frame_mask"], None
        if key is not None:
            mask_key, dropout_key = jax.random.split(key)
            rngs = {"dropout": dropout_key}
            if spec_augment is not None:
                features = spec_augment_features(mask_key, features, frame_mask, spec_augment)
        outputs = model.apply(
            {"params": params}, features, frame_mask, train=key is not None, rngs=rngs
        )
        logits, mask = cast(tuple[jax.Array, jax.Array], outputs)
        loss, _ = ctc_loss(logits, mask, batch["labels"], batch["label_mask"], blank_id=BLANK_ID)
        count = jax.numpy.float32(batch["labels"].shape[0])
        return loss, {"loss": loss, "tokens": count}

    return loss_fn


def feasible_only(data: EncodedUtterances, subsample: int) -> tuple[EncodedUtterances, int]:
    """The utterances CTC can align (encoder steps >= characters + repeated neighbours), and
    how many were dropped."""
    steps = np.asarray(encoder_lengths(jax.numpy.asarray(data.frames), subsample))
    labels, label_mask = pad_sequences(data.labels, 0)
    keep = np.flatnonzero(np.asarray(ctc_feasible(steps, labels, label_mask.sum(axis=1))))
    return data.subset(keep), len(data) - len(keep)


ModelOutputs = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def model_outputs(
    model: AcousticModel, params: Any, data: EncodedUtterances, batch_size: int = 32
) -> ModelOutputs:
    """The model's scores of ``data`` in batches of similar lengths: ``(index int[B], logits
    float32[B, T', vocab], steps int[B])`` for each, ``index`` the batch's utterances."""
    apply = jitted_apply(model.config)
    order = np.argsort(data.frames, kind="stable")
    outputs = []
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        rows = data.rows(index)
        logits, mask = apply(params, rows["features"], rows["frame_mask"])
        outputs.append((index, np.asarray(logits), np.asarray(mask).sum(axis=1)))
    return outputs


def decode_outputs(
    outputs: ModelOutputs, count: int, alphabet: CharacterAlphabet, beam_size: int,
    fusion: Fusion | None = None,
) -> list[str]:  # fmt: skip
    """The transcripts of the ``count`` utterances ``outputs`` scored, in their order: by best
    path (``beam_size=1``) or prefix beam search, fused with ``fusion`` if given."""
    out = [""] * count
    for index, logits, steps in outputs:
        texts = decode_logits(logits, steps, alphabet, beam_size, fusion)
        for i, text in zip(index, texts, strict=True):
            out[i] = text
    return out


def transcripts(
    model: AcousticModel, params: Any, data: EncodedUtterances, alphabet: CharacterAlphabet,
    *, beam_sizes: Sequence[int] = (1,), batch_size: int = 32,
) -> dict[int, list[str]]:  # fmt: skip
    """``{beam size: the model's transcript of every utterance of data, in order}``: by best
    path (``1``) or prefix beam search, each batch of similar lengths scored once for all."""
    outputs = model_outputs(model, params, data, batch_size)
    return {beam: decode_outputs(outputs, len(data), alphabet, beam) for beam in beam_sizes}


def _eval_fn(config: SpeechRunConfig, model: AcousticModel, valid: EncodedUtterances):
    """``params -> {"loss", "cer", "wer"}``: the CTC loss over every validation utterance and
    the greedy error rates over the first ``eval_utterances``."""
    eval_step = jax.jit(make_eval_step(speech_loss(model)))
    alphabet = CharacterAlphabet(config.alphabet)
    order = np.argsort(valid.frames, kind="stable")
    size = config.batch_size
    batches = [valid.rows(order[i : i + size]) for i in range(0, len(valid), size)]
    sample = valid.subset(range(min(config.eval_utterances or len(valid), len(valid))))

    def eval_fn(params: Any) -> dict[str, float]:
        metrics = evaluate(eval_step, params, batches)
        rates = error_rates(sample.texts, transcripts(model, params, sample, alphabet)[1])
        return {"loss": metrics["loss"], "cer": rates["cer"], "wer": rates["wer"]}

    return eval_fn


def resolve_config(config: SpeechRunConfig) -> SpeechRunConfig:
    """``config`` with the model's vocabulary (the alphabet and the blank) and the cosine
    decay over the run filled in."""
    size = CharacterAlphabet(config.alphabet).size
    model = dataclasses.replace(config.model, vocab_size=config.model.vocab_size or size)
    require(
        model.vocab_size == size,
        f"model.vocab_size={model.vocab_size} but the alphabet and blank make {size}: leave "
        "it at 0",
    )
    optimizer = config.optimizer.with_decay_until(config.num_steps)
    return dataclasses.replace(config, model=model, optimizer=optimizer)


def _fit(
    config: SpeechRunConfig, data: dict[str, EncodedUtterances], checkpointer: Checkpointer
) -> FitResult:
    """Train on ``data["train"]``, validating on ``data["valid"]``."""
    model = AcousticModel(config.model)
    optimizer = make_optimizer(config.optimizer)
    step = jit_train_step(make_train_step(speech_loss(model, config.spec_augment), optimizer))
    key = jax.random.key(config.seed)
    params = init_acoustic_params(model, jax.random.fold_in(key, 0))
    state = create_train_state(params, optimizer, jax.random.fold_in(key, 1))
    if config.resume:
        state, _ = checkpointer.restore(state, config.resume_step, set_aside=True)
    metadata = {"alphabet": config.alphabet, "data": data_fingerprint(data["train"])}
    with MetricsWriter(config.run_dir, keep_until=int(state.step)) as writer:
        return fit(
            state, step, SpeechBatches(data["train"], config.batch_size, config.seed),
            config.loop(), eval_fn=_eval_fn(config, model, data["valid"]), writer=writer,
            checkpointer=checkpointer, checkpoint_metadata=metadata,
            learning_rate_fn=learning_rate_schedule(config.optimizer),
        )  # fmt: skip


def data_fingerprint(data: EncodedUtterances) -> str:
    """A short hash of the transcripts and frame counts: a resumed run checks it."""
    digest = hashlib.sha256("\n".join(data.texts).encode())
    digest.update(np.ascontiguousarray(data.frames, np.int64).tobytes())
    return digest.hexdigest()[:16]


def _check_resumed_data(config: SpeechRunConfig, checkpointer: Checkpointer, seal: str) -> None:
    """On resume, the training utterances must be the ones the checkpoints were trained on."""
    if config.resume and checkpointer.newest_readable_metadata().get("data") != seal:
        raise CheckpointError(
            f"the training utterances differ from the ones the checkpoints in {config.run_dir} "
            "were trained on (the speech set or the features changed): resume with the "
            "original set, or start a new run with another --name"
        )


def feasible_split(
    data: EncodedUtterances, config: SpeechRunConfig, name: str
) -> EncodedUtterances:
    """``data`` without the utterances CTC cannot align (too few encoder steps for their
    transcripts: their loss would be ~1e5 and swamp the others'), saying how many went.

    Raises:
      ConfigError: none is left.
    """
    kept, dropped = feasible_only(data, config.model.subsample)
    if dropped:
        say(config.name, f"{name}: {dropped} utterances too short for their transcripts, left out")
    if not len(kept):
        raise ConfigError(
            f"no {name} utterance has enough frames for its transcript after sub-sampling by "
            f"{config.model.subsample}: lower --model.subsample"
        )
    return kept


def load_utterances(config: SpeechRunConfig) -> dict[str, list[Utterance]]:
    """The speech set ``config.data`` names: ``{"train", "valid", "test"}`` utterances."""
    return load_speech_set(config.data or None)


def train_speech_recognizer(
    config: SpeechRunConfig, utterances: dict[str, Sequence[Utterance]] | None = None
) -> SpeechRun:
    """Run the recipe; see the module docstring for what lands in the run folder.

    Args:
      config: the run.
      utterances: ``{"train", "valid", "test"}`` to use instead of ``config.data``.
    """
    require_jiwer()  # the error rates need it: say so before training
    if config.compilation_cache:
        use_compilation_cache(config.compilation_cache)
    config = prepare_run_dir(config, RESUMABLE, FILLED_AT_START)
    splits = utterances if utterances is not None else load_utterances(config)
    config = resolve_config(config)
    corpus = config.lm.corpus or (set_corpus(config.data) if utterances is None else None)
    counted = count_language_model(config, splits, corpus)  # a bad corpus fails before training
    data = {name: encode_utterances(splits[name], config, name) for name in SPLITS}
    for name in ("train", "valid"):  # the test split is scored whole, whatever it holds
        data[name] = feasible_split(data[name], config, name)
    if not config.resume:
        save_config(config, config.run_dir / "config.json")
    for name in SPLITS:
        frames = sum(len(f) for f in data[name].features)
        hours = frames * config.mel.hop_length / config.mel.sample_rate / 3600
        say(config.name, f"{name}: {len(data[name]):,} utterances, {hours:.2f} h")
    start = time.perf_counter()
    keep = config.loop().keep_checkpoints
    with Checkpointer(config.run_dir / "checkpoints", max_to_keep=keep,
                      cleanup_unfinished=True) as checkpointer:  # fmt: skip
        _check_resumed_data(config, checkpointer, data_fingerprint(data["train"]))
        result = _fit(config, data, checkpointer)
        best = None  # fit's record of the lowest loss, kept across resumes
        if config.select_by == "loss":
            best = best_checkpoint_step(checkpointer, result.best_step)
        steps = scored_steps(config, set(checkpointer.steps()), best)
        params = average_checkpoints(checkpointer, result.state, steps)
    seconds = time.perf_counter() - start
    transcriber = transcriber_for(config, params)
    run = SpeechRun(config, transcriber, steps, result.history, {"fit_seconds": round(seconds, 2)})
    _finish(run, data, splits["test"], counted)
    return run


@dataclasses.dataclass
class SpeechRun:
    """What a finished run produced: its transcriber (the checkpoints ``steps`` averaged, the
    best first) and scores."""

    config: SpeechRunConfig
    transcriber: Transcriber
    steps: list[int]
    history: list[dict]
    summary: dict[str, Any]

    @property
    def best_step(self) -> int:
        return self.steps[0]


def transcriber_for(config: SpeechRunConfig, params: Any) -> Transcriber:
    model = AcousticModel(config.model)
    alphabet = CharacterAlphabet(config.alphabet)
    return Transcriber(model, params, config.mel, alphabet, config.max_seconds)


def scores_by_noise(
    references: list[str], hypotheses: list[str], snr_db: np.ndarray
) -> dict[str, dict[str, float]]:
    """CER and WER of all utterances (``"all"``) and of each noise level (``"20 dB"``,
    ``"clean"``)."""
    groups = {"all": np.arange(len(references))}
    for level in sorted(set(snr_db.tolist()), reverse=True):
        name = "clean" if math.isinf(level) else f"{level:g} dB"
        groups[name] = np.flatnonzero(snr_db == level)
    out = {}
    for name, index in groups.items():
        rates = error_rates([references[i] for i in index], [hypotheses[i] for i in index])
        out[name] = {"cer": rates["cer"], "wer": rates["wer"], "utterances": int(len(index))}
    return out


CountedLM = tuple[CharNGramLM, dict[str, Any]]


def count_language_model(
    config: SpeechRunConfig, splits: Mapping[str, Sequence[Utterance]], corpus: str | None
) -> CountedLM | None:
    """The run's character language model and what it was counted on: ``corpus`` without
    any validation or test sentence (all of them, before utterances too short for their
    transcripts are left out); ``None`` for ``lm.order == 0`` or no corpus."""
    if config.lm.order == 0:
        return None
    if corpus is None:
        say(config.name, "no language model: the speech set names no corpus (give --lm.corpus)")
        return None
    held_out = [u.text for name in ("valid", "test") for u in splits[name]]
    return fit_speech_lm(config.lm, corpus, config.alphabet, held_out)


def tuned_fusion(
    config: SpeechRunConfig, transcriber: Transcriber, valid: EncodedUtterances,
    counted: CountedLM | None,
) -> tuple[Fusion | None, dict[str, Any]]:  # fmt: skip
    """The fusion of the counted model whose weight and bonus give the lowest CER on the
    first ``lm.tune_utterances`` validation utterances (``None``: no model, or none helps),
    and what ``summary.json`` says of the model."""
    if counted is None:
        return None, {}
    lm, about = counted
    sample = valid.subset(range(min(config.lm.tune_utterances or len(valid), len(valid))))
    outputs = model_outputs(transcriber.model, transcriber.params, sample)
    alphabet = transcriber.alphabet
    fusion, grid = tune_fusion(
        lambda f: decode_outputs(outputs, len(sample), alphabet, config.beam_size, f),
        sample.texts, CharLMScorer(lm, alphabet), config.lm,
    )  # fmt: skip
    chosen = {"weight": fusion.weight, "bonus": fusion.bonus} if fusion else {"weight": 0.0}
    say(config.name, f"language model of {about['characters']:,} characters; fusion {chosen}")
    return fusion, about | chosen | {"valid_perplexity": lm.perplexity(valid.texts), "grid": grid}


def _finish(
    run: SpeechRun, data: dict[str, EncodedUtterances], utterances: Sequence[Utterance],
    counted: CountedLM | None,
) -> None:  # fmt: skip
    """Tune the language model's fusion; score the best checkpoint on test by best path,
    beam search and beam search with the language model; write the run's outputs."""
    config, transcriber, test = run.config, run.transcriber, data["test"]
    fusion, run.summary["lm"] = tuned_fusion(config, transcriber, data["valid"], counted)
    transcriber.fusion = fusion
    outputs = model_outputs(transcriber.model, transcriber.params, test)
    beams: dict[str, tuple[int, Fusion | None]] = {
        "greedy": (1, None), "beam": (config.beam_size, None)
    }  # fmt: skip
    if fusion is not None:
        beams["beam_lm"] = (config.beam_size, fusion)
    decoded = {
        name: decode_outputs(outputs, len(test), transcriber.alphabet, beam, with_lm)
        for name, (beam, with_lm) in beams.items()
    }
    run.summary.update(
        parameters=count_params(transcriber.params), best_step=run.best_step,
        averaged_steps=run.steps, select_by=config.select_by, beam_size=config.beam_size,
        test_utterances=len(test), test_fingerprint=data_fingerprint(test),
    )  # fmt: skip
    for name, texts in decoded.items():
        run.summary[name] = scores_by_noise(test.texts, texts, test.snr_db)
    chosen_lm = counted[0] if counted is not None and fusion is not None else None
    _write_outputs(run, test, utterances, decoded, chosen_lm)
    cers = ", ".join(f"{run.summary[n]['all']['cer']:.4f} {n}" for n in decoded)
    wers = ", ".join(f"{run.summary[n]['all']['wer']:.4f} {n}" for n in decoded)
    say(config.name, f"test CER {cers}; WER {wers} (beam {config.beam_size})")


def _write_outputs(
    run: SpeechRun, test: EncodedUtterances, utterances: Sequence[Utterance],
    decoded: dict[str, list[str]], lm: CharNGramLM | None,
) -> None:  # fmt: skip
    """``char_lm.npz`` (removed when no model is fused), ``transcripts.tsv``, the plots and
    then ``summary.json``, each file replaced whole: a crash leaves the old summary."""
    from jaxllm.plots import plot_loss

    run_dir, names = run.config.run_dir, list(decoded)
    if lm is not None:
        lm.save(run_dir / LM_FILE)
    else:
        (run_dir / LM_FILE).unlink(missing_ok=True)
    rows = ["\t".join(["voice", "snr_db", "reference", *names])] + [
        "\t".join([u.voice, f"{u.snr_db:g}", ref, *(decoded[n][i] for n in names)])
        for i, (u, ref) in enumerate(zip(utterances, test.texts, strict=True))
    ]
    with replaced_atomically(run_dir / "transcripts.tsv") as out:
        out.write(("\n".join(rows) + "\n").encode("utf-8"))
    history = read_metrics(run_dir / "metrics.jsonl")
    plot_loss(history, run_dir / "loss.png", title=run.config.name,
              ylabel="CTC loss (per character)")  # fmt: skip
    plot_alignment(run.transcriber, test.features[0], test.texts[0], run_dir / "alignment.png")
    write_json_atomically(run.summary, run_dir / "summary.json", indent=2)


def plot_alignment(
    transcriber: Transcriber, features: np.ndarray, reference: str, path: str | Path
) -> Path:
    """One utterance's log-mel spectrogram above the model's per-step probability of each
    character (blank left out), with the best path's characters written where they fire."""
    from jaxllm.plots import save_figure, subplots

    t = transcriber
    mask = np.ones((1, len(features)), bool)
    logits, out_mask = jitted_apply(t.model.config)(
        t.params, features[None].astype(np.float32), mask
    )
    probs = np.asarray(jax.nn.softmax(logits[0], axis=-1))[: int(np.sum(out_mask))]
    fig, (top, bottom) = subplots(2, 1, figsize=(10, 5.5))
    top.imshow(np.asarray(features, np.float32).T, origin="lower", aspect="auto", cmap="magma")
    top.set_ylabel("mel band")
    top.set_title(f"reference: {reference}", fontsize=9)
    bottom.imshow(probs[:, 1:].T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1)
    labels = [repr(c)[1:-1] if c == " " else c for c in t.alphabet.characters]
    bottom.set_yticks(range(len(labels)), ["␣" if c == " " else c for c in labels], fontsize=6)
    best = probs.argmax(axis=-1)
    for step, symbol in enumerate(best):
        if symbol != BLANK_ID and (step == 0 or best[step - 1] != symbol):
            bottom.text(step, symbol - 1, t.alphabet.characters[symbol - 1], fontsize=7,
                        ha="center", va="center", color="tab:red")  # fmt: skip
    bottom.set_xlabel(f"encoder step ({t.model.config.subsample} frames of "
                      f"{1000 * t.mel.hop_length / t.mel.sample_rate:g} ms)")  # fmt: skip
    bottom.set_ylabel("P(character)")
    return save_figure(fig, path)


def load_transcriber(run_dir: str | Path, step: int | None = None) -> Transcriber:
    """A finished (or checkpointed) run's transcriber: checkpoint ``step``, or the one (or the
    average of those) ``summary.json`` scored (the newest when the run has not finished), with
    the run's language model fused as tuned for it (if it has one).

    Raises:
      FileNotFoundError: ``run_dir`` holds no run or no checkpoint.
    """
    run_dir = require_run(run_dir, "speech.py train")
    config = load_config(SpeechRunConfig, run_dir / "config.json")
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    steps = [step] if step is not None else summary.get("averaged_steps")
    if steps is None and "best_step" in summary:  # scored before checkpoints were averaged
        steps = [summary["best_step"]]
    transcriber = transcriber_for(config, _restore_params(config, run_dir, steps))
    transcriber.fusion = saved_fusion(
        run_dir, summary.get("lm", {}), lambda lm: CharLMScorer(lm, transcriber.alphabet)
    )
    return transcriber


def _restore_params(config: SpeechRunConfig, run_dir: Path, steps: list[int] | None) -> Any:
    """The parameters of the run in ``run_dir``: checkpoints ``steps`` averaged (``None``:
    the newest alone)."""
    model = AcousticModel(config.model)
    key = jax.random.key(config.seed)
    fresh = create_train_state(
        init_acoustic_params(model, key), make_optimizer(config.optimizer), key
    )
    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        if checkpointer.latest_step() is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to load")
        steps = steps or [cast(int, checkpointer.latest_step())]
        if checkpointer.read_metadata(steps[0]).get("alphabet") != config.alphabet:
            raise CheckpointError(f"the checkpoint in {run_dir} was trained on another alphabet")
        return average_checkpoints(checkpointer, fresh, steps)


def evaluate_speech_run(
    run_dir: str | Path, lm: SpeechLMConfig | None = None, beam_size: int | None = None,
    select_by: Literal["loss", "cer"] | None = None, average: int | None = None,
) -> SpeechRun:  # fmt: skip
    """Score a run's best checkpoint (by ``select_by``; default: the run's), or the average of
    its ``average`` best, on its test split again, with ``lm`` (default: the run's own
    settings) counted and tuned anew, and ``beam_size`` beams (default: the run's): rewrites
    ``summary.json``, ``transcripts.tsv``, ``char_lm.npz`` and the plots (the summary last, so
    a failure leaves the old one). How a run trained before its language model existed, or
    with another model, gets one; a run stopped before its summary is scored at its lowest
    logged validation loss.

    Raises:
      FileNotFoundError: ``run_dir`` holds no run or no checkpoint.
      SpeechSetError: the test split is not the one the run was scored on.
    """
    run_dir = require_run(run_dir, "speech.py train")
    config = load_config(SpeechRunConfig, run_dir / "config.json")
    config = dataclasses.replace(
        config, lm=lm or config.lm, beam_size=beam_size or config.beam_size,
        select_by=select_by or config.select_by, average=average or config.average,
        out_dir=str(run_dir.parent), name=run_dir.name,
    )  # fmt: skip
    summary_file = run_dir / "summary.json"
    old = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    splits = load_utterances(config)
    counted = count_language_model(config, splits, config.lm.corpus or set_corpus(config.data))
    data = {name: encode_utterances(splits[name], config, name) for name in ("valid", "test")}
    data["valid"] = feasible_split(data["valid"], config, "valid")
    scored_on, test_fingerprint = old.get("test_fingerprint"), data_fingerprint(data["test"])
    if scored_on not in (None, test_fingerprint):
        raise SpeechSetError(
            f"the test split of {config.data or 'the speech set'} is not the one {run_dir} was "
            "scored on (the set was made again with other settings): score it with that set, "
            "or train a new run"
        )
    chosen = old.get("best_step") if old.get("select_by", "loss") == config.select_by else None
    steps = scored_steps(config, _kept_steps(run_dir), chosen)
    transcriber = transcriber_for(config, _restore_params(config, run_dir, steps))
    history = read_metrics(run_dir / "metrics.jsonl")
    run = SpeechRun(config, transcriber, steps, history, {"fit_seconds": old.get("fit_seconds")})
    _finish(run, data, splits["test"], counted)
    return run


def _kept_steps(run_dir: Path) -> set[int]:
    """The steps of the checkpoints kept in ``run_dir``.

    Raises:
      FileNotFoundError: the run has no checkpoint.
    """
    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        kept = set(checkpointer.steps())
    if not kept:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to load")
    return kept


def scored_steps(config: SpeechRunConfig, kept: set[int], best: int | None = None) -> list[int]:
    """The checkpoints of ``config``'s run whose average is scored: ``best`` (``None``: the
    first of :func:`lowest_logged_steps`), then the next lowest by ``config.select_by``, up to
    ``config.average`` of them (fewer when fewer are kept)."""
    ranked = lowest_logged_steps(config.run_dir, kept, config.select_by)
    best = ranked[0] if best is None else best
    return [best, *(s for s in ranked if s != best)][: config.average]


def lowest_logged_steps(run_dir: Path, kept: set[int], select_by: str) -> list[int]:
    """The ``kept`` checkpoints' steps from the lowest validation ``select_by`` (``"loss"`` or
    ``"cer"``) logged in ``run_dir/metrics.jsonl`` up, the earlier first on a tie; those not
    logged follow, the newest first (so the newest kept one leads when none is)."""
    name = f"val_{select_by}"
    logged = {r["step"]: r[name] for r in read_metrics(run_dir / "metrics.jsonl") if name in r}

    def rank(step: int) -> tuple[bool, float, int]:
        return (False, logged[step], step) if step in logged else (True, 0.0, -step)

    return sorted(kept, key=rank)
