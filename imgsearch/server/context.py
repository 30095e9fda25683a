"""What every route reads from the app: the settings and the worker (on ``app.state``), and the token check."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass

from fastapi import Request
from starlette.exceptions import HTTPException

from .worker import Worker

DEFAULT_MAX_BODY = 25 * 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """``token``: when set, every /api/ call and /metrics need ``Bearer <token>``; ``max_body``: bytes."""

    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY


def worker_of(request: Request) -> Worker:
    return request.app.state.worker


def settings_of(request: Request) -> ServeSettings:
    return request.app.state.settings


def authorised(request: Request):
    """The dependency of every guarded route: 401 unless the token is sent (when the server has one)."""
    token = settings_of(request).token
    if not token:
        return
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise HTTPException(401, "missing or wrong token: send Authorization: Bearer <IMGSEARCH_SERVE_TOKEN>")


async def run(request: Request, fn, *args):
    """``fn(collection, embedder, *args)`` in the worker's thread; raises ``Overloaded`` when its queue is full."""
    return await asyncio.wrap_future(worker_of(request).call(fn, *args))
