"""DP-SGD training throughput: jaxllm's train step with ``privacy=DPConfig(...)`` against
Opacus on PyTorch, the same model shapes, batch and clipping, on this machine.

    python benchmarks/dp_sgd_throughput.py                   # both models, 7 timed steps each
    python benchmarks/dp_sgd_throughput.py --models tfidf_mlp --repeats 3
    python benchmarks/dp_sgd_throughput.py --no-torch --json-only

Two text classifiers (``jaxllm.models.TextClassifier`` and the same layers in PyTorch):

- ``tfidf_mlp``: an MLP over TF-IDF features: a document's feature ids and values, the first
  layer ``relu(Σ_j x_j W_j + b)`` over a 20,000-feature table, width 256, then 2 classes.
  PyTorch: ``nn.Embedding`` rows weighted and summed, as jaxllm computes it.
- ``transformer``: word and position embeddings, 2 pre-LayerNorm blocks of width 128 with 4
  heads (Opacus's ``DPMultiheadAttention``, which it needs for per-example gradients), a final
  LayerNorm, the mean over real tokens, 2 classes; sequences of 64 tokens, a quarter padded.

Each training step: cross-entropy, plain SGD (learning rate 0.1), and with DP-SGD each
example's gradient clipped to norm 1 and Gaussian noise σ = 1 added. jaxllm runs one jitted
step (per-example gradients by ``jax.vmap``); Opacus wraps the model in its
``GradSampleModule`` (hooks on every layer) and the optimizer in its ``DPOptimizer``. Every
side runs in a fresh process of its own. Reported per model: examples/s (median of
``--repeats`` steps after the first), the first step's seconds (for JAX: trace + compile +
run), jaxllm / Opacus (target >= 2x), and each library's DP-SGD slow-down against its own
plain step. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from harness import (
    Timing,
    background_load,
    cpu_snapshot,
    print_report,
    run_in_fresh_process,
    run_record,
    timed_call,
)
from jaxllm.losses import classification_loss
from jaxllm.models.classifiers import ClassifierConfig, TextClassifier, init_classifier
from jaxllm.privacy import DPConfig
from jaxllm.runtime import OPT_OUT_ENV as REUSE_MEMORY_ENV
from jaxllm.runtime import configure_cpu
from jaxllm.train import create_train_state, make_train_step

SEED = 0
CLIP_NORM, NOISE_MULTIPLIER, LEARNING_RATE = 1.0, 1.0, 0.1
SHAPES = {  # model -> (ClassifierConfig, batch size, sequence length)
    "tfidf_mlp": (ClassifierConfig("tfidf_mlp", vocab_size=20_000, num_classes=2,
                                   embed_dim=256, dropout=0.0), 64, 32),
    "transformer": (ClassifierConfig("transformer", vocab_size=10_000, num_classes=2,
                                     embed_dim=128, num_heads=4, num_layers=2, max_len=64,
                                     dropout=0.0, embedding_dropout=0.0), 32, 64),
}  # fmt: skip


def random_batch(model: str) -> dict[str, np.ndarray]:
    """The same batch for both libraries: ids, a right-padded mask (a quarter of the rows
    end early), labels, and TF-IDF values for ``tfidf_mlp``."""
    config, batch, seq = SHAPES[model]
    rng = np.random.default_rng(SEED)
    lengths = np.where(np.arange(batch) % 4 == 0, seq // 2, seq)
    out = {
        "tokens": rng.integers(0, config.vocab_size, (batch, seq)).astype(np.int32),
        "mask": np.arange(seq)[None, :] < lengths[:, None],
        "labels": rng.integers(0, config.num_classes, batch).astype(np.int32),
    }
    if config.encoder == "tfidf_mlp":
        out["weights"] = rng.uniform(0.05, 0.5, (batch, seq)).astype(np.float32)
    return out


def jaxllm_side(model: str, private: bool, repeats: int) -> dict[str, float]:
    """One jitted train step of ``jaxllm.train.make_train_step``, with or without DP-SGD."""
    config, _, _ = SHAPES[model]
    params = init_classifier(config, jax.random.key(SEED))
    optimizer = optax.sgd(LEARNING_RATE)
    privacy = DPConfig(CLIP_NORM, NOISE_MULTIPLIER) if private else None
    loss_fn = classification_loss(TextClassifier(config))
    step = jax.jit(make_train_step(loss_fn, optimizer, privacy=privacy), donate_argnums=0)
    batch = jax.device_put(random_batch(model))
    state = [create_train_state(params, optimizer, jax.random.key(SEED))]

    def run() -> None:
        state[0], metrics = step(state[0], batch)
        jax.block_until_ready(metrics)

    parameters = sum(leaf.size for leaf in jax.tree.leaves(params))
    return {"parameters": parameters, **side_figures(run, len(batch["labels"]), repeats)}


def torch_side(model: str, private: bool, repeats: int) -> dict[str, float]:
    """The same step in PyTorch eager; with DP-SGD, through Opacus."""
    import torch  # pyright: ignore[reportMissingImports]

    torch.manual_seed(SEED)
    config, batch_size, _ = SHAPES[model]
    module = torch_model(config)
    optimizer = torch.optim.SGD(module.parameters(), lr=LEARNING_RATE)
    if private:
        from opacus import GradSampleModule  # pyright: ignore[reportMissingImports]
        from opacus.optimizers import DPOptimizer  # pyright: ignore[reportMissingImports]

        module = GradSampleModule(module)
        optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=NOISE_MULTIPLIER,
            max_grad_norm=CLIP_NORM,
            expected_batch_size=batch_size,
        )
    batch = {name: torch.from_numpy(array) for name, array in random_batch(model).items()}
    inputs = [batch["tokens"].long(), batch["mask"], batch.get("weights")]
    labels = batch["labels"].long()

    def run() -> None:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(*inputs), labels)
        loss.backward()
        optimizer.step()

    # Opacus's hooks warn that the token ids need no gradient: true, and harmless.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    parameters = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"parameters": parameters, **side_figures(run, batch_size, repeats)}


def torch_model(config: ClassifierConfig) -> Any:
    """The jaxllm classifier's layers in PyTorch (Opacus-compatible)."""
    import torch  # pyright: ignore[reportMissingImports]
    from torch import nn  # pyright: ignore[reportMissingImports]

    class WeightedBag(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(config.vocab_size, config.embed_dim)
            # The layer's bias, held by a Linear (Opacus computes per-example gradients of its
            # own layers only); its embed_dim weights multiply zeros and stay unused.
            self.first = nn.Linear(1, config.embed_dim)
            self.output = nn.Linear(config.embed_dim, config.num_classes)

        def forward(self, tokens, mask, weights):
            x = torch.einsum("bt,bte->be", weights * mask, self.table(tokens))
            hidden = torch.relu(x + self.first(torch.zeros_like(x[:, :1])))
            return self.output(hidden)

    if config.encoder == "tfidf_mlp":
        return WeightedBag()
    return torch_transformer(config)


def torch_transformer(config: ClassifierConfig) -> Any:
    """Embeddings + positions, pre-LN blocks with ``DPMultiheadAttention``, LN, masked mean."""
    import torch  # pyright: ignore[reportMissingImports]
    from opacus.layers import DPMultiheadAttention  # pyright: ignore[reportMissingImports]
    from torch import nn  # pyright: ignore[reportMissingImports]

    width = config.embed_dim

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attn = DPMultiheadAttention(width, config.num_heads, batch_first=True)
            self.mlp = nn.Sequential(
                nn.Linear(width, 4 * width), nn.GELU("tanh"), nn.Linear(4 * width, width)
            )

        def forward(self, x, padding):
            h = self.ln_1(x)
            x = x + self.attn(h, h, h, key_padding_mask=padding, need_weights=False)[0]
            return x + self.mlp(self.ln_2(x))

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(config.vocab_size, width)
            self.positions = nn.Embedding(config.max_len, width)
            self.blocks = nn.ModuleList([Block() for _ in range(config.num_layers)])
            self.ln_f = nn.LayerNorm(width)
            self.output = nn.Linear(width, config.num_classes)

        def forward(self, tokens, mask, weights=None):
            positions = torch.arange(tokens.shape[1]).expand_as(tokens)
            x = self.embedding(tokens) + self.positions(positions)
            for block in self.blocks:
                x = block(x, ~mask)
            real = mask[..., None].float()
            return self.output((self.ln_f(x) * real).sum(1) / real.sum(1).clamp(min=1.0))

    return Classifier()


def side_figures(run: Callable[[], None], examples: int, repeats: int) -> dict[str, float]:
    """The first step's seconds and the median examples/s of ``repeats`` steps after it."""
    first, _ = timed_call(run)
    start = cpu_snapshot()
    seconds = [timed_call(run)[0] for _ in range(repeats)]
    return {
        "first_step_s": first,
        "examples_per_s": examples / Timing.from_seconds(seconds).median_s,
        "background_load": background_load(start, cpu_snapshot()) or 0.0,
    }


def measure(model: str, repeats: int, with_torch: bool) -> dict[str, Any]:
    """One model's four sides (jaxllm / PyTorch, plain / DP-SGD), each in a fresh process:
    jaxllm's with its CPU settings, PyTorch's with glibc's defaults, as its users run it."""
    _, batch, seq = SHAPES[model]
    row: dict[str, Any] = {"model": model, "batch": batch, "seq": seq}
    sides = [("jaxllm", jaxllm_side)] + ([("torch", torch_side)] if with_torch else [])
    for name, side in sides:
        environment = {REUSE_MEMORY_ENV: "0"} if name == "torch" else None
        for mode, private in (("plain", False), ("dp", True)):
            figures = run_in_fresh_process(side, model, private, repeats, environment=environment)
            row.update({f"{name}_{mode}_{key}": value for key, value in figures.items()})
    return with_ratios(row)


def with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` plus each side's DP slow-down (plain / DP examples/s) and, with both sides,
    jaxllm / PyTorch per mode."""
    row = dict(row)
    sides = [name for name in ("jaxllm", "torch") if f"{name}_dp_examples_per_s" in row]
    for name in sides:
        row[f"{name}_dp_slowdown"] = (
            row[f"{name}_plain_examples_per_s"] / row[f"{name}_dp_examples_per_s"]
        )
    if "torch" in sides:
        for mode in ("plain", "dp"):
            row[f"{mode}_ratio_vs_torch"] = (
                row[f"jaxllm_{mode}_examples_per_s"] / row[f"torch_{mode}_examples_per_s"]
            )
    return row


def report_lines(result: dict[str, Any]) -> list[str]:
    """A Markdown table: one row per model."""
    lines = [
        f"DP-SGD (clip {CLIP_NORM}, sigma {NOISE_MULTIPLIER}) vs plain SGD, float32, median of "
        f"{result['repeats']} steps; examples/s (first step, s); Opacus {result['opacus']}",
        "",
        "| model | batch x seq | jaxllm DP | Opacus DP | **DP ratio** | jaxllm plain "
        "| PyTorch plain | plain ratio | DP slow-down jaxllm / Opacus |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:

        def cell(side: str, mode: str, row: dict = row) -> str:
            key = f"{side}_{mode}_examples_per_s"
            if key not in row:
                return "-"
            return f"{row[key]:,.0f} ({row[f'{side}_{mode}_first_step_s']:.2f})"

        ratio = row.get("dp_ratio_vs_torch")
        plain = row.get("plain_ratio_vs_torch")
        slow = f"{row['jaxllm_dp_slowdown']:.2f}x / " + (
            f"{row['torch_dp_slowdown']:.2f}x" if "torch_dp_slowdown" in row else "-"
        )
        lines.append(
            f"| {row['model']} | {row['batch']} x {row['seq']} | {cell('jaxllm', 'dp')} "
            f"| {cell('torch', 'dp')} | **{ratio:.2f}x** | {cell('jaxllm', 'plain')} "
            f"| {cell('torch', 'plain')} | {plain:.2f}x | {slow} |"
            if ratio is not None and plain is not None
            else f"| {row['model']} | {row['batch']} x {row['seq']} | {cell('jaxllm', 'dp')} "
            f"| - | - | {cell('jaxllm', 'plain')} | - | - | {slow} |"
        )
    return lines


def opacus_version() -> str | None:
    try:
        import opacus  # pyright: ignore[reportMissingImports]
    except ImportError:
        return None
    return opacus.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true", help="jaxllm only")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    with_torch = not args.no_torch and opacus_version() is not None
    if not args.no_torch and not with_torch and not args.json_only:
        print("opacus is not installed (pip install -e '.[bench]'): no reference figures")
    start = cpu_snapshot()
    rows = [measure(model, args.repeats, with_torch) for model in args.models]
    result = {
        "benchmark": "dp_sgd_throughput",
        "repeats": args.repeats,
        "opacus": opacus_version() if with_torch else None,
        "rows": rows,
        **run_record(start),
    }
    print_report(report_lines(result), result, json_only=args.json_only)


if __name__ == "__main__":
    main()
