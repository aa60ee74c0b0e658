"""BERT throughput of jaxllm against Hugging Face ``transformers`` (PyTorch eager, CPU, float32).

    python benchmarks/bert_throughput.py                 # 4 layers, width 256, 4 heads
    python benchmarks/bert_throughput.py --layers 2 --repeats 3
    python benchmarks/bert_throughput.py --no-torch --json-only

BERT-base's layout scaled to a CPU: ``--layers`` post-LN blocks of width ``--width`` with
``--heads`` heads, a ``--vocab``-word vocabulary, ``--batch`` sequences of ``--seq`` tokens.
Measured, tokens/s (batch · seq per second, median of ``--repeats`` calls after the first):

- a masked-language-model training step (15% of tokens scored, dropout 0.1, AdamW):
  ``jaxllm.losses.masked_language_model_loss`` in one jitted step against
  ``BertForMaskedLM`` (forward with labels, backward, ``torch.optim.AdamW``). jaxllm runs the
  masked-word head at the chosen positions only (the batch's ``positions``, as the original
  BERT did); ``BertForMaskedLM`` runs it at every position and scores the chosen ones;
- sequence-classification inference (2 classes): ``BERT.class_logits`` against
  ``BertForSequenceClassification`` under ``torch.inference_mode``;
- loading a checkpoint: the same weights saved as a Hugging Face folder (safetensors), read
  by ``jaxllm.interop.load_hf_bert`` and by ``BertForMaskedLM.from_pretrained``: seconds and
  the process's peak resident memory.

Each side runs in a fresh process of its own (as ``lstm_throughput.py``'s, so neither
library's threads or heap slow the other); the first call (for JAX, trace + compile + run) is
reported too. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from harness import (
    Timing,
    background_load,
    cpu_snapshot,
    machine_info,
    max_rss_mb,
    print_report,
    run_in_fresh_process,
    timed_call,
)
from jaxllm.runtime import configure_cpu

SEED = 0


def mlm_batch(shape: dict) -> dict[str, np.ndarray]:
    """Random tokens masked by :func:`jaxllm.data.mask_tokens` (15% of each sequence chosen,
    ``[MASK]`` id 4): ``inputs``, ``targets``, ``weights`` and the chosen ``positions``."""
    from jaxllm.data import mask_tokens

    rng = np.random.default_rng(SEED)
    tokens = jax.numpy.asarray(rng.integers(5, shape["vocab"], (shape["batch"], shape["seq"])))
    masked = mask_tokens(
        tokens, jax.numpy.ones(tokens.shape, bool), jax.random.key(SEED), mask_id=4,
        vocab_size=shape["vocab"],
    )  # fmt: skip
    return {name: np.asarray(getattr(masked, name)) for name in masked.__dataclass_fields__}


def bert_config(shape: dict, num_classes: int = 0) -> Any:
    from jaxllm.models import BertConfig

    return BertConfig(
        vocab_size=shape["vocab"], max_len=512, n_layer=shape["layers"], n_head=shape["heads"],
        n_embd=shape["width"], pooler=num_classes > 0, mlm_head=num_classes == 0,
        num_classes=num_classes, dropout=0.1,
    )  # fmt: skip


def jaxllm_runners(shape: dict) -> dict[str, Callable[[], None]]:
    """``{"train", "infer"}``: each runner makes one call and blocks until it is done."""
    from jaxllm.losses import masked_language_model_loss
    from jaxllm.models import BERT, init_bert_params
    from jaxllm.optim import OptimizerConfig, make_optimizer
    from jaxllm.train import create_train_state, jit_train_step, make_train_step

    config = bert_config(shape)
    optimizer = make_optimizer(OptimizerConfig(learning_rate=1e-4, weight_decay=0.01))
    params = init_bert_params(config, jax.random.key(SEED))
    state = [create_train_state(params, optimizer, jax.random.key(1))]
    step = jit_train_step(make_train_step(masked_language_model_loss(BERT(config)), optimizer))
    batch = jax.device_put(mlm_batch(shape))
    classifier = BERT(bert_config(shape, num_classes=2))
    class_params = init_bert_params(classifier.config, jax.random.key(SEED))
    forward = jax.jit(lambda p, t: classifier.apply({"params": p}, t, method=BERT.class_logits))
    tokens = batch["targets"]

    def train() -> None:
        state[0], metrics = step(state[0], batch)
        metrics["loss"].block_until_ready()

    def infer() -> None:
        forward(class_params, tokens).block_until_ready()

    return {"train": train, "infer": infer}


def hf_config(shape: dict) -> Any:
    import transformers  # pyright: ignore[reportMissingImports]

    settings: dict[str, Any] = dict(
        vocab_size=shape["vocab"], hidden_size=shape["width"],
        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
        intermediate_size=4 * shape["width"], num_labels=2, attn_implementation="eager",
    )  # fmt: skip
    return transformers.BertConfig(**settings)


def torch_runners(shape: dict) -> dict[str, Callable[[], None]]:
    """``BertForMaskedLM`` training and ``BertForSequenceClassification`` inference."""
    import torch  # pyright: ignore[reportMissingImports]
    import transformers  # pyright: ignore[reportMissingImports]

    torch.manual_seed(SEED)
    model = transformers.BertForMaskedLM(hf_config(shape)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    batch = mlm_batch(shape)
    inputs = torch.from_numpy(batch["inputs"].astype(np.int64))
    labels = torch.from_numpy(
        np.where(batch["weights"] > 0, batch["targets"], -100).astype(np.int64)
    )
    classifier = transformers.BertForSequenceClassification(hf_config(shape)).eval()
    tokens = torch.from_numpy(batch["targets"].astype(np.int64))

    def train() -> None:
        optimizer.zero_grad()
        model(input_ids=inputs, labels=labels).loss.backward()
        optimizer.step()

    def infer() -> None:
        with torch.inference_mode():
            classifier(input_ids=tokens)

    return {"train": train, "infer": infer}


def side_figures(side: str, shape: dict, repeats: int) -> dict:
    """One side's first calls and median tokens/s (training and inference calls alternate)."""
    runners = jaxllm_runners(shape) if side == "jaxllm" else torch_runners(shape)
    figures: dict[str, Any] = {f"first_{k}_s": timed_call(run)[0] for k, run in runners.items()}
    start = cpu_snapshot()
    seconds: dict[str, list[float]] = {kind: [] for kind in runners}
    for _ in range(repeats):
        for kind, runner in runners.items():
            seconds[kind].append(timed_call(runner)[0])
    figures["background_load"] = background_load(start, cpu_snapshot())
    tokens = shape["batch"] * shape["seq"]
    for kind, times in seconds.items():
        figures[f"{kind}_tokens_per_s"] = tokens / Timing.from_seconds(times).median_s
    return figures


def save_checkpoint(shape: dict, folder: str) -> None:
    """A BertForMaskedLM folder of ``shape`` with jaxllm's initial weights."""
    from jaxllm.interop import save_hf_bert
    from jaxllm.models import init_bert_params

    config = bert_config(shape)
    save_hf_bert(folder, config, jax.device_get(init_bert_params(config, jax.random.key(SEED))))


def load_figures(side: str, folder: str) -> dict:
    """Seconds to load ``folder`` (weights ready to use; the libraries imported before the
    clock starts) and the process's peak memory."""
    if side == "jaxllm":
        from jaxllm.interop import load_hf_bert

        start = time.perf_counter()
        jax.block_until_ready(load_hf_bert(folder)[1])
    else:
        import transformers  # pyright: ignore[reportMissingImports]

        start = time.perf_counter()
        transformers.BertForMaskedLM.from_pretrained(folder)
    return {"load_s": time.perf_counter() - start, "load_peak_rss_mb": max_rss_mb()}


def measure(shape: dict, repeats: int, with_torch: bool) -> dict:
    """Every figure of both sides, each side (and each load) in a fresh process."""
    row: dict[str, Any] = dict(shape)
    row.update(run_in_fresh_process(side_figures, "jaxllm", shape, repeats))
    with tempfile.TemporaryDirectory() as folder:
        run_in_fresh_process(save_checkpoint, shape, folder)
        row.update(run_in_fresh_process(load_figures, "jaxllm", folder))
        if with_torch:
            theirs = run_in_fresh_process(load_figures, "torch", folder)
            row.update({f"torch_{name}": value for name, value in theirs.items()})
    if with_torch:
        theirs = run_in_fresh_process(side_figures, "torch", shape, repeats)
        row.update({f"torch_{name}": value for name, value in theirs.items()})
        for kind in ("train", "infer"):
            row[f"{kind}_ratio_vs_torch"] = (
                row[f"{kind}_tokens_per_s"] / row[f"torch_{kind}_tokens_per_s"]
            )
    return row


def report_lines(row: dict) -> list[str]:
    """A Markdown table: one line per figure, jaxllm beside transformers."""
    head = (
        f"BERT {row['layers']} x {row['width']} ({row['heads']} heads, vocab {row['vocab']}), "
        f"batch {row['batch']} x seq {row['seq']}, float32"
    )
    torch = "torch_train_tokens_per_s" in row
    lines = [head, "", "| | jaxllm | transformers | ratio |", "|---|---|---|---|"]
    for kind, label in (("train", "MLM training, tokens/s"), ("infer", "seq-cls inference")):
        theirs = f"{row[f'torch_{kind}_tokens_per_s']:,.0f}" if torch else "-"
        ratio = f"**{row[f'{kind}_ratio_vs_torch']:.2f}x**" if torch else "-"
        lines.append(f"| {label} | {row[f'{kind}_tokens_per_s']:,.0f} | {theirs} | {ratio} |")
        first = f"{row[f'torch_first_{kind}_s']:.2f}" if torch else "-"
        lines.append(f"| first {kind} call, s | {row[f'first_{kind}_s']:.2f} | {first} | |")
    for key, label in (("load_s", "checkpoint load, s"), ("load_peak_rss_mb", "load peak RSS, MB")):
        theirs = f"{row.get(f'torch_{key}', float('nan')):.2f}" if torch else "-"
        lines.append(f"| {label} | {row[key]:.2f} | {theirs} | |")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    for name, default in (("layers", 4), ("width", 256), ("heads", 4), ("vocab", 8192)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true", help="skip the transformers reference")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    return parser.parse_args(argv)


def torch_available() -> bool:
    try:
        import torch  # pyright: ignore[reportMissingImports]  # noqa: F401
        import transformers  # pyright: ignore[reportMissingImports]  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    args = parse_args(argv)
    with_torch = not args.no_torch and torch_available()
    shape = {k: getattr(args, k) for k in ("layers", "width", "heads", "vocab", "batch", "seq")}
    row = measure(shape, args.repeats, with_torch)
    result = {"benchmark": "bert_throughput", "repeats": args.repeats, "machine": machine_info()}
    result |= {"row": row}
    print_report(report_lines(row), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
