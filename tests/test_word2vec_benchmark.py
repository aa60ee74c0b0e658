"""benchmarks/word2vec.py --quick runs end to end on a tiny corpus and prints its JSON line."""

import json
import time
from pathlib import Path

import pytest
from scripts import load_script

pytest.importorskip("gensim")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "word2vec.py"


def _load():
    return load_script("benchmarks/word2vec.py", name="word2vec_benchmark")


def test_quick_run_prints_the_table_and_json(tmp_path, capsys):
    words = (
        "king queen man woman prince princess lord lady crown throne sword castle "
        "love hate night day sun moon"
    ).split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(8)) for i in range(400)]
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(lines) + "\n")
    bench = _load()
    assert bench.tokenize("O Romeo, Romeo! wherefore art thou") == (
        "o romeo romeo wherefore art thou".split()
    )
    start = time.perf_counter()
    argv = f"--corpus {corpus} --quick --epochs 1 --repeats 2 --quality-seeds 2".split()
    assert bench.main(argv) == 0
    wall = time.perf_counter() - start
    out = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("| skipgram | raw words/s |") for line in out)
    result = json.loads(out[-1])
    assert (result["benchmark"], result["words"], result["gensim_workers"]) == ("word2vec", 3200, 2)
    assert result["quality_seeds"] == 2
    for model in ("skipgram", "cbow"):
        _check_model_figures(result["models"][model], vocab_size=len(words), wall=wall)


def _check_model_figures(m: dict, *, vocab_size: int, wall: float) -> None:
    """One model's figures agree with the run: vocabulary, rates from times, ratios from rates."""
    for side in ("jaxllm", "gensim"):
        assert m[side]["vocab_size"] == vocab_size
        # 3,200 words, one epoch, in the reported (lower-median) training time.
        assert m[side]["raw_words_per_s"] == pytest.approx(400 * 8 / m[side]["train_s"])
        assert "quality" in m[side] and "effective_words_per_s" in m[side]
    assert len(m["jaxllm"]["train_s_all"]) == 2
    assert m["jaxllm"]["train_s"] == min(m["jaxllm"]["train_s_all"])
    assert 0 < m["jaxllm"]["compile_s"] + sum(m["jaxllm"]["train_s_all"]) < wall
    c = m["comparison"]
    ours, theirs = m["jaxllm"]["raw_words_per_s"], m["gensim"]["raw_words_per_s"]
    assert c["speed_ratio"] == pytest.approx(ours / theirs)
    assert c["meets_speed"] is (c["speed_ratio"] >= 1.0)


def test_quality_over_seeds_is_the_mean_with_its_spread():
    bench = _load()
    qualities = [
        {
            "wordsim353": {"spearman": s, "oov_percent": 10.0, "pairs": 5},
            "simlex999": None,
            "analogies": {"accuracy": a, "oov_percent": 0.0, "answered": 9},
        }
        for s, a in [(0.2, 0.5), (0.4, 0.7)]
    ]
    mean = bench.mean_quality(qualities)
    assert mean["wordsim353"]["spearman"] == pytest.approx(0.3)
    assert mean["wordsim353"]["sd"] == pytest.approx(0.1414, abs=1e-4)
    assert mean["wordsim353"]["values"] == [0.2, 0.4] and mean["simlex999"] is None
    assert mean["analogies"]["accuracy"] == pytest.approx(0.6)
    assert bench.mean_quality(qualities[:1])["analogies"]["sd"] == 0.0
