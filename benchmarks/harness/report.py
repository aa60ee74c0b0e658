"""How every benchmark script prints its result."""

from __future__ import annotations

import json
from typing import Any


def print_report(lines: list[str], result: dict[str, Any], *, json_only: bool = False) -> None:
    """The report ``lines`` (a Markdown table and notes), unless ``json_only``, then ``result``
    as one JSON object on the last line, which scripts and CI parse."""
    if not json_only:
        print("\n".join(lines))
    print(json.dumps(result))
