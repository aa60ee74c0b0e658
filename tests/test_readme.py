"""The README's tour runs as written, and does what the README says it does.

The tour runs in a fresh Python process in a temporary folder, as a reader would run it: its
`jaxllm.runtime.configure_cpu()` then applies to that process (not to the test worker's), and
it sees the devices a reader's machine has, whatever the test process was given.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CLASSIC_GUIDE = ROOT / "docs" / "guides" / "classic.md"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def demo_files() -> list[str]:
    """The run-folder entries the README says `make demo` writes: the backticked names in the
    sentence "... writes `runs/demo-<time>/` with `config.json` ..., and `summary.json`."."""
    text = " ".join(README.read_text().split())
    sentence = re.search(r"writes `runs/demo-<time>/` with (.*?)\. ", text)
    assert sentence, "README no longer says which files `make demo` writes"
    names = re.findall(r"`([^`]+)`", sentence.group(1))
    assert len(names) >= 5, names
    return names


def run_tour(cwd: Path) -> str:
    """stdout of the README's first python block, run verbatim in a fresh process in ``cwd``."""
    blocks = python_blocks(README)
    assert blocks, "README has no python example"
    cache = os.environ.get("JAXLLM_TEST_CACHE", str(ROOT / ".cache" / "jax"))
    env = os.environ | {
        "JAX_COMPILATION_CACHE_DIR": cache,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    env.pop("XLA_FLAGS", None)  # one CPU device, as a reader has
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"the README's tour failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def check_recipe(out: str, cwd: Path) -> None:
    """The recipe's validation loss fell, and its run folder holds every file the README says
    `make demo` writes."""
    found = re.search(r"val loss ([\d.]+) -> ([\d.]+); run folder (\S+)", out)
    assert found, out
    before, after = float(found.group(1)), float(found.group(2))
    assert after < before - 0.5, f"the recipe's validation loss barely moved: {before} -> {after}"

    run_dir = cwd / found.group(3)
    for name in demo_files():
        path = run_dir / name.rstrip("/")
        exists = path.is_dir() if name.endswith("/") else path.is_file()
        assert exists, f"{name} missing from {run_dir}"
    assert any((run_dir / "tensorboard").glob("events.out.tfevents.*")), "no TensorBoard event file"
    assert any((run_dir / "checkpoints").iterdir()), "no checkpoint"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in records) and records[-1]["step"] == 40
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["after"]["loss"] < summary["before"]["loss"] and summary["step"] == 40
    assert (run_dir / "sample.txt").read_text().startswith("The ")


def check_pieces(out: str) -> None:
    """The hand-built training's loss fell, it generated text, and the classifier predicted
    what the README's comment says."""
    found = re.search(r"training loss: \[([^\]]+)\]", out)
    assert found, out
    losses = [float(x) for x in found.group(1).split(",")]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.3, losses
    # The generated text comes between the loss line and the classifier's predictions.
    generated = out[found.end() :].rsplit("[", 1)[0].strip("\n")
    assert len(generated) >= 10, out
    assert out.rstrip().endswith("[1 0]"), out


def test_readme_tour_runs_as_written(tmp_path):
    out = run_tour(tmp_path)
    check_recipe(out, tmp_path)
    check_pieces(out)


def test_classic_guide_example_runs(capsys):
    """The traditional-models guide's example, where `make data` has fetched the movie-review
    sets."""
    from jaxllm.data import load_sentiment

    try:
        load_sentiment("movie-sentences")
    except FileNotFoundError:
        pytest.skip("the movie-review sets are absent (make data)")
    blocks = python_blocks(CLASSIC_GUIDE)
    assert blocks, "the classic guide has no python example"
    exec(compile(blocks[0], str(CLASSIC_GUIDE), "exec"), {})
    printed = capsys.readouterr().out
    assert "macro avg" in printed and "positive" in printed
