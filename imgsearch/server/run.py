"""Running the app on uvicorn: the log's format (plain or JSON lines) and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import sys

import uvicorn

log = logging.getLogger("imgsearch.server")


class StoppableServer(uvicorn.Server):
    """uvicorn's server, except that a stop signal ends the process cleanly.

    uvicorn shuts down gracefully on SIGTERM or SIGINT (no new connections, answers in flight finished within
    the grace period, the rest cancelled), then raises the signal again, so the process dies of it (exit 143)
    or the CLI reports an interruption: an orchestrator's stop would look like a crash. Here the signal is
    only noted, and the caller closes the store and exits 0. A second SIGINT still forces uvicorn out at once.
    """

    stop_signal: int | None = None

    def handle_exit(self, sig, frame):
        if self.stop_signal is None:
            self.stop_signal = sig
            log.info("%s: finishing the requests in flight, taking no new ones", signal.Signals(sig).name)
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # not raised again once the server has stopped


def make_server(app, host: str, port: int, shutdown_timeout: float) -> StoppableServer:
    """The server over ``app``; it leaves the process's logging alone (``configure_logging`` does that)."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=shutdown_timeout)
    return StoppableServer(config)


def configure_logging(json_lines: bool) -> None:
    """uvicorn's lines, ours and the access log through one handler on stderr: as uvicorn prints them, or JSON.

    Only these loggers are touched. logging's dictConfig (uvicorn's ``log_config``) would close every handler the
    process has, absl's among them, whose stream may be a test runner's captured stderr."""
    from uvicorn.logging import DefaultFormatter

    from .access import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else DefaultFormatter("%(levelprefix)s %(message)s"))
    for name in ("uvicorn", "imgsearch.access", "imgsearch.server"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
