"""A description of the machine a benchmark ran on, for its JSON output."""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import time
from typing import Any

import jax
import jaxlib.version


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """JAX version and backend, device kind and count, CPU model and count.

    (No load average: it lags by a minute and counts the benchmark itself. To tell whether
    other processes competed with a benchmark, see :func:`background_load`.)
    """
    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.version.__version__,
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": usable_cpus(),
        "cpu_model": cpu_model(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """CPU time at one moment: wall clock, all processes' busy time, and this process tree's.

    Attributes:
      wall_s: ``time.perf_counter()``.
      busy_s: CPU-seconds every process (and the hypervisor's steal) has used since boot, from
        ``/proc/stat``; ``None`` where there is no ``/proc/stat``.
      own_s: user + system CPU-seconds of this process and its waited-for children.
    """

    wall_s: float
    busy_s: float | None
    own_s: float


def cpu_snapshot() -> CpuSnapshot:
    """The CPU time used so far, to compare with a later snapshot (see :func:`background_load`)."""
    own = sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    return CpuSnapshot(wall_s=time.perf_counter(), busy_s=system_busy_seconds(), own_s=own)


def system_busy_seconds() -> float | None:
    """CPU-seconds all CPUs have spent not idle since boot (Linux ``/proc/stat``), else ``None``."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def background_load(start: CpuSnapshot, end: CpuSnapshot) -> float | None:
    """Average number of CPUs that *other* processes kept busy between two snapshots.

    ``(Δ all busy time − Δ our own CPU time) / Δ wall time``. Near 0 on a quiet machine; a
    benchmark that competed with, say, a test suite on a 2-CPU machine shows ~1 here and its
    throughput figures are too low. Children count as our own only once they have been waited
    for, so take ``end`` after they exit. ``None`` where ``/proc/stat`` is missing.
    """
    if start.busy_s is None or end.busy_s is None or end.wall_s <= start.wall_s:
        return None
    others = (end.busy_s - start.busy_s) - (end.own_s - start.own_s)
    return max(others, 0.0) / (end.wall_s - start.wall_s)


def load_warning(
    background: float | None, cpu_count: int | str, threshold: float = 0.1
) -> str | None:
    """The line a benchmark prints when other processes kept more than ``threshold`` CPUs busy
    while it ran (see :func:`background_load`), else ``None``."""
    if background is None or background <= threshold:
        return None
    return (
        f"WARNING: other processes kept {background:.2f} of {cpu_count} CPUs busy during this "
        "run; every time here is longer than on an idle machine"
    )


def run_record(start: CpuSnapshot) -> dict[str, Any]:
    """What every benchmark's JSON ends with: the other processes' CPU load since ``start``
    (:func:`background_load`), the machine (:func:`machine_info`) and the time."""
    return {
        "background_cpu_load": background_load(start, cpu_snapshot()),
        "machine": machine_info(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
