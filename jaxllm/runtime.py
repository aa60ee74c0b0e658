"""Process settings for XLA:CPU, applied only when asked: :func:`configure_cpu`.

Importing jaxllm changes nothing in the process. Command-line tools, benchmarks and notebooks
that train on a CPU call :func:`configure_cpu` once, before any JAX work::

    import jaxllm
    jaxllm.runtime.configure_cpu()

Why: XLA:CPU allocates the temporary buffers of every call afresh (for a training step, the
activations kept for the backward pass: 217 MiB for the 4-layer GPT of
``benchmarks/train_throughput.py``) and frees them when the call ends. glibc serves a block
that large with ``mmap`` and returns it with ``munmap``, so each step faults its whole working
set back in, zero-filled by the kernel: on a 2-core CPU, 62,000 page faults and ~110 ms of
kernel time in a 330 ms step. :func:`configure_cpu` makes such blocks come from the heap and
stay there for the next call. The settings are process-wide (NumPy, PyTorch and data loaders
share the allocator), which is why they are never applied on import.

:func:`use_compilation_cache` keeps compiled programs on disk for later processes; the training
recipes call it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys

import jax

OPT_OUT_ENV = "JAXLLM_REUSE_STEP_MEMORY"

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_MAX_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int

# jax.monitoring's event after each XLA compilation, and the shortest one worth trimming after:
# a compile that short used little memory, while eager operations compile hundreds of times.
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_MIN_TRIMMED_COMPILE_S = 0.1


def configure_cpu() -> bool:
    """Let XLA:CPU calls reuse one heap block for their temporaries; ``True`` if applied.

    Call it once, before any JAX computation (JAX fixes its dispatch mode when it starts its
    backends); a later call, or one where the settings cannot apply, changes nothing and
    returns ``False``. Calling it twice is harmless.

    Three settings, all needed:

    - CPU computations run in the calling thread (``jax_cpu_enable_async_dispatch=False``).
      Dispatched asynchronously, a call's temporaries are freed by a worker thread after its
      results are ready, often after the next call has allocated its own, so a heap that
      keeps memory would hold two or three sets. A worker thread's own malloc arena also
      maps any block over 64 MiB, whatever the settings below. Computations spanning several
      devices stay asynchronous.
    - glibc serves large blocks from the heap, not ``mmap`` (``M_MMAP_MAX=0``), and trims the
      heap's free top only past 2 GiB (``M_TRIM_THRESHOLD``), so freed blocks are reused.
    - After each XLA compilation of 0.1 s or more, ``malloc_trim`` gives the free memory the
      compiler left (LLVM's working memory, ~120 MiB for the 6-layer benchmark GPT) back to
      the operating system, so the peak resident size does not grow.

    A freed block is reused whole only once the memory around it is free too (XLA asks for
    64-byte alignment, which glibc serves from a slightly larger block), so for its first few
    calls a computation may still take (and fault in) fresh memory, and the heap may keep two
    blocks for it. A training step whose state comes from
    :func:`jaxllm.train.create_train_state` keeps one.

    Applied only where all of it can be: on glibc (not macOS or musl), before JAX has started
    its backends (the dispatch mode is fixed then), and when neither
    ``JAXLLM_REUSE_STEP_MEMORY=0`` nor ``JAX_CPU_ENABLE_ASYNC_DISPATCH`` is set (the variables
    let a launcher turn the settings off for a script that calls this). Other memory the
    process frees also stays in its heap, up to 2 GiB of free top. The settings last for the
    life of the process.
    """
    if os.environ.get(OPT_OUT_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if "JAX_CPU_ENABLE_ASYNC_DISPATCH" in os.environ or _backends_started():
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    libc = _glibc()
    if not (
        libc.mallopt(_M_MMAP_MAX, 0) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, _MAX_TRIM_THRESHOLD) == 1
    ):
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    _listen_to_compiles()
    return True


def _backends_started() -> bool:
    """Whether JAX has created its backends (assumed so if JAX no longer says)."""
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return True


@functools.cache
def _glibc() -> ctypes.CDLL:
    """The process's C library, with ``mallopt`` and ``malloc_trim`` typed."""
    libc = ctypes.CDLL(None)
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    libc.malloc_trim.restype = ctypes.c_int
    return libc


@functools.cache
def _listen_to_compiles() -> None:
    """Register :func:`_trim_after_compile` with ``jax.monitoring`` (once)."""
    jax.monitoring.register_event_duration_secs_listener(_trim_after_compile)


def _trim_after_compile(event: str, duration_secs: float, **_: object) -> None:
    """A ``jax.monitoring`` listener: give the memory a long compilation freed back to the OS."""
    if event == _COMPILE_EVENT and duration_secs >= _MIN_TRIMMED_COMPILE_S:
        _glibc().malloc_trim(0)


DEFAULT_COMPILATION_CACHE = "~/.cache/jaxllm/xla"
_JAX_DEFAULT_MIN_COMPILE_S = 1.0  # jax_persistent_cache_min_compile_time_secs' default


def use_compilation_cache(
    directory: str | os.PathLike = DEFAULT_COMPILATION_CACHE, min_compile_seconds: float = 0.03
) -> str:
    """Keep compiled XLA programs in ``directory`` (JAX's persistent compilation cache), for
    every jaxllm entry point and your own ``jax.jit`` functions: call it once, at the start.

    A later process that compiles the same program with the same shapes, JAX version and flags
    loads it instead: the first training step of ``benchmarks/train_throughput.py``'s small GPT
    (trace, compile or load, run) takes ~1.2 s instead of ~2.5 s, and ``fit_linear``'s first
    call on SST-2 0.28 s instead of 0.80 s (its padded shapes make similar problems share a
    program). Programs that took at least ``min_compile_seconds`` to compile are kept: JAX's own
    threshold, 1 s, would leave out e.g. ``fit_linear``'s 0.6 s solve and ``predict``'s 0.05 s
    product, while a program that compiles in a few milliseconds loads no faster than it
    compiles. A threshold set through ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` or
    ``jax.config`` is kept. The cache is trusted code: keep it in a folder only you can write
    to.

    A cache folder the user already chose (``JAX_COMPILATION_CACHE_DIR`` or
    ``jax.config.update("jax_compilation_cache_dir", ...)``) is kept. Returns the folder in use.
    """
    threshold = "jax_persistent_cache_min_compile_time_secs"
    user_threshold = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" in os.environ
    if jax.config.values[threshold] == _JAX_DEFAULT_MIN_COMPILE_S and not user_threshold:
        jax.config.update(threshold, min_compile_seconds)
    chosen = jax.config.values["jax_compilation_cache_dir"]
    if chosen:
        return chosen
    path = os.path.expanduser(os.fspath(directory))
    jax.config.update("jax_compilation_cache_dir", path)
    return path
