"""The server's own state: the page at /, GET /api/health, GET /api/stats and GET /metrics."""

from __future__ import annotations

import asyncio
from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ...search import DEFAULT_THRESHOLD
from .. import schema
from ..context import authorised, run, worker_of

router = APIRouter()
guarded = [Depends(authorised)]
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page():
    html = resources.files("imgsearch.server").joinpath("static/index.html").read_text("utf-8")
    # The page's default minimum similarity is the API's, from the one place it is decided.
    return HTMLResponse(html.replace("__DEFAULT_THRESHOLD__", f"{DEFAULT_THRESHOLD:g}"))


@router.get("/api/health", dependencies=guarded,
            responses={200: {"model": schema.Health}, **schema.responses(401, 500)})
async def health(request: Request) -> dict:
    """Status, rows, model and numeric precision of the served collection, and the queue's length.

    Answered beside the worker's queue, not through it: it stays quick while the queue is full."""
    worker = worker_of(request)
    embedder = worker.embedder
    return {
        "status": "ok",
        "rows": await _row_count(request),
        "collection": worker.collection.name,
        "model": embedder.name,
        "dim": embedder.dim,
        # What the model really runs in (auto resolved when it was loaded at start-up).
        "precision": getattr(embedder, "precision_used", None) or getattr(embedder, "precision", "fp32"),
        "queue": {"waiting": worker.waiting, "max": worker.max_queue},
    }


async def _row_count(request: Request) -> int:
    """The collection's count, one query at a time however many health checks come in (they share its answer).

    Run in a thread of its own, not the worker's: a count is one read-only gRPC call (pymilvus's client is safe
    to share between threads), and the worker may be busy with a long batch of searches."""
    state = request.app.state
    if getattr(state, "counting", None) is None:
        state.counting = asyncio.ensure_future(run_in_threadpool(worker_of(request).collection.count))
        state.counting.add_done_callback(lambda _: setattr(state, "counting", None))
    return await asyncio.shield(state.counting)


@router.get("/api/stats", dependencies=guarded,
            responses={200: {"model": schema.Stats}, **schema.responses(401, 500, 503)})
async def stats(request: Request) -> dict:
    """As `imgsearch stats --json` for the served collection, plus the micro-batching counters."""
    batching = worker_of(request).stats.as_dict()

    def report(collection, embedder):
        return {
            "uri": collection.store.uri,
            "collection": collection.name,
            "rows": collection.count(),
            "config": collection.config,
            "owners": collection.owners(),
            "batching": batching,
        }

    return await run(request, report)


@router.get("/metrics", dependencies=guarded, response_class=Response,
            responses={200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
                             "description": "Prometheus text: requests, latencies, queue, batches, model passes."},
                       **schema.responses(401)})
async def metrics(request: Request):
    """Prometheus metrics: requests by route and status, latency histograms, the queue, batch sizes, model passes
    and verdict checks."""
    return Response(request.app.state.metrics.text(), media_type=PROMETHEUS_TEXT)
