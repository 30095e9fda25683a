"""Every failure as a JSON answer (``{"error": "..."}``) with the status it means, and no traceback in the log.

400 bad parameters or key, 401 token, 404 nothing there, 405 another method (with ``Allow``), 413 body or pixels
over the limit, 415 no image, 422 a corrupt image, 503 the queue is full (with ``Retry-After``), 500 ours.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ..errors import ImgsearchError
from ..features import NOT_AN_IMAGE, TOO_MANY_PIXELS
from .worker import Overloaded

log = logging.getLogger("uvicorn.error")  # uvicorn's own log, formatted as its other lines


def image_error(label: str, reason: str) -> HTTPException:
    """The answer for an upload that did not decode: 415 no image, 413 too many pixels, 422 broken."""
    if reason == NOT_AN_IMAGE:
        status = 415
    elif reason.startswith(TOO_MANY_PIXELS):
        status = 413
    else:
        status = 422
    return HTTPException(status, f"{label}: {reason}")


def install(app: FastAPI):
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_parameters)
    app.add_exception_handler(ImgsearchError, _refused)
    app.add_exception_handler(Overloaded, _overloaded)


async def _http_error(request: Request, e: HTTPException):
    headers = dict(e.headers or {})
    if e.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    detail = e.detail
    if e.status_code == 404 and detail == "Not Found":  # the router's own: no route has this path
        detail = f"no such endpoint: {request.url.path}"
    if e.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    return JSONResponse({"error": detail}, status_code=e.status_code, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's own 405 names only the first route's)."""
    probe = {**request.scope, "method": "\x00"}  # no route takes it: a route matching the path is a partial match
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        if getattr(route, "methods", None) and route.matches(probe)[0] is not Match.NONE:
            methods |= route.methods
    order = ("GET", "HEAD", "POST", "PUT", "DELETE")
    return [m for m in order if m in methods] + sorted(methods - set(order))


def _routes(routes):
    """Every route, those of included routers too (FastAPI >= 0.120 wraps an included router in one route; our
    routers have no prefix, so their routes' own paths are the full ones)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)
        else:
            yield route


async def _bad_parameters(request: Request, e: RequestValidationError):
    reasons = "; ".join(f"{'.'.join(map(str, err['loc'][1:]))}: {err['msg']}" for err in e.errors())
    return JSONResponse({"error": f"bad parameters: {reasons}"}, status_code=400)


async def _refused(request: Request, e: ImgsearchError):
    return JSONResponse({"error": str(e)}, status_code=400)


async def _overloaded(request: Request, e: Overloaded):
    body = {"error": str(e), "retry_after": e.retry_after, "waiting": e.waiting}
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(e.retry_after)})


class OneLineErrors:
    """A failure of ours or of Milvus, not of the request: a JSON 500 and one line in the log, no traceback
    (Starlette's own handler would re-raise it for the server to print)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as e:
            first_line = next(iter((getattr(e, "message", None) or str(e)).splitlines()), "")
            log.error("%s %s failed: %s: %s", scope.get("method"), scope.get("path"), type(e).__name__, first_line)
            if not started:
                response = JSONResponse({"error": f"internal error ({type(e).__name__})"}, status_code=500)
                await response(scope, receive, send)
