"""POST /api/search: a query image -> what `imgsearch search --json` prints for it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from starlette.exceptions import HTTPException

from ...search import DEFAULT_THRESHOLD, SearchOptions
from ...store import check_owner, check_page
from .. import schema
from ..context import authorised, settings_of, worker_of
from ..errors import image_error
from ..uploads import read_image

router = APIRouter(dependencies=[Depends(authorised)])
# The search's query parameters; any other is refused with a 400 that lists these.
SEARCH_PARAMETERS = ("top_k", "page", "threshold", "owner", "copies_only", "verdict")


@router.post("/api/search", openapi_extra=schema.IMAGE_BODY, response_model=None,
             responses={200: {"model": schema.SearchAnswer}, **schema.responses(400, 401, 413, 415, 422, 500, 503)})
async def search(
    request: Request,
    top_k: int = Query(10, description="Results per page.", json_schema_extra=schema.top_k_schema()),
    page: int = Query(1, description="Page number, 1-based: ranks (page-1)*top_k+1 .. page*top_k.",
                      json_schema_extra=schema.page_schema()),
    threshold: float = Query(
        DEFAULT_THRESHOLD, ge=-1, le=1, description="Keep hits with similarity >= this; -1 keeps every rank."
    ),
    owner: str | None = Query(None, description="Only this owner's images.",
                              json_schema_extra={"pattern": schema.OWNER_PATTERN}),
    copies_only: bool = Query(False, description="Only the copies (the same picture, edited), with evidence; "
                              "implies verdict=true."),
    verdict: bool = Query(True, description="Check the nearest images for copies; false: similarity alone."),
) -> dict:
    """The query image (multipart field `image`, or the raw body) -> the object `imgsearch search --json`
    prints for it: copies first with their evidence, then similar images."""
    _refuse_unknown_parameters(request)
    check_page(top_k, page)  # the library's reasons first: they name Milvus's limit
    if top_k > schema.MAX_PAGE_SIZE or page > schema.MAX_PAGE:
        raise HTTPException(400, f"top_k is at most {schema.MAX_PAGE_SIZE} and page at most {schema.MAX_PAGE} "
                                 f"here (got top_k={top_k}, page={page})")
    if owner is not None:
        check_owner(owner)
    # copies_only with verdict=false would contradict itself (copies are what the verdict finds); a query's
    # parameters cannot say "not both" in the schema, so the narrower ask wins instead of a 400.
    options = SearchOptions(top_k=top_k, page=page, threshold=threshold, owner=owner, copies_only=copies_only,
                            verify=verdict or copies_only)
    worker = worker_of(request)
    worker.check_room()  # a full queue refuses before the upload is read
    data, label = await read_image(request, settings_of(request).max_body)
    job = worker.search(data, label, options)
    result = await asyncio.wrap_future(job.future)
    request.state.batch = job.batch  # for the access log
    if result.error:
        raise image_error(result.query, result.error)
    return result.as_dict()


def _refuse_unknown_parameters(request: Request):
    for name in request.query_params:
        if name not in SEARCH_PARAMETERS:
            raise HTTPException(400, f"unknown parameter {name!r} (known: {', '.join(SEARCH_PARAMETERS)})")
