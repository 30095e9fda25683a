"""Running the app on uvicorn: the log's format (plain or JSON lines) and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal

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


def make_server(app, host: str, port: int, log_json: bool, shutdown_timeout: float) -> StoppableServer:
    """The server over ``app``; making it configures the process's logging (``log_config``)."""
    config = uvicorn.Config(app, host=host, port=port, log_config=log_config(log_json), access_log=False,
                            timeout_graceful_shutdown=shutdown_timeout)
    return StoppableServer(config)


def log_config(json_lines: bool) -> dict:
    """uvicorn's lines, ours and the access log through one handler on stderr: as uvicorn prints them, or JSON."""
    if json_lines:
        formatter = {"()": "imgsearch.server.access.JsonFormatter"}
    else:
        formatter = {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s",
                     "use_colors": None}
    one = {"handlers": ["stderr"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}},
        "loggers": {"uvicorn": one, "uvicorn.error": {"level": "INFO"}, "uvicorn.access": {"level": "WARNING"},
                    "imgsearch.access": one, "imgsearch.server": one},
    }
