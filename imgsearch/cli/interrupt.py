"""A clean stop on SIGTERM or SIGINT for long jobs: the first signal asks the job to stop after its current step,
a second one stops it at once (KeyboardInterrupt: "Interrupted.", exit 130)."""

from __future__ import annotations

import contextlib
import signal
import threading

from .base import err_line

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(what: str = "the current batch"):
    """An Event set by the first SIGTERM or SIGINT while the block runs; the previous handlers come back after.

    Outside the main thread (where signals cannot be caught) the Event is simply never set.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt  # asked twice: at once
        stop.set()
        err_line(f"{signal.Signals(signum).name}: stopping after {what} (send it again to stop at once)")

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
