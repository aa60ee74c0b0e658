"""The roofline: what the machine can do (matmul FLOP/s, memory bytes/s), what a compiled
program asks of it (FLOPs and bytes, from XLA's cost analysis), and the plot that puts the two
together (Williams, Waterman and Patterson, 2009)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from harness.timing import time_fn


def best_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` jitted ``float32[n, n] @ float32[n, n]`` products:
    the roof's compute limit (the median, ``harness.measure_matmul_peak``, is MFU's
    denominator; a shared machine's neighbours make it wander)."""
    a = jnp.ones((n, n), jnp.float32)
    timing = time_fn(jax.jit(jnp.matmul), a, a, warmup=1, repeats=repeats)
    return 2.0 * n**3 / timing.min_s


def measure_memory_bandwidth(n: int = 2**24, passes: int = 40, repeats: int = 5) -> float:
    """Bytes/s of ``passes`` streaming passes ``v = v * a + b`` over ``float32[n]`` inside one
    jitted loop: each pass reads the array once and writes it once, ``8 n`` bytes, and does
    too little arithmetic to be bound by anything but where the array lives (at the default
    ``n``, 64 MiB, main memory; at ``2**18``, 1 MiB, the caches). In one program, so a call's
    dispatch does not count; the fastest of ``repeats`` calls, as a roof is what the machine
    can do (a shared machine's neighbours make the median wander)."""

    def stream(v):
        return jax.lax.fori_loop(0, passes, lambda _, w: w * 0.999 + 0.001, v)

    timing = time_fn(jax.jit(stream), jnp.ones(n, jnp.float32), warmup=1, repeats=repeats)
    return 8.0 * n * passes / timing.min_s  # a roof: the best the machine did


def xla_cost(fn: Any, *args: Any) -> dict[str, float | None]:
    """``{"flops", "bytes"}`` XLA's cost analysis counts for ``jax.jit(fn)(*args)`` (``None``
    where the backend does not report one)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per computation
        analysis = analysis[0] if analysis else {}
    analysis = analysis or {}
    flops, moved = analysis.get("flops"), analysis.get("bytes accessed")
    return {
        "flops": None if flops is None else float(flops),
        "bytes": None if moved is None else float(moved),
    }


def attainable(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """The roofline: FLOP/s a program of ``intensity`` FLOPs per byte can reach at most."""
    return min(peak_flops, bandwidth * intensity)


def plot_roofline(
    points: list[dict], peak_flops: float, bandwidths: dict[str, float], path: str | Path
) -> Path:
    """Every point ``{"label", "intensity", "flops_per_s"}`` on log-log axes under the
    machine's roofs (for each of ``bandwidths``, ``{"memory": bytes/s, ...}``: bandwidth ×
    intensity, then the matmul peak), saved as a PNG."""
    import numpy as np

    from jaxllm.plots import save_line_plot, subplots

    fig, ax = subplots(figsize=(8, 5.5))
    intensities = [p["intensity"] for p in points]
    ridge = peak_flops / min(bandwidths.values())
    grid = np.geomspace(min(intensities + [0.1]) / 2, max(intensities + [ridge]) * 4, 200)
    for (name, bandwidth), line in zip(bandwidths.items(), ("k-", "k--", "k:"), strict=False):
        roof = [attainable(i, peak_flops, bandwidth) / 1e9 for i in grid]
        label = f"{name}: {bandwidth / 1e9:.0f} GB/s, then {peak_flops / 1e9:.0f} GFLOP/s"
        ax.plot(grid, roof, line, label=label)
    for point in points:
        where = (point["intensity"], point["flops_per_s"] / 1e9)
        ax.scatter(*where, s=25)
        ax.annotate(point["label"], where, fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return save_line_plot(
        fig,
        ax,
        path,
        xlabel="arithmetic intensity (FLOPs per byte, XLA)",
        ylabel="attained GFLOP/s",
        title="roofline: jax.jit on this machine",
    )
