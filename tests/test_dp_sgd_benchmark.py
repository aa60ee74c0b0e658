"""benchmarks/dp_sgd_throughput.py's pieces at a tiny size, in this process: both sides run
the same model shape with and without DP-SGD, and the report shows every figure."""

import dataclasses

import pytest
from scripts import load_script

bench = load_script("benchmarks/dp_sgd_throughput.py")


@pytest.fixture
def tiny_shapes(monkeypatch):
    shapes = {
        name: (dataclasses.replace(config, vocab_size=60, embed_dim=16, max_len=8), 4, 8)
        for name, (config, _, _) in bench.SHAPES.items()
    }
    monkeypatch.setattr(bench, "SHAPES", shapes)
    return shapes


@pytest.mark.parametrize("model", ["tfidf_mlp", "transformer"])
def test_both_libraries_run_the_same_shape_plain_and_private(tiny_shapes, model):
    pytest.importorskip("opacus")
    row = {"model": model, "batch": 4, "seq": 8}
    for name, side in (("jaxllm", bench.jaxllm_side), ("torch", bench.torch_side)):
        for mode, private in (("plain", False), ("dp", True)):
            figures = side(model, private, 2)
            assert figures["examples_per_s"] > 0 and figures["first_step_s"] > 0
            row.update({f"{name}_{mode}_{key}": value for key, value in figures.items()})
    # The same layers: PyTorch's tfidf_mlp carries its bias in a Linear of embed_dim unused
    # weights (Opacus computes per-example gradients of its own layers only).
    extra = 16 if model == "tfidf_mlp" else 0
    assert row["torch_dp_parameters"] == row["jaxllm_dp_parameters"] + extra
    for name in ("jaxllm", "torch"):
        row[f"{name}_dp_slowdown"] = 2.0
    row["dp_ratio_vs_torch"] = row["plain_ratio_vs_torch"] = 1.0
    lines = bench.report_lines({"repeats": 2, "opacus": "x", "rows": [row]})
    assert lines[-1].startswith(f"| {model} | 4 x 8 |") and "**1.00x**" in lines[-1]
