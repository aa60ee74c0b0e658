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
from typing import NoReturn, TextIO

import jax

from jaxllm.config import ConfigError
from jaxllm.data import (
    CorpusEncodingError,
    EmptyCorpusError,
    EmptySplitError,
    LabelsError,
)
from jaxllm.train import (
    CheckpointError,
    DistributedInitError,
    NonFiniteLossError,
)

# What a recipe raises for a user's settings, data, run folder or disk (never a bug of
# jaxllm's): the experiment scripts print these as one `error:` line and exit with status 2.
# OSError covers a missing file, a folder that exists, a full disk and a denied permission
# (their messages name the path).
RUN_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CheckpointError,
    DistributedInitError,
    EmptyCorpusError,
    EmptySplitError,
    CorpusEncodingError,
    LabelsError,
    NonFiniteLossError,
    OSError,
)

DEBUG_VARIABLE = "JAXLLM_DEBUG"

# What a collective raises when another process of the run died or lost its connection.
_PEER_LOST = ("Gloo", "Connection reset by peer", "Connection closed by peer", "heartbeat")


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

    When another process of a multi-process run is gone (the collective this one was in
    failed), it says so and ends the process at once with status 2, since JAX's shutdown
    would otherwise wait for the lost process and then abort.

    Raises:
      BaseException: ``error`` itself, when it is not an expected failure (a bug, which
        deserves its traceback) or when ``JAXLLM_DEBUG`` is set.
    """
    stream = stream or sys.stderr
    if debugging():
        raise error
    if isinstance(error, KeyboardInterrupt):
        signum = getattr(error, "signum", signal.SIGINT)  # TrainingInterrupted, SecondSignal
        print(f"stopped: {one_line(error) or 'interrupted'}", file=stream)
        return 128 + int(signum)
    if isinstance(error, RUN_ERRORS):
        print(f"error: {one_line(error)}", file=stream)
        return 2
    if jax.process_count() > 1 and any(s in str(error) for s in _PEER_LOST):
        _exit_when_a_peer_is_lost(error, stream)
    raise error


def _exit_when_a_peer_is_lost(error: BaseException, stream: TextIO) -> NoReturn:
    """Say that another process of the run is gone, and leave at once with status 2: JAX's
    shutdown at exit would wait for the lost process until its heartbeat times out, then
    abort with a C++ stack trace."""
    print(
        f"error: another process of this run stopped or lost its connection ({one_line(error)}); "
        "the checkpoints already saved are intact: start every process again with --resume",
        file=stream,
    )
    stream.flush()
    sys.stdout.flush()
    os._exit(2)
