"""Benchmarking helpers: FLOP counts, MFU, the machine's matmul peak, timing and memory, and
the report every benchmark prints."""

from harness.flops import gpt_flops_per_token, mfu
from harness.isolation import run_in_fresh_process
from harness.machine import (
    CpuSnapshot,
    background_load,
    cpu_snapshot,
    load_warning,
    machine_info,
)
from harness.peak import matmul_flops, measure_matmul_peak
from harness.report import print_report
from harness.timing import (
    Timing,
    call_stages,
    compile_stages,
    max_rss_mb,
    time_fn,
    time_steps,
    timed_call,
)

__all__ = [
    "CpuSnapshot",
    "Timing",
    "background_load",
    "call_stages",
    "compile_stages",
    "cpu_snapshot",
    "gpt_flops_per_token",
    "load_warning",
    "machine_info",
    "matmul_flops",
    "max_rss_mb",
    "measure_matmul_peak",
    "mfu",
    "print_report",
    "run_in_fresh_process",
    "time_fn",
    "time_steps",
    "timed_call",
]
