"""A smoke run of benchmarks/log_mel.py at a tiny size, librosa included."""

import json

from scripts import load_script

JAXLLM_WAYS = ["jaxllm jit_log_mel", "jaxllm batched_log_mel", "jaxllm log_mel_batch"]
WAYS = [*JAXLLM_WAYS, "librosa loop", "librosa batch"]


def test_tiny_run_times_every_way_and_reports_ratios(capsys):
    bench = load_script("benchmarks/log_mel.py")
    argv = "--batch 2 --seconds 0.25 --n-fft 256 --hop 128 --mels 20 --repeats 2"
    assert bench.main(argv.split()) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert [row["way"] for row in result["rows"]] == WAYS
    audio_seconds = 2 * 0.25
    for row in result["rows"]:
        assert row["audio_s_per_s"] == audio_seconds / row["warm_s"] > 0
        assert row["first_total_s"] >= row["first_compile_s"] >= 0
    jaxllm_first = result["rows"][0]
    assert jaxllm_first["first_compile_s"] > 0  # the first call compiled
    speed = {row["way"]: row["audio_s_per_s"] for row in result["rows"]}
    assert result["ratios"]["jaxllm batched_log_mel vs librosa batch"] == (
        speed["jaxllm batched_log_mel"] / speed["librosa batch"]
    )
    assert len(result["ratios"]) == 6 and result["target"] == 3.0
    assert result["max_abs_log_difference"] < 1e-3  # the same features
    assert any(line.startswith("| librosa batch |") for line in out)


def test_without_reference_only_jaxllm_runs(capsys):
    bench = load_script("benchmarks/log_mel.py")
    argv = "--batch 1 --seconds 0.25 --n-fft 256 --hop 128 --mels 20 --repeats 1 --no-reference"
    assert bench.main([*argv.split(), "--json-only"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert len(out) == 1 and "ratios" not in result
    assert [row["way"] for row in result["rows"]] == JAXLLM_WAYS
