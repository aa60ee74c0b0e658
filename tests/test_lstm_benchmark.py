"""A smoke run of benchmarks/lstm_throughput.py at a tiny size."""

import json
import time

from scripts import load_script


def test_tiny_run_prints_the_table_and_json(capsys):
    bench = load_script("benchmarks/lstm_throughput.py")
    argv = "--layers 1 2 --hidden 8 --batch 2 --seq 3 --repeats 2 --no-torch".split()
    start = time.perf_counter()
    assert bench.main(argv) == 0
    wall = time.perf_counter() - start
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert [(r["layers"], r["hidden"]) for r in result["rows"]] == [(1, 8), (2, 8)]
    assert any(line.startswith("| 2 | 8 |") for line in out)
    for row in result["rows"]:
        # Each timed call took less than the whole run, so its rate is above this bound.
        assert row["train_tokens_per_s"] > 2 * 3 / wall and row["infer_tokens_per_s"] > 2 * 3 / wall
        assert row["first_train_s"] + row["first_infer_s"] < wall
        assert "train_ratio_vs_torch" not in row  # no reference was run
