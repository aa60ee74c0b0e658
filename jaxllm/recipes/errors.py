"""What the experiment scripts tell their users when a run cannot go on: one line.

An expected failure -- a setting, the data, the run folder, a checkpoint, a diverged run, a
full disk -- is the user's to fix, and a traceback of hundreds of lines only hides the one
that says how. :func:`report_error` prints that line and gives the exit status;
``JAXLLM_DEBUG=1`` in the environment shows the traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

import jax

from jaxllm.classic.char_ngram import CharLMError
from jaxllm.config import ConfigError
from jaxllm.data import (
    CorpusEncodingError,
    EmptyCorpusError,
    EmptySplitError,
    ImagesError,
    LabelsError,
    ParallelTextError,
    SpeechSetError,
)
from jaxllm.data.audio import AudioError
from jaxllm.recipes.transcriber import TranscriptError
from jaxllm.recipes.translator import TranslationInputError
from jaxllm.train import (
    CheckpointError,
    DistributedInitError,
    NonFiniteLossError,
)

# What a recipe raises for a user's settings, data, run folder or disk (never a bug of
# jaxllm's): the experiment scripts print these as one `error:` line and exit with status 2.
# OSError covers a missing file, a folder that exists, a full disk and a denied permission
# (their messages name the path); ImportError, an optional dependency a recipe needs (its
# message names the extra to install).
RUN_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CheckpointError,
    DistributedInitError,
    EmptyCorpusError,
    EmptySplitError,
    CorpusEncodingError,
    LabelsError,
    ParallelTextError,
    TranslationInputError,
    ImagesError,
    AudioError,
    TranscriptError,
    SpeechSetError,
    CharLMError,
    NonFiniteLossError,
    OSError,
    ImportError,
)

DEBUG_VARIABLE = "JAXLLM_DEBUG"

# Phrases of what a collective raises when another process of the run died or lost its
# connection (Gloo on CPUs, the coordination service everywhere).
_PEER_LOST = (
    "Connection reset by peer",
    "Connection closed by peer",
    "heartbeat timeout",
    "stopped sending heartbeats",
)


def debugging() -> bool:
    """Whether ``JAXLLM_DEBUG`` asks for tracebacks (set, and not ``0`` or empty)."""
    return os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0")


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (the first, and a pointer to the rest if any)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    more = f" ({DEBUG_VARIABLE}=1 shows the rest)" if len(lines) > 1 else ""
    return lines[0] + more


def report_error(error: BaseException, stream: TextIO | None = None) -> int:
    """Print ``error`` as one line on ``stream`` (default stderr) and return the exit status:
    2 for :data:`RUN_ERRORS`, ``128 + signal`` for a stop by signal (130 for Ctrl-C, 143 for
    SIGTERM).

    In a multi-process run this process then ends at once (``os._exit``) with that status,
    or 1 after the traceback of an unexpected error: JAX's shutdown at exit would wait for the
    other processes, which may be waiting in a collective for this one, and abort with a C++
    stack trace. The others then stop at their next collective, saying that a process of the
    run is gone (this line, when the error is that another process is gone).

    Raises:
      BaseException: ``error`` itself, when it is not an expected failure (a bug, which
        deserves its traceback) or when ``JAXLLM_DEBUG`` is set (with several processes,
        the traceback is printed before the process ends).
    """
    out: TextIO = stream or sys.stderr
    several = jax.distributed.is_initialized() and jax.process_count() > 1
    if debugging() and not several:
        raise error
    if debugging():
        message, status = "".join(traceback.format_exception(error)).rstrip(), 1
    elif several and _peer_lost(error):
        message, status = (
            "error: another process of this run stopped or lost its connection "
            f"({one_line(error)}); the checkpoints already saved are intact: start every "
            "process again with --resume",
            2,
        )
    elif isinstance(error, KeyboardInterrupt):
        signum = getattr(error, "signum", signal.SIGINT)  # TrainingInterrupted, SecondSignal
        said = one_line(error) if str(error).strip() else "interrupted outside training"
        message, status = f"stopped: {said}", 128 + int(signum)
    elif isinstance(error, RUN_ERRORS):
        message, status = f"error: {one_line(error)}", 2
    elif several:
        message, status = "".join(traceback.format_exception(error)).rstrip(), 1
    else:
        raise error
    print(message, file=out)
    if several:
        _leave_now(status, out)
    return status


def _peer_lost(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says another process is gone."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if any(phrase in str(current) for phrase in _PEER_LOST):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _leave_now(status: int, stream: TextIO) -> NoReturn:
    """End the process with ``status`` at once, output flushed, skipping JAX's shutdown."""
    stream.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run_command(
    commands: dict[str, tuple[type, Callable[[Any], None]]],
    argv: list[str] | None,
    doc: str,
    script: str,
    tyro_config: tuple = (),
) -> int:
    """The ``main`` of an experiment script with commands (``translate.py train ...``): the
    first argument names one of ``commands`` (``name -> (settings dataclass, function)``), the
    rest are parsed into its settings with tyro, and the function runs under
    :func:`report_error`. Returns the exit status (2 without a known command)."""
    import tyro

    from jaxllm.runtime import configure_cpu

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in commands:
        print(doc)
        print(f"error: give a command first, one of {', '.join(commands)}", file=sys.stderr)
        return 2
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    kind, command = commands[argv[0]]
    args = tyro.cli(
        kind, args=argv[1:], description=doc, prog=f"{script} {argv[0]}", config=tyro_config
    )
    try:
        command(args)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)  # one line and status 2 for the user's errors; bugs re-raise
    return 0
