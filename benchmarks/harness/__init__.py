"""Benchmarking helpers: FLOP counts, MFU, the machine's matmul peak, timing and memory, and
the report every benchmark prints."""

from harness.flops import gpt_flops_per_token, mfu, random_lm_batch
from harness.isolation import run_in_fresh_process
from harness.linear_stages import fit_stages, predict_stages
from harness.machine import (
    CpuSnapshot,
    background_load,
    cpu_snapshot,
    load_warning,
    machine_info,
    run_record,
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
    "fit_stages",
    "gpt_flops_per_token",
    "load_warning",
    "machine_info",
    "matmul_flops",
    "max_rss_mb",
    "measure_matmul_peak",
    "mfu",
    "predict_stages",
    "print_report",
    "random_lm_batch",
    "run_in_fresh_process",
    "run_record",
    "time_fn",
    "time_steps",
    "timed_call",
]
