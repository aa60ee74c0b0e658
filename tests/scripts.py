"""The repository's scripts (``experiments/``, ``benchmarks/``) as modules for the tests: those
folders are not packages."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The benchmarks' shared helpers (benchmarks/harness/) import as `harness`, as they do when a
# benchmark runs as a script.
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))


def load_script(relative: str, name: str | None = None):
    """``load_script("experiments/train_lm.py")``: the script as a module, registered in
    ``sys.modules`` under ``name`` (default: the file's stem), where dataclasses and pickling
    look their module up."""
    path = ROOT / relative
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
