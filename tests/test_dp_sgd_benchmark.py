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
    lines = bench.report_lines({"repeats": 2, "opacus": "x", "rows": [bench.with_ratios(row)]})
    assert lines[-1].startswith(f"| {model} | 4 x 8 |") and lines[-1].count("x") >= 5


def test_ratios_are_jaxllm_over_pytorch_and_plain_over_private():
    figures = {"jaxllm_plain": 1200.0, "jaxllm_dp": 300.0, "torch_plain": 600.0, "torch_dp": 50.0}
    row = bench.with_ratios({f"{k}_examples_per_s": v for k, v in figures.items()})
    assert row["dp_ratio_vs_torch"] == 6.0 and row["plain_ratio_vs_torch"] == 2.0
    assert row["jaxllm_dp_slowdown"] == 4.0 and row["torch_dp_slowdown"] == 12.0
    alone = bench.with_ratios(
        {"jaxllm_plain_examples_per_s": 10.0, "jaxllm_dp_examples_per_s": 5.0}
    )
    assert alone["jaxllm_dp_slowdown"] == 2.0 and "dp_ratio_vs_torch" not in alone
