"""Make a trained GPT smaller: distil it into a student of half its width and depth, store its
weights as int8, and prune them from 0 to 90%, measuring what each costs in quality.

    python experiments/compress_gpt.py                      # ~8 min on a 2-core CPU
    python experiments/compress_gpt.py --teacher runs/demo  # start from a finished LM run
    python experiments/compress_gpt.py --steps 100 --sparsities 0 0.5 0.9 --finetune-steps 10

1. **Teacher**: the language-model recipe's default GPT (4 layers, width 128) on its default
   corpus, ``--steps`` steps (or the run given by ``--teacher``).
2. **Distillation**: a GPT of half the depth and width trained the same steps twice by the
   same recipe: alone, and taught by the teacher (``LMConfig.teacher``, ``--distill.*``).
   Table: validation and test loss, parameters, generation tokens/s at batch 1 (greedy, KV
   cache, warm).
3. **Int8 weights**: the teacher's dense layers quantised (``quantize_int8``): validation loss
   against float32 (target: under 1% relative), weight megabytes, generation tokens/s.
4. **Pruning** the teacher's dense-layer weights by magnitude, globally and per layer, at each
   of ``--sparsities``: the validation loss at once, and after ``--finetune-steps`` steps of
   AdamW that keep the pruned weights at zero (``keep_pruned``). Then 90% reached in three
   prune-and-fine-tune rounds (Zhu and Gupta's schedule) against one shot with as many
   fine-tuning steps. The curves go to ``pruning.png``. Last, structured pruning: half the
   heads and half the MLP neurons of every layer removed (``prune_heads_and_neurons``), the
   smaller model fine-tuned as long, and its generation speed.

Writes ``<out_dir>/``: the runs' folders (the teacher's when trained here), ``results.json``,
``pruning.png``; prints the tables.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro

from jaxllm.compress import (
    DistillConfig,
    apply_masks,
    keep_pruned,
    magnitude_masks,
    prune_heads_and_neurons,
    quantize_int8,
    sparsity_of,
    sparsity_schedule,
    weight_bytes,
)
from jaxllm.data import lm_batch
from jaxllm.generate import generate
from jaxllm.losses import language_model_loss
from jaxllm.models import count_params
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.plots import save_line_plot, subplots
from jaxllm.recipes import LMConfig, train_lm
from jaxllm.recipes.errors import report_error
from jaxllm.recipes.lm import lm_eval_fn, load_lm_run, model_for
from jaxllm.recipes.run_corpus import RunCorpus
from jaxllm.runtime import configure_cpu
from jaxllm.train import create_train_state, make_eval_step, make_train_step


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    """The study's settings.

    Attributes:
      out_dir: where the runs and results go.
      teacher: a finished language-model run to compress ('': train one here).
      steps: training steps of the teacher (when trained here) and of each student.
      student_layers, student_width: the student's depth and width (half the default
        teacher's: 2 and 64).
      distill: the distillation's temperature and soft-term weight.
      sparsities: the pruning levels measured.
      finetune_steps: AdamW steps after pruning (0: one-shot only).
      finetune_learning_rate: their learning rate.
      eval_batches: validation batches per evaluation.
      generate_tokens: new tokens of the timed generation (at most the context allows after
        the prompt).
    """

    out_dir: str = "runs/compress"
    teacher: str = ""
    steps: int = 400
    student_layers: int = 2
    student_width: int = 64
    distill: DistillConfig = DistillConfig(temperature=2.0, alpha=0.5)
    sparsities: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    finetune_steps: int = 50
    finetune_learning_rate: float = 5e-4
    eval_batches: int = 20
    generate_tokens: int = 128


def lm_config(config: CompressConfig, name: str, **changes: Any) -> LMConfig:
    """The recipe's defaults, ``config.steps`` steps, no sample, in ``config.out_dir``."""
    defaults = LMConfig()
    loop = dataclasses.replace(
        defaults.loop, num_steps=config.steps, eval_every=max(config.steps // 4, 1)
    )
    base = LMConfig(
        name=name, out_dir=config.out_dir, sample_tokens=0, loop=loop,
        eval_batches=config.eval_batches,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def distillation_rows(config: CompressConfig, teacher_dir: str) -> list[dict[str, Any]]:
    """The teacher, the student alone and the distilled student: losses, size, speed."""
    teacher_config, _, _ = load_lm_run(teacher_dir)
    half = dataclasses.replace(
        teacher_config.model, n_layer=config.student_layers, n_embd=config.student_width
    )
    rows = [model_row("teacher", teacher_dir, config)]
    for name, extra in (
        ("student alone", {}),
        ("student distilled", {"teacher": teacher_dir, "distill": config.distill}),
    ):
        run = train_lm(lm_config(config, name.replace(" ", "-"), model=half, **extra))
        rows.append(model_row(name, str(run.run_dir), config))
    return rows


def model_row(name: str, run_dir: str, config: CompressConfig) -> dict[str, Any]:
    """A finished run's validation and test loss (its summary), parameters, and its warm
    greedy generation speed at batch 1."""
    run_config, tokenizer, params = load_lm_run(run_dir)
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return {
        "model": name,
        "layers": run_config.model.n_layer,
        "width": run_config.model.n_embd,
        "parameters": count_params(params),
        "val_loss": summary["after"]["loss"],
        "test_loss": summary["test"]["loss"],
        "tokens_per_s": generation_speed(run_config, tokenizer, params, config),
    }


def generation_speed(run_config: LMConfig, tokenizer: Any, params: Any, config: CompressConfig):
    """New tokens/s of warm greedy generation at batch 1 (median of 3 calls)."""
    model = model_for(run_config)
    prompt = [tokenizer.encode("The ")]
    new_tokens = min(config.generate_tokens, run_config.seq_len - len(prompt[0]))

    def run() -> None:
        out = generate(model, params, prompt, max_new_tokens=new_tokens, greedy=True)
        jax.block_until_ready(out.tokens)

    run()  # compile
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return new_tokens / float(np.median(seconds))


class PruningBench:
    """A model (the teacher, or a structurally pruned copy), its data, and the pieces to
    evaluate and fine-tune pruned copies of it."""

    def __init__(
        self,
        config: CompressConfig,
        run_config: LMConfig,
        tokenizer: Any,
        params: Any,
        splits: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.config, self.run_config, self.tokenizer = config, run_config, tokenizer
        self.params = params
        # (train, validation) tokens: tokenised once, shared with pruned copies
        if splits is None:
            train, val, _ = RunCorpus(run_config).tokens(tokenizer)
            splits = (train, val)
        self.splits = splits
        self.train_tokens, val = splits
        model = model_for(self.run_config)
        self.loss_fn = language_model_loss(model)
        self.val = lm_eval_fn(
            jax.jit(make_eval_step(self.loss_fn)),
            val,
            batch_size=self.run_config.batch_size,
            seq_len=self.run_config.seq_len,
            max_batches=config.eval_batches,
        )

    def finetune(self, params: Any, masks: Any, steps: int, seed: int) -> Any:
        """``steps`` AdamW steps on the training split that leave pruned weights at zero."""
        optimizer = optax.chain(
            make_optimizer(OptimizerConfig(learning_rate=self.config.finetune_learning_rate)),
            keep_pruned(masks),
        )
        state = create_train_state(params, optimizer, jax.random.key(seed))
        step = jax.jit(make_train_step(self.loss_fn, optimizer))
        for i in range(steps):
            batch = lm_batch(
                self.train_tokens, seed=seed, step=i, batch_size=self.run_config.batch_size,
                seq_len=self.run_config.seq_len,
            )  # fmt: skip
            state, _ = step(state, batch)
        return state.params

    def point(self, sparsity: float, scope: str) -> dict[str, Any]:
        """One pruning level: sparsity reached, val loss at once and after fine-tuning."""
        masks = magnitude_masks(self.params, sparsity, scope=scope)  # type: ignore[arg-type]
        pruned = apply_masks(self.params, masks)
        row = {"scope": scope, "sparsity": sparsity, "measured": sparsity_of(pruned)}
        row["one_shot_loss"] = self.val(pruned)["loss"]
        if self.config.finetune_steps:
            tuned = self.finetune(pruned, masks, self.config.finetune_steps, seed=1)
            row["finetuned_loss"] = self.val(tuned)["loss"]
            row["finetuned_measured"] = sparsity_of(tuned)
        return row

    def iterative(self, final: float, rounds: int) -> dict[str, Any]:
        """``final`` sparsity in ``rounds`` prune-and-fine-tune rounds against one shot with
        the same fine-tuning steps in all."""
        params = self.params
        for r, sparsity in enumerate(sparsity_schedule(final, rounds)):
            masks = magnitude_masks(params, sparsity)
            params = self.finetune(apply_masks(params, masks), masks, self.config.finetune_steps,
                                   seed=10 + r)  # fmt: skip
        masks = magnitude_masks(self.params, final)
        one_shot = self.finetune(
            apply_masks(self.params, masks), masks, rounds * self.config.finetune_steps, seed=10
        )
        return {
            "final": final,
            "rounds": rounds,
            "finetune_steps_in_all": rounds * self.config.finetune_steps,
            "iterative_loss": self.val(params)["loss"],
            "one_shot_loss": self.val(one_shot)["loss"],
        }

    def structured(self, heads: int, mlp_width: int) -> dict[str, Any]:
        """Every layer cut to ``heads`` heads and ``mlp_width`` MLP neurons: parameters, val
        loss at once and after fine-tuning, generation speed (the teacher's beside it)."""
        shape, params = prune_heads_and_neurons(
            self.run_config.model, self.params, heads=heads, mlp_width=mlp_width
        )
        small_run = dataclasses.replace(self.run_config, model=shape)
        small = PruningBench(self.config, small_run, self.tokenizer, params, self.splits)
        kept = jax.tree.map(lambda _: jnp.ones((), bool), params)
        tuned = small.finetune(params, kept, self.config.finetune_steps, seed=20)
        return {
            "heads": heads,
            "mlp_width": mlp_width,
            "parameters": count_params(params),
            "teacher_parameters": count_params(self.params),
            "one_shot_loss": small.val(params)["loss"],
            "finetuned_loss": small.val(tuned)["loss"],
            "tokens_per_s": generation_speed(small.run_config, self.tokenizer, tuned, self.config),
            "teacher_tokens_per_s": generation_speed(
                self.run_config, self.tokenizer, self.params, self.config
            ),
        }


def pruning_results(bench: PruningBench) -> dict[str, Any]:
    config = bench.config
    curve = [bench.point(s, scope) for scope in ("global", "layer") for s in config.sparsities]
    schedule = bench.iterative(max(config.sparsities), 3) if config.finetune_steps else None
    shape = bench.run_config.model
    structured = bench.structured(max(shape.n_head // 2, 1), shape.mlp_hidden // 2)
    return {"curve": curve, "schedule": schedule, "structured": structured}


def quantization_rows(bench: PruningBench) -> list[dict[str, Any]]:
    """The teacher with float32 and with int8 dense-layer weights: validation loss, weight
    megabytes and generation speed."""
    model = model_for(bench.run_config)
    int8 = quantize_int8(model, bench.params, jnp.zeros((1, 8), jnp.int32))
    rows = []
    for name, weights in (("float32", bench.params), ("int8", int8)):
        rows.append({
            "weights": name,
            "val_loss": bench.val(weights)["loss"],
            "weight_mb": weight_bytes(weights) / 2**20,
            "tokens_per_s": generation_speed(bench.run_config, bench.tokenizer, weights,
                                             bench.config),
        })  # fmt: skip
    rows[1]["relative_loss_change"] = rows[1]["val_loss"] / rows[0]["val_loss"] - 1
    return rows


def plot_pruning(curve: list[dict[str, Any]], teacher_loss: float, path: Path) -> Path:
    fig, ax = subplots(figsize=(7, 4.5))
    for scope in ("global", "layer"):
        rows = [r for r in curve if r["scope"] == scope]
        xs = [100 * r["sparsity"] for r in rows]
        ax.plot(xs, [r["one_shot_loss"] for r in rows], "o--", label=f"{scope}, pruned")
        if "finetuned_loss" in rows[0]:
            ax.plot(xs, [r["finetuned_loss"] for r in rows], "o-", label=f"{scope}, fine-tuned")
    ax.axhline(teacher_loss, color="grey", linewidth=0.8, label="unpruned")
    return save_line_plot(
        fig, ax, path, xlabel="weights pruned (% of dense-layer weights)",
        ylabel="validation loss (nats / token)", title="Magnitude pruning of a GPT",
    )  # fmt: skip


def report(result: dict[str, Any]) -> list[str]:
    lines = [
        "| model | layers × width | parameters | val loss | test loss | tokens/s (batch 1) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["distillation"]:
        lines.append(
            f"| {r['model']} | {r['layers']} × {r['width']} | {r['parameters']:,} | "
            f"{r['val_loss']:.4f} | {r['test_loss']:.4f} | {r['tokens_per_s']:,.0f} |"
        )
    lines += [
        "",
        "| teacher's weights | val loss | MB | tokens/s |",
        "|---|---|---|---|",
    ]
    for r in result["quantization"]:
        change = (
            f" ({100 * r['relative_loss_change']:+.2f}%)" if "relative_loss_change" in r else ""
        )
        lines.append(
            f"| {r['weights']} | {r['val_loss']:.4f}{change} | {r['weight_mb']:.2f} | "
            f"{r['tokens_per_s']:,.0f} |"
        )
    lines += ["", "| scope | sparsity | val loss pruned | after fine-tuning |", "|---|---|---|---|"]
    for r in result["pruning"]["curve"]:
        tuned = f"{r['finetuned_loss']:.4f}" if "finetuned_loss" in r else "-"
        lines.append(
            f"| {r['scope']} | {100 * r['measured']:.0f}% | {r['one_shot_loss']:.4f} | {tuned} |"
        )
    st = result["pruning"]["structured"]
    lines.append(
        f"\nstructured: {st['heads']} heads and {st['mlp_width']} MLP neurons per layer, "
        f"{st['parameters']:,} of {st['teacher_parameters']:,} parameters: val loss "
        f"{st['one_shot_loss']:.4f} pruned, {st['finetuned_loss']:.4f} fine-tuned; "
        f"{st['tokens_per_s']:,.0f} tokens/s (unpruned {st['teacher_tokens_per_s']:,.0f})"
    )
    if result["pruning"]["schedule"]:
        s = result["pruning"]["schedule"]
        lines.append(
            f"\n{100 * s['final']:.0f}% in {s['rounds']} rounds: val loss "
            f"{s['iterative_loss']:.4f}; in one shot with the same "
            f"{s['finetune_steps_in_all']} fine-tuning steps: {s['one_shot_loss']:.4f}"
        )
    return lines


def run_study(config: CompressConfig) -> dict[str, Any]:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    teacher_dir = config.teacher or str(train_lm(lm_config(config, "teacher")).run_dir)
    bench = PruningBench(config, *load_lm_run(teacher_dir))
    result = {
        "config": dataclasses.asdict(config),
        "distillation": distillation_rows(config, teacher_dir),
        "quantization": quantization_rows(bench),
        "pruning": pruning_results(bench),
    }
    teacher_loss = result["distillation"][0]["val_loss"]
    plot_pruning(result["pruning"]["curve"], teacher_loss, out / "pruning.png")
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    config = tyro.cli(CompressConfig, args=argv, description=__doc__)
    try:
        result = run_study(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)
    print("\n".join(report(result)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
