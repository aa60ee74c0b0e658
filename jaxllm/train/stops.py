"""Stopping a training loop by signal: SIGINT (Ctrl-C) or SIGTERM (what job schedulers send)
asks ``fit`` to stop after the step in progress, which XLA cannot cut short anyway."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import jax
import numpy as np

# A repeat of a signal within this many seconds of the first is the same request (a launcher
# forwarding a Ctrl-C that the terminal also sent), not a second one.
REPEAT_WINDOW_S = 1.0


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped ``fit`` between two steps, after it saved the last one.

    Attributes:
      signum: the signal's number (``signal.SIGINT`` or ``signal.SIGTERM``).
      step: the last completed step (saved when ``fit`` had a checkpointer).
    """

    def __init__(self, message: str, signum: int, step: int):
        super().__init__(message)
        self.signum, self.step = signum, step


class SecondSignal(KeyboardInterrupt):
    """A second SIGINT or SIGTERM while ``fit`` was already stopping: stop at once, without
    saving. ``signum`` is its number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class StopSignals:
    """SIGINT and SIGTERM handlers for the time ``fit`` runs (in the main thread only; the
    previous handlers come back on exit): the first signal is recorded for the loop to act
    on after the step in progress; a second one, a second or more later, raises
    :class:`SecondSignal` at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            # None: a handler installed outside Python, which cannot be put back.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received, self._first_at = signum, time.monotonic()
        elif time.monotonic() - self._first_at > REPEAT_WINDOW_S:
            name = signal.Signals(signum).name
            raise SecondSignal(f"a second {name}: stopped at once, without saving", signum)

    def agreed(self, step: int, every: int) -> int | None:
        """The signal that stops every process after ``step``, if any. One process alone
        checks after every step; several compare what they received every ``every`` steps
        (all stop together, since saving is collective)."""
        if jax.process_count() == 1:
            return self.received
        if step % every:
            return None
        from jax.experimental import multihost_utils

        received = multihost_utils.process_allgather(np.int32(self.received or 0))
        return int(np.max(received)) or None
