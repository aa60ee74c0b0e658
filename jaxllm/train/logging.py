"""Metrics to JSON lines and TensorBoard event files (tensorboardX, imported when first used)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: floats stay floats, NaN/inf become strings JSON can hold."""
    value = (
        float(value)
        if hasattr(value, "__float__") and not isinstance(value, (bool, int))
        else value
    )
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _summary_writer(directory: Path) -> Any:
    """A tensorboardX ``SummaryWriter`` for ``directory``; a clear error when it is missing."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "TensorBoard logging needs tensorboardX, a dependency of jaxllm: "
            "reinstall jaxllm (pip install -e .), or pass tensorboard=False"
        ) from e
    return SummaryWriter(str(directory))


class MetricsWriter:
    """Appends one JSON object per call to ``run_dir/metrics.jsonl``; mirrors to TensorBoard
    (``run_dir/tensorboard/``) unless ``tensorboard=False``.

    Appending (never truncating) keeps the history of a resumed run in one file.
    """

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            self._tb = _summary_writer(self.run_dir / "tensorboard")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": int(step)} | {k: _plain(v) for k, v in metrics.items()}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(name, value, int(step))

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
