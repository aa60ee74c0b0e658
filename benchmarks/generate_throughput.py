"""Greedy KV-cache decoding throughput of jaxllm vs Hugging Face ``GPT2LMHeadModel.generate``.

A GPT-2-shaped model (vocab 50257, context 1024, 4 layers, 4 heads, width 256, float32), random
init with a fixed seed on both sides, a random prompt of ``--prompt-len`` tokens per row,
``--new-tokens`` greedy tokens, per batch size. Figures are new tokens per second, the median
of ``--repeats`` timed runs after one warm-up run (for jaxllm the warm-up is the first call,
reported on its own with its stages: tracing, compilation, the rest); the two libraries' timed
runs alternate, so the ratio is fair on a machine whose load changes. The reference needs
``torch`` and ``transformers`` (the ``bench`` extra); without them, or with
``--no-reference``, only jaxllm is measured.

    python benchmarks/generate_throughput.py --batch-sizes 1 8 --repeats 3

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import jax
import numpy as np

from harness import Timing, background_load, call_stages, cpu_snapshot, machine_info, timed_call
from jaxllm.generate import generate
from jaxllm.models import GPT, GPTConfig, init_params
from jaxllm.models.gpt import with_cpu_tuned_attention
from jaxllm.runtime import configure_cpu

VOCAB, CONTEXT, LAYERS, HEADS, WIDTH = 50257, 1024, 4, 4, 256
SEED = 0


def random_prompts(batch: int, prompt_len: int) -> np.ndarray:
    """int64[batch, prompt_len] token ids, the same for both libraries."""
    return np.random.default_rng(SEED).integers(0, VOCAB, (batch, prompt_len))


def model_config() -> GPTConfig:
    """The benchmarked GPT, with the attention measured fastest on this machine (on a CPU the
    query-blocked one; decoding itself always reads the KV cache with ``cached_attention``)."""
    config = GPTConfig(
        vocab_size=VOCAB,
        block_size=CONTEXT,
        n_layer=LAYERS,
        n_head=HEADS,
        n_embd=WIDTH,
        bias=True,
        positions="learned",
        dtype="float32",
    )
    return with_cpu_tuned_attention(config, jax.default_backend(), jax.device_count())


def jaxllm_runner(batch: int, prompt_len: int, new_tokens: int) -> Callable[[], object]:
    """One greedy :func:`jaxllm.generate.generate` call, blocking until the tokens are ready."""
    config = model_config()
    model = GPT(config)
    params = init_params(config, jax.random.key(SEED))
    prompts = random_prompts(batch, prompt_len)

    def run():
        result = generate(model, params, prompts, max_new_tokens=new_tokens, greedy=True)
        tokens = jax.block_until_ready(result.tokens)
        assert tokens.shape == (batch, new_tokens)
        return tokens

    return run


def hf_runner(batch: int, prompt_len: int, new_tokens: int) -> Callable[[], object]:
    """One greedy ``GPT2LMHeadModel.generate`` call with the KV cache, default torch threads."""
    import torch  # pyright: ignore[reportMissingImports]
    from transformers import GPT2Config, GPT2LMHeadModel  # pyright: ignore[reportMissingImports]

    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=VOCAB, n_positions=CONTEXT, n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS
        )
    ).eval()
    input_ids = torch.from_numpy(random_prompts(batch, prompt_len))
    attention_mask = torch.ones_like(input_ids)

    def run():
        with torch.inference_mode():
            # transformers' own stubs reject binding generate to GPT2LMHeadModel (a false alarm
            # seen only where the bench extra is installed).
            out = model.generate(  # pyright: ignore[reportAttributeAccessIssue]
                input_ids,
                attention_mask=attention_mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
            )
        assert out.shape == (batch, prompt_len + new_tokens)
        return out

    return run


def measure(
    batch: int, prompt_len: int, new_tokens: int, repeats: int, with_reference: bool
) -> dict:
    """Figures for one batch size.

    The first jaxllm call (trace + compile + run) is reported as ``compile_s``; the reference
    gets an untimed warm-up too. Timed runs of the two alternate, so a change in the machine's
    load during the measurement hits both sides alike; ``background_load`` is the number of
    CPUs other processes kept busy meanwhile (near 0 on a quiet machine).
    """
    runners = {"": jaxllm_runner(batch, prompt_len, new_tokens)}
    if with_reference:
        runners["hf_"] = hf_runner(batch, prompt_len, new_tokens)
    first, _ = call_stages(runners[""])
    stages = {f"first_{stage}": first[stage] for stage in ("trace_s", "compile_s", "run_s")}
    row = {"batch": batch, "compile_s": first["total_s"], **stages}
    if with_reference:
        runners["hf_"]()
    seconds = {prefix: [] for prefix in runners}
    start = cpu_snapshot()
    for _ in range(repeats):
        for prefix, run in runners.items():
            seconds[prefix].append(timed_call(run)[0])
    row["background_load"] = background_load(start, cpu_snapshot())
    for prefix, times in seconds.items():
        timing = Timing.from_seconds(times)
        row[f"{prefix}new_tokens_per_s"] = batch * new_tokens / timing.median_s
        row[f"{prefix}best_new_tokens_per_s"] = batch * new_tokens / timing.min_s
        row[f"{prefix}seconds"] = list(timing.all)
    if with_reference:
        row["ratio_vs_hf"] = row["new_tokens_per_s"] / row["hf_new_tokens_per_s"]
    return row


def reference_available() -> bool:
    try:
        import torch  # pyright: ignore[reportMissingImports]  # noqa: F401
        import transformers  # pyright: ignore[reportMissingImports]  # noqa: F401
    except ImportError:
        return False
    return True


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the Hugging Face reference"
    )
    return parser.parse_args()


def print_table(args: argparse.Namespace, results: list[dict]) -> None:
    """The settings, then one row per batch size."""
    print(
        f"greedy decoding, GPT-2 shape (vocab {VOCAB}, {LAYERS} layers, {HEADS} heads, width "
        f"{WIDTH}), prompt {args.prompt_len}, {args.new_tokens} new tokens, "
        f"median of {args.repeats} runs, device {jax.devices()[0].device_kind}"
    )
    print(
        f"{'batch':>5}  {'jaxllm tok/s':>12}  {'first call s (trace/compile/run)':>32}  "
        f"{'HF tok/s':>9}  {'ratio':>6}  "
        f"{'other load (CPUs)':>17}"
    )
    for row in results:
        hf = f"{row['hf_new_tokens_per_s']:9.1f}" if "hf_new_tokens_per_s" in row else f"{'-':>9}"
        ratio = f"{row['ratio_vs_hf']:5.2f}x" if "ratio_vs_hf" in row else f"{'-':>6}"
        load = row["background_load"]
        load = f"{load:17.2f}" if load is not None else f"{'-':>17}"
        first = (
            f"{row['compile_s']:.2f} ({row['first_trace_s']:.2f}/{row['first_compile_s']:.2f}/"
            f"{row['first_run_s']:.2f})"
        )
        print(
            f"{row['batch']:>5}  {row['new_tokens_per_s']:12.1f}  {first:>32}  {hf}  {ratio}  "
            f"{load}"
        )


def reference_versions() -> dict[str, str]:
    import torch  # pyright: ignore[reportMissingImports]
    import transformers  # pyright: ignore[reportMissingImports]

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def main() -> None:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    args = parse_args()
    with_reference = not args.no_reference and reference_available()
    if not args.no_reference and not with_reference:
        print("torch/transformers not importable (install the `bench` extra): jaxllm only")

    results = [
        measure(batch, args.prompt_len, args.new_tokens, args.repeats, with_reference)
        for batch in args.batch_sizes
    ]
    print_table(args, results)
    versions = reference_versions() if with_reference else {}
    print(
        json.dumps(
            {
                "benchmark": "generate_throughput",
                "model": {
                    "vocab_size": VOCAB,
                    "block_size": CONTEXT,
                    "n_layer": LAYERS,
                    "n_head": HEADS,
                    "n_embd": WIDTH,
                    "dtype": "float32",
                },
                "prompt_len": args.prompt_len,
                "new_tokens": args.new_tokens,
                "repeats": args.repeats,
                "results": results,
                "device": jax.devices()[0].device_kind,
                "jax": jax.__version__,
                **versions,
                "machine": machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
