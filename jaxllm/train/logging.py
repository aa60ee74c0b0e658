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


def _summary_writer(directory: Path, purge_step: int | None = None) -> Any:
    """A tensorboardX ``SummaryWriter`` for ``directory`` (hiding the events of steps from
    ``purge_step`` on); a clear error when tensorboardX is missing."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "TensorBoard logging needs tensorboardX, a dependency of jaxllm: "
            "reinstall jaxllm (pip install -e .), or pass tensorboard=False"
        ) from e
    return SummaryWriter(str(directory), purge_step=purge_step)


class MetricsWriter:
    """Appends one JSON object per call to ``run_dir/metrics.jsonl``; mirrors to TensorBoard
    (``run_dir/tensorboard/``) unless ``tensorboard=False``.

    Appending keeps the history of a resumed run in one file. ``keep_until`` is the step the
    run continues from: records of later steps (logged after the checkpoint it resumed from,
    before the run stopped) are moved to ``metrics.jsonl.set-aside`` first, and TensorBoard
    hides its own, so each step appears once.
    """

    def __init__(
        self, run_dir: str | Path, *, tensorboard: bool = True, keep_until: int | None = None
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        if keep_until is not None:
            _drop_records_after(self.path, keep_until)
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            purge = None if keep_until is None else keep_until + 1
            self._tb = _summary_writer(self.run_dir / "tensorboard", purge)

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
    """All records of a ``metrics.jsonl`` file (a line that is not a JSON object, such as one
    cut short when a process died while writing it, is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _drop_records_after(path: Path, step: int) -> None:
    """Rewrite ``path`` (a ``metrics.jsonl``, if it exists) without the records of steps after
    ``step``, which are appended to ``metrics.jsonl.set-aside`` beside it (kept, not lost). A
    last line cut short (the process died while writing it) goes; any other line the file
    holds stays. The new file replaces the old one atomically."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept, later = [], []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                kept.append(line)
            continue
        logged = record.get("step") if isinstance(record, dict) else None
        after = isinstance(logged, int) and logged > step
        (later if after else kept).append(line)
    if later:
        with path.with_name(path.name + ".set-aside").open("a") as aside:
            aside.write("".join(line + "\n" for line in later))
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(line + "\n" for line in kept))
    partial.replace(path)
