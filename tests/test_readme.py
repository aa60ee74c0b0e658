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
