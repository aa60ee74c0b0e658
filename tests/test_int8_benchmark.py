"""A smoke run of benchmarks/int8_generate.py at a tiny size."""

import json

from scripts import load_script


def test_tiny_run_prints_every_variant_and_its_ratio(capsys):
    bench = load_script("benchmarks/int8_generate.py")
    argv = "--layers 1 --width 16 --heads 2 --vocab 40 --batch-sizes 1 2 --new-tokens 4 --repeats 1"
    assert bench.main(argv.split()) == 0
    out = capsys.readouterr().out.strip().splitlines()
    rows = json.loads(out[-1])["rows"]
    assert [(r["variant"], r["batch"]) for r in rows] == [
        (v, b) for v in ("float32", "bfloat16", "int8") for b in (1, 2)
    ]
    by = {(r["variant"], r["batch"]): r for r in rows}
    for batch in (1, 2):
        for variant in ("bfloat16", "int8"):
            ratio = by[(variant, batch)]["ratio_vs_float32"]
            expected = by[(variant, batch)]["tokens_per_s"] / by[("float32", batch)]["tokens_per_s"]
            assert ratio == expected > 0
        assert 0 < by[("int8", batch)]["max_logit_change"] < 0.05
        assert by[("int8", batch)]["weight_mb"] < 0.5 * by[("float32", batch)]["weight_mb"]
    assert any(line.startswith("| int8 | 2 |") for line in out)
