"""Generation with int8 weights: jaxllm's KV-cache greedy decoding of one GPT with float32,
bfloat16 and int8 weight-only (``jaxllm.compress.quantize_int8``) dense layers, on this
machine.

    python benchmarks/int8_generate.py                      # GPT-2 small's shape, batch 1 and 8
    python benchmarks/int8_generate.py --layers 4 --width 256 --batch-sizes 1 --repeats 3

The model is GPT-2 small's shape by default (12 layers, width 768, 12 heads, vocabulary
50,257), randomly initialised with a fixed seed. Decoding at batch 1 reads every weight once per
token: it is bound by memory traffic, which int8 weights cut to a quarter for the dense layers.
The embedding (tied to the output layer) stays float32 in every variant but bfloat16, where all
parameters are bfloat16 and so is the compute. Reported per variant and batch size: the
weights' megabytes, new tokens per second (median of ``--repeats`` timed calls after the first),
the first call's seconds (trace + compile + run), the ratio to float32 (target for int8 at batch
1: >= 1.5x), and the largest change of a logit against float32 on the prompt. The last line
printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from harness import Timing, cpu_snapshot, print_report, run_record, timed_call
from jaxllm.compress import quantize_int8, weight_bytes
from jaxllm.generate import generate
from jaxllm.models import GPT, GPTConfig, init_params
from jaxllm.runtime import configure_cpu

SEED = 0
VARIANTS = ("float32", "bfloat16", "int8")


def model_and_params(config: GPTConfig, variant: str) -> tuple[GPT, Any]:
    """The model and its parameters for ``variant`` (the same float32 weights underneath)."""
    params = init_params(config, jax.random.key(SEED))
    model = GPT(config)
    if variant == "bfloat16":
        bf16 = dataclasses.replace(config, dtype="bfloat16")
        return GPT(bf16), jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    if variant == "int8":
        return model, quantize_int8(model, params, jnp.zeros((1, 8), jnp.int32))
    return model, params


def runner(model: GPT, params: Any, prompts: np.ndarray, new_tokens: int) -> Callable[[], Any]:
    def run() -> Any:
        return generate(model, params, prompts, max_new_tokens=new_tokens, greedy=True).tokens

    return run


def measure(config: GPTConfig, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (batch size, variant)."""
    rows = []
    reference = None
    for variant in args.variants:
        model, params = model_and_params(config, variant)
        prompt = np.random.default_rng(SEED).integers(0, config.vocab_size, (1, args.prompt_len))
        logits = np.asarray(model.apply({"params": params}, jnp.asarray(prompt)), np.float32)
        reference = logits if reference is None else reference
        for batch in args.batch_sizes:
            prompts = np.repeat(prompt, batch, axis=0)
            run = runner(model, params, prompts, args.new_tokens)
            first, _ = timed_call(run)
            seconds = Timing.from_seconds([timed_call(run)[0] for _ in range(args.repeats)])
            rows.append(
                {
                    "variant": variant,
                    "batch": batch,
                    "weight_mb": weight_bytes(params) / 2**20,
                    "tokens_per_s": batch * args.new_tokens / seconds.median_s,
                    "first_call_s": first,
                    "max_logit_change": float(np.max(np.abs(logits - reference))),
                }
            )
    for row in rows:
        base = next(r for r in rows if r["batch"] == row["batch"] and r["variant"] == "float32")
        row["ratio_vs_float32"] = row["tokens_per_s"] / base["tokens_per_s"]
    return rows


def report_lines(result: dict[str, Any]) -> list[str]:
    shape = result["shape"]
    lines = [
        f"GPT {shape['n_layer']} x {shape['n_embd']}, vocab {shape['vocab_size']}; prompt "
        f"{result['prompt_len']}, {result['new_tokens']} new tokens, greedy; median of "
        f"{result['repeats']}",
        "",
        "| weights | batch | MB | new tokens/s | ratio to float32 | first call "
        "| largest logit change |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['variant']} | {r['batch']} | {r['weight_mb']:,.0f} | {r['tokens_per_s']:,.1f} "
            f"| **{r['ratio_vs_float32']:.2f}x** | {r['first_call_s']:.2f} s "
            f"| {r['max_logit_change']:.2g} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args(argv)
    args.variants = ["float32", *[v for v in args.variants if v != "float32"]]
    config = GPTConfig(
        vocab_size=args.vocab, block_size=args.prompt_len + args.new_tokens,
        n_layer=args.layers, n_head=args.heads, n_embd=args.width, bias=True,
    )  # fmt: skip
    start = cpu_snapshot()
    result = {
        "benchmark": "int8_generate",
        "shape": {k: getattr(config, k) for k in ("n_layer", "n_embd", "n_head", "vocab_size")},
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "rows": measure(config, args),
        **run_record(start),
    }
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
