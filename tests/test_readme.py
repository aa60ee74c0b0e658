"""The README's Python example runs as written (with fewer steps)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    code = blocks[0].replace("num_steps=300", "num_steps=3")
    code = code.replace("train.LoopConfig(num_steps=3)", "train.LoopConfig(num_steps=3, progress=False)")
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("[") and len(printed) > 10


def test_readme_classic_example_runs(capsys):
    """The traditional-models example, where `make data` has fetched the movie-review sets."""
    import pytest

    from jaxllm.data import load_sentiment

    try:
        load_sentiment("movie-sentences")
    except FileNotFoundError:
        pytest.skip("the movie-review sets are absent (make data)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    exec(compile(blocks[1], str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "macro avg" in printed and "positive" in printed
