"""Wall-clock timing of JAX (and plain Python) code: medians over repeats, compile time, memory.

JAX dispatches asynchronously, so every timed call waits for its outputs with
``jax.block_until_ready`` (which passes non-JAX leaves through, so the helpers also time
eager PyTorch or NumPy code).
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call over the timed repeats (warm-up calls excluded).

    Attributes:
      median_s: the median, the figure to report (robust to a stray slow call).
      min_s: the fastest call, the best the code can do on an idle machine.
      all: every timed call, in order.
    """

    median_s: float
    min_s: float
    all: tuple[float, ...]

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> Timing:
        if not seconds:
            raise ValueError("no timed calls: repeats must be >= 1")
        return cls(median_s=statistics.median(seconds), min_s=min(seconds), all=tuple(seconds))


def timed_call(fn: Callable, *args: Any) -> tuple[float, Any]:
    """``(seconds, output)`` of one call of ``fn(*args)``, waiting for the output to be ready."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def time_fn(fn: Callable, *args: Any, warmup: int = 1, repeats: int = 10) -> Timing:
    """Time ``fn(*args)``: ``warmup`` untimed calls (compilation, caches), then ``repeats`` timed.

    ``fn`` must accept the same arguments every call (not a jitted function that donates them;
    for a step that consumes its state use :func:`time_steps`).
    """
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    return Timing.from_seconds([timed_call(fn, *args)[0] for _ in range(repeats)])


def time_steps(
    step: Callable, state: Any, *args: Any, warmup: int = 1, repeats: int = 10
) -> tuple[Timing, tuple[Any, Any]]:
    """Time a state-threading step ``step(state, *args) -> (state, aux)``, like a train step.

    Each call gets the state the previous one returned, so steps that donate their state
    (``jit_train_step``) can be timed. Returns the timing of the ``repeats`` calls after
    ``warmup`` untimed ones, and the last call's output ``(state, aux)``.
    """
    for _ in range(warmup):
        state, _ = jax.block_until_ready(step(state, *args))
    seconds, aux = [], None
    for _ in range(repeats):
        elapsed, (state, aux) = timed_call(step, state, *args)
        seconds.append(elapsed)
    return Timing.from_seconds(seconds), (state, aux)


def compile_stages(
    jitted_fn: Any, *args: Any, static: dict[str, Any] | None = None, repeats: int = 3
) -> dict[str, float]:
    """Seconds of each stage of a jitted function's first call, and of a warm one:
    ``{"trace_s", "compile_s", "first_run_s", "steady_s"}`` (tracing and lowering to XLA, XLA's
    compilation, the first run of the compiled program, the median of ``repeats`` later runs).
    ``static``: the function's static keyword arguments. With JAX's persistent compilation
    cache enabled, ``compile_s`` is a cache load where the cache holds the program.
    """
    start = time.perf_counter()
    lowered = jitted_fn.lower(*args, **(static or {}))
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    first_s, _ = timed_call(compiled, *args)
    steady = Timing.from_seconds([timed_call(compiled, *args)[0] for _ in range(repeats)])
    return {"trace_s": traced - start, "compile_s": done - traced, "first_run_s": first_s,
            "steady_s": steady.median_s}  # fmt: skip


# JAX's monitoring events (durations in seconds) of a first call's stages: tracing to a jaxpr
# and lowering it to MLIR; XLA's compilation, or its load from the persistent cache.
_TRACE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
)
# (JAX 0.10's backend-compile event spans its persistent-cache lookup too, so a load counts once.)
_COMPILE_EVENTS = ("/jax/core/compile/backend_compile_duration",)


def call_stages(fn: Callable, *args: Any) -> tuple[dict[str, float], Any]:
    """``({"total_s", "trace_s", "compile_s", "run_s"}, output)`` of one call of ``fn``, any
    Python function that runs jitted code (a library entry point, a train step): the seconds
    JAX reported tracing and lowering, compiling (or loading from the persistent cache), and
    the rest (running, transfers, Python work). Unlike :func:`compile_stages` it needs no
    access to the jitted function inside, and the output is returned (a donating call leaves
    its arguments unusable)."""
    seconds = {"trace_s": 0.0, "compile_s": 0.0}

    def listen(event: str, duration_secs: float, **_: Any) -> None:
        if event in _TRACE_EVENTS:
            seconds["trace_s"] += duration_secs
        elif event in _COMPILE_EVENTS:
            seconds["compile_s"] += duration_secs

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        total, output = timed_call(fn, *args)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    # JAX times its stages with its own clock: on a call of a few milliseconds the remainder
    # can come out a few microseconds below zero.
    run = max(0.0, total - seconds["trace_s"] - seconds["compile_s"])
    return {"total_s": total, **seconds, "run_s": run}, output


def max_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    On Linux, ``VmHWM`` from ``/proc/self/status``: the peak of this program's own address
    space. ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a process spawned from a larger
    one would report its parent's size at the fork; it is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
