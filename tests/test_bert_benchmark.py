"""A smoke run of benchmarks/bert_throughput.py at a tiny size."""

import json
import time

from scripts import load_script


def test_tiny_run_prints_the_table_and_json(capsys):
    bench = load_script("benchmarks/bert_throughput.py")
    argv = "--layers 1 --width 16 --heads 2 --vocab 50 --batch 2 --seq 8 --repeats 2 --no-torch"
    start = time.perf_counter()
    assert bench.main(argv.split()) == 0
    wall = time.perf_counter() - start
    out = capsys.readouterr().out.strip().splitlines()
    row = json.loads(out[-1])["row"]
    assert any(line.startswith("| MLM training, tokens/s |") for line in out)
    # Each timed call took less than the whole run, so its rate is above this bound.
    assert row["train_tokens_per_s"] > 16 / wall and row["infer_tokens_per_s"] > 16 / wall
    assert 0 < row["load_s"] < wall and row["load_peak_rss_mb"] > 0
    assert "train_ratio_vs_torch" not in row  # no reference was run
