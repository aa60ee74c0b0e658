"""JSON files a run folder keeps beside its checkpoints (tokenizers, vocabularies): a content
fingerprint that equal contents share, and a write that never leaves a truncated file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


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
    with replaced_atomically(path) as file:
        file.write(data)


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A new binary file that becomes ``path`` when the block ends without an error, renamed
    into place (a crash leaves the old file, or none, never a part), and is removed otherwise.

    Its temporary name ``<name>.<random>.partial`` is created exclusively, so writers of the
    same file at once, on any host, never write into each other's.
    """
    path = Path(path)
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}.partial")
    try:
        with open(partial, "xb") as file:
            yield file
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
