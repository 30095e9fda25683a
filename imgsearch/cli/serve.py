"""serve: the HTTP API and the web page (imgsearch.server), on uvicorn."""

import ipaddress
import logging
import os

import click

from ..errors import ImgsearchError
from .base import cli, err_line, open_collection
from .options import feature_options, store_options

log = logging.getLogger("imgsearch.server")

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command()
@store_options
@feature_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (any but loopback "
              "exposes the API: set IMGSEARCH_SERVE_TOKEN).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-body", type=click.FloatRange(0.001), default=25.0, show_default=True,
              help="Largest request body in MB (10^6 bytes); larger ones are answered 413.")
# The defaults repeat features.DEFAULT_MAX_PIXELS and worker.DEFAULT_MAX_QUEUE (--help imports neither);
# tests/test_serve_pressure.py keeps them equal.
@click.option("--max-pixels", type=click.FloatRange(0.01), default=40.0, show_default=True,
              help="Most megapixels an upload may have as decoded (JPEGs shrink up to 8x per side while decoded); "
              "larger ones are refused 413 from their header, before decoding.")
@click.option("--max-queue", type=click.IntRange(1, 100_000), default=32, show_default=True,
              help="Most requests waiting for the model; past it, requests are answered 503 with Retry-After.")
@click.option("--batch-window", type=click.FloatRange(0, 1000), default=5.0, show_default=True,
              help="Milliseconds a lone search waits for others to share its model call.")
@click.option("--max-batch", type=click.IntRange(1, 256), default=32, show_default=True,
              help="Most searches in one model call.")
@click.option("--shutdown-timeout", type=click.FloatRange(0, 3600), default=10.0, show_default=True,
              help="Seconds SIGTERM/SIGINT wait for the answers in flight before cancelling them.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (the access log included).")
def serve(uri, collection, weights, pooling, resize, border_tolerance, precision, host, port, max_body, max_pixels,
          max_queue, batch_window, max_batch, shutdown_timeout, log_json):
    """Serve search and indexing over HTTP (JSON API, OpenAPI at /openapi.json, Prometheus at /metrics) and a
    search page at /.

    The model is loaded and the store opened once; searches arriving together share one model call. A Milvus
    Lite database is held by this process while it runs: index through the API (PUT /api/images/KEY), or
    serve the database with a Milvus server and give both the same --uri. With IMGSEARCH_SERVE_TOKEN set,
    every /api/ call and /metrics need `Authorization: Bearer <token>`. SIGTERM or SIGINT stop it cleanly:
    no new requests, the ones in flight answered (up to --shutdown-timeout), the store closed, exit 0.
    """
    try:
        from ..server.app import ServeSettings, create_app
        from ..server.run import configure_logging, make_server
    except ImportError as e:  # the base install stays light: serving is an extra
        raise ImgsearchError(f"imgsearch serve needs {e.name}: pip install 'imgsearch[serve]'") from None
    from ..features import VGG16Features
    from ..server.worker import Worker

    token = os.environ.get("IMGSEARCH_SERVE_TOKEN") or None
    if not is_loopback(host) and not token:
        err_line(f"warning: serving on {host} without IMGSEARCH_SERVE_TOKEN: anyone who reaches this port can "
                 "search, add and delete images")
    options = dict(weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance,
                   precision=precision)

    def opener():
        store, coll, embedder = open_collection(uri, collection or "images", VGG16Features, create=True, **options)
        embedder.max_pixels = int(max_pixels * 1_000_000)
        return store, coll, embedder

    worker = Worker(opener, window=batch_window / 1000, max_batch=max_batch, max_queue=max_queue)
    app = create_app(worker, ServeSettings(token=token, max_body=int(max_body * 1_000_000)))
    server = make_server(app, host, port, shutdown_timeout)
    with worker:
        configure_logging(log_json)  # once the store and the model are open: a command that fails earlier logs nothing
        rows = worker.call(lambda coll, _: coll.count()).result()
        log.info("serving %r at %s (%s rows) on http://%s:%s/", worker.collection.name, worker.store.uri,
                 f"{rows:,}", host, port)
        server.run()
    if server.stop_signal is not None:
        log.info("stopped: store closed")
