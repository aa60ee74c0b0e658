"""Running a measurement in a fresh process, so that its peak memory and thread pools are its own."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def run_in_fresh_process(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a new Python process; its (picklable) result.

    The process is *spawned*, not forked: a fork would inherit this process's memory (so its
    ``ru_maxrss`` would start from ours) and XLA's thread pools, which do not survive a fork.
    ``fn`` must be importable by reference (a module-level function, or one in the script
    being run). An exception in ``fn`` is raised here.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args, **kwargs).result()
