"""The HTTP front door: a FastAPI app over the same library calls as the CLI, run in the ``Worker``'s thread.

The routes live by area in ``routes/``; every answer is JSON, errors included (``errors.py``); the schema at
/openapi.json names every status a route can give (``schema.py``); every request is logged and counted
(``access.py``, ``metrics.py``).
"""

from __future__ import annotations

from fastapi import FastAPI

from . import errors
from .access import AccessLog
from .context import DEFAULT_MAX_BODY, ServeSettings
from .metrics import ServerMetrics
from .routes import images, search, status
from .schema import openapi_builder
from .worker import Worker

__all__ = ["DEFAULT_MAX_BODY", "ServeSettings", "create_app"]


def create_app(worker: Worker, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The app over a started ``worker``."""
    app = FastAPI(
        title="imgsearch",
        summary="Search-by-image over a photo gallery: VGG16 features in Milvus.",
        version=_version(),
    )
    app.state.worker = worker
    app.state.settings = settings
    app.state.metrics = ServerMetrics(worker)
    errors.install(app)
    for area in (search, images, status):
        app.include_router(area.router)
    # Added last, so outermost: the access log sees the 500s that OneLineErrors makes of our own failures.
    app.add_middleware(errors.OneLineErrors)
    app.add_middleware(AccessLog, metrics=app.state.metrics)
    app.openapi = openapi_builder(app, token=bool(settings.token))
    return app


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("imgsearch")
    except metadata.PackageNotFoundError:
        return "0"
