"""Train one GPT under every parallel layout and device count; check they agree; plot scaling.

    python experiments/data_parallel.py                       # 8 simulated CPU devices
    python experiments/data_parallel.py --model gpt2 --dtype bfloat16 --batch-size 32 \\
        --devices 1 --modes none pmap mesh                    # one GPU: overhead of each path
    python experiments/data_parallel.py --modes mesh --fsdp 2 --coordinator 127.0.0.1:12345 \\
        --num-processes 2 --process-id 0                      # one of two processes

Each (mode, devices) run starts from the same weights and trains ``--steps`` steps on the same
global batches of the bundled corpus (``none`` always on one device, ``pmap`` over the first N
devices, ``mesh`` as an N/fsdp × fsdp mesh). Every run's losses must match the first run's
(the single-device one when ``none`` runs) to 1e-4 in float32, 2e-2 in bfloat16, or the script
exits with status 1. Writes
``results.jsonl`` and ``scaling.png`` (ms/step and tokens/s against devices) to
``runs/<name>/`` and prints a Markdown table with MFU against the matmul peak measured here
(per device on accelerators; on a CPU, the one peak its simulated devices share).

On a CPU the "devices" are XLA host devices that share the same cores
(``--host-devices``, default 8): more of them cannot add compute, so the figures show each
layout's overhead (and, for small models, how well several programs keep the cores busy);
on a multi-GPU or TPU host the same script measures real scaling.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # at run time, imported only once main has set XLA_FLAGS
    import numpy as np
    import optax

    from jaxllm.models.gpt import GPTConfig
    from jaxllm.train.parallel import ParallelMode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--modes", nargs="+", default=["none", "pmap", "mesh"], choices=["none", "pmap", "mesh"]
    )
    parser.add_argument(
        "--devices",
        nargs="+",
        type=int,
        default=[1, 2, 4, 8],
        help="device counts to run pmap and mesh on",
    )
    parser.add_argument(
        "--fsdp", type=int, default=1, help="mesh parameter axis (capped at the device count)"
    )
    parser.add_argument("--microbatches", type=int, default=1)
    parser.add_argument("--model", default="tiny", choices=["tiny", "small", "gpt2"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=16, help="global batch, sequences")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps after the compiling one"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="data-parallel")
    parser.add_argument("--out-dir", default="runs")
    parser.add_argument(
        "--host-devices",
        type=int,
        default=8,
        help="XLA host devices to simulate when running on a CPU",
    )
    parser.add_argument(
        "--coordinator", default="", help="host:port of process 0 (multi-process runs)"
    )
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    return parser.parse_args(argv)


def split_cpu_into_devices(count: int) -> None:
    """Ask XLA for ``count`` host devices on a CPU, unless XLA_FLAGS already sets a number; it
    must run before JAX starts."""
    if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
        ).strip()


def join_processes(args: argparse.Namespace) -> bool:
    """Whether this is one of several processes; if so, connect them (``jax.distributed``) and
    keep the mesh layout only, the one that spans processes."""
    from jaxllm.train import ParallelConfig, setup_parallel

    if args.num_processes <= 1:
        return False
    setup_parallel(
        ParallelConfig(
            mode="mesh",
            coordinator=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    )
    if set(args.modes) - {"mesh"}:
        print("several processes: running the mesh layout only (pmap and none use one process)")
    args.modes = ["mesh"]
    return True


@dataclasses.dataclass(frozen=True)
class Workload:
    """What every (mode, devices) run trains: one GPT, from the same weights, on the same global
    batches of the bundled corpus.

    Attributes:
      tokens: int[corpus_length], the corpus as token ids.
      peak_flops: one device's measured matmul FLOP/s, in the model's dtype.
    """

    args: argparse.Namespace
    model_config: GPTConfig
    tokens: np.ndarray
    loss_fn: Callable
    optimizer: optax.GradientTransformation
    params: dict
    n_params: int
    flops_per_token: float
    peak_flops: float
    multiprocess: bool

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one global batch."""
        return self.args.batch_size * self.model_config.block_size

    def batch(self, step: int) -> dict:
        """This process's share of global batch ``step``: ``inputs``, ``targets``:
        int32[batch, block_size]."""
        import jax

        from jaxllm.data import lm_batch

        return lm_batch(
            self.tokens,
            seed=self.args.seed,
            step=step,
            batch_size=self.args.batch_size,
            seq_len=self.model_config.block_size,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )


def build_workload(args: argparse.Namespace, multiprocess: bool) -> Workload:
    """The GPT of ``--model`` in ``--dtype``, its character-level corpus, AdamW and the initial
    weights (``--seed``)."""
    import jax
    import numpy as np

    from harness import gpt_flops_per_token, measure_matmul_peak
    from jaxllm.data import encode_corpus, load_corpus, train_tokenizer
    from jaxllm.losses import language_model_loss
    from jaxllm.models.gpt import (
        GPT,
        GPTConfig,
        count_params,
        init_params,
        with_cpu_tuned_attention,
    )
    from jaxllm.optim import OptimizerConfig, make_optimizer

    text = "\n".join(load_corpus("pydoc"))
    tokenizer = train_tokenizer("char", [text])
    tokens = encode_corpus(tokenizer, [text])
    shapes = {  # (n_layer, n_head, n_embd, block_size)
        "tiny": (2, 4, 128, 128),
        "small": (4, 4, 256, 128),
        "gpt2": (12, 12, 768, 1024),
    }
    n_layer, n_head, n_embd, block_size = shapes[args.model]
    model_config = with_cpu_tuned_attention(
        GPTConfig(
            vocab_size=50257 if args.model == "gpt2" else tokenizer.vocab_size,
            dropout=0.0,
            bias=False,
            dtype=args.dtype,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            block_size=block_size,
        ),
        jax.default_backend(),
        jax.device_count(),
    )
    if args.model == "gpt2":  # GPT-2's vocabulary: token ids drawn from the character stream
        tokens = tokens.astype(np.int64) * 397 % model_config.vocab_size
    loss_fn = language_model_loss(GPT(model_config))
    optimizer = make_optimizer(OptimizerConfig(learning_rate=1e-3, weight_decay=0.1, grad_clip=1.0))
    params = init_params(model_config, jax.random.key(args.seed))
    n_params = count_params(params)
    return Workload(
        args=args,
        model_config=model_config,
        tokens=tokens,
        loss_fn=loss_fn,
        optimizer=optimizer,
        params=params,
        n_params=n_params,
        flops_per_token=gpt_flops_per_token(model_config, n_params),
        peak_flops=measure_matmul_peak(args.dtype),
        multiprocess=multiprocess,
    )


def planned_runs(args: argparse.Namespace) -> list[tuple[ParallelMode, int]]:
    """``(mode, devices)`` pairs in the order they run: ``none`` on one device first (the
    reference), then ``pmap`` and ``mesh`` on each ``--devices`` count."""
    runs: list[tuple[ParallelMode, int]] = [("none", 1)] if "none" in args.modes else []
    return runs + [
        (mode, n) for mode in ("pmap", "mesh") if mode in args.modes for n in args.devices
    ]


def matmul_units(devices: int) -> int:
    """Separate matmul units behind ``devices``: simulated CPU devices share one machine."""
    import jax

    return 1 if jax.devices()[0].platform == "cpu" else devices


def train_layout(work: Workload, mode: ParallelMode, n: int) -> dict:
    """Train under ``mode`` on ``n`` devices for one compiling, ``--warmup`` and ``--steps``
    timed steps: the layout, its step time (median of the timed steps), tokens/s, MFU,
    compile time and every step's loss."""
    import jax
    import numpy as np

    from harness import mfu
    from jaxllm.train import ParallelConfig, create_train_state, make_layout

    args = work.args
    config = ParallelConfig(
        mode=mode,
        devices=0 if work.multiprocess else n,
        fsdp=min(args.fsdp, n),
        microbatches=args.microbatches,
    )
    layout = make_layout(config)
    state = layout.place_state(
        create_train_state(work.params, work.optimizer, jax.random.key(args.seed + 1))
    )
    step_fn = layout.train_step(work.loss_fn, work.optimizer, microbatches=args.microbatches)
    losses, seconds = [], []
    for s in range(1 + args.warmup + args.steps):
        start = time.perf_counter()
        state, metrics = step_fn(state, work.batch(s))
        losses.append(float(metrics["loss"]))  # waits for the step
        seconds.append(time.perf_counter() - start)
    timed = np.median(seconds[1 + args.warmup :])
    tokens_per_s = work.tokens_per_step / timed
    return {
        "mode": mode,
        "devices": layout.num_devices,
        "layout": layout.describe(),
        "compile_s": seconds[0],
        "ms_per_step": 1e3 * timed,
        "tokens_per_s": tokens_per_s,
        "mfu": mfu(
            work.flops_per_token, tokens_per_s, work.peak_flops * matmul_units(layout.num_devices)
        ),
        "losses": losses,
    }


def main(argv: list[str] | None = None) -> int:
    """Train every planned (mode, devices) run, print a line for each and the report; 1 if the
    runs' losses disagree."""
    args = parse_args(argv)
    split_cpu_into_devices(args.host_devices)  # before JAX starts
    from jaxllm.runtime import configure_cpu

    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    import jax
    import numpy as np

    sys.path.insert(
        0, str(Path(__file__).resolve().parents[1] / "benchmarks")
    )  # benchmarks/harness
    from jaxllm.plots import plot_scaling

    multiprocess = join_processes(args)
    primary = jax.process_index() == 0
    say = print if primary else (lambda *_: None)
    work = build_workload(args, multiprocess)
    available = jax.device_count() if multiprocess else jax.local_device_count()
    say(
        f"GPT {args.model}: {work.n_params:,} parameters, {args.dtype}, global batch "
        f"{args.batch_size} × {work.model_config.block_size} tokens; {available} "
        f"{jax.devices()[0].platform} devices; "
        f"matmul peak {work.peak_flops / 1e9:,.0f} GFLOP/s per device"
    )
    results, reference = [], None
    for mode, n in planned_runs(args):
        if n > available:
            say(f"skip {mode} on {n} devices: only {available} exist")
            continue
        record = train_layout(work, mode, n)
        losses = record["losses"]
        reference = reference or losses
        record["max_loss_diff"] = float(np.max(np.abs(np.subtract(losses, reference))))
        results.append(record)
        say(
            f"{record['layout']:>42}: {record['ms_per_step']:8.1f} ms/step "
            f"{record['tokens_per_s']:10,.0f} tokens/s  MFU {100 * record['mfu']:5.1f}%  "
            f"compile {record['compile_s']:.1f} s  "
            f"loss {losses[-1]:.4f} (max diff {record['max_loss_diff']:.1e})"
        )

    tolerance = 1e-4 if args.dtype == "float32" else 2e-2
    agree = all(r["max_loss_diff"] <= tolerance for r in results)
    if primary:
        report(args, results, agree, tolerance, jax.devices()[0].platform, plot_scaling)
    return 0 if agree else 1


def report(
    args, results: list[dict], agree: bool, tolerance: float, platform: str, plot_scaling
) -> None:
    """The Markdown table on stdout; results.jsonl and scaling.png in the run folder."""
    import json
    from pathlib import Path

    run_dir = Path(args.out_dir) / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "results.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    note = (
        "CPU: the simulated devices share this machine's cores, so more of them add no compute"
        if platform == "cpu"
        else f"{platform}"
    )
    plot_scaling(
        results,
        run_dir / "scaling.png",
        title=f"GPT {args.model}, {args.dtype}, global batch {args.batch_size}",
        note=note,
    )
    print("\n| layout | ms/step | tokens/s | MFU | compile | max loss diff vs first row |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['layout']} | {r['ms_per_step']:,.1f} | {r['tokens_per_s']:,.0f} | "
            f"{100 * r['mfu']:.1f}% | {r['compile_s']:.1f} s | {r['max_loss_diff']:.1e} |"
        )
    verdict = "agree" if agree else "DISAGREE"
    print(
        f"\nlosses {verdict} with the first run's (tolerance {tolerance:g}); "
        f"{note}. Written: {run_dir / 'results.jsonl'}, {run_dir / 'scaling.png'}"
    )


if __name__ == "__main__":
    sys.exit(main())
