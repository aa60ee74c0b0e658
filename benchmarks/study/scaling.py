"""Data-parallel scaling of GPT training over 1, 2, 4, 8 devices: strong scaling (one global
batch split over more devices), weak scaling (the batch grows with the devices), the time a
gradient all-reduce takes, and Amdahl's law fitted to the strong-scaling speed-ups.

On a CPU the devices are XLA host devices (``--xla_force_host_platform_device_count``) that
share the machine's cores: more of them add no compute, so the figures measure what splitting
the work costs and how well several programs keep the cores busy. On a multi-GPU or TPU host
the same code measures real scaling.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from harness.isolation import run_in_fresh_process
from harness.timing import time_fn

SCALING_WIDTH, SCALING_LAYERS, SCALING_CONTEXT, SCALING_VOCAB = 128, 2, 64, 256
PER_DEVICE_BATCH = 4


def run_scaling(device_counts: tuple[int, ...], steps: int) -> dict[str, Any]:
    """The scaling figures, measured in a fresh process that has ``max(device_counts)``
    devices (host devices on a CPU; the accelerators themselves elsewhere).

    Raises:
      SystemExit: more devices asked for than an accelerator host has.
    """
    wanted = max(device_counts)
    if jax.default_backend() != "cpu":
        if wanted > jax.device_count():
            raise SystemExit(
                f"--scaling-devices asks for {wanted} devices; this host has "
                f"{jax.device_count()} {jax.devices()[0].platform} devices"
            )
        return scaling_figures(device_counts, steps)
    flags = f"--xla_force_host_platform_device_count={wanted}"
    return run_in_fresh_process(
        scaling_figures, device_counts, steps, environment={"XLA_FLAGS": flags}
    )


def scaling_figures(device_counts: tuple[int, ...], steps: int) -> dict[str, Any]:
    """Strong and weak scaling rows, the all-reduce times and Amdahl's fit (run where the
    devices are)."""
    rows = [
        scaling_row(kind, n, device_counts, steps)
        for kind in ("strong", "weak")
        for n in device_counts
    ]
    for kind in ("strong", "weak"):
        base = next(r for r in rows if r["kind"] == kind and r["devices"] == device_counts[0])
        for row in (r for r in rows if r["kind"] == kind):
            row["speedup"] = (
                base["step_s"]
                / row["step_s"]
                * (1 if kind == "strong" else row["devices"] / base["devices"])
            )
            row["efficiency"] = row["speedup"] / (row["devices"] / base["devices"])
            row["communication_share"] = row["all_reduce_s"] / row["step_s"]
    strong = [r for r in rows if r["kind"] == "strong"]
    parallel = amdahl_fraction([r["devices"] for r in strong], [r["speedup"] for r in strong])
    return {
        "platform": jax.devices()[0].platform,
        "devices_available": jax.device_count(),
        "rows": rows,
        "amdahl_parallel_fraction": parallel,
        "amdahl_max_speedup": 1.0 / (1.0 - parallel) if parallel < 1 else float("inf"),
    }


def scaling_row(kind: str, n: int, device_counts: tuple[int, ...], steps: int) -> dict:
    """One (kind, devices) measurement: the data-parallel step's median seconds on ``n``
    devices, its first call, tokens/s, and the seconds of an all-reduce of the gradients."""
    from jaxllm.losses import language_model_loss
    from jaxllm.models.gpt import GPT, GPTConfig, count_params, init_params
    from jaxllm.optim import OptimizerConfig, make_optimizer
    from jaxllm.train import ParallelConfig, create_train_state, make_layout

    config = GPTConfig(
        vocab_size=SCALING_VOCAB,
        block_size=SCALING_CONTEXT,
        n_layer=SCALING_LAYERS,
        n_head=4,
        n_embd=SCALING_WIDTH,
        dtype="float32",
    )
    optimizer = make_optimizer(OptimizerConfig(name="adamw", learning_rate=1e-3))
    params = init_params(config, jax.random.key(0))
    layout = make_layout(ParallelConfig(mode="mesh", devices=n))
    step = layout.train_step(language_model_loss(GPT(config)), optimizer)
    state = layout.place_state(create_train_state(params, optimizer, jax.random.key(1)))
    batch_size = PER_DEVICE_BATCH * (max(device_counts) if kind == "strong" else n)
    tokens = np.random.default_rng(n).integers(
        0, SCALING_VOCAB, (batch_size, SCALING_CONTEXT + 1), dtype=np.int32
    )
    batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}
    seconds = []
    for _ in range(1 + steps):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics["loss"])
        seconds.append(time.perf_counter() - start)
    step_s = float(np.median(seconds[1:]))
    return {
        "kind": kind,
        "devices": n,
        "batch": batch_size,
        "first_call_s": seconds[0],
        "step_s": step_s,
        "tokens_per_s": batch_size * SCALING_CONTEXT / step_s,
        "all_reduce_s": all_reduce_seconds(count_params(params), n, steps),
    }


def all_reduce_seconds(values: int, n: int, repeats: int) -> float:
    """Median seconds of summing a ``float32[values]`` gradient over ``n`` devices
    (``jax.lax.psum`` under ``jax.pmap``); 0 on one device."""
    if n == 1:
        return 0.0
    summed = jax.pmap(
        lambda g: jax.lax.psum(g, "devices"), axis_name="devices", devices=jax.devices()[:n]
    )
    gradients = np.ones((n, values), np.float32)
    return time_fn(summed, gradients, warmup=1, repeats=max(repeats, 3)).median_s


def amdahl_fraction(devices: list[int], speedups: list[float]) -> float:
    """The parallel fraction ``p`` of Amdahl's law ``S(N) = 1 / ((1 - p) + p / N)`` that best
    fits the speed-ups (least squares on ``1/S - 1 = p (1/N - 1)``), clipped to [0, 1]."""
    x = np.array([1.0 / n - 1.0 for n in devices])
    y = np.array([1.0 / s - 1.0 for s in speedups])
    if not np.any(x):
        return 0.0
    return float(np.clip(np.dot(x, y) / np.dot(x, x), 0.0, 1.0))
