"""The HTTP front door: a FastAPI app over the same library calls as the CLI, run in the ``Worker``'s thread.

Every answer is JSON, errors included (``{"error": "..."}``): 400 bad parameters or key, 401 token, 404, 413 body
too large (refused from Content-Length before reading, or as soon as the stream passes the limit), 415 no image,
422 a corrupt image or a decompression bomb.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import os
import re
from importlib import resources

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..errors import ImageError, ImgsearchError
from ..features import NOT_AN_IMAGE, load_image
from ..indexing import check_key, delete_keys, index_keyed
from ..search import DEFAULT_THRESHOLD, SearchOptions
from ..store import check_owner, check_page, row_id
from .worker import Worker

log = logging.getLogger("uvicorn.error")  # uvicorn's own log, formatted as its other lines

DEFAULT_MAX_BODY = 25 * 1024 * 1024
THUMBNAIL_SIDE = 256
ROW_ID_RE = re.compile(r"[0-9a-f]{32}")
# The search's query parameters; any other is refused with a 400 that lists these.
SEARCH_PARAMETERS = ("top_k", "page", "threshold", "owner", "copies_only", "verdict")

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def create_app(worker: Worker, token: str | None = None, max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The app over a started ``worker``. ``token``: when set, every /api/ call needs ``Bearer <token>``."""
    app = FastAPI(
        title="imgsearch",
        summary="Search-by-image over a photo gallery: VGG16 features in Milvus.",
        version=_version(),
    )

    def authorised(request: Request):
        if not token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token: send Authorization: Bearer <IMGSEARCH_SERVE_TOKEN>")

    api = [Depends(authorised)]

    async def run(fn, *args):
        return await asyncio.wrap_future(worker.call(fn, *args))

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        headers = {"WWW-Authenticate": "Bearer"} if e.status_code == 401 else None
        return JSONResponse({"error": e.detail}, status_code=e.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request, e: RequestValidationError):
        reasons = "; ".join(f"{'.'.join(map(str, err['loc'][1:]))}: {err['msg']}" for err in e.errors())
        return JSONResponse({"error": f"bad parameters: {reasons}"}, status_code=400)

    @app.exception_handler(ImgsearchError)
    async def refused(request, e: ImgsearchError):
        return JSONResponse({"error": str(e)}, status_code=400)

    app.add_middleware(_OneLineErrors)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(resources.files(__package__).joinpath("static/index.html").read_text("utf-8"))

    @app.get("/api/health", dependencies=api)
    async def health():
        """Status, rows, model and numeric precision of the served collection."""

        def report(collection, embedder):
            return {
                "status": "ok",
                "rows": collection.count(),
                "collection": collection.name,
                "model": embedder.name,
                "dim": embedder.dim,
                # What the model really runs in (auto resolved when it was loaded at start-up).
                "precision": getattr(embedder, "precision_used", None) or getattr(embedder, "precision", "fp32"),
            }

        return await run(report)

    @app.get("/api/stats", dependencies=api)
    async def stats():
        """As `imgsearch stats --json` for the served collection, plus the micro-batching counters."""

        def report(collection, embedder):
            return {
                "uri": collection.store.uri,
                "collection": collection.name,
                "rows": collection.count(),
                "config": collection.config,
                "owners": collection.owners(),
                "batching": worker.stats.as_dict(),
            }

        return await run(report)

    @app.post("/api/search", dependencies=api, openapi_extra=_IMAGE_BODY)
    async def search(
        request: Request,
        top_k: int = Query(10, description="Results per page."),
        page: int = Query(1, description="Page number, 1-based: ranks (page-1)*top_k+1 .. page*top_k."),
        threshold: float = Query(
            DEFAULT_THRESHOLD, ge=-1, le=1, description="Keep hits with similarity >= this; -1 keeps every rank."
        ),
        owner: str | None = Query(None, description="Only this owner's images."),
        copies_only: bool = Query(False, description="Only the copies (the same picture, edited), with evidence."),
        verdict: bool = Query(True, description="Check the nearest images for copies; false: similarity alone."),
    ):
        """The query image (multipart field `image`, or the raw body) -> the object `imgsearch search --json`
        prints for it: copies first with their evidence, then similar images."""
        _refuse_unknown_parameters(request)
        check_page(top_k, page)
        if owner is not None:
            check_owner(owner)
        options = SearchOptions(top_k=top_k, page=page, threshold=threshold, owner=owner, copies_only=copies_only,
                                verify=verdict)
        data, label = await _read_image(request, max_body)
        result = await asyncio.wrap_future(worker.search(data, label, options))
        if result.error:
            raise _image_error(result.query, result.error)
        return result.as_dict()

    @app.put("/api/images/{key:path}", dependencies=api, openapi_extra=_IMAGE_BODY)
    async def put_image(request: Request, key: str, owner: str = Query("", description="Owner of the image.")):
        """Index an image that has no file here under the caller's key; putting a key again replaces its row."""
        key = _key(request)
        check_owner(owner)
        data, _ = await _read_image(request, max_body)
        summary = await run(index_keyed, [(key, data)], owner)
        if summary.failed:
            raise _image_error(*summary.failed[0])
        return {"key": key, "id": row_id(key), "owner": owner, "replaced": summary.updated == 1}

    @app.delete("/api/images/{key:path}", dependencies=api)
    async def delete_image(request: Request, key: str):
        """Remove the row of a key put before; 404 if there is none."""
        key = _key(request)
        if not await run(lambda collection, _: delete_keys(collection, [key])):
            raise HTTPException(404, f"no image under key {key!r}")
        return {"key": key, "id": row_id(key), "deleted": True}

    @app.get("/api/images/{image_id}/thumbnail", dependencies=api, response_class=Response)
    async def thumbnail(image_id: str):
        """A small JPEG of an indexed image whose path is a local file (the `id` of a search hit)."""
        if not ROW_ID_RE.fullmatch(image_id):
            raise HTTPException(404, "no such image id (ids are 32 hex digits, as search results give them)")
        rows = await run(lambda collection, _: collection.get([image_id], fields=("path",)))
        if image_id not in rows:
            raise HTTPException(404, f"no image with id {image_id}")
        data = await run_in_threadpool(_thumbnail_jpeg, rows[image_id]["path"])
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
    async def unknown(rest: str):
        raise HTTPException(404, f"no such endpoint: /api/{rest}")

    return app


class _OneLineErrors:
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


def _key(request: Request) -> str:
    # From the decoded path itself: the route's pattern would end a key at a newline and drop the rest.
    return check_key(request.scope["path"].removeprefix("/api/images/"))


def _refuse_unknown_parameters(request: Request):
    for name in request.query_params:
        if name not in SEARCH_PARAMETERS:
            raise HTTPException(400, f"unknown parameter {name!r} (known: {', '.join(SEARCH_PARAMETERS)})")


async def _read_image(request: Request, max_body: int) -> tuple[bytes, str]:
    """The image bytes and a label, from the multipart field ``image`` or the raw body, never over ``max_body``."""
    too_large = HTTPException(413, f"request body over the limit of {max_body:,} bytes (see --max-body)")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_body:
        raise too_large  # before reading any of it
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:  # chunked uploads declare no length: stop as soon as it is passed
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(400, "the client went away before the body was complete") from None
    body = b"".join(chunks)
    label = "body"
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        request._body = body  # starlette parses the form from the body we already hold
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception as e:  # starlette's MultiPartException and friends: a malformed request
            raise HTTPException(400, f"malformed multipart body: {e}") from None
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, "multipart body without a file field named 'image'")
        body, label = await upload.read(), upload.filename or "image"
    if not body:
        raise HTTPException(400, "no image: the body (or its 'image' field) is empty")
    return body, label


def _image_error(label: str, reason: str) -> HTTPException:
    return HTTPException(415 if reason == NOT_AN_IMAGE else 422, f"{label}: {reason}")


def _thumbnail_jpeg(path: str) -> bytes:
    # Only indexed local files, by absolute path: key rows (PUT) never start with / (check_key), so no caller can
    # make the server read a file that `imgsearch index` did not put in this collection.
    if not os.path.isabs(path) or not os.path.isfile(path):
        raise HTTPException(404, "no local file for this image (indexed by key, or the file is gone)")
    try:
        image = load_image(path, min_side=THUMBNAIL_SIDE).image
    except ImageError as e:
        raise HTTPException(404, f"the file of this image can no longer be read: {e.reason}") from None
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("imgsearch")
    except metadata.PackageNotFoundError:
        return "0"
