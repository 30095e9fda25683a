"""One access-log line per request (method, route, status, duration, batch), and the request metrics from it.

Logged on ``imgsearch.access``: plain text, or one JSON object per line with ``imgsearch serve --log-json``.
The route is the template (``/api/images/{key}``), not the path: callers' keys stay out of metric labels.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from .metrics import ServerMetrics

log = logging.getLogger("imgsearch.access")
UNMATCHED = "(no route)"  # one label for every path no route has: a scanner cannot grow the metrics


class AccessLog:
    """Pure ASGI middleware: it sees the final status, the 500s of ``OneLineErrors`` included."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # unless an answer starts

        async def noting_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope, status: int, seconds: float):
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        method = scope.get("method", "")
        self.metrics.observe(method, route, status, seconds)
        client = scope.get("client") or ("", 0)
        line = AccessLine(client[0], method, route, scope.get("path", ""), status, round(seconds * 1000, 1),
                          scope.get("state", {}).get("batch"))
        log.info("%s", line)


@dataclass
class AccessLine:
    """A request as logged: ``str`` gives the plain line, ``as_dict`` the JSON one's fields."""

    client: str
    method: str
    route: str
    path: str
    status: int
    duration_ms: float
    batch: int | None  # searches that shared this request's model call

    def as_dict(self) -> dict:
        out = {"client": self.client, "method": self.method, "route": self.route, "path": self.path,
               "status": self.status, "duration_ms": self.duration_ms}
        if self.batch is not None:
            out["batch"] = self.batch
        return out

    def __str__(self) -> str:
        batch = f" batch={self.batch}" if self.batch is not None else ""
        return f'{self.client} "{self.method} {self.path}" {self.status} {self.duration_ms}ms route={self.route}{batch}'


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
               "level": record.levelname.lower(), "logger": record.name}
        line = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if isinstance(line, AccessLine):
            out.update(line.as_dict())
        else:
            out["message"] = record.getMessage()
        return json.dumps(out, ensure_ascii=False)
