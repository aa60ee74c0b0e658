"""A smoke run of benchmarks/translate_throughput.py at a tiny size, Marian included."""

import json

from scripts import load_script


def test_tiny_run_times_both_sides_and_reports_ratios(capsys):
    bench = load_script("benchmarks/translate_throughput.py")
    argv = (
        "--layers 1 --width 16 --heads 2 --vocab 50 --batch 2 --source-len 5 --new-tokens 4 "
        "--beams 2 --repeats 1"
    )
    assert bench.main(argv.split()) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert [r["kind"] for r in result["rows"]] == ["greedy", "beam", "train"]
    for row in result["rows"]:
        assert row["ratio"] == row["jaxllm_per_s"] / row["marian_per_s"] > 0
        assert row["jaxllm_first_total_s"] >= row["jaxllm_first_compile_s"] > 0
    assert result["ratios"] == {r["kind"]: r["ratio"] for r in result["rows"]}
    # the same shapes: the two sides' parameter counts differ only by Marian's extras
    assert abs(result["marian_params"] - result["jaxllm_params"]) < 0.1 * result["jaxllm_params"]
    assert any(line.startswith("| beam 2 | sentences/s |") for line in out)
