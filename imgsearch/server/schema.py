"""What the API promises, for /openapi.json: the bodies of its answers, errors included, and every status a route
can give. The routes return plain dicts (the library's ``as_dict``); these models only describe them, and
tests/test_serve_schema.py holds the answers to them with schemathesis.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from ..indexing import KEY_RE, MAX_KEY
from ..store import MAX_OWNER, MAX_TOP_K

ROW_ID_PATTERN = "^[0-9a-f]{32}$"
# A thumbnail URL (`<id>/thumbnail`) is no key: that path is the thumbnail's (routes/images.py).
KEY_PATTERN = f"^(?![0-9a-f]{{32}}/thumbnail$){KEY_RE.pattern}$"
OWNER_PATTERN = rf"^[\w.@+ -]{{0,{MAX_OWNER}}}$"


class ErrorBody(BaseModel):
    """Every error is this object: one sentence saying what was wrong and, where it helps, what to do."""

    error: str


class OverloadedBody(ErrorBody):
    retry_after: int = Field(description="Seconds to wait before sending the request again (also in Retry-After).")
    waiting: int = Field(description="Requests waiting for the model when this one was refused.")


class Hit(BaseModel):
    rank: int
    id: str = Field(description="The row's id: 32 hex digits (for /api/images/{image_id}/thumbnail).")
    path: str = Field(description="The indexed file's path, or the key it was put under.")
    similarity: float
    distance: float
    owner: str
    match: str | None = Field(None, description='"copy" (the same picture, edited) or "similar".')
    evidence: dict[str, Any] | None = Field(None, description="For copies: how the copy relates to the original.")


class SearchAnswer(BaseModel):
    query: str
    page: int
    top_k: int
    results: list[Hit]


class PutAnswer(BaseModel):
    key: str
    id: str
    owner: str
    replaced: bool = Field(description="True when the key held an image before (its row was replaced).")


class DeleteAnswer(BaseModel):
    key: str
    id: str
    deleted: bool


class QueueState(BaseModel):
    waiting: int = Field(description="Requests waiting for the model now.")
    max: int = Field(description="The bound (--max-queue): past it requests are answered 503.")


class Health(BaseModel):
    status: str
    rows: int
    collection: str
    model: str
    dim: int
    precision: str | None
    queue: QueueState


class Stats(BaseModel):
    uri: str
    collection: str
    rows: int
    config: dict[str, Any]
    owners: dict[str, int]
    batching: dict[str, float]


_WHY = {
    400: "Bad parameters, a bad key or owner, an empty or malformed body.",
    401: "The server has a token (IMGSEARCH_SERVE_TOKEN) and the request did not send it as a Bearer token.",
    404: "Nothing there: no such image, key or endpoint.",
    413: "The body is over --max-body, or the image has more pixels than --max-pixels (decoded).",
    415: "The upload is no image (or a format not read here).",
    422: "The image is corrupt or truncated.",
    500: "A failure on the server's side (the store went away): the error names it.",
    503: "The queue of requests for the model is full (--max-queue): send it again after Retry-After seconds.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}


def responses(*statuses: int) -> dict:
    """The error answers a route can give, each with its JSON body, for FastAPI's ``responses``."""
    out = {}
    for status in statuses:
        out[status] = {"description": _WHY[status], "model": OverloadedBody if status == 503 else ErrorBody}
        if status == 503:
            out[status]["headers"] = _RETRY_AFTER
    return out


# An image arrives as the multipart part `image` (what a browser's form sends) or as the raw body. Both are said
# to be images (image/*): bytes that are no image are answered 415, so "any bytes" would not be the truth.
IMAGE_TYPES = "image/*"
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["image"],
                           "properties": {"image": {"type": "string", "format": "binary",
                                                    "description": "The image file (JPEG, PNG, WebP, GIF, ...)."}}},
                "encoding": {"image": {"contentType": IMAGE_TYPES}},
            },
            IMAGE_TYPES: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def key_schema() -> dict:
    return {"pattern": KEY_PATTERN, "minLength": 1, "maxLength": MAX_KEY}


# Milvus serves ranks up to MAX_TOP_K (16384). Any page of any size under these two bounds is within it, so
# every request the schema allows is one the server can answer (a product bound cannot be said in a schema).
MAX_PAGE_SIZE = 128
MAX_PAGE = MAX_TOP_K // MAX_PAGE_SIZE


def top_k_schema() -> dict:
    return {"minimum": 1, "maximum": MAX_PAGE_SIZE}


def page_schema() -> dict:
    return {"minimum": 1, "maximum": MAX_PAGE}


def openapi_builder(app: FastAPI, token: bool):
    """``app.openapi`` without FastAPI's stock 422 (its validation errors are answered 400 here, and 422 means a
    corrupt image), and with the Bearer scheme on every /api/ route when the server has a token."""

    def build() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        if token:
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                stock = operation["responses"].get("422", {})
                if "HTTPValidationError" in str(stock.get("content", "")):
                    del operation["responses"]["422"]
                if token and (path.startswith("/api/") or path == "/metrics"):
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    return build
