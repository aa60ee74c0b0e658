"""jaxllm's classic text models (TF-IDF, logistic regression, linear SVM) against scikit-learn's.

    python benchmarks/classic.py                          # ~1-2 min on 2 CPU cores
    python benchmarks/classic.py --tfidf-mb 10 --repeats 5
    python benchmarks/classic.py --skip-tfidf --C 0.5 --json-only
    python benchmarks/classic.py --sst2-dir ~/data/sst2   # holds train.tsv and dev.tsv

Text: the GLUE SST-2 sentences (``train.tsv`` and ``dev.tsv`` of ``--sst2-dir``; by default
``$JAXLLM_DATA_DIR/sst2`` if it exists, else ``../shared/data/sst2`` beside the checkout).

1. TF-IDF ``fit_transform`` with default settings on ``--tfidf-mb`` megabytes of text (50 by
   default): the training sentences repeated, each copy ``r`` with the suffix token ``copy<r>``
   (so the vocabulary grows a little with every copy), until the UTF-8 text reaches the size.
   ``jaxllm.classic.fit_transform`` runs once untimed first, so JAX's one-time start-up
   (backend, first transfers) is not counted; then each side runs ``--repeats`` times on the
   same documents, alternating, and the median seconds are compared: speed-up = scikit-learn's
   time / jaxllm's (target: >= 1.5). The outputs must be the same: an identical vocabulary and
   values within 1e-6 (jaxllm's float32 against scikit-learn's float64), else the script exits 1.
2. Classifiers on SST-2 train -> dev, on TF-IDF features of a vectorizer fitted on train:
   ``fit_linear(loss="logistic")`` against ``LogisticRegression`` (lbfgs, its default tol and
   max_iter) and ``fit_linear(loss="squared_hinge", max_iter=1000)`` against ``LinearSVC``,
   both at ``--C``. Reported: dev accuracy and macro-F1 (``jaxllm.metrics`` for both sides),
   the accuracy difference in points (target: within 0.5), and fit times: jaxllm's first call
   (trace + compile + fit; a cache load if JAX's persistent compilation cache is enabled and
   warm), the same call's stages (trace, compile, first run, steady run of the compiled
   solve, measured again after the in-memory caches are cleared), a fit at another ``C``
   right after the first (one program serves every ``C``), jaxllm's warm median, and
   scikit-learn's median. The warm ratio jaxllm / scikit-learn (target for the logistic pair:
   <= 1.0) and the cold one. jaxllm's features are a float32 ``BCOO`` matrix,
   scikit-learn's a float64 CSR matrix. The SVM is solved by Newton's method with conjugate
   gradients (``fit_linear``'s default for the squared hinge).

A Markdown table of every figure and the target it meets is printed; the last line printed is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import scipy.sparse
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from harness import (
    Timing,
    cpu_snapshot,
    fit_stages,
    load_warning,
    print_report,
    run_record,
    timed_call,
)
from jaxllm import metrics
from jaxllm.classic import (
    LinearConfig,
    TfidfConfig,
    fit_linear,
    fit_transform,
    fit_vectorizer,
    predict,
)
from jaxllm.data import read_sst2_tsv
from jaxllm.runtime import configure_cpu

# The benchmark data set beside a checkout (../shared/data/sst2 from the repository root).
DEFAULT_SST2_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
TARGET_TFIDF_SPEEDUP = 1.5  # scikit-learn's time / jaxllm's
TARGET_ACCURACY_POINTS = 0.5  # |jaxllm - scikit-learn| dev accuracy, in points
TARGET_FIT_RATIO = 1.0  # jaxllm's warm logistic fit / LogisticRegression's
MAX_ABS_DIFF = 1e-6  # TF-IDF values, float32 against float64

# (name, jaxllm's config at C, scikit-learn's estimator at C)
CLASSIFIERS = (
    ("logistic", lambda C: LinearConfig(loss="logistic", C=C), lambda C: LogisticRegression(C=C)),
    (
        "svm",
        lambda C: LinearConfig(loss="squared_hinge", C=C, max_iter=1000),
        lambda C: LinearSVC(C=C, random_state=0),
    ),
)
SKLEARN_NAMES = {"logistic": "LogisticRegression", "svm": "LinearSVC"}


def default_sst2_dir() -> Path:
    """``$JAXLLM_DATA_DIR/sst2`` if it holds SST-2, else the shared data folder beside the
    checkout."""
    data_dir = os.environ.get("JAXLLM_DATA_DIR")
    if data_dir and (Path(data_dir).expanduser() / "sst2" / "train.tsv").is_file():
        return Path(data_dir).expanduser() / "sst2"
    return DEFAULT_SST2_DIR


def repeated_corpus(texts: list[str], megabytes: float) -> tuple[list[str], int, int]:
    """``texts`` repeated as ``f"{text} copy{r}"`` until their UTF-8 size reaches ``megabytes``
    (10^6 bytes); the last copy may be partial. Returns ``(docs, bytes, copies started)``."""
    target = megabytes * 1e6
    docs: list[str] = []
    size, copy = 0, 0
    while size < target:
        for text in texts:
            doc = f"{text} copy{copy}"
            docs.append(doc)
            size += len(doc.encode("utf-8"))
            if size >= target:
                break
        copy += 1
    return docs, size, copy


def as_csr(X) -> scipy.sparse.csr_matrix:
    """A ``BCOO`` (indices int32[nnz, 2]) as a float64 scipy CSR matrix."""
    indices = np.asarray(X.indices)
    values = np.asarray(X.data, np.float64)
    return scipy.sparse.csr_matrix((values, (indices[:, 0], indices[:, 1])), shape=X.shape)


def compare_tfidf(terms, X, sk_terms, Y) -> dict[str, Any]:
    """Vocabulary equality and the largest absolute difference of the two matrices' values
    (``None`` where the shapes differ, so no element-wise comparison is possible)."""
    same_vocab = tuple(terms) == tuple(sk_terms)
    ours = as_csr(X)
    diff = float(abs(ours - Y).max()) if ours.shape == Y.shape else None
    return {
        "tfidf_vocab_size": len(terms),
        "sklearn_tfidf_vocab_size": len(sk_terms),
        "tfidf_same_vocab": same_vocab,
        "tfidf_nnz": int(ours.nnz),
        "sklearn_tfidf_nnz": int(Y.nnz),
        "tfidf_max_abs_diff": diff,
        "tfidf_parity_ok": bool(same_vocab and diff is not None and diff <= MAX_ABS_DIFF),
    }


def tfidf_benchmark(texts: list[str], megabytes: float, repeats: int) -> dict[str, Any]:
    """Time both ``fit_transform``s on the repeated corpus and compare their outputs."""
    docs, size, copies = repeated_corpus(texts, megabytes)
    config = TfidfConfig()
    jax.block_until_ready(fit_transform(docs, config))  # untimed: JAX's start-up
    ours, theirs = [], []
    for _ in range(repeats):  # alternating, so a change in background load hits both sides
        seconds, (vectorizer, X) = timed_call(fit_transform, docs, config)
        ours.append(seconds)
        sk_vectorizer = TfidfVectorizer()
        seconds, Y = timed_call(sk_vectorizer.fit_transform, docs)
        theirs.append(seconds)
    ours, theirs = Timing.from_seconds(ours), Timing.from_seconds(theirs)
    return {
        "tfidf_mb": megabytes,
        "tfidf_bytes": size,
        "tfidf_docs": len(docs),
        "tfidf_copies": copies,
        "tfidf_s": ours.median_s,
        "tfidf_min_s": ours.min_s,
        "sklearn_tfidf_s": theirs.median_s,
        "sklearn_tfidf_min_s": theirs.min_s,
        "tfidf_speedup": theirs.median_s / ours.median_s,
        "tfidf_target_speedup": TARGET_TFIDF_SPEEDUP,
        "tfidf_meets_target": theirs.median_s / ours.median_s >= TARGET_TFIDF_SPEEDUP,
        **compare_tfidf(vectorizer.terms, X, sk_vectorizer.get_feature_names_out(), Y),
    }


def dev_scores(y_true: np.ndarray, y_pred) -> tuple[float, float]:
    """``(accuracy, macro-F1)`` by ``jaxllm.metrics``."""
    y_true, y_pred = np.asarray(y_true, np.int32), np.asarray(y_pred, np.int32)
    return (
        float(metrics.accuracy(y_true, y_pred)),
        float(metrics.f1_score(y_true, y_pred, average="macro", num_classes=2)),
    )


def linear_benchmark(train, dev, C: float, repeats: int) -> dict[str, Any]:
    """Fit each classifier pair on train's TF-IDF features, time the fits, score on dev."""
    vectorizer = fit_vectorizer(train.texts, TfidfConfig())
    X_train, X_dev = vectorizer.transform(train.texts), vectorizer.transform(dev.texts)
    sk_vectorizer = TfidfVectorizer()
    S_train = sk_vectorizer.fit_transform(train.texts)
    S_dev = sk_vectorizer.transform(dev.texts)
    y_train = np.asarray(train.labels)
    result: dict[str, Any] = {
        "C": C,
        "train_docs": len(train),
        "dev_docs": len(dev),
        "linear_features": vectorizer.num_features,
        "sklearn_linear_features": len(sk_vectorizer.get_feature_names_out()),
    }
    for name, our_config, their_estimator in CLASSIFIERS:
        config = our_config(C)
        first_s, model = timed_call(fit_linear, X_train, y_train, config)
        other_c_s, _ = timed_call(fit_linear, X_train, y_train, our_config(2 * C))
        ours, theirs, sk_warnings = [], [], []
        for _ in range(repeats):
            seconds, model = timed_call(fit_linear, X_train, y_train, config)
            ours.append(seconds)
            estimator = their_estimator(C)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                seconds, estimator = timed_call(estimator.fit, S_train, y_train)
            theirs.append(seconds)
            sk_warnings += [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        ours, theirs = Timing.from_seconds(ours), Timing.from_seconds(theirs)
        jax.clear_caches()  # so the stages below compile again, as a first call does
        stages = fit_stages(X_train, y_train, config)
        scores = (dev_scores(dev.labels, predict(model, X_dev)),
                  dev_scores(dev.labels, estimator.predict(S_dev)))  # fmt: skip
        times = {"first": first_s, "other_c": other_c_s, "ours": ours, "theirs": theirs}
        result.update(classifier_figures(name, config, model, estimator, scores, times, stages))
        result[f"sklearn_{name}_converged"] = not sk_warnings
    result["logistic_meets_fit_target"] = result["logistic_fit_ratio"] <= TARGET_FIT_RATIO
    result["target_accuracy_points"] = TARGET_ACCURACY_POINTS
    result["target_fit_ratio"] = TARGET_FIT_RATIO
    return result


def classifier_figures(
    name: str, config: LinearConfig, model, estimator, scores: tuple, times: dict, stages: dict
) -> dict[str, Any]:
    """One classifier pair's figures, keyed by ``name``."""
    (accuracy, macro_f1), (sk_accuracy, sk_macro_f1) = scores
    first_s, other_c_s, ours, theirs = (times[k] for k in ("first", "other_c", "ours", "theirs"))
    diff_points = 100 * (accuracy - sk_accuracy)
    return {
        f"{name}_accuracy": accuracy,
        f"sklearn_{name}_accuracy": sk_accuracy,
        f"{name}_accuracy_diff_points": diff_points,
        f"{name}_meets_accuracy_target": abs(diff_points) <= TARGET_ACCURACY_POINTS,
        f"{name}_macro_f1": macro_f1,
        f"sklearn_{name}_macro_f1": sk_macro_f1,
        f"{name}_first_fit_s": first_s,
        f"{name}_other_c_fit_s": other_c_s,
        **{f"{name}_fit_{stage}": seconds for stage, seconds in stages.items()},
        f"{name}_solver": config.chosen_solver,
        f"{name}_fit_s": ours.median_s,
        f"{name}_fit_min_s": ours.min_s,
        f"sklearn_{name}_fit_s": theirs.median_s,
        f"sklearn_{name}_fit_min_s": theirs.min_s,
        f"{name}_fit_ratio": ours.median_s / theirs.median_s,
        f"{name}_cold_fit_ratio": first_s / theirs.median_s,
        f"{name}_iterations": model.iterations,
        f"{name}_max_iter": config.max_iter,
        f"sklearn_{name}_iterations": int(np.max(estimator.n_iter_)),
    }


def run_benchmark(
    sst2_dir: Path,
    *,
    tfidf_mb: float = 50.0,
    repeats: int = 3,
    C: float = 1.0,
    tfidf: bool = True,
    linear: bool = True,
) -> dict[str, Any]:
    """Every figure as one flat dict (a skipped part's keys are absent)."""
    start = cpu_snapshot()
    train = read_sst2_tsv(sst2_dir / "train.tsv")
    result: dict[str, Any] = {
        "benchmark": "classic",
        "sst2_dir": str(sst2_dir),
        "repeats": repeats,
        "tfidf_skipped": not tfidf,
        "linear_skipped": not linear,
    }
    if tfidf:
        result.update(tfidf_benchmark(train.texts, tfidf_mb, repeats))
    if linear:
        result.update(linear_benchmark(train, read_sst2_tsv(sst2_dir / "dev.tsv"), C, repeats))
    result.update(
        {
            "parity_ok": result.get("tfidf_parity_ok", True),
            "sklearn_version": sklearn.__version__,
            "jax_compilation_cache_dir": jax.config.values["jax_compilation_cache_dir"],
            **run_record(start),
        }
    )
    return result


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def report_lines(r: dict) -> list[str]:
    """The Markdown table (and notes) printed above the JSON line."""
    lines = [
        f"classic: jaxllm vs scikit-learn {r['sklearn_version']}, SST-2 from {r['sst2_dir']}, "
        f"median of {r['repeats']} runs per side",
        "",
        "| figure | jaxllm | scikit-learn | jaxllm vs sklearn | target | met |",
        "|---|---|---|---|---|---|",
    ]
    if not r["tfidf_skipped"]:
        lines += _tfidf_rows(r)
    if not r["linear_skipped"]:
        for name, _, _ in CLASSIFIERS:
            lines += _classifier_rows(r, name)
    lines.append("")
    lines += _notes(r)
    warning = load_warning(r["background_cpu_load"], r["machine"]["cpu_count"])
    return lines + ([warning] if warning else [])


def _tfidf_rows(r: dict) -> list[str]:
    """The TF-IDF rows of :func:`report_lines`' table: speed, vocabulary, values."""
    diff = r["tfidf_max_abs_diff"]
    return [
        f"| TF-IDF fit_transform, {r['tfidf_bytes'] / 1e6:.1f} MB, "
        f"{r['tfidf_docs']:,} docs (s) "
        f"| {r['tfidf_s']:.2f} | {r['sklearn_tfidf_s']:.2f} "
        f"| speed-up {r['tfidf_speedup']:.2f}x "
        f"| >= {r['tfidf_target_speedup']}x | {_met(r['tfidf_meets_target'])} |",
        f"| TF-IDF vocabulary (terms) | {r['tfidf_vocab_size']:,} "
        f"| {r['sklearn_tfidf_vocab_size']:,} "
        f"| {'identical' if r['tfidf_same_vocab'] else 'DIFFERENT'} | identical "
        f"| {_met(r['tfidf_same_vocab'])} |",
        f"| TF-IDF values: max abs difference | nnz {r['tfidf_nnz']:,} "
        f"| nnz {r['sklearn_tfidf_nnz']:,} "
        f"| {'n/a' if diff is None else f'{diff:.2e}'} | <= {MAX_ABS_DIFF:g} "
        f"| {_met(diff is not None and diff <= MAX_ABS_DIFF)} |",
    ]


def _classifier_rows(r: dict, name: str) -> list[str]:
    """The rows of :func:`report_lines`' table for classifier ``name``."""
    ours = "logistic" if name == "logistic" else "squared_hinge"
    label = f"{ours} ({r[f'{name}_solver']}) vs {SKLEARN_NAMES[name]}"
    fit_target = f"<= {r['target_fit_ratio']}" if name == "logistic" else "—"
    fit_met = r["logistic_meets_fit_target"] if name == "logistic" else None
    return [
        f"| {label}: dev accuracy | {100 * r[f'{name}_accuracy']:.2f}% "
        f"| {100 * r[f'sklearn_{name}_accuracy']:.2f}% "
        f"| {r[f'{name}_accuracy_diff_points']:+.2f} points "
        f"| within ±{r['target_accuracy_points']} "
        f"| {_met(r[f'{name}_meets_accuracy_target'])} |",
        f"| {label}: dev macro-F1 | {100 * r[f'{name}_macro_f1']:.2f}% "
        f"| {100 * r[f'sklearn_{name}_macro_f1']:.2f}% "
        f"| {100 * (r[f'{name}_macro_f1'] - r[f'sklearn_{name}_macro_f1']):+.2f} points "
        "| — | — |",
        f"| {label}: fit, warm (s) | {r[f'{name}_fit_s']:.3f} "
        f"| {r[f'sklearn_{name}_fit_s']:.3f} "
        f"| {r[f'{name}_fit_ratio']:.2f}x the time | {fit_target} | {_met(fit_met)} |",
        f"| {label}: fit, first call (s) | {r[f'{name}_first_fit_s']:.3f} "
        f"| {r[f'sklearn_{name}_fit_s']:.3f} "
        f"| {r[f'{name}_cold_fit_ratio']:.2f}x the time | — | — |",
        f"| {label}: first call's stages (s) | trace {r[f'{name}_fit_trace_s']:.3f}, compile "
        f"{r[f'{name}_fit_compile_s']:.3f}, first run {r[f'{name}_fit_first_run_s']:.3f}, "
        f"steady {r[f'{name}_fit_steady_s']:.3f} | | | | |",
        f"| {label}: fit at another C, right after (s) | {r[f'{name}_other_c_fit_s']:.3f} "
        "| | no new program | | |",
        f"| {label}: iterations | {r[f'{name}_iterations']} (max {r[f'{name}_max_iter']}) "
        f"| {r[f'sklearn_{name}_iterations']}"
        f"{'' if r[f'sklearn_{name}_converged'] else ' (not converged)'} | | | |",
    ]


def _notes(r: dict) -> list[str]:
    """What the table's figures include, below it."""
    lines: list[str] = []
    if not r["tfidf_skipped"]:
        lines.append(
            "jaxllm's fit_transform ran once untimed first, so JAX's one-time start-up is "
            "not counted; the sides then alternated on the same documents."
        )
    if not r["linear_skipped"]:
        cache = r["jax_compilation_cache_dir"]
        lines.append(
            f"Classifiers: {r['train_docs']:,} train -> {r['dev_docs']:,} dev sentences, "
            f"{r['linear_features']:,} TF-IDF features, C={r['C']}; jaxllm's features are "
            "float32 BCOO, scikit-learn's float64 CSR. jaxllm's first call includes tracing "
            "and compilation"
            + (
                f" (persistent cache {cache}: a load if warm)."
                if cache
                else " (no persistent compilation cache)."
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tfidf-mb", type=float, default=50.0, help="megabytes of text for TF-IDF")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side")
    parser.add_argument(
        "--C", type=float, default=1.0, help="inverse regularisation of both classifiers"
    )
    parser.add_argument(
        "--sst2-dir",
        type=Path,
        default=None,
        help=f"folder with train.tsv and dev.tsv (default: $JAXLLM_DATA_DIR/sst2, "
        f"else {DEFAULT_SST2_DIR})",
    )
    parser.add_argument("--skip-tfidf", action="store_true", help="skip the TF-IDF comparison")
    parser.add_argument("--skip-linear", action="store_true", help="skip the classifier comparison")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.tfidf_mb <= 0 or args.C <= 0:
        parser.error("--repeats, --tfidf-mb and --C must be positive")

    sst2_dir = (args.sst2_dir or default_sst2_dir()).expanduser()
    needed = [sst2_dir / "train.tsv"] + ([] if args.skip_linear else [sst2_dir / "dev.tsv"])
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        print(
            f"SST-2 data not found: {', '.join(missing)} missing. Pass --sst2-dir (a folder with "
            "GLUE SST-2's train.tsv and dev.tsv) or set JAXLLM_DATA_DIR to a folder holding sst2/.",
            file=sys.stderr,
        )
        return 2

    result = run_benchmark(
        sst2_dir,
        tfidf_mb=args.tfidf_mb,
        repeats=args.repeats,
        C=args.C,
        tfidf=not args.skip_tfidf,
        linear=not args.skip_linear,
    )
    print_report(report_lines(result), result, json_only=args.json_only)
    if not result["parity_ok"]:
        print(
            "TF-IDF outputs differ from scikit-learn's: the vocabulary differs or values are more "
            f"than {MAX_ABS_DIFF:g} apart",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
