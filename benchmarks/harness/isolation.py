"""Running a measurement in a fresh process, so that its peak memory and thread pools are its
own."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def run_in_fresh_process(
    fn: Callable, *args: Any, environment: Mapping[str, str] | None = None, **kwargs: Any
) -> Any:
    """``fn(*args, **kwargs)`` in a new Python process; its (picklable) result.

    The process is *spawned*, not forked: a fork would inherit this process's memory (so its
    ``ru_maxrss`` would start from ours) and XLA's thread pools, which do not survive a fork.
    ``fn`` must be importable by reference (a module-level function, or one in the script
    being run). An exception in ``fn`` is raised here. ``environment`` adds to (or overrides)
    the variables the process starts with, e.g. ``{"JAXLLM_REUSE_STEP_MEMORY": "0"}``.

    The process calls :func:`jaxllm.runtime.configure_cpu` before anything else (as the
    benchmark scripts do in ``main``), so ``JAXLLM_REUSE_STEP_MEMORY=0`` in ``environment`` is
    what leaves it with the allocator's defaults.
    """
    context = multiprocessing.get_context("spawn")
    environment = dict(environment or {})
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # a spawned process starts with this process's environment
    try:
        with ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=_configure_process
        ) as pool:
            return pool.submit(fn, *args, **kwargs).result()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _configure_process() -> None:
    """The spawned process's first step: jaxllm's CPU settings, before any JAX work."""
    from jaxllm.runtime import configure_cpu

    configure_cpu()
