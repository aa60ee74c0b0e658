"""Agreement between the processes of a multi-process run (a no-op in one process).

Every process must make the same collective calls in the same order; where a decision rests
on what one process saw (a file it could not read, the space on its disk), the processes
agree on it first, and a change to shared files waits until every process has looked.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np

from jaxllm.config import ConfigError


def everywhere(ok: bool) -> bool:
    """Whether ``ok`` holds on every process (one process: ``ok``)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def worst_everywhere(code: int) -> int:
    """The largest ``code`` over all processes (one process: ``code``): a severity they all
    act on alike."""
    if jax.process_count() == 1:
        return code
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.int32(code))))


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier called ``name``."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _process_0s_bytes(mine: bytes) -> bytes:
    """Process 0's ``mine``, on every process (a collective)."""
    from jax.experimental import multihost_utils

    length = int(multihost_utils.broadcast_one_to_all(np.int32(len(mine))))
    padded = np.zeros(length, np.uint8)
    padded[: min(length, len(mine))] = np.frombuffer(mine, np.uint8)[:length]
    return multihost_utils.broadcast_one_to_all(padded).astype(np.uint8).tobytes()


def check_same_settings(settings: dict[str, Any], what: str = "settings") -> None:
    """Every process must have been given the same ``settings`` (flat, JSON-serialisable);
    a run whose processes differ would hang in its first collective that they reach
    differently, or train on a mixture. A collective; nothing to check in one process.

    Raises:
      ConfigError: on every process, naming the ones that differ from process 0, and on
        those the settings that differ.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    mine = json.dumps(settings, sort_keys=True)
    theirs = json.loads(_process_0s_bytes(mine.encode()))
    settings = json.loads(mine)  # both sides as JSON gives them (tuples as lists)
    diffs = sorted(
        k
        for k in settings.keys() | theirs.keys()
        if json.dumps(settings.get(k)) != json.dumps(theirs.get(k))  # NaN equals NaN here
    )
    flags = multihost_utils.process_allgather(np.int32(bool(diffs)))
    differing = [int(i) for i in np.flatnonzero(np.asarray(flags).reshape(-1))]
    if not differing:
        return
    mine = "; ".join(f"{k}: process 0 has {theirs.get(k)!r}, this one {settings.get(k)!r}"
                     for k in diffs[:5])  # fmt: skip
    raise ConfigError(
        f"the processes of this run were given different {what}: process(es) {differing} "
        f"differ from process 0{f' ({mine})' if diffs else ''}; give every process the same "
        "settings (only --parallel.process-id differs)"
    )
