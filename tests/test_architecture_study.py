"""benchmarks/architecture_study.py: every style computes the same numbers, and the study runs
end to end on tiny sizes (the script itself measures large ones)."""

import json
import sys

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripts import load_script


@pytest.fixture(scope="module")
def study():
    """benchmarks/architecture_study.py as a module (benchmarks/ is not a package)."""
    yield load_script("benchmarks/architecture_study.py", name="architecture_study")
    del sys.modules["architecture_study"]


def _flat(output) -> np.ndarray:
    parts = output if isinstance(output, tuple) else (output,)
    return np.concatenate([np.ravel(np.asarray(part, np.float64)) for part in parts])


def _tfidf_rows(output) -> list[dict]:
    """TF-IDF rows as ``{term: value}``, from the Python form's dicts or jaxllm's matrix."""
    if isinstance(output, list):
        return output
    vectorizer, X = output
    dense = np.asarray(X.todense())
    return [{t: float(v) for t, v in zip(vectorizer.terms, row, strict=True) if v} for row in dense]


NUMERIC = ["matmul", "mlp_step", "attention", "logistic_gd", "word2vec_step"]


@pytest.mark.parametrize("name", NUMERIC)
@settings(max_examples=4, deadline=None)
@given(size=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_every_style_computes_the_python_loops_numbers(study, name, size, seed):
    computation = study.COMPUTATIONS[name]
    inputs = computation.inputs(size, np.random.default_rng(seed))
    expected = _flat(computation.python(*study.as_lists(inputs)))
    for style in study.styles_of(computation)[1:]:
        fn, args = study.style_call(computation, style, inputs)
        np.testing.assert_allclose(_flat(fn(*args)), expected, rtol=2e-4, atol=2e-5, err_msg=style)


@settings(max_examples=6, deadline=None)
@given(size=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_tfidf_by_hand_equals_jaxllms(study, size, seed):
    computation = study.COMPUTATIONS["tfidf"]
    (docs,) = computation.inputs(size, np.random.default_rng(seed))
    assert study.styles_of(computation) == ("python", "numpy")
    ours, theirs = _tfidf_rows(computation.numpy(docs)), _tfidf_rows(computation.python(docs))
    assert [set(row) for row in ours] == [set(row) for row in theirs]
    for mine, expected in zip(ours, theirs, strict=True):
        for term, value in expected.items():
            assert mine[term] == pytest.approx(value, rel=1e-5)


def test_word2vec_forms_agree_when_words_repeat_and_scores_saturate(study):
    """A 12-word vocabulary: centres and output words repeat within the batch, noise words
    equal their context, and large vectors push scores past gensim's |f| >= 6 cut."""
    rng = np.random.default_rng(5)
    w_in = rng.standard_normal((12, 8)).astype(np.float32) * 2.0
    w_out = rng.standard_normal((12, 8)).astype(np.float32) * 2.0
    words = rng.integers(12, size=(40, 7)).astype(np.int32)
    inputs = (w_in, w_out, words[:, 0], words[:, 1], words[:, 2:])
    computation = study.COMPUTATIONS["word2vec_step"]
    expected = _flat(computation.python(*study.as_lists(inputs)))
    for style in ("numpy", "jax_op_by_op", "jax_jit"):
        fn, args = study.style_call(computation, style, inputs)
        np.testing.assert_allclose(_flat(fn(*args)), expected, rtol=1e-4, atol=1e-5, err_msg=style)


def test_the_study_runs_end_to_end_on_tiny_sizes(study, tmp_path, capsys):
    page, plot = tmp_path / "study.md", tmp_path / "roofline.png"
    sizes = {"matmul": (8, 16), "logistic_gd": (40,), "tfidf": (30,)}
    argv = [
        "--quick",
        "--repeats",
        "1",
        "--computations",
        *sizes,
        "--markdown",
        str(page),
        "--plot",
        str(plot),
        "--decoding-batches",
        "none",
        "--scaling-devices",
        "none",
    ]
    for name, values in sizes.items():
        argv += ["--size", f"{name}={','.join(map(str, values))}"]
    assert study.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {(row["computation"], row["size"], row["style"]) for row in result["rows"]} == {
        (name, size, style)
        for name, values in sizes.items()
        for size in values
        for style in study.styles_of(study.COMPUTATIONS[name])
    }
    jit_rows = [row for row in result["rows"] if row["style"] == "jax_jit"]
    assert all(row["intensity"] > 0 and row["bound"] in ("compute", "memory") for row in jit_rows)
    assert all(row["seconds"] > 0 and row["rate"] > 0 for row in result["rows"])
    assert {row["form"] for row in result["sweeps"]} >= {"numpy loop", "jit loop", "vmap"}
    assert result["peak_flops"] > 0 and result["bandwidth"] > 0
    text = page.read_text()
    assert "## Results" in text and "roofline.png" in text and "**matmul**" in text
    assert "**tfidf**: NumPy runs" in text and "no JAX form" in text and "M tokens/s" in text
    assert plot.stat().st_size > 0


def test_gpt_step_op_by_op_equals_the_compiled_step(study):
    computation = study.COMPUTATIONS["gpt_step"]
    assert study.styles_of(computation) == ("jax_op_by_op", "jax_jit")
    inputs = computation.inputs(16, np.random.default_rng(0))
    eager, eager_args = study.style_call(computation, "jax_op_by_op", inputs)
    jitted, jitted_args = study.style_call(computation, "jax_jit", inputs)
    (state, metrics), (jit_state, jit_metrics) = eager(*eager_args), jitted(*jitted_args)
    np.testing.assert_allclose(metrics["loss"], jit_metrics["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(jit_state.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert computation.flops(16) > 0


def test_decoding_findings_say_how_batch_one_meets_its_bound(study):
    mib = 64 * 2**20
    rows = [
        {"batch": 1, "tokens_per_s": 600.0, "weight_bytes": mib, "fraction_of_bound": 0.9},
        {"batch": 8, "tokens_per_s": 2400.0, "weight_bytes": mib, "fraction_of_bound": 0.4},
    ]
    (said,) = study._decoding_findings(rows)
    assert "64 MiB" in said and "batch 1 reaches 600 new tokens/s, 90% of the bound" in said
    assert "batch 8 reads them once for 8 tokens and reaches 4.0x the tokens/s" in said


def test_bad_sizes_get_a_clear_error(study, capsys):
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--size", "matmull=8"])
    assert exit_info.value.code == 2
    assert "unknown computation 'matmull'; choose from matmul" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--size", "matmul=0"])
    assert "expected matmul=N[,N...] with positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--decoding-batches", "0"])
    assert "'0': expected positive integers N[,N...], or 'none'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--scaling-devices", "two"])
    assert "'two': expected positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"matmul at size 100,000 needs about 298\.0 GiB"):
        study.check_memory({"matmul": (100_000,)}, available=8 * 2**30)


@settings(max_examples=20, deadline=None)
@given(parallel=st.floats(0.0, 1.0))
def test_amdahls_fit_recovers_the_parallel_fraction(study, parallel):
    from study.scaling import amdahl_fraction

    devices = [1, 2, 4, 8]
    speedups = [1.0 / ((1.0 - parallel) + parallel / n) for n in devices]
    assert amdahl_fraction(devices, speedups) == pytest.approx(parallel, abs=1e-9)
    assert amdahl_fraction([1], [1.0]) == 0.0


@pytest.mark.multidevice(2)
def test_scaling_runs_data_parallel_steps_on_each_device_count(study):
    from study.scaling import CASES, PER_DEVICE_BATCH, scaling_figures

    figures = scaling_figures((1, 2), steps=1)
    rows = {(row["kind"], row["mode"], row["devices"]): row for row in figures["rows"]}
    assert set(rows) == {(kind, mode, n) for kind, mode in CASES for n in (1, 2)}
    assert rows["strong", "mesh", 1]["batch"] == rows["strong", "pmap", 2]["batch"] == 8
    assert rows["weak", "mesh", 1]["batch"] == PER_DEVICE_BATCH == 4
    assert rows["weak", "mesh", 2]["batch"] == 8
    assert all(rows[key]["speedup"] == 1.0 for key in rows if key[2] == 1)
    one, two = rows["strong", "mesh", 1], rows["strong", "mesh", 2]
    assert one["all_reduce_s"] == 0.0 < two["all_reduce_s"]
    assert all(row["step_s"] > 0 and row["communication_share"] >= 0 for row in rows.values())
    assert set(figures["amdahl_parallel_fraction"]) == {"pmap", "mesh"}
    assert all(0.0 <= p <= 1.0 for p in figures["amdahl_parallel_fraction"].values())
