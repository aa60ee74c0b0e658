"""How traditional and LLM-style computing use this machine, measured: the same computations
as pure-Python loops, NumPy, JAX op by op and ``jax.jit``, a sweep of independent problems by
``jax.vmap`` against a loop, all placed on the machine's measured roofline.

    python benchmarks/architecture_study.py                  # ~2.5 min on 2 CPU cores
    python benchmarks/architecture_study.py --quick          # under a minute
    python benchmarks/architecture_study.py --computations matmul attention --plot roofline.png
    python benchmarks/architecture_study.py --size matmul=512,4096 --json-only

Computations (:mod:`study.computations`, :mod:`study.llm`): ``matmul``, ``mlp_step`` (one SGD
step of a 2-layer MLP), ``attention`` (causal self-attention), ``logistic_gd`` (gradient
descent on logistic regression), ``word2vec_step`` (a skip-gram negative-sampling step),
``tfidf`` (string work: no JAX form) and ``gpt_step`` (a GPT training step: JAX forms only),
each at several sizes and in the styles it has:

- ``python``: lists and loops, one scalar operation at a time. Run at one small size
  (``python_size``) and extrapolated to the others by the FLOP count; marked ``*``.
- ``numpy``: whole-array operations in NumPy's compiled loops and BLAS.
- ``jax_op_by_op``: the JAX form called without ``jax.jit``: every operation dispatched on its
  own (each compiled once, on its first call, which the warm-up absorbs).
- ``jax_jit``: the same function under ``jax.jit``: one compiled, fused program.

Each is timed by the benchmarks' harness (one warm-up call, then the median of ``--repeats``),
and reported as seconds, GFLOP/s (the analytic count: multiply-adds are 2) and the fraction of
the machine's matmul peak. For ``jax_jit`` XLA's cost analysis gives the FLOPs and bytes the
compiled program moves, hence its arithmetic intensity, the FLOP/s it attained by that count,
and whether the roofline says it is bound by compute or by memory. The machine's roof is
measured in the same run, as the best of several calls: the float32 matmul peak
(``study.roofline.best_matmul_flops``) and the bandwidth of a streaming loop in main memory
and in the caches (``study.roofline.measure_memory_bandwidth``).

The sweep: 32 logistic regressions at different learning rates, and 256 small matmuls, as a
Python loop of NumPy calls, a Python loop of jitted calls, and one ``jax.vmap``-ed jitted call
(and NumPy's own batched ``matmul``). Decoding: greedy KV-cache generation of a GPT-2-shaped
model at ``--decoding-batches`` against the bound of reading every weight once per token step
at the measured bandwidth (latency- against throughput-bound). Scaling (:mod:`study.scaling`):
data-parallel GPT training over ``--scaling-devices`` (host devices on a CPU, in a fresh
process), strong and weak, with the all-reduce's share of a step and Amdahl's law fitted. The
same command runs on a GPU or TPU when JAX sees one.

A Markdown table is printed, then one JSON line with every figure (``--plot`` also draws the
roofline as a PNG).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
from study.computations import COMPUTATIONS as ARRAY_COMPUTATIONS
from study.computations import Computation, as_lists, logistic_jax, logistic_numpy
from study.llm import GPT_STEP, decoding_rows
from study.roofline import best_matmul_flops, measure_memory_bandwidth, plot_roofline, xla_cost
from study.scaling import run_scaling

from harness import (
    cpu_snapshot,
    load_warning,
    print_report,
    run_record,
    time_fn,
)
from jaxllm.device_arrays import to_device
from jaxllm.runtime import configure_cpu

STYLES = ("python", "numpy", "jax_op_by_op", "jax_jit")
COMPUTATIONS: dict[str, Computation] = {**ARRAY_COMPUTATIONS, GPT_STEP.name: GPT_STEP}
SWEEP_PROBLEMS, SWEEP_MATMULS, SWEEP_MATMUL_N = 32, 256, 64
# A computation needs its inputs and about as much again for its temporaries and outputs.
MEMORY_FACTOR = 4.0
MIN_SAMPLE_S = 0.01  # shorter calls are timed in runs of several
CACHE_FLOATS = 2**18  # 1 MiB read and 1 MiB written: within a core's L2 or the L3 cache


def styles_of(computation: Computation) -> tuple[str, ...]:
    """The styles ``computation`` has a form for, in :data:`STYLES`' order."""
    forms = {
        "python": computation.python,
        "numpy": computation.numpy,
        "jax_op_by_op": computation.jax,
        "jax_jit": computation.jax,
    }
    return tuple(style for style in STYLES if forms[style] is not None)


def style_call(computation: Computation, style: str, inputs: tuple) -> tuple[Any, tuple]:
    """``(function, arguments)`` that run ``computation`` on ``inputs`` in ``style``."""
    if style == "python":
        return computation.python, as_lists(inputs)
    if style == "numpy":
        return computation.numpy, inputs
    on_device = tuple(jax.tree.map(to_device, x) for x in inputs)
    if style == "jax_op_by_op":
        return computation.jax, on_device
    assert computation.jax is not None, f"{computation.name} has no JAX form"
    return jax.jit(computation.jax), on_device


def seconds_per_call(fn: Any, *args: Any, repeats: int, warmup: int = 1) -> float:
    """Median seconds of one call of ``fn(*args)``. A call shorter than ``MIN_SAMPLE_S`` is
    timed in runs of several calls (each waited for, as a user's loop would), so that the
    clock's resolution and a stray interruption do not decide its figure."""
    first = time_fn(fn, *args, warmup=warmup, repeats=1).median_s
    calls = max(1, math.ceil(MIN_SAMPLE_S / max(first, 1e-9)))

    def several() -> Any:
        return [jax.block_until_ready(fn(*args)) for _ in range(calls)]

    return time_fn(several, warmup=0, repeats=repeats).median_s / calls


@functools.cache
def python_seconds(computation: Computation, repeats: int) -> float:
    """Median seconds of the pure-Python form at its own (small) size, measured once per
    process."""
    assert computation.python is not None, f"{computation.name} has no Python form"
    inputs = computation.inputs(computation.python_size, np.random.default_rng(0))
    return seconds_per_call(computation.python, *as_lists(inputs), repeats=repeats, warmup=0)


def cell(computation: Computation, style: str, size: int, inputs: tuple, repeats: int) -> dict:
    """One timed style at one size: ``{"seconds", "extrapolated"}`` (and XLA's cost for
    ``jax_jit``). The Python form is timed once, at its own size, and scaled by the FLOPs."""
    if style == "python":
        small = python_seconds(computation, max(1, min(repeats, 3)))
        scale = computation.flops(size) / computation.flops(computation.python_size)
        return {"seconds": small * scale, "extrapolated": size != computation.python_size}
    fn, args = style_call(computation, style, inputs)
    row: dict[str, Any] = {
        "seconds": seconds_per_call(fn, *args, repeats=repeats),
        "extrapolated": False,
    }
    if style == "jax_jit":
        row.update({f"xla_{k}": v for k, v in xla_cost(computation.jax, *args).items()})
    return row


def computation_rows(
    computation: Computation, sizes: tuple[int, ...], repeats: int, roof: dict
) -> list[dict]:
    """Every style of ``computation`` at every size, with its rates and the roofline's view."""
    rows = []
    for size in sizes:
        inputs = computation.inputs(size, np.random.default_rng(size))
        flops = computation.flops(size)
        styles = styles_of(computation)
        cells = {style: cell(computation, style, size, inputs, repeats) for style in styles}
        python = cells.get("python", {}).get("seconds")
        for style, measured in cells.items():
            rate = flops / measured["seconds"]
            row = {
                "computation": computation.name,
                "size": size,
                "style": style,
                "unit": computation.unit,
                "work": flops,
                **measured,
                "rate": rate,
                "speedup_vs_python": python / measured["seconds"] if python else None,
            }
            if computation.unit == "FLOP":
                row |= {"fraction_of_peak": rate / roof["peak_flops"]} | roofline_view(row, roof)
            rows.append(row)
    return rows


def roofline_view(row: dict, roof: dict) -> dict:
    """Where a ``jax_jit`` row sits on the roofline, by XLA's own counts on both axes: its
    arithmetic intensity (FLOPs per byte), the FLOP/s it attained, the bound and the share of
    the roof it reached; empty for the other styles."""
    flops, moved = row.get("xla_flops"), row.get("xla_bytes")
    if not flops or not moved:
        return {}
    intensity, attained = flops / moved, flops / row["seconds"]
    ridge = roof["peak_flops"] / roof["bandwidth"]
    roof_rate = min(roof["peak_flops"], roof["bandwidth"] * intensity)
    return {
        "intensity": intensity,
        "xla_rate": attained,
        "bound": "compute" if intensity >= ridge else "memory",
        "fraction_of_roof": attained / roof_rate,
        # Above the memory roof: the data is read from the caches, not from memory.
        "from_cache": attained > roof["bandwidth"] * intensity,
    }


def sweep_rows(rows_n: int, repeats: int) -> list[dict]:
    """Independent problems as a loop and as one ``jax.vmap``-ed call: ``SWEEP_PROBLEMS``
    logistic regressions (one learning rate each) and ``SWEEP_MATMULS`` small matmuls. Every
    form's results are checked against NumPy's."""
    rng = np.random.default_rng(1)
    x, y = COMPUTATIONS["logistic_gd"].inputs(rows_n, rng)
    rates = np.geomspace(0.01, 1.0, SWEEP_PROBLEMS).astype(np.float32)
    a = rng.standard_normal((SWEEP_MATMULS, SWEEP_MATMUL_N, SWEEP_MATMUL_N), dtype=np.float32)
    b = rng.standard_normal(a.shape, dtype=np.float32)
    one_fit, one_product = jax.jit(logistic_jax), jax.jit(_matmul)
    sweeps = {
        f"{SWEEP_PROBLEMS} logistic regressions, {rows_n:,} rows": {
            "numpy loop": lambda: np.stack([logistic_numpy(x, y, r) for r in rates]),
            "jit loop": lambda: np.stack([one_fit(x, y, r) for r in rates]),
            "vmap": _vmapped(jax.vmap(logistic_jax, in_axes=(None, None, 0)), x, y, rates),
        },
        f"{SWEEP_MATMULS} matmuls of {SWEEP_MATMUL_N}x{SWEEP_MATMUL_N}": {
            "numpy loop": lambda: np.stack([ai @ bi for ai, bi in zip(a, b, strict=True)]),
            "numpy batched": lambda: np.matmul(a, b),
            "jit loop": lambda: np.stack(
                [one_product(ai, bi) for ai, bi in zip(a, b, strict=True)]
            ),
            "vmap": _vmapped(jax.vmap(_matmul), a, b),
        },
    }
    return [row for name, forms in sweeps.items() for row in _sweep(name, forms, repeats)]


def _matmul(a: Any, b: Any) -> Any:
    return a @ b


def _vmapped(fn: Any, *args: Any) -> Any:
    """``fn`` jitted and applied to ``args`` on the device, as a no-argument call."""
    jitted, on_device = jax.jit(fn), tuple(to_device(arg) for arg in args)
    return lambda: jitted(*on_device)


def _sweep(name: str, forms: dict, repeats: int) -> list[dict]:
    """Time each form of one sweep; check it agrees with the first (NumPy's loop)."""
    reference = np.asarray(forms["numpy loop"]())
    rows = []
    for form, run in forms.items():
        np.testing.assert_allclose(np.asarray(run()), reference, rtol=2e-3, atol=2e-4)
        seconds = seconds_per_call(run, repeats=repeats)
        rows.append({"sweep": name, "form": form, "seconds": seconds})
    for row in rows:
        row["speedup_vs_loop"] = rows[0]["seconds"] / row["seconds"]
    return rows


def available_memory_bytes() -> float | None:
    """``MemAvailable`` from ``/proc/meminfo`` (Linux), else ``None`` (not checked)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024.0
    except OSError:
        pass
    return None


def check_memory(plan: dict[str, tuple[int, ...]], available: float | None) -> None:
    """Refuse, before measuring anything, a size whose arrays would not fit in memory."""
    if available is None:
        return
    for name, sizes in plan.items():
        for size in sizes:
            need = MEMORY_FACTOR * COMPUTATIONS[name].input_bytes(size)
            if need > available:
                raise SystemExit(
                    f"{name} at size {size:,} needs about {need / 2**30:.1f} GiB (its inputs and "
                    f"temporaries); {available / 2**30:.1f} GiB is available: pass a smaller "
                    f"--size {name}=..."
                )


def parse_sizes(values: list[str]) -> dict[str, tuple[int, ...]]:
    """``["matmul=512,4096"]`` -> ``{"matmul": (512, 4096)}``, or a usage error naming what is
    wrong."""
    sizes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, _, numbers = value.partition("=")
        if name not in COMPUTATIONS:
            raise ValueError(
                f"--size {value!r}: unknown computation {name!r}; "
                f"choose from {', '.join(COMPUTATIONS)}"
            )
        try:
            parsed = tuple(int(n) for n in numbers.split(","))
        except ValueError:
            parsed = ()
        if not parsed or min(parsed) < 1:
            raise ValueError(f"--size {value!r}: expected {name}=N[,N...] with positive integers")
        sizes[name] = parsed
    return sizes


def run_study(
    plan: dict[str, tuple[int, ...]],
    repeats: int,
    quick: bool,
    decoding: tuple[int, ...] = (),
    scaling: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Measure the roof, then every planned computation, the sweeps, decoding at each of the
    ``decoding`` batch sizes, and data-parallel training over each of the ``scaling`` device
    counts (in a fresh process that has them)."""
    start = cpu_snapshot()
    roof = {
        "peak_flops": best_matmul_flops(n=1024 if quick else 2048, repeats=max(repeats, 5)),
        "bandwidth": measure_memory_bandwidth(n=2**24, repeats=repeats),
        "cache_bandwidth": measure_memory_bandwidth(n=CACHE_FLOATS, passes=200, repeats=repeats),
    }
    roof["ridge_intensity"] = roof["peak_flops"] / roof["bandwidth"]
    rows = [
        row
        for name, sizes in plan.items()
        for row in computation_rows(COMPUTATIONS[name], sizes, repeats, roof)
    ]
    return {
        "benchmark": "architecture_study",
        "quick": quick,
        "repeats": repeats,
        "device": jax.devices()[0].platform,
        **roof,
        "rows": rows,
        "sweeps": sweep_rows(2_000 if quick else 20_000, repeats),
        "decoding": decoding_rows(decoding, roof["bandwidth"], repeats),
        "scaling": run_scaling(scaling, repeats) if scaling else None,
        **run_record(start),
    }


def report_lines(r: dict) -> list[str]:
    """The Markdown tables printed above the JSON line."""
    lines = [
        f"architecture study on {r['device']}: matmul peak {r['peak_flops'] / 1e9:.1f} GFLOP/s, "
        f"memory {r['bandwidth'] / 1e9:.1f} GB/s (cache {r['cache_bandwidth'] / 1e9:.1f} GB/s), "
        f"ridge {r['ridge_intensity']:.1f} FLOPs/byte; median of {r['repeats']}; "
        "* = extrapolated from a smaller size by the FLOP count; peak: the fastest square "
        "matmul; the roof's columns use XLA's FLOP and byte counts; % of roof > 100%: served "
        "from the caches",
        "",
        "| computation | size | style | seconds | rate | % of peak | vs python "
        "| FLOPs/byte (XLA) | bound | % of roof |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        mark = "*" if row["extrapolated"] else ""
        intensity = f"{row['intensity']:.2f}" if "intensity" in row else ""
        roof = _percent(row["fraction_of_roof"]) if "fraction_of_roof" in row else ""
        peak = _percent(row["fraction_of_peak"]) if "fraction_of_peak" in row else ""
        versus = f"{row['speedup_vs_python']:,.0f}x" if row["speedup_vs_python"] else ""
        lines.append(
            f"| {row['computation']} | {row['size']:,} | {row['style']} | "
            f"{row['seconds']:.3g}{mark} | {_rate_text(row)}{mark} | {peak} | {versus} | "
            f"{intensity} | {row.get('bound', '')} | {roof} |"
        )
    if r["decoding"]:
        lines += [
            "",
            "| decoding, batch | new tokens/s | bound: weights read once per step "
            "| % of the bound | first call (s) |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {d['batch']} | {d['tokens_per_s']:,.0f} | {d['weight_read_bound']:,.0f} | "
            f"{_percent(d['fraction_of_bound'])} | {d['first_call_s']:.2f} |"
            for d in r["decoding"]
        ]
    lines += _scaling_lines(r["scaling"])
    lines += ["", "| independent problems | form | seconds | vs the loop |", "|---|---|---|---|"]
    for row in r["sweeps"]:
        lines.append(
            f"| {row['sweep']} | {row['form']} | {row['seconds']:.4f} | "
            f"{row['speedup_vs_loop']:.1f}x |"
        )
    warning = load_warning(r["background_cpu_load"], r["machine"]["cpu_count"])
    return lines + ([warning] if warning else [])


def roofline_points(r: dict) -> list[dict]:
    """The ``jax_jit`` rows as points of :func:`study.roofline.plot_roofline`."""
    return [
        {
            "label": f"{row['computation']} {row['size']:,}",
            "intensity": row["intensity"],
            "flops_per_s": row["xla_rate"],
        }
        for row in r["rows"]
        if "intensity" in row
    ]


DOC_INTRODUCTION = """# How the workloads use the machine

The design document argues that traditional programs run serial instruction streams on a CPU,
while the LLM way of computing is dense linear algebra that wants parallel hardware: SIMD
units, many cores, GPUs and TPUs. This page measures that argument on one machine. The same
computations run as pure-Python loops (one scalar operation at a time), as NumPy (whole-array
operations in compiled loops and BLAS), as JAX dispatched op by op, and as one `jax.jit`-
compiled program; a sweep of independent problems runs as a loop and as one `jax.vmap`-ed call.
Each compiled program is placed on the machine's roofline: its arithmetic intensity (FLOPs
per byte moved, from XLA's cost analysis) against the FLOP/s it attains, under the two limits
measured in the same run, memory bandwidth and the matmul peak.

This page is written by the study itself (`--markdown`); every number below comes from the
run it names. Rerun it on your machine, or on a GPU or TPU, with the same command.
"""


def findings(r: dict) -> list[str]:
    """Sentences computed from the rows: the gaps between styles, and the roofline's verdict."""
    rows, lines = r["rows"], []
    for name in dict.fromkeys(row["computation"] for row in rows):
        by = {(row["size"], row["style"]): row for row in rows if row["computation"] == name}
        sizes = sorted({size for size, _ in by})
        lines.append(f"- **{name}**: " + " ".join(_computation_findings(by, sizes)))
    lines += _decoding_findings(r["decoding"]) + _scaling_findings(r["scaling"])
    for sweep in dict.fromkeys(row["sweep"] for row in r["sweeps"]):
        forms = {row["form"]: row for row in r["sweeps"] if row["sweep"] == sweep}
        over_jit_loop = forms["jit loop"]["seconds"] / forms["vmap"]["seconds"]
        lines.append(
            f"- **{sweep}**: one `jax.vmap`-ed call runs {forms['vmap']['speedup_vs_loop']:.1f}x "
            f"a loop of NumPy calls and {over_jit_loop:.1f}x a loop of jitted calls."
        )
    return lines


def _scaling_findings(scaling: dict | None) -> list[str]:
    """Strong and weak scaling and Amdahl's fits in a sentence."""
    if not scaling:
        return []
    rows = scaling["rows"]
    where = (
        "host devices sharing this CPU's cores"
        if scaling["platform"] == "cpu"
        else f"{scaling['platform']} devices"
    )
    strong = [
        f"{r['speedup']:.2f}x as fast on {r['devices']} as on one with {r['mode']} (Amdahl's "
        f"parallel fraction {scaling['amdahl_parallel_fraction'][r['mode']]:.2f})"
        for r in rows
        if r["kind"] == "strong" and r["devices"] == rows[-1]["devices"]
    ]
    weak = [r for r in rows if r["kind"] == "weak"][-1]
    share = max(r["communication_share"] for r in rows)
    return [
        f"- **data-parallel training** over up to {rows[-1]['devices']} {where}: one global "
        f"batch runs {' and '.join(strong)}; a batch grown with the devices keeps "
        f"{100 * weak['efficiency']:.0f}% efficiency on the mesh; the gradient all-reduce takes "
        f"{100 * share:.0f}% of a step at most."
    ]


def _decoding_findings(rows: list[dict]) -> list[str]:
    """The decoding measurement in a sentence: batch 1 against its bound, larger batches."""
    if not rows:
        return []
    first, rest = rows[0], rows[1:]
    said = (
        f"- **decoding** ({first['weight_bytes'] / 2**20:.0f} MiB of float32 weights): batch "
        f"{first['batch']} reaches {first['tokens_per_s']:,.0f} new tokens/s, "
        f"{100 * first['fraction_of_bound']:.0f}% of the bound that reading every weight once "
        "per token step sets at the measured memory bandwidth"
    )
    for row in rest:
        said += (
            f"; batch {row['batch']} reads them once for {row['batch']} tokens and reaches "
            f"{row['tokens_per_s'] / first['tokens_per_s']:.1f}x the tokens/s"
        )
    return [said + "."]


def _computation_findings(by: dict, sizes: list[int]) -> list[str]:
    """The sentences of one computation's finding; ``by``: its rows by (size, style)."""
    said = []
    if all((size, "numpy") in by and by[size, "numpy"]["speedup_vs_python"] for size in sizes):
        numpy = [by[size, "numpy"]["speedup_vs_python"] for size in sizes]
        said.append(f"NumPy runs {_span(numpy, ',.0f')}x the pure-Python loop.")
    if not any((size, "jax_jit") in by for size in sizes):
        return [*said, "It has no JAX form: its work is on strings, on the host."]
    jit = [by[size, "jax_op_by_op"]["seconds"] / by[size, "jax_jit"]["seconds"] for size in sizes]
    said.append(f"`jax.jit` runs {_span(jit, '.1f')}x JAX op by op.")
    bounds = _bounds_by_size({size: by[size, "jax_jit"].get("bound", "?") for size in sizes})
    peak = max(by[size, "jax_jit"]["fraction_of_peak"] for size in sizes)
    said.append(
        f"By the roofline the compiled program is {bounds}; it reaches at most "
        f"{100 * peak:.0f}% of the matmul peak."
    )
    return said


def _span(values: list[float], spec: str) -> str:
    """``"3.1-7.5"``, or one number where the span rounds to it."""
    low, high = format(min(values), spec), format(max(values), spec)
    return low if low == high else f"{low}-{high}"


def _bounds_by_size(bounds: dict[int, str]) -> str:
    """``{64: "memory", 256: "compute", 1024: "compute"}`` -> ``"memory-bound at 64,
    compute-bound at 256 and 1,024"``."""
    groups: dict[str, list[str]] = {}
    for size, bound in bounds.items():
        groups.setdefault(bound, []).append(f"{size:,}")
    if len(groups) == 1:
        return f"{next(iter(groups))}-bound at every size"
    return ", ".join(f"{bound}-bound at {' and '.join(sizes)}" for bound, sizes in groups.items())


def _scaling_lines(scaling: dict | None) -> list[str]:
    """The data-parallel scaling table of :func:`report_lines` (none when not measured)."""
    if not scaling:
        return []
    lines = [
        "",
        f"| data-parallel GPT step ({scaling['platform']}) | layout | devices | batch | seconds "
        "| tokens/s | speed-up | efficiency | all-reduce share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in scaling["rows"]:
        lines.append(
            f"| {row['kind']} scaling | {row['mode']} | {row['devices']} | {row['batch']} | "
            f"{row['step_s']:.4f} | {row['tokens_per_s']:,.0f} | {row['speedup']:.2f}x | "
            f"{_percent(row['efficiency'])} | {_percent(row['communication_share'])} |"
        )
    return lines


def _rate_text(row: dict) -> str:
    """``"253 GFLOP/s"`` or ``"4.1 M tokens/s"``."""
    if row["unit"] == "FLOP":
        return f"{row['rate'] / 1e9:.3g} GFLOP/s"
    return f"{row['rate'] / 1e6:.3g} M {row['unit']}s/s"


def _percent(fraction: float) -> str:
    """``0.00012`` -> ``"0.012%"``, ``0.53`` -> ``"53%"``, ``1.03`` -> ``"103%"``."""
    percent = 100 * fraction
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.2g}%"


def markdown_page(r: dict, command: str, plot: str | None) -> str:
    """The study's page: the introduction, where and how it ran, findings, tables, roofline."""
    machine = r["machine"]
    where = (
        f"Measured {r['timestamp'][:10]} on {machine['cpu_count']} cores of an "
        f"{machine['cpu_model']} ({r['device']}), jax {machine['jax_version']}, by "
        f"`{command}`."
    )
    parts = [DOC_INTRODUCTION, "## Results", "", where, "", *findings(r), "", *report_lines(r)]
    if plot:
        parts += ["", f"![the roofline, with every compiled program on it]({plot})"]
    return "\n".join(parts) + "\n"


def counts(text: str | None, default: str, parser: argparse.ArgumentParser) -> tuple:
    """``"1,2,4"`` (or ``default`` when ``None``) as a tuple of positive integers, ascending;
    ``"none"`` as an empty one; anything else a usage error."""
    text = text or default
    if text == "none":
        return ()
    try:
        values = tuple(sorted(int(v) for v in text.split(",")))
    except ValueError:
        values = ()
    if not values or values[0] < 1:
        parser.error(f"{text!r}: expected positive integers N[,N...], or 'none'")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The study's command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--computations",
        nargs="+",
        choices=list(COMPUTATIONS),
        default=list(COMPUTATIONS),
        help="which computations to measure",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=N[,N...]",
        help="sizes of one computation instead of its defaults",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--decoding-batches",
        default=None,
        metavar="B[,B...]",
        help="batch sizes of the decoding measurement (default 1,64; quick 1,8; 'none' skips it)",
    )
    parser.add_argument(
        "--scaling-devices",
        default=None,
        metavar="N[,N...]",
        help="device counts of data-parallel training (default 1,2,4,8; quick 1,2; 'none')",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 5, 3)")
    parser.add_argument("--plot", default=None, help="write the roofline to this PNG")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    parser.add_argument("--markdown", default=None, help="also write the study's page here")
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = build_parser()
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        chosen = parse_sizes(args.size)
    except ValueError as err:
        parser.error(str(err))
    plan = {
        name: chosen.get(name)
        or (COMPUTATIONS[name].quick_sizes if args.quick else COMPUTATIONS[name].sizes)
        for name in args.computations
    }
    decoding = counts(args.decoding_batches, "1,8" if args.quick else "1,64", parser)
    scaling = counts(args.scaling_devices, "1,2" if args.quick else "1,2,4,8", parser)
    check_memory(plan, available_memory_bytes())
    result = run_study(plan, repeats, args.quick, decoding, scaling)
    if args.plot:
        bandwidths = {"memory": result["bandwidth"], "cache": result["cache_bandwidth"]}
        points = roofline_points(result)
        result["plot"] = str(plot_roofline(points, result["peak_flops"], bandwidths, args.plot))
    if args.markdown:
        command = "python benchmarks/architecture_study.py " + " ".join(argv or sys.argv[1:])
        plot = os.path.relpath(args.plot, os.path.dirname(args.markdown)) if args.plot else None
        Path(args.markdown).write_text(markdown_page(result, command.strip(), plot))
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
