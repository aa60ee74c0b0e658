"""Tests of harness and a smoke run of benchmarks/train_throughput.py on a tiny GPT."""

import dataclasses
import json
import math
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts import load_script

from harness import (
    CpuSnapshot,
    Timing,
    background_load,
    call_stages,
    cpu_snapshot,
    gpt_flops_per_token,
    machine_info,
    matmul_flops,
    max_rss_mb,
    measure_matmul_peak,
    mfu,
    run_in_fresh_process,
    time_fn,
    time_steps,
)
from jaxllm.models.gpt import GPTConfig, count_params, init_params

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def train_throughput():
    """benchmarks/train_throughput.py as a module (benchmarks/ is not a package)."""
    yield load_script("benchmarks/train_throughput.py")
    del sys.modules["train_throughput"]


def nanogpt_flops_per_token(n_params_non_embedding, n_layer, n_head, n_embd, block_size):
    """nanoGPT's GPT.estimate_mfu, transcribed."""
    L, H, Q, T = n_layer, n_head, n_embd // n_head, block_size
    return 6 * n_params_non_embedding + 12 * L * H * Q * T


def test_gpt_flops_per_token_matches_a_hand_count():
    # TINY (no bias): wte 11·16, wpe 8·16, per layer 2 LayerNorm scales 2·16 and matrices
    # 16·48 + 16·16 + 16·64 + 64·16, then ln_f 16.
    n_params = 11 * 16 + 8 * 16 + 2 * (2 * 16 + 16 * 48 + 16 * 16 + 16 * 64 + 64 * 16) + 16
    assert count_params(init_params(TINY, jax.random.key(0))) == n_params
    n_without_positions = n_params - 8 * 16
    expected = 6 * n_without_positions + 12 * 2 * 2 * 8 * 8
    assert gpt_flops_per_token(TINY, n_params) == expected == 41_472
    assert expected == nanogpt_flops_per_token(n_without_positions, 2, 2, 16, 8)


def test_gpt_flops_per_token_subtracts_no_table_for_rotary_positions():
    rotary = GPTConfig(
        vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, positions="rotary"
    )
    assert gpt_flops_per_token(rotary, 1000) == 6 * 1000 + 12 * 2 * 2 * 8 * 8


def test_mfu_is_achieved_over_peak_flops():
    assert mfu(2e6, 500.0, 4e9) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        mfu(1.0, 1.0, 0.0)


def test_time_fn_times_each_call_after_the_warmup():
    """A call that sleeps 20 ms: 3 timed calls of at least that long, after one untimed call."""
    calls = []

    def nap(x):
        calls.append(time.perf_counter())
        time.sleep(0.02)
        return x

    start = time.perf_counter()
    timing = time_fn(nap, jnp.ones(3), warmup=1, repeats=3)
    wall = time.perf_counter() - start
    assert isinstance(timing, Timing) and len(timing.all) == 3 and len(calls) == 4
    assert all(t >= 0.02 for t in timing.all) and sum(timing.all) < wall - 0.02
    assert (timing.min_s, timing.median_s) == (min(timing.all), float(np.median(timing.all)))
    jitted = time_fn(jax.jit(lambda x: x @ x), jnp.ones((32, 32)), warmup=1, repeats=3)
    assert 0 < jitted.min_s <= jitted.median_s <= max(jitted.all) < 1.0


def test_time_steps_threads_donated_state_and_returns_last_output():
    step = jax.jit(lambda count, inc: (count + inc, count), donate_argnums=0)
    stages, state = call_stages(step, jnp.zeros(()), 1.0)
    assert stages["trace_s"] > 0 and stages["compile_s"] > 0 and stages["run_s"] >= 0
    assert stages["total_s"] == pytest.approx(
        stages["trace_s"] + stages["compile_s"] + stages["run_s"], abs=1e-3
    )
    again, _ = call_stages(step, jnp.zeros(()), 1.0)  # compiled: no trace, no compile
    assert again["trace_s"] == again["compile_s"] == 0
    timing, (state, previous) = time_steps(step, state[0], 1.0, warmup=2, repeats=3)
    assert len(timing.all) == 3 and timing.median_s > 0
    assert float(state) == 6.0 and float(previous) == 5.0


def test_matmul_peak_is_flops_over_seconds():
    assert matmul_flops(4) == 2 * 4 * 4 * 4 == 128
    start = time.perf_counter()
    peak = measure_matmul_peak("float32", n=64, repeats=3)
    wall = time.perf_counter() - start
    # The median call takes less than the whole measurement and more than 100 ns.
    assert matmul_flops(64) / wall < peak < matmul_flops(64) / 1e-7


def _resident_mb() -> float:
    """This process's resident memory now (``VmRSS``), in MiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 2**10 for line in status if line.startswith("VmRSS:"))


def test_machine_info_and_memory_are_plain_json():
    info = machine_info()
    json.dumps(info)
    assert info["backend"] == jax.default_backend() and 1 <= info["cpu_count"] <= os.cpu_count()
    if os.path.exists("/proc/self/status"):
        ballast = np.ones(2**27 // 8)  # 128 MiB, touched: the peak is at least what is resident now
        assert max_rss_mb() >= _resident_mb() >= 128
        del ballast


def test_background_load_is_the_others_cpu_time_over_the_wall_time():
    # 2 s of wall time in which all processes used 4 CPU-seconds, this one 1: others kept 1.5 CPUs.
    start = CpuSnapshot(wall_s=10.0, busy_s=100.0, own_s=3.0)
    end = CpuSnapshot(wall_s=12.0, busy_s=104.0, own_s=4.0)
    assert background_load(start, end) == pytest.approx(1.5)
    assert background_load(start, dataclasses.replace(end, busy_s=100.5)) == 0.0  # clamped
    assert background_load(start, dataclasses.replace(end, busy_s=None)) is None
    snapshot = cpu_snapshot()  # the real counters: this process's CPU time at most all of it
    assert snapshot.busy_s is None or snapshot.own_s <= snapshot.busy_s


def test_run_benchmark_on_a_tiny_model_reports_every_figure(train_throughput):
    result = train_throughput.run_benchmark(TINY, batch=2, steps=2, with_torch=False, peak_n=64)
    json.dumps(result)
    n_params = count_params(init_params(TINY, jax.random.key(0)))
    assert result["benchmark"] == "train_throughput" and result["config"] == "custom"
    assert result["n_params"] == n_params
    assert result["flops_per_token"] == gpt_flops_per_token(TINY, n_params)
    assert result["tokens_per_step"] == 2 * TINY.block_size
    for key in ("tokens_per_s", "ms_per_step", "mfu", "compile_s", "peak_flops"):
        assert result[key] > 0, key
    assert result["tokens_per_s"] == pytest.approx(16 / (result["ms_per_step"] / 1e3))
    assert result["mfu"] == pytest.approx(
        result["flops_per_token"] * result["tokens_per_s"] / result["peak_flops"]
    )
    for key in ("torch_tokens_per_s", "torch_mfu", "ratio_vs_torch", "max_rss_mb"):
        assert key in result and result[key] is None, key
    assert set(result["machine"]) >= {"jax_version", "backend", "device_kind", "cpu_count"}
    assert result["loss_first"] == pytest.approx(math.log(11), abs=0.2)  # untrained: uniform


def test_rounds_report_the_median_round_and_the_highest_memory(train_throughput, monkeypatch):
    """Three rounds of both sides with made-up timings: the figures are the median-ratio round's."""
    rounds = iter([(0.5, 1.0, 100.0), (0.25, 1.0, 300.0), (0.4, 1.0, 200.0)])  # ratios 2, 4, 2.5

    def fake_side(step_s, rss):
        return {
            "n_params": 1,
            "first_step_s": 1.0,
            "first_step_stages": {"total_s": 1.0, "trace_s": 0.2, "compile_s": 0.7, "run_s": 0.1},
            "step_s": step_s,
            "step_min_s": step_s,
            "loss_first": 2.0,
            "loss_last": 1.0,
            "rss_before_mb": 10.0,
            "max_rss_mb": rss,
            "reuse_step_memory": True,
            "matmul_flops": 1e9,
            "version": "x",
            "threads": 1,
        }

    current = {}

    def jax_side(*args):
        current["ours"], current["theirs"], current["rss"] = next(rounds)
        return fake_side(current["ours"], current["rss"])

    monkeypatch.setattr(train_throughput, "jax_side", jax_side)
    monkeypatch.setattr(
        train_throughput,
        "run_in_fresh_process",  # "isolated", in this process
        lambda fn, *args, environment: fn(*args),
    )
    monkeypatch.setattr(
        train_throughput,
        "torch_side",
        lambda *args: fake_side(current["theirs"], current["rss"] + 1),
    )
    result = train_throughput.run_benchmark(
        TINY, batch=2, steps=1, with_torch=True, peak_n=64, isolate=True, rounds=3
    )
    json.dumps(result)
    assert result["rounds"] == 3
    assert result["rounds_ratio_vs_torch"] == pytest.approx([2.0, 4.0, 2.5])
    assert result["ratio_vs_torch"] == pytest.approx(2.5)
    assert result["ms_per_step"] == pytest.approx(400.0) and result[
        "torch_ms_per_step"
    ] == pytest.approx(1000.0)
    assert result["max_rss_mb"] == 300.0 and result["torch_max_rss_mb"] == 301.0
    assert result["train_rss_mb"] == 290.0
    assert "ratio in each of 3 rounds: 2.00, 2.50, 4.00x" in "\n".join(
        train_throughput.report_lines(result)
    )
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        train_throughput.run_benchmark(TINY, rounds=0)


@pytest.mark.slow  # another compile of the benchmark; the float32 smoke run above stays fast
def test_a_bfloat16_model_is_measured_against_the_bfloat16_peak(train_throughput):
    bf16 = dataclasses.replace(TINY, dtype="bfloat16")
    result = train_throughput.run_benchmark(bf16, batch=2, steps=1, peak_n=64)
    assert result["peak_dtype"] == "bfloat16" and result["model"]["dtype"] == "bfloat16"
    assert result["mfu"] > 0 and math.isfinite(result["loss_last"])
    assert result["loss_first"] == pytest.approx(math.log(11), abs=0.2)  # untrained: uniform
    assert "params, bfloat16;" in train_throughput.report_lines(result)[0]
    with pytest.raises(ValueError, match="float32 only.*--no-torch"):
        train_throughput.run_benchmark(bf16, batch=2, steps=1, with_torch=True, peak_n=64)


def test_named_configs_are_the_benchmarked_shapes(train_throughput):
    gpt2 = train_throughput.CONFIGS["gpt2"].model
    assert (
        gpt2.n_layer,
        gpt2.n_head,
        gpt2.n_embd,
        gpt2.block_size,
        gpt2.vocab_size,
        gpt2.dtype,
    ) == (12, 12, 768, 1024, 50257, "bfloat16")
    small, large = train_throughput.CONFIGS["small"], train_throughput.CONFIGS["large"]
    assert (small.model.n_layer, small.model.n_embd, small.model.block_size, small.batch_size) == (
        4,
        256,
        128,
        16,
    )
    assert (large.model.n_layer, large.model.n_embd, large.model.block_size, large.batch_size) == (
        6,
        384,
        256,
        8,
    )
    with pytest.raises(ValueError, match="unknown benchmark config"):
        train_throughput.resolve("medium", None, None)


def test_torch_reference_trains_like_jaxllm_from_the_same_weights(train_throughput):
    pytest.importorskip("torch")
    with_biases = dataclasses.replace(TINY, bias=True)  # biases exercise more of the name mapping
    result = train_throughput.run_benchmark(
        with_biases, batch=2, steps=2, with_torch=True, peak_n=64
    )
    json.dumps(result)
    assert result["torch_loss_first"] == pytest.approx(result["loss_first"], abs=1e-5)
    assert result["torch_loss_last"] == pytest.approx(result["loss_last"], abs=1e-4)
    assert result["loss_last"] < result["loss_first"]
    assert result["ratio_vs_torch"] == pytest.approx(
        result["tokens_per_s"] / result["torch_tokens_per_s"]
    )
    assert result["torch_mfu"] > 0 and result["torch_threads"] >= 1


def test_fresh_process_starts_with_the_extra_environment_and_ours_is_unchanged(monkeypatch):
    monkeypatch.delenv("JAXLLM_TEST_MARK", raising=False)
    seen = run_in_fresh_process(
        os.getenv, "JAXLLM_TEST_MARK", environment={"JAXLLM_TEST_MARK": "1"}
    )
    assert seen == "1"
    assert "JAXLLM_TEST_MARK" not in os.environ
    with pytest.raises(ZeroDivisionError):  # the child's exception reaches us, environment restored
        run_in_fresh_process(divmod, 1, 0, environment={"JAXLLM_TEST_MARK": "1"})
    assert "JAXLLM_TEST_MARK" not in os.environ


@pytest.mark.slow  # a fresh interpreter importing JAX; the environment test above starts one too
def test_a_spawned_process_reports_its_own_peak_memory_not_its_parents():
    ballast = np.ones(2**28 // 8)  # 256 MiB, touched
    parent_peak = max_rss_mb()
    child_peak = run_in_fresh_process(max_rss_mb)
    assert parent_peak > 256 and child_peak < parent_peak - 128, (parent_peak, child_peak)
    del ballast


def test_load_warning_only_when_other_processes_were_busy():
    from harness import load_warning

    assert load_warning(None, 2) is None and load_warning(0.05, 2) is None
    assert load_warning(0.74, 2).startswith("WARNING: other processes kept 0.74 of 2 CPUs")
