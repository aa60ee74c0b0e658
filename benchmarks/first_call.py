"""A first contact with jaxllm's classic models, as a notebook cell meets them: TF-IDF on
unigrams and bigrams, then a linear SVM or logistic regression, fitted and used once in a new
process, against scikit-learn's same pipeline.

    python benchmarks/first_call.py                  # ~1 min on 2 CPU cores (`make data` first)
    python benchmarks/first_call.py --repeats 5 --json-only

Task: :func:`jaxllm.data.load_shakespeare_speeches` (5,664 speeches of six tragedies, each
labelled by its play), split 80/20 by :func:`jaxllm.data.stratified_split` (seed 0). The
pipeline a user writes: a vectorizer fitted on the training speeches (``ngram_range=(1, 2)``,
~66k terms), a classifier fitted on their features, predictions for the test speeches:

- ``svm``: ``fit_linear(loss="squared_hinge", C=1)`` (Newton) against ``LinearSVC(C=1)``;
- ``logistic``: ``fit_linear(loss="logistic", C=10)`` (L-BFGS, softmax) against
  ``LogisticRegression(C=10)`` (lbfgs, multinomial).

Every side runs in its own new process, one process at a time; after its imports it times the
whole pipeline's first call in the process and then ``--repeats`` warm calls (median), with
three stages each: ``tfidf`` (``fit_transform`` on train), ``fit``, ``predict`` (transform the
test speeches and predict). jaxllm runs twice: with no persistent compilation cache (every
program traced and compiled), and with one (``jaxllm.runtime.use_compilation_cache`` on a
temporary folder that an untimed process filled first: what a user who opted in sees from
their second session on). Reported with the first calls: the seconds JAX spent tracing and
compiling (or loading) in them (:func:`harness.call_stages`); and from the uncached process,
the stages of the classifier's compiled programs (trace, compile, first run, steady run;
:func:`harness.compile_stages`).

Targets (issue "fast on small and first-time work"): the SVM pipeline warm <= 1.0x
scikit-learn's time, and its first call in a process <= 1.5x, which ``svm_meets_first_target``
checks with the persistent cache warm (the documented opt-in; the uncached first call is
reported beside it). Test accuracy must be within 0.5 points of scikit-learn's. A Markdown
table is printed, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

import numpy as np

from harness import (
    Timing,
    call_stages,
    cpu_snapshot,
    fit_stages,
    load_warning,
    predict_stages,
    print_report,
    run_in_fresh_process,
    run_record,
)

TARGET_WARM_RATIO = 1.0  # jaxllm's warm SVM pipeline / scikit-learn's
TARGET_FIRST_RATIO = 1.5  # jaxllm's first SVM pipeline in a process / scikit-learn's warm one
TARGET_ACCURACY_POINTS = 0.5
C_VALUES = {"svm": 1.0, "logistic": 10.0}
STAGES = ("tfidf", "fit", "predict")


def task_splits() -> tuple[Any, Any]:
    """``(train, test)`` :class:`jaxllm.data.LabelledTexts` of the speeches task."""
    from jaxllm.data import load_shakespeare_speeches, stratified_split

    train, test = stratified_split(load_shakespeare_speeches(), (0.8, 0.2), seed=0)
    return train, test


def linear_config(classifier: str) -> Any:
    """jaxllm's configuration of ``classifier`` (``"svm"`` or ``"logistic"``)."""
    from jaxllm.classic import LinearConfig

    loss = "squared_hinge" if classifier == "svm" else "logistic"
    return LinearConfig(loss=loss, C=C_VALUES[classifier])


def jaxllm_pipeline(classifier: str) -> Any:
    """``run(train, test) -> (seconds per stage, predictions)`` for jaxllm's pipeline."""
    import jax

    from jaxllm.classic import TfidfConfig, fit_linear, fit_transform, predict

    config = linear_config(classifier)

    def run(train, test) -> tuple[dict[str, float], np.ndarray]:
        start = time.perf_counter()
        vectorizer, X = fit_transform(train.texts, TfidfConfig(ngram_range=(1, 2)))
        jax.block_until_ready(X)
        vectorized = time.perf_counter()
        model = fit_linear(X, train.labels, config)
        jax.block_until_ready(model.params)
        fitted = time.perf_counter()
        predictions = np.asarray(predict(model, vectorizer.transform(test.texts)))
        done = time.perf_counter()
        return _stage_seconds(start, vectorized, fitted, done), predictions

    return run


def sklearn_pipeline(classifier: str) -> Any:
    """``run(train, test) -> (seconds per stage, predictions)`` for scikit-learn's pipeline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    C = C_VALUES[classifier]

    def run(train, test) -> tuple[dict[str, float], np.ndarray]:
        start = time.perf_counter()
        vectorizer = TfidfVectorizer(ngram_range=(1, 2))
        X = vectorizer.fit_transform(train.texts)
        vectorized = time.perf_counter()
        model = LinearSVC(C=C) if classifier == "svm" else LogisticRegression(C=C)
        model.fit(X, train.labels)
        fitted = time.perf_counter()
        predictions = np.asarray(model.predict(vectorizer.transform(test.texts)))
        done = time.perf_counter()
        return _stage_seconds(start, vectorized, fitted, done), predictions

    return run


def _stage_seconds(start: float, vectorized: float, fitted: float, done: float) -> dict:
    return {"tfidf": vectorized - start, "fit": fitted - vectorized, "predict": done - fitted,
            "total": done - start}  # fmt: skip


def side_figures(side: str, classifier: str, repeats: int, stages: bool) -> dict[str, Any]:
    """In a fresh process: the pipeline's first call and its warm median, per stage, with test
    accuracy; ``stages``: also the compiled fit's and predict's stages (jaxllm only)."""
    if side == "jaxllm-cached":
        from jaxllm.runtime import use_compilation_cache

        use_compilation_cache()  # JAX_COMPILATION_CACHE_DIR names the folder
    train, test = task_splits()
    pipeline = sklearn_pipeline if side == "sklearn" else jaxllm_pipeline
    run = pipeline(classifier)
    jax_stages, (first, predictions) = call_stages(run, train, test)
    warm = [run(train, test)[0] for _ in range(repeats)]
    figures = {
        "first": first,
        "first_jax": {stage: jax_stages[stage] for stage in ("trace_s", "compile_s")},
        "warm": {k: Timing.from_seconds([w[k] for w in warm]).median_s for k in first},
        "accuracy": float(np.mean(predictions == test.labels)),
        "train_docs": len(train),
        "test_docs": len(test),
    }
    if stages:
        figures["program_stages"] = program_stages(train, test, classifier)
    return figures


def program_stages(train, test, classifier: str) -> dict[str, dict[str, float]]:
    """The stages of ``fit_linear``'s and ``predict``'s compiled programs on the task, compiled
    again after the in-memory caches are cleared (as in a new process)."""
    import jax

    from jaxllm.classic import TfidfConfig, fit_linear, fit_vectorizer

    vectorizer = fit_vectorizer(train.texts, TfidfConfig(ngram_range=(1, 2)))
    X, X_test = vectorizer.transform(train.texts), vectorizer.transform(test.texts)
    model = fit_linear(X, train.labels, linear_config(classifier))
    jax.clear_caches()
    fit = fit_stages(X, train.labels, linear_config(classifier))
    return {"fit": fit, "predict": predict_stages(model, X_test)}


def run_benchmark(repeats: int) -> dict[str, Any]:
    """Every side of both classifiers, each in its own fresh process, one at a time."""
    start = cpu_snapshot()
    result: dict[str, Any] = {"benchmark": "first_call", "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="jaxllm-first-call-cache-") as cache:
        for classifier in C_VALUES:
            uncached = {"JAX_COMPILATION_CACHE_DIR": ""}
            cached = {"JAX_COMPILATION_CACHE_DIR": cache}
            sides = {
                "sklearn": run_in_fresh_process(
                    side_figures, "sklearn", classifier, repeats, False
                ),
                "jaxllm": run_in_fresh_process(
                    side_figures, "jaxllm", classifier, repeats, True, environment=uncached
                ),  # fmt: skip
            }
            run_in_fresh_process(
                side_figures, "jaxllm-cached", classifier, 1, False, environment=cached
            )  # fmt: skip  (fills the cache, untimed)
            sides["cached"] = run_in_fresh_process(
                side_figures, "jaxllm-cached", classifier, repeats, False, environment=cached
            )
            result.update(classifier_figures(classifier, sides))
    result["svm_meets_warm_target"] = result["svm_warm_ratio"] <= TARGET_WARM_RATIO
    result["svm_meets_first_target"] = result["svm_cached_first_ratio"] <= TARGET_FIRST_RATIO
    result.update(run_record(start))
    return result


def classifier_figures(name: str, sides: dict[str, dict]) -> dict[str, Any]:
    """One classifier's flat figures, keyed ``{name}_...``; ratios are against scikit-learn's
    warm pipeline."""
    theirs = sides["sklearn"]["warm"]["total"]
    points = 100 * (sides["jaxllm"]["accuracy"] - sides["sklearn"]["accuracy"])
    figures: dict[str, Any] = {
        f"{name}_docs": (sides["sklearn"]["train_docs"], sides["sklearn"]["test_docs"]),
        f"{name}_accuracy": sides["jaxllm"]["accuracy"],
        f"sklearn_{name}_accuracy": sides["sklearn"]["accuracy"],
        f"{name}_accuracy_diff_points": points,
        f"{name}_meets_accuracy_target": abs(points) <= TARGET_ACCURACY_POINTS,
        f"{name}_warm_ratio": sides["jaxllm"]["warm"]["total"] / theirs,
        f"{name}_first_ratio": sides["jaxllm"]["first"]["total"] / theirs,
        f"{name}_cached_first_ratio": sides["cached"]["first"]["total"] / theirs,
    }
    for side, prefix in (("sklearn", "sklearn_"), ("jaxllm", ""), ("cached", "cached_")):
        for when in ("first", "warm"):
            for stage, seconds in sides[side][when].items():
                figures[f"{prefix}{name}_{when}_{stage}_s"] = seconds
        for stage, seconds in sides[side]["first_jax"].items():
            figures[f"{prefix}{name}_first_{stage}"] = seconds
    for program, stages in sides["jaxllm"]["program_stages"].items():
        for stage, seconds in stages.items():
            figures[f"{name}_{program}_program_{stage}"] = seconds
    return figures


def report_lines(r: dict) -> list[str]:
    """The Markdown table (and notes) printed above the JSON line."""
    lines = [
        "first_call: jaxllm vs scikit-learn, TF-IDF (1,2)-grams + classifier, Shakespeare's "
        f"speeches by play; seconds, first call in a new process and median of {r['repeats']} "
        "warm calls",
        "",
        "| pipeline | side | tfidf | fit | predict | total | vs sklearn warm | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in C_VALUES:
        lines += _pipeline_rows(r, name)
    lines += [
        "",
        "| compiled program, or a whole first call | trace | compile (or cache load) | first run "
        "| steady |",
        "|---|---|---|---|---|",
    ]
    for name in C_VALUES:
        for label, prefix in (("no cache", ""), ("cache warm", "cached_")):
            trace, compile_ = (r[f"{prefix}{name}_first_{s}_s"] for s in ("trace", "compile"))
            lines.append(f"| {name} pipeline's first call, {label} | {trace:.3f} | {compile_:.3f} "
                         "| | |")  # fmt: skip
    for name in C_VALUES:
        for program in ("fit", "predict"):
            stages = ("trace", "compile", "first_run", "steady")
            cells = " | ".join(f"{r[f'{name}_{program}_program_{s}_s']:.3f}" for s in stages)
            lines.append(f"| {name} {program} | {cells} |")
    warning = load_warning(r["background_cpu_load"], r["machine"]["cpu_count"])
    return lines + ([warning] if warning else [])


# (label, key prefix, ratio key of its first call, that call's target), per jaxllm side
SIDES = (
    ("scikit-learn", "sklearn_", None, None),
    ("jaxllm", "", "first_ratio", None),
    ("jaxllm, cache warm", "cached_", "cached_first_ratio", TARGET_FIRST_RATIO),
)


def _pipeline_rows(r: dict, name: str) -> list[str]:
    """One classifier's rows of :func:`report_lines`' table, and its accuracy row."""
    rows = []
    for label, prefix, first_ratio, first_target in SIDES:
        for when in ("first", "warm"):
            seconds = [r[f"{prefix}{name}_{when}_{stage}_s"] for stage in (*STAGES, "total")]
            ratio, target = (
                (first_ratio, first_target)
                if when == "first"
                else ("warm_ratio", TARGET_WARM_RATIO)
            )
            versus = f"{r[f'{name}_{ratio}']:.2f}x" if first_ratio else ""
            goal = f"<= {target}x" if first_ratio and target and name == "svm" else ""
            cells = " | ".join(f"{value:.3f}" for value in seconds)
            rows.append(f"| {name} | {label}, {when} | {cells} | {versus} | {goal} |")
    rows.append(
        f"| {name} | test accuracy | jaxllm {100 * r[f'{name}_accuracy']:.2f}% | scikit-learn "
        f"{100 * r[f'sklearn_{name}_accuracy']:.2f}% | {r[f'{name}_accuracy_diff_points']:+.2f} "
        f"points | | | within ±{TARGET_ACCURACY_POINTS} |"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm calls per process")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        task_splits()
    except ModuleNotFoundError as err:
        print(f"{err} (the task's speeches come from it)", file=sys.stderr)
        return 2
    result = run_benchmark(args.repeats)
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
