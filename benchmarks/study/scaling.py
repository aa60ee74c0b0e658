"""Data-parallel scaling of GPT training over 1, 2, 4, 8 devices, with ``jax.pmap`` and with
a sharded mesh: strong scaling (one global batch split over more devices), weak scaling (the
batch grows with the devices), the time a gradient all-reduce takes, and Amdahl's law fitted
to the strong-scaling speed-ups.

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

from harness.flops import random_lm_batch
from harness.isolation import run_in_fresh_process
from harness.timing import time_fn
from jaxllm.train.parallel import ParallelMode
from study.llm import GPT_CONTEXT, OPTIMIZER, gpt_config

SCALING_WIDTH = 128  # the study's GPT (study.llm.gpt_config) at this width
PER_DEVICE_BATCH = 4
# (scaling, layout): one global batch over pmap's replicas and over the mesh; a batch grown
# with the devices over the mesh.
CASES: tuple[tuple[str, ParallelMode], ...] = (
    ("strong", "pmap"),
    ("strong", "mesh"),
    ("weak", "mesh"),
)


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
    """Every case of :data:`CASES` on every device count, the all-reduce times and Amdahl's
    fit of each layout's strong scaling (run where the devices are)."""
    from jaxllm.models.gpt import count_params, init_params

    gradient_size = count_params(init_params(gpt_config(SCALING_WIDTH), jax.random.key(0)))
    all_reduce = {n: all_reduce_seconds(gradient_size, n, steps) for n in device_counts}
    rows = []
    for kind, mode in CASES:
        case = [scaling_row(kind, mode, n, device_counts, steps) for n in device_counts]
        for row in case:
            base = case[0]
            more = row["devices"] / base["devices"]
            row["speedup"] = base["step_s"] / row["step_s"] * (1 if kind == "strong" else more)
            row["efficiency"] = row["speedup"] / more
            row["all_reduce_s"] = all_reduce[row["devices"]]
            row["communication_share"] = row["all_reduce_s"] / row["step_s"]
        rows += case
    fits = {
        mode: amdahl_fraction(
            [r["devices"] for r in rows if r["kind"] == "strong" and r["mode"] == mode],
            [r["speedup"] for r in rows if r["kind"] == "strong" and r["mode"] == mode],
        )
        for kind, mode in CASES
        if kind == "strong"
    }
    return {
        "platform": jax.devices()[0].platform,
        "devices_available": jax.device_count(),
        "rows": rows,
        "amdahl_parallel_fraction": fits,
    }


def scaling_row(
    kind: str, mode: ParallelMode, n: int, device_counts: tuple[int, ...], steps: int
) -> dict:
    """One (kind, layout, devices) measurement: the data-parallel step's median seconds on
    ``n`` devices (``mode``: ``"pmap"`` or ``"mesh"``), its first call and tokens/s."""
    from jaxllm.losses import language_model_loss
    from jaxllm.models.gpt import GPT, init_params
    from jaxllm.optim import make_optimizer
    from jaxllm.train import ParallelConfig, create_train_state, make_layout

    config, optimizer = gpt_config(SCALING_WIDTH), make_optimizer(OPTIMIZER)
    layout = make_layout(ParallelConfig(mode=mode, devices=n))
    step = layout.train_step(language_model_loss(GPT(config)), optimizer)
    params = init_params(config, jax.random.key(0))
    state = layout.place_state(create_train_state(params, optimizer, jax.random.key(1)))
    batch_size = PER_DEVICE_BATCH * (max(device_counts) if kind == "strong" else n)
    batch = random_lm_batch(config, batch_size, seed=n)
    seconds = []
    for _ in range(1 + steps):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics["loss"])
        seconds.append(time.perf_counter() - start)
    step_s = float(np.median(seconds[1:]))
    return {
        "kind": kind,
        "mode": mode,
        "devices": n,
        "batch": batch_size,
        "first_call_s": seconds[0],
        "step_s": step_s,
        "tokens_per_s": batch_size * GPT_CONTEXT / step_s,
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
