"""Images under a caller's key (PUT, DELETE /api/images/{key}) and thumbnails of indexed files."""

from __future__ import annotations

import io
import os
import re

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException

from ...errors import ImageError
from ...features import load_image
from ...indexing import check_key, delete_keys, index_keyed
from ...store import check_owner, row_id
from .. import schema
from ..context import authorised, run, settings_of, worker_of
from ..errors import image_error
from ..uploads import read_image


class _ImageKey(Convertor):
    """A key in the path, slashes and all, but never an image's thumbnail URL (``<id>/thumbnail``): that path is
    the thumbnail's alone, so a PUT or DELETE there is 405 (GET only), not the put of a key of that form."""

    regex = r"(?![0-9a-f]{32}/thumbnail$).*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("imagekey", _ImageKey())
router = APIRouter(dependencies=[Depends(authorised)])
THUMBNAIL_SIDE = 256
ROW_ID_RE = re.compile(schema.ROW_ID_PATTERN)
KEY = Path(description="The caller's key for the image (an object-store key, a URL path, an id); may hold /.",
           json_schema_extra=schema.key_schema())


@router.put("/api/images/{key:imagekey}", openapi_extra=schema.IMAGE_BODY, response_model=None,
            responses={200: {"model": schema.PutAnswer}, **schema.responses(400, 401, 413, 415, 422, 500, 503)})
async def put_image(request: Request, key: str = KEY,
                    owner: str = Query("", description="Owner of the image.",
                                       json_schema_extra={"pattern": schema.OWNER_PATTERN})) -> dict:
    """Index an image that has no file here under the caller's key; putting a key again replaces its row."""
    key = _key(request)
    check_owner(owner)
    worker_of(request).check_room()  # a full queue refuses before the upload is read
    data, _ = await read_image(request, settings_of(request).max_body)
    summary = await run(request, index_keyed, [(key, data)], owner)
    if summary.failed:
        raise image_error(*summary.failed[0])
    return {"key": key, "id": row_id(key), "owner": owner, "replaced": summary.updated == 1}


@router.delete("/api/images/{key:imagekey}", response_model=None,
               responses={200: {"model": schema.DeleteAnswer}, **schema.responses(400, 401, 404, 500, 503)})
async def delete_image(request: Request, key: str = KEY) -> dict:
    """Remove the row of a key put before; 404 if there is none."""
    key = _key(request)
    if not await run(request, lambda collection, _: delete_keys(collection, [key])):
        raise HTTPException(404, f"no image under key {key!r}")
    return {"key": key, "id": row_id(key), "deleted": True}


@router.get("/api/images/{image_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "A JPEG at most 256 pixels on its longer side."},
                       **schema.responses(401, 404, 500, 503)})
async def thumbnail(request: Request, image_id: str = Path(
        description="The `id` of a search hit.", json_schema_extra={"pattern": schema.ROW_ID_PATTERN})):
    """A small JPEG of an indexed image whose path is a local file (the `id` of a search hit)."""
    if not ROW_ID_RE.fullmatch(image_id):
        raise HTTPException(404, "no such image id (ids are 32 hex digits, as search results give them)")
    rows = await run(request, lambda collection, _: collection.get([image_id], fields=("path",)))
    if image_id not in rows:
        raise HTTPException(404, f"no image with id {image_id}")
    data = await run_in_threadpool(_thumbnail_jpeg, rows[image_id]["path"])
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


def _key(request: Request) -> str:
    # From the decoded path itself: the route's pattern would end a key at a newline and drop the rest.
    return check_key(request.scope["path"].removeprefix("/api/images/"))


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
