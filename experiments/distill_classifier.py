"""Distil a sentiment classifier: a BiLSTM teacher, and a small bag of embeddings trained alone
and taught by it, over several seeds; quality, size, training time and inference speed.

    python experiments/distill_classifier.py --data-dir ../shared/data    # SST-2, ~5 min
    python experiments/distill_classifier.py --seeds 0 1 2 3 4 --distill.alpha 0.9

Every run is the classification recipe (``jaxllm.recipes.classify``) for ``--epochs`` epochs:

- **teacher**: a BiLSTM ``--teacher-width`` wide (seed 0);
- **student alone**: a bag of embeddings ``--student-width`` wide, one run per seed;
- **student distilled**: the same student and seeds with ``teacher=`` the teacher's run
  (``--distill.temperature``, ``--distill.alpha``).

Accuracy is on the task's test split (SST-2: GLUE's dev file) with the checkpoint the dev split
picked, as mean ± standard deviation over the seeds. Inference is the warm median time of the
best checkpoint's forward pass over the whole test split (features made beforehand), as
examples per second. Writes ``<out_dir>/``: a folder per run and ``results.json``; prints a
table and a JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax
import tyro

from jaxllm.compress import DistillConfig
from jaxllm.models import count_params
from jaxllm.models.classifiers import ClassifierConfig
from jaxllm.recipes.classify import ClassifierRun, ClassifyConfig, labelled_splits, train_classifier
from jaxllm.recipes.errors import report_error
from jaxllm.runtime import configure_cpu


@dataclasses.dataclass(frozen=True)
class DistillStudyConfig:
    """The study's settings.

    Attributes:
      out_dir: where the runs and results go.
      dataset, data_dir: the sentiment task and the folder holding it (see
        :class:`jaxllm.recipes.ClassifyConfig`).
      epochs: every run's passes over the training split.
      teacher_width: the BiLSTM teacher's embedding and hidden width.
      student_width: the bag-of-embeddings student's width.
      seeds: the students' seeds (one run of each kind per seed).
      distill: the distillation's temperature and soft-term weight.
      repeats: timed inference passes per model (the median is reported).
    """

    out_dir: str = "runs/distill-cls"
    dataset: str = "sst2"
    data_dir: str = ""
    epochs: int = 2
    teacher_width: int = 128
    student_width: int = 16
    seeds: tuple[int, ...] = (0, 1, 2)
    distill: DistillConfig = DistillConfig()
    repeats: int = 5


def run_config(config: DistillStudyConfig, name: str, seed: int, **kw: Any) -> ClassifyConfig:
    return ClassifyConfig(name=name, out_dir=config.out_dir, seed=seed, dataset=config.dataset,
                          data_dir=config.data_dir, epochs=config.epochs, progress=False,
                          distill=config.distill, **kw)  # fmt: skip


def models(config: DistillStudyConfig) -> tuple[ClassifierConfig, ClassifierConfig]:
    """The teacher's shape and the student's."""
    teacher = ClassifierConfig("bilstm", embed_dim=config.teacher_width,
                               hidden_size=config.teacher_width)  # fmt: skip
    student = ClassifierConfig("bag", embed_dim=config.student_width,
                               hidden_size=config.student_width)  # fmt: skip
    return teacher, student


def inference_per_second(run: ClassifierRun, texts: Any, repeats: int) -> float:
    """Test examples per second through the best checkpoint, warm (median of ``repeats``)."""
    encoded = run.featurize(texts)
    jax.block_until_ready(run.predict_fn(run.params, encoded))  # compiled and warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run.predict_fn(run.params, encoded))
        times.append(time.perf_counter() - start)
    return len(texts.labels) / statistics.median(times)


def measure(config: DistillStudyConfig) -> list[dict[str, Any]]:
    """One row per run: its kind, seed, parameters, accuracy, fit and inference speed."""
    teacher_model, student_model = models(config)
    probe = run_config(config, "probe", 0)
    data = labelled_splits(probe, None)  # the same splits for every run
    plans: list[tuple[str, int, dict[str, Any]]] = [("teacher", 0, {"model": teacher_model})]
    teacher_dir = str(Path(config.out_dir) / "teacher")
    for seed in config.seeds:
        plans.append(("student alone", seed, {"model": student_model}))
        plans.append(("student distilled", seed, {"model": student_model, "teacher": teacher_dir}))
    rows = []
    for kind, seed, settings in plans:
        name = kind.split()[-1] if kind == "teacher" else f"{kind.split()[-1]}-seed{seed}"
        run = train_classifier(run_config(config, name, seed, **settings), data)
        rows.append(
            {
                "kind": kind,
                "seed": seed,
                "parameters": count_params(run.params),
                "test_accuracy": run.test["accuracy"],
                "fit_seconds": run.summary["fit_seconds"],
                "examples_per_s": inference_per_second(run, data[2], config.repeats),
            }
        )
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per kind: means (and the accuracy's standard deviation) over its seeds."""
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    out = []
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        accuracy = [r["test_accuracy"] for r in mine]
        out.append(
            {
                "kind": kind,
                "runs": len(mine),
                "parameters": mine[0]["parameters"],
                "test_accuracy": statistics.mean(accuracy),
                "test_accuracy_std": statistics.stdev(accuracy) if len(mine) > 1 else 0.0,
                "fit_seconds": statistics.mean(r["fit_seconds"] for r in mine),
                "examples_per_s": statistics.median(r["examples_per_s"] for r in mine),
            }
        )
    return out


def report_lines(summary: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | runs | parameters | test accuracy | fit | inference (examples/s) |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['kind']} | {s['runs']} | {s['parameters']:,} | "
            f"{100 * s['test_accuracy']:.2f} ± {100 * s['test_accuracy_std']:.2f}% | "
            f"{s['fit_seconds']:.1f} s | {s['examples_per_s']:,.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    config = tyro.cli(DistillStudyConfig, args=argv, description=__doc__)
    try:
        rows = measure(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)
    summary = summarize(rows)
    result = {"config": dataclasses.asdict(config), "summary": summary, "rows": rows}
    (Path(config.out_dir) / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(report_lines(summary)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
