"""`imgsearch serve` under pressure, as a real process on loopback: a full queue answers 503 at once (with
Retry-After and a JSON reason) while health still answers; a huge image is refused from its header at bounded
memory; /metrics counts it all; every request has an access-log line (JSON with --log-json)."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from conftest import add_black_border, jpeg_bytes
from PIL import Image
from serve_process import indexed_gallery, served

from imgsearch.cli import cli

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")
MAX_QUEUE = 4
MEMORY_BUDGET = 300 * 1024 * 1024  # the bound on the server's growth for a 144 MP upload


@pytest.fixture(scope="module")
def server(tmp_path_factory, photo_dir, vgg_weights):
    root = tmp_path_factory.mktemp("pressure")
    uri = indexed_gallery(root, photo_dir, PHOTOS, vgg_weights)
    with served(uri, vgg_weights, root / "serve.log", "--max-queue", str(MAX_QUEUE), "--log-json") as server:
        yield server
    assert "Traceback" not in server.log_text()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=300) as client:
        yield client


def _png(width: int, height: int) -> bytes:
    """A plain-colour PNG: a small file (about 0.2 MB for 144 MP) that would be 430 MB decoded."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(out, "PNG", compress_level=9)
    return out.getvalue()


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    return _png(12_000, 12_000)


def test_64_concurrent_searches_against_a_queue_of_4_get_200_or_503_at_once(http, sample_images):
    queries = [jpeg_bytes(add_black_border(sample_images[PHOTOS[i % len(PHOTOS)]], 0.02 * (i % 5)), 60 + i % 30)
               for i in range(64)]

    def ask(data):
        return http.post("/api/search", params={"threshold": -1}, content=data)

    with ThreadPoolExecutor(64) as pool:
        pending = [pool.submit(ask, data) for data in queries]
        health = http.get("/api/health")  # beside the queue: answered while it is full
        answers = [future.result() for future in pending]
    statuses = sorted({response.status_code for response in answers})
    assert set(statuses) <= {200, 503}, statuses
    refused = [response for response in answers if response.status_code == 503]
    assert refused, "64 searches at once never filled a queue of 4"
    for response in refused:
        assert int(response.headers["Retry-After"]) >= 1
        body = response.json()
        assert "busy" in body["error"] and body["retry_after"] == int(response.headers["Retry-After"])
    assert health.status_code == 200 and health.json()["queue"]["max"] == MAX_QUEUE
    metrics = http.get("/metrics").text
    counted = f'imgsearch_http_requests_total{{method="POST",route="/api/search",status="503"}} {len(refused)}.0'
    assert counted in metrics
    assert f"imgsearch_queue_refused_total {len(refused)}.0" in metrics


def test_a_144_megapixel_png_is_refused_from_its_header_at_bounded_memory(http, server, huge_png):
    can_measure_peak = server.reset_peak()
    before = server.rss_bytes()
    search = http.post("/api/search", content=huge_png)
    put = http.put("/api/images/huge.png", files={"image": ("huge.png", huge_png)})
    grown = (server.rss_bytes(peak=True) if can_measure_peak else server.rss_bytes()) - before
    for response in (search, put):
        assert response.status_code == 413, response.text
        assert "too many pixels" in response.json()["error"] and "12000x12000" in response.json()["error"]
    assert grown < MEMORY_BUDGET, f"the server grew by {grown / 2**20:.0f} MB"
    assert http.delete("/api/images/huge.png").status_code == 404  # nothing was indexed


def test_a_large_jpeg_is_decoded_at_reduced_scale_not_refused(http, sample_images):
    big = sample_images["rocket"].resize((9600, 7200))  # 69 MP, over the 40 MP limit at full size
    answer = http.post("/api/search", content=jpeg_bytes(big, 85))
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["path"].endswith("/rocket.jpg")


def test_index_refuses_a_huge_png_on_disk_and_indexes_a_huge_jpeg(tmp_path, vgg_weights, huge_png, sample_images):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "huge.png").write_bytes(huge_png)
    sample_images["coins"].resize((9600, 7200)).save(tmp_path / "photos" / "big.jpg", quality=85)
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "photos"), "--uri", str(tmp_path / "x.db"), "--json"],
                                env={"IMGSEARCH_WEIGHTS": str(vgg_weights)})
    assert result.exit_code == 1, result.output  # some files failed
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["new"] == 1 and summary["failed"] == 1
    (failure,) = summary["failures"]
    assert failure["path"].endswith("huge.png") and "too many pixels" in failure["reason"]


def test_metrics_are_prometheus_text_with_requests_queue_batches_and_model_passes(http):
    http.get("/api/health")
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for family in ("imgsearch_http_requests_total", "imgsearch_http_request_duration_seconds_bucket",
                   "imgsearch_queue_waiting", "imgsearch_queue_max 4.0", "imgsearch_search_batch_size_bucket",
                   "imgsearch_model_passes_total", "imgsearch_verdict_checks_total"):
        assert family in text, family
    assert 'imgsearch_http_requests_total{method="GET",route="/api/health",status="200"}' in text
    passes = next(line for line in text.splitlines() if line.startswith("imgsearch_model_passes_total"))
    assert float(passes.split()[-1]) >= 1


def _access_lines_until(server, path: str, seconds: float = 10.0) -> tuple[list[dict], list[dict]]:
    """The log's JSON lines and its access lines, once one for ``path`` is there: a request's line is written when
    the request ends, after its answer has reached the client (a bounded wait, not a timing)."""
    deadline = time.monotonic() + seconds
    while True:
        lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
        access = [line for line in lines if line["logger"] == "imgsearch.access"]
        if any(line["path"] == path for line in access) or time.monotonic() > deadline:
            return lines, access
        time.sleep(0.05)


def test_every_request_has_a_json_access_log_line(http, server):
    http.post("/api/search", params={"top_k": 2}, content=(server.log.parent / "photos" / "coins.jpg").read_bytes())
    http.get("/api/nowhere")
    lines, access = _access_lines_until(server, "/api/nowhere")
    search = [line for line in access if line["route"] == "/api/search" and line["status"] == 200][-1]
    assert search["method"] == "POST" and search["batch"] >= 1 and search["duration_ms"] > 0
    nowhere = [line for line in access if line["path"] == "/api/nowhere"][-1]
    assert nowhere["status"] == 404 and nowhere["route"] == "(no route)"
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines are JSON too


def test_the_cli_defaults_are_the_librarys():
    # Repeated in cli/serve.py so that --help imports neither Pillow nor the server.
    from imgsearch.cli.serve import serve
    from imgsearch.features import DEFAULT_MAX_PIXELS
    from imgsearch.server.worker import DEFAULT_MAX_QUEUE

    defaults = {param.name: param.default for param in serve.params}
    assert defaults["max_pixels"] * 1_000_000 == DEFAULT_MAX_PIXELS
    assert defaults["max_queue"] == DEFAULT_MAX_QUEUE
