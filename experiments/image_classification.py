"""Handwritten digits: traditional classifiers on raw pixels beside a CNN and a patch Transformer,
in one table.

    python experiments/image_classification.py                     # every method, seeds 0 1 2
    python experiments/image_classification.py --methods CNN ViT --seeds 0
    python experiments/image_classification.py --name digits-table --out-dir runs

The data are scikit-learn's 1,797 8×8 digits (:func:`jaxllm.data.load_digits`). Each seed draws
its own stratified split, 70% train / 10% dev / 20% test (359 images), and seeds the models.
Every method trains on the train split, uses dev to choose (the classic methods: ``C`` from
``--C``; the neural ones: the checkpoint of the lowest dev loss) and is scored on test once.

* Traditional, on the 64 pixels: L2 logistic regression (softmax) and a linear SVM (squared
  hinge, one-vs-rest), both jaxllm's own (:func:`jaxllm.classic.fit_linear`); scikit-learn's
  ``SVC`` with an RBF kernel (``gamma="scale"``) as the reference.
* Neural, through the image recipe (:mod:`jaxllm.recipes.image_classify`), with its on-device
  random shifts (±1 pixel) and rotations (±10°): the CNN and the ViT (2×2 patches) at the
  recipe's defaults. Run folders (with ``confusion.png`` and ``misclassified.png``) are under
  ``<out dir>/<name>/models/``.

The table gives test accuracy as mean ± standard deviation over seeds, the parameter count and
the mean seconds per fit (the C search included; the first fit in the process compiles).
Writes ``<out dir>/<name>/results.jsonl``, ``results.md`` (the table printed at the end) and
``accuracy.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxllm.classic import LinearConfig, fit_linear, predict
from jaxllm.data import LabelledImages, load_digits, stratified_split
from jaxllm.recipes.errors import report_error
from jaxllm.recipes.image_classify import ImageClassifyConfig, train_image_classifier
from jaxllm.runtime import configure_cpu

SPLIT = (0.7, 0.1, 0.2)
Splits = tuple[LabelledImages, LabelledImages, LabelledImages]
# fit_predict(splits, seed, args) -> (test predictions, parameter count)
Method = Callable[[Splits, int, argparse.Namespace], tuple[np.ndarray, int]]


def flat_pixels(data: LabelledImages) -> np.ndarray:
    """float32[n, height·width·channels]: each image's pixels as one row."""
    return data.images.reshape(len(data), -1)


def pixels(data: LabelledImages) -> jax.Array:
    """:func:`flat_pixels` on the device, as jaxllm's linear models take them."""
    return jnp.asarray(flat_pixels(data))


def linear(loss: str) -> Method:
    """jaxllm's linear model with ``loss``, its ``C`` the best of ``--C`` on dev."""

    def fit_predict(splits: Splits, seed: int, args: argparse.Namespace) -> tuple[np.ndarray, int]:
        train, dev, test = splits
        fitted = [
            fit_linear(pixels(train), train.labels, LinearConfig(loss=loss, C=C, max_iter=500))  # type: ignore[arg-type]
            for C in args.C
        ]
        dev_accuracy = [np.mean(np.asarray(predict(m, pixels(dev))) == dev.labels) for m in fitted]
        best = fitted[int(np.argmax(dev_accuracy))]
        parameters = sum(int(np.size(p)) for p in best.params.values())
        return np.asarray(predict(best, pixels(test))), parameters

    return fit_predict


def rbf_svc(splits: Splits, seed: int, args: argparse.Namespace) -> tuple[np.ndarray, int]:
    """scikit-learn's ``SVC(kernel="rbf")``, its ``C`` the best of ``--C`` on dev."""
    from sklearn.svm import SVC  # the reference: jaxllm[images] installs scikit-learn

    train, dev, test = splits
    fitted = [SVC(C=C).fit(flat_pixels(train), train.labels) for C in args.C]
    best = fitted[int(np.argmax([m.score(flat_pixels(dev), dev.labels) for m in fitted]))]
    parameters = best.support_vectors_.size + best.dual_coef_.size + best.intercept_.size
    return best.predict(flat_pixels(test)), int(parameters)


def neural(kind: str) -> Method:
    """The image recipe's ``kind`` model at its defaults, seeded by ``seed``."""

    def fit_predict(splits: Splits, seed: int, args: argparse.Namespace) -> tuple[np.ndarray, int]:
        config = ImageClassifyConfig(
            name=f"{kind}-seed{seed}",
            out_dir=str(Path(args.out_dir) / args.name / "models"),
            seed=seed,
            model_kind=kind,  # type: ignore[arg-type]
            progress=args.progress,
        )
        run = train_image_classifier(config, data=splits)
        return run.predict(splits[2].images), int(run.summary["parameters"])

    return fit_predict


NEURAL_KINDS = {"CNN": "cnn", "ViT (2x2 patches)": "vit"}
METHODS: dict[str, Method] = {
    "logistic regression (pixels)": linear("logistic"),
    "linear SVM (pixels)": linear("squared_hinge"),
    "SVC, RBF kernel (scikit-learn)": rbf_svc,
    **{method: neural(kind) for method, kind in NEURAL_KINDS.items()},
}


def score(method: str, seeds: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Fit and score ``method`` once per seed: mean and std of test accuracy, parameters, the
    mean seconds per fit."""
    digits = load_digits()
    accuracies, seconds, parameters = [], [], 0
    for seed in seeds:
        train, dev, test = stratified_split(digits, SPLIT, seed)
        splits = (train, dev, test)
        start = time.perf_counter()
        predicted, parameters = METHODS[method](splits, seed, args)
        seconds.append(time.perf_counter() - start)
        accuracies.append(float(np.mean(predicted == splits[2].labels)))
        print(f"[{method}] seed {seed}: test accuracy {accuracies[-1]:.4f} ({seconds[-1]:.1f} s)")
    return {
        "method": method,
        "seeds": len(seeds),
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "accuracies": accuracies,
        "parameters": parameters,
        "fit_s": float(np.mean(seconds)),
        "test_images": len(stratified_split(digits, SPLIT, seeds[0])[2]),
    }


def markdown_table(results: list[dict]) -> str:
    lines = [
        "| method | test accuracy | parameters | fit (s) |",
        "|---|---|---|---|",
    ]
    for r in results:
        spread = f" ± {100 * r['accuracy_std']:.2f}" if r["seeds"] > 1 else ""
        lines.append(
            f"| {r['method']} | {100 * r['accuracy']:.2f}{spread}% | {r['parameters']:,} | "
            f"{r['fit_s']:.1f} |"
        )
    return "\n".join(lines)


def bar_chart(results: list[dict], path: Path) -> None:
    from jaxllm.plots import save_figure, subplots

    fig, ax = subplots(figsize=(8, 3.8))
    names = [r["method"] for r in results]
    values = [100 * r["accuracy"] for r in results]
    errors = [100 * r["accuracy_std"] for r in results]
    ax.barh(names, values, xerr=errors, color="tab:blue", alpha=0.8)
    ax.set_xlim(min(values) - 3, 100)
    ax.invert_yaxis()
    ax.set_xlabel(f"test accuracy (%), mean ± std over {results[0]['seeds']} seeds")
    ax.set_title("8x8 handwritten digits (359 test images per seed)")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--name", default="digits-table")
    parser.add_argument("--out-dir", default="runs")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--C", nargs="+", type=float, default=[0.1, 1.0, 10.0])
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    if any(c <= 0 for c in args.C):
        parser.error(f"--C values must be > 0, got {args.C}")
    return args


def check_free(args: argparse.Namespace) -> None:
    """Refuse, before anything is fitted, a table whose model run folders already exist.

    Raises:
      FileExistsError: naming the folder and the fix.
    """
    models = Path(args.out_dir) / args.name / "models"
    for method in args.methods:
        kind = NEURAL_KINDS.get(method)
        taken = [models / f"{kind}-seed{s}" for s in args.seeds if kind]
        taken = [folder for folder in taken if folder.exists()]
        if taken:
            raise FileExistsError(
                f"{taken[0]} holds an earlier table's run; pass another --name, or remove {models}"
            )


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    args = parse_args(argv)
    folder = Path(args.out_dir) / args.name
    try:
        check_free(args)
        folder.mkdir(parents=True, exist_ok=True)
        results = [score(method, args.seeds, args) for method in args.methods]
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)  # one line and status 2 for the user's errors; bugs re-raise
    with open(folder / "results.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in results)
    table = markdown_table(results)
    (folder / "results.md").write_text(table + "\n")
    bar_chart(results, folder / "accuracy.png")
    print(table)
    print(f"--- {folder}: results.jsonl, results.md, accuracy.png ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
