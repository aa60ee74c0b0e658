"""What privacy costs: a sentiment classifier trained by DP-SGD at several ε, beside the same
model trained without it.

    python experiments/private_classification.py                 # SST-2, ~5 min on 2 cores
    python experiments/private_classification.py --epsilons 1 8 --epochs 1
    python experiments/private_classification.py --dataset movie-sentences --data-dir DIR

Every run is the classification recipe (``jaxllm.recipes.classify``) with the same model
(a bag of word embeddings, 32 wide), batch and epochs:

- ``ε`` finite: DP-SGD, σ chosen by the accountant so the run's planned steps keep ε at
  δ = 0.1 / training examples; SGD with momentum 0.9 (Adam, which scales every coordinate's
  step to the same size, turns the noise on the embedding rows a batch does not touch into
  full-size steps).
- ``ε = ∞``: the same, clipping (norm ``--clip-norm``) and Poisson sampling without noise.
- ``non-private``: the recipe's ordinary training: shuffled, length-bucketed batches, no
  per-example clipping, its default optimizer (Adam at 1e-3, gradients clipped at norm 5;
  SGD at the private runs' learning rate diverges without per-example clipping).

Accuracy is on the task's test split (SST-2: GLUE's dev file), with the checkpoint the dev
split picked. Writes ``<out_dir>/<name>/`` per run, ``results.json`` and
``privacy_utility.png``; prints a table and a JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import tyro

from jaxllm.models.classifiers import ClassifierConfig
from jaxllm.optim import OptimizerConfig
from jaxllm.plots import save_line_plot, subplots
from jaxllm.privacy import PrivacySettings
from jaxllm.recipes.classify import ClassifyConfig, train_classifier
from jaxllm.recipes.errors import report_error
from jaxllm.runtime import configure_cpu


@dataclasses.dataclass(frozen=True)
class PrivacyStudyConfig:
    """The study's settings.

    Attributes:
      out_dir: where the runs and results go.
      dataset, data_dir: the sentiment task and the folder holding it (see
        :class:`jaxllm.recipes.ClassifyConfig`).
      epsilons: the targets (``inf``: clipping and sampling without noise).
      epochs, batch_size: every run's passes and (expected) batch size.
      learning_rate: SGD's (momentum 0.9).
      clip_norm: ``C``.
      embed_dim: the bag of embeddings' width.
      seed: the runs' seed.
    """

    out_dir: str = "runs/privacy"
    dataset: str = "sst2"
    data_dir: str = ""
    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0, math.inf)
    epochs: int = 2
    batch_size: int = 256
    learning_rate: float = 2.0
    clip_norm: float = 1.0
    embed_dim: int = 32
    seed: int = 0


def run_config(config: PrivacyStudyConfig, name: str, privacy: PrivacySettings) -> ClassifyConfig:
    private = OptimizerConfig(name="sgd", learning_rate=config.learning_rate, momentum=0.9)
    return ClassifyConfig(
        name=name,
        out_dir=config.out_dir,
        seed=config.seed,
        dataset=config.dataset,
        data_dir=config.data_dir,
        epochs=config.epochs,
        batch_size=config.batch_size,
        evals_per_epoch=2,
        patience=0,
        min_count=3,
        progress=False,
        privacy=privacy,
        model=ClassifierConfig(
            "bag",
            embed_dim=config.embed_dim,
            hidden_size=config.embed_dim,
            max_len=64,
            dropout=0.0,
            embedding_dropout=0.0,
        ),  # fmt: skip
        optimizer=private if privacy.enabled else ClassifyConfig().optimizer,
    )


def measure(config: PrivacyStudyConfig) -> list[dict[str, Any]]:
    """One row per run: its ε (reached), σ, accuracy and time."""
    settings = [
        (f"eps-{eps:g}", PrivacySettings(target_epsilon=eps, clip_norm=config.clip_norm))
        for eps in config.epsilons
    ]
    rows = []
    for name, privacy in [*settings, ("non-private", PrivacySettings())]:
        run = train_classifier(run_config(config, name, privacy))
        report = run.summary.get("privacy", {})
        rows.append(
            {
                "run": name,
                "target_epsilon": privacy.target_epsilon if privacy.enabled else None,
                "epsilon": float(report["epsilon"]) if report else None,  # "inf" in JSON
                "delta": report.get("delta"),
                "noise_multiplier": report.get("noise_multiplier"),
                "steps": report.get("steps", run.steps_run),
                "dev_accuracy": run.dev["accuracy"],
                "test_accuracy": run.test["accuracy"],
                "fit_seconds": run.summary["fit_seconds"],
            }
        )
    return rows


def report_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| run | ε reached (δ) | σ | steps | dev accuracy | test accuracy | fit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        privacy = "-" if r["epsilon"] is None else f"{r['epsilon']:.3g} ({r['delta']:.1e})"
        sigma = "-" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}"
        lines.append(
            f"| {r['run']} | {privacy} | {sigma} | {r['steps']} | "
            f"{100 * r['dev_accuracy']:.1f}% | {100 * r['test_accuracy']:.1f}% | "
            f"{r['fit_seconds']:.0f} s |"
        )
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Test accuracy against ε (log scale), the non-private run as a line."""
    fig, ax = subplots(figsize=(6, 4))
    private = [r for r in rows if r["epsilon"] is not None and math.isfinite(r["epsilon"])]
    ax.plot([r["epsilon"] for r in private], [100 * r["test_accuracy"] for r in private], "o-",
            label="DP-SGD")  # fmt: skip
    for r in rows:
        if r["epsilon"] is None or math.isinf(r["epsilon"]):
            label = "non-private" if r["epsilon"] is None else "clipping only (ε = ∞)"
            style = "--" if r["epsilon"] is None else ":"
            ax.axhline(100 * r["test_accuracy"], linestyle=style, color="grey", label=label)
    ax.set_xscale("log")
    return save_line_plot(
        fig, ax, path, xlabel="ε (δ = 0.1 / training examples)", ylabel="test accuracy (%)",
        title="What privacy costs: a bag-of-embeddings sentiment classifier",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    config = tyro.cli(PrivacyStudyConfig, args=argv, description=__doc__)
    try:
        rows = measure(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)
    out = Path(config.out_dir)
    plot(rows, out / "privacy_utility.png")
    result = {"config": dataclasses.asdict(config), "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(report_lines(rows)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
