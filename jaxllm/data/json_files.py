"""JSON files a run folder keeps beside its checkpoints (tokenizers, vocabularies): a content
fingerprint that equal contents share, and a write that never leaves a truncated file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def json_fingerprint(content: dict[str, Any]) -> str:
    """The SHA-256 of ``content`` as canonical JSON (sorted keys, no spaces, ASCII): equal for
    equal contents, whatever their key order."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def write_json_atomically(
    content: dict[str, Any], path: str | os.PathLike[str], *, indent: int | None = None
) -> None:
    """Write ``content`` as UTF-8 JSON at ``path`` (keys sorted when ``indent`` is given, as
    configs are written) through a ``.partial`` file renamed into place: a crash mid-write
    leaves the old file (or none), never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"indent": indent, "sort_keys": indent is not None}
    text = json.dumps(content, ensure_ascii=False, **options)
    try:
        data = (text + ("\n" if indent is not None else "")).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON's \u escapes carry them
        data = (json.dumps(content, **options) + ("\n" if indent is not None else "")).encode()
    partial = partial_path(path)
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def partial_path(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it into place: a name of its own,
    so processes that write the same file at once do not write into each other's."""
    return path.with_name(f"{path.name}.{os.getpid()}.partial")
