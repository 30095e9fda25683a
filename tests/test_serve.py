"""`imgsearch serve` as a real process on loopback, over real HTTP: the API answers as the CLI does, indexes by key,
refuses bad uploads with a JSON reason and keeps serving, batches concurrent searches."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from conftest import add_black_border, jpeg_bytes
from PIL import Image
from serve_process import served

from imgsearch.cli import cli
from imgsearch.store import row_id

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")
CLI_QUERY = ("--top-k", "4", "--threshold", "-1")  # every rank, so the scores of unrelated photos are compared too


def _edited(sample_images, name) -> bytes:
    return jpeg_bytes(add_black_border(sample_images[name], 0.08), quality=40)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, photo_dir, vgg_weights, sample_images):
    """Six photos indexed with `imgsearch index`, and what `imgsearch search --json` answers for edited copies of
    two of them (asked before the server starts: it then holds the Milvus Lite database)."""
    root = tmp_path_factory.mktemp("served")
    (root / "photos").mkdir()
    for name in PHOTOS:
        shutil.copy2(photo_dir / f"{name}.jpg", root / "photos" / f"{name}.jpg")
    uri = str(root / "gallery.db")
    env = {"IMGSEARCH_WEIGHTS": str(vgg_weights)}
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(root / "photos"), "--uri", uri], env=env).exit_code == 0
    cli_answers = {}
    for name in ("coffee", "rocket"):
        query = root / f"{name}-edited.jpg"
        query.write_bytes(_edited(sample_images, name))
        result = runner.invoke(cli, ["search", str(query), "--uri", uri, "--json", *CLI_QUERY], env=env)
        assert result.exit_code == 0, result.output
        cli_answers[name] = json.loads(result.output)
    return root, uri, cli_answers


@pytest.fixture(scope="module")
def server(gallery, vgg_weights):
    root, uri, _ = gallery
    with served(uri, vgg_weights, root / "serve.log") as server:
        yield server
    assert "Traceback" not in server.log_text()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def _ranked(answer: dict) -> list[tuple]:
    return [(hit["rank"], hit["id"], hit["path"], hit["owner"]) for hit in answer["results"]]


@pytest.mark.parametrize("name", ["coffee", "rocket"])
@pytest.mark.parametrize("how", ["multipart", "raw body"])
def test_api_search_answers_what_the_cli_prints(http, gallery, name, how):
    root, _, cli_answers = gallery
    data = (root / f"{name}-edited.jpg").read_bytes()
    params = {"top_k": 4, "threshold": -1}
    if how == "multipart":
        response = http.post("/api/search", params=params, files={"image": (f"{name}-edited.jpg", data)})
    else:
        response = http.post("/api/search", params=params, content=data)
    assert response.status_code == 200, response.text
    answer, expected = response.json(), cli_answers[name]
    assert set(answer) == set(expected)
    assert (answer["page"], answer["top_k"]) == (expected["page"], expected["top_k"])
    assert _ranked(answer) == _ranked(expected)
    assert answer["results"][0]["path"].endswith(f"/{name}.jpg")
    for got, want in zip(answer["results"], expected["results"]):
        assert got["similarity"] == pytest.approx(want["similarity"], abs=1e-5)
        assert got["distance"] == pytest.approx(want["distance"], abs=1e-5)
        assert got.get("match") == want.get("match") and ("evidence" in got) == ("evidence" in want)
    assert answer["results"][0]["match"] == "copy"
    assert answer["results"][0]["evidence"]["inliers"] == expected["results"][0]["evidence"]["inliers"]


def test_the_verdict_options_over_http(http, gallery, sample_images):
    turned = jpeg_bytes(sample_images["rocket"].rotate(90, expand=True), 85)
    answer = http.post("/api/search", params={"top_k": 3, "threshold": -1}, content=turned).json()["results"]
    assert answer[0]["match"] == "copy" and answer[0]["path"].endswith("/rocket.jpg")
    assert answer[0]["evidence"]["turned"] == pytest.approx(90, abs=1.5)
    assert [h["match"] for h in answer[1:]] == ["similar"] * (len(answer) - 1)
    only = http.post("/api/search", params={"copies_only": "true"}, content=turned).json()["results"]
    assert [h["path"].rsplit("/", 1)[1] for h in only] == ["rocket.jpg"]
    plain = http.post("/api/search", params={"verdict": "false", "threshold": -1}, content=turned).json()
    assert all("match" not in h for h in plain["results"])
    bad = http.post("/api/search", params={"verdict": "perhaps"}, content=turned)
    assert 400 <= bad.status_code < 500 and "error" in bad.json()


def test_pages_continue_the_ranking_and_the_default_threshold_is_the_clis(http, gallery):
    data = (gallery[0] / "coffee-edited.jpg").read_bytes()
    every = http.post("/api/search", params={"top_k": 6, "threshold": -1}, content=data).json()["results"]
    page2 = http.post("/api/search", params={"top_k": 2, "page": 2, "threshold": -1}, content=data).json()
    assert [hit["id"] for hit in page2["results"]] == [hit["id"] for hit in every[2:4]]
    assert [hit["rank"] for hit in page2["results"]] == [3, 4]
    default = http.post("/api/search", content=data).json()["results"]  # 0.80: the same picture only
    assert [hit["path"].rsplit("/", 1)[1] for hit in default] == ["coffee.jpg"]


def test_put_replace_and_delete_by_key(http, sample_images):
    key = "s3://bucket/users/alice/IMG_0001.jpg"
    rows = http.get("/api/health").json()["rows"]
    put = http.put(f"/api/images/{key}", params={"owner": "alice"}, content=jpeg_bytes(sample_images["moon"]))
    assert put.status_code == 200, put.text
    assert put.json() == {"key": key, "id": row_id(key), "owner": "alice", "replaced": False}
    assert http.get("/api/health").json()["rows"] == rows + 1

    def alice_finds(name):
        data = _edited(sample_images, name)
        return http.post("/api/search", params={"owner": "alice"}, content=data).json()["results"]

    assert [hit["path"] for hit in alice_finds("moon")] == [key]
    assert [hit["owner"] for hit in alice_finds("moon")] == ["alice"]

    again = http.put(f"/api/images/{key}", params={"owner": "alice"}, files={"image": ("x.png", _png("grass"))})
    assert again.json()["replaced"] is True
    assert http.get("/api/health").json()["rows"] == rows + 1  # replaced, not duplicated
    assert alice_finds("moon") == []
    assert [hit["path"] for hit in alice_finds("grass")] == [key]

    assert http.delete(f"/api/images/{key}").json() == {"key": key, "id": row_id(key), "deleted": True}
    assert http.get("/api/health").json()["rows"] == rows
    gone = http.delete(f"/api/images/{key}")
    assert gone.status_code == 404 and "no image under key" in gone.json()["error"]


def _png(name) -> bytes:
    from imgsearch.demo import sample_image

    out = io.BytesIO()
    sample_image(name).save(out, "PNG")
    return out.getvalue()


def _png_bomb(side=40_000) -> bytes:
    """A 1.6-gigapixel 1-bit PNG in about 200 KB: all zeros, compressed."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + side // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD_UPLOADS = {  # what is sent, the status, a word of the reason
    "empty": (lambda images: b"", 400, "empty"),
    "random bytes": (lambda images: os.urandom(4096), 415, "not an image"),
    "truncated JPEG": (lambda images: jpeg_bytes(images["coffee"])[:20_000], 422, "truncated"),
    "PNG bomb": (lambda images: _png_bomb(), 413, "decompression-bomb"),  # too many pixels: 413 since #24
    "30 MB": (lambda images: os.urandom(30_000_000), 413, "over the limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
@pytest.mark.parametrize("endpoint", ["search", "put"])
def test_bad_uploads_get_a_json_reason_and_the_server_goes_on(http, server, sample_images, case, endpoint):
    make, status, reason = BAD_UPLOADS[case]
    data = make(sample_images)
    if endpoint == "search":
        response = http.post("/api/search", content=data)
    else:
        response = http.put("/api/images/bad-upload", content=data)
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    assert http.get("/api/health").json()["status"] == "ok"
    assert http.delete("/api/images/bad-upload").status_code == 404  # nothing was indexed
    assert "Traceback" not in server.log_text()


def test_a_chunked_body_over_the_limit_is_cut_off(http):
    response = http.post("/api/search", content=(b"\x00" * 1_000_000 for _ in range(30)))  # no Content-Length
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"]


@pytest.mark.parametrize(
    "key",
    ["%2Fetc%2Fpasswd", "~root%2F.ssh%2Fid_rsa", "..%2F..%2Fetc%2Fpasswd", "a%20b", "k%0A", "x" * 1025],
)
def test_bad_keys_are_refused(http, sample_images, key):
    response = http.put(f"/api/images/{key}", content=jpeg_bytes(sample_images["moon"]))
    assert response.status_code == 400, response.text
    assert "key" in response.json()["error"]


def test_thumbnails_only_of_indexed_local_files(http, gallery):
    root = gallery[0]
    coffee = str(root / "photos" / "coffee.jpg")
    thumb = http.get(f"/api/images/{row_id(coffee)}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 256

    # A key that names a file relative to the server's folder is still only a key: no thumbnail is read from it.
    relative = "photos/coffee.jpg"
    assert http.put(f"/api/images/{relative}", content=(root / "photos" / "coffee.jpg").read_bytes()).status_code == 200
    try:
        keyed = http.get(f"/api/images/{row_id(relative)}/thumbnail")
        assert keyed.status_code == 404 and "no local file" in keyed.json()["error"]
    finally:
        http.delete(f"/api/images/{relative}")
    for unknown in (row_id("/etc/passwd"), "../../etc/passwd", "zz"):
        response = http.get(f"/api/images/{unknown}/thumbnail")
        assert response.status_code == 404 and response.json()["error"]


def test_bad_parameters_are_400_with_a_reason(http, gallery):
    data = (gallery[0] / "coffee-edited.jpg").read_bytes()
    for params, reason in (
        ({"top_k": "many"}, "top_k"),
        ({"top_k": 0}, "top-k"),
        ({"top_k": 10, "page": 2000}, "16384"),
        ({"threshold": 2}, "threshold"),
        ({"owner": "bob; drop"}, "owner"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
    ):
        response = http.post("/api/search", params=params, content=data)
        assert response.status_code == 400, (params, response.text)
        assert reason in response.json()["error"], (params, response.text)
    missing = http.get("/api/nothing")
    assert missing.status_code == 404 and missing.json()["error"]


def test_concurrent_searches_are_answered_each_its_own_and_batched(http, sample_images):
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")
    queries = [(name, _edited(sample_images, name), top_k) for name in names for top_k in (2, 3)]
    before = http.get("/api/stats").json()["batching"]

    def ask(query):
        name, data, top_k = query
        return name, top_k, http.post("/api/search", params={"top_k": top_k, "threshold": -1}, content=data)

    with ThreadPoolExecutor(len(queries)) as pool:
        answers = list(pool.map(ask, queries))
    for name, top_k, response in answers:
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == top_k and results[0]["path"].endswith(f"/{name}.jpg")
    after = http.get("/api/stats").json()["batching"]
    searches = after["searches"] - before["searches"]
    calls = after["search_calls"] - before["search_calls"]
    assert searches == len(queries)
    assert calls < searches  # several queries shared one model call
    assert after["largest_batch"] >= 2


def test_health_stats_openapi_and_page(http):
    health = http.get("/api/health").json()
    assert health["status"] == "ok" and health["model"] == "vgg16-imagenet" and health["rows"] >= len(PHOTOS)
    from imgsearch.cpu import assess, read_cpu_flags  # auto's choice for this CPU, resolved at start-up

    assert health["precision"] in ("fp32", "bf16", "int8")
    if not assess(read_cpu_flags()[0]).flags["avx512_bf16"]:
        assert health["precision"] == "fp32"  # never emulated bf16 by accident
    stats = http.get("/api/stats").json()
    assert stats["config"]["dim"] == 512 and stats["owners"][""] == len(PHOTOS)
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/images/{key}", "/api/images/{image_id}/thumbnail", "/api/health"} <= set(paths)
    page = http.get("/")
    assert page.status_code == 200 and "<title>imgsearch</title>" in page.text
    from imgsearch.search import DEFAULT_THRESHOLD  # the page's default minimum similarity is the API's

    assert f'id="threshold" type="number" min="-1" max="1" step="0.05" value="{DEFAULT_THRESHOLD:g}"' in page.text


def test_indexing_the_served_lite_database_meanwhile_is_refused_clearly(server, gallery, vgg_weights):
    root, uri, _ = gallery
    result = CliRunner().invoke(cli, ["index", str(root / "photos"), "--uri", uri],
                                env={"IMGSEARCH_WEIGHTS": str(vgg_weights)})
    assert result.exit_code == 2
    assert "in use by another process" in result.output


def test_token_guards_every_api_call(tmp_path, vgg_weights):
    token = "s3cret-token"
    with served(str(tmp_path / "empty.db"), vgg_weights, tmp_path / "serve.log",
                env={"IMGSEARCH_SERVE_TOKEN": token}) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
                for method, path in (("GET", "/api/health"), ("POST", "/api/search"), ("DELETE", "/api/images/k"),
                                     ("GET", "/metrics")):
                    response = http.request(method, path, headers=headers, content=b"x" * 10)
                    assert response.status_code == 401, (headers, path)
                    assert "token" in response.json()["error"]
            good = {"Authorization": f"Bearer {token}"}
            assert http.get("/api/health", headers=good).json()["rows"] == 0
            assert "imgsearch_http_requests_total" in http.get("/metrics", headers=good).text
            # Refused before the body is read: a large upload without the token is 401, not 413.
            assert http.post("/api/search", content=b"\x00" * 30_000_000).status_code == 401
            assert http.get("/").status_code == 200  # the page itself asks for the token
        assert "Traceback" not in server.log_text()


@pytest.mark.parametrize(("host", "token", "warned"), [("0.0.0.0", "", True), ("0.0.0.0", "t", False),
                                                       ("127.0.0.1", "", False)])
def test_another_host_without_a_token_is_warned_about(tmp_path, host, token, warned):
    # A path that is no Milvus Lite database stops the command right after the warning, before any model loads.
    bad_uri = str(tmp_path / "not-a-database.txt")
    result = CliRunner().invoke(cli, ["serve", "--host", host, "--uri", bad_uri],
                                env={"IMGSEARCH_SERVE_TOKEN": token})
    assert result.exit_code == 2 and "ends in .db" in result.output
    assert ("without IMGSEARCH_SERVE_TOKEN" in result.output) == warned


@pytest.mark.server
def test_index_while_serving_through_a_milvus_server(milvus_server_uri, tmp_path, photo_dir, vgg_weights, sample_images):
    """The README's way to index while serving: both processes on one Milvus server."""
    from pymilvus import MilvusClient

    collection = "t_serve_index_meanwhile"
    (tmp_path / "photos").mkdir()
    for name in ("coins", "chelsea"):
        shutil.copy2(photo_dir / f"{name}.jpg", tmp_path / "photos" / f"{name}.jpg")
    try:
        with served(milvus_server_uri, vgg_weights, tmp_path / "serve.log", "--collection", collection) as server:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                assert http.get("/api/health").json()["rows"] == 0
                result = CliRunner().invoke(
                    cli, ["index", str(tmp_path / "photos"), "--uri", milvus_server_uri, "--collection", collection],
                    env={"IMGSEARCH_WEIGHTS": str(vgg_weights)},
                )
                assert result.exit_code == 0, result.output
                assert http.get("/api/health").json()["rows"] == 2
                hits = http.post("/api/search", content=_edited(sample_images, "coins")).json()["results"]
                assert [hit["path"] for hit in hits] == [str(tmp_path / "photos" / "coins.jpg")]
    finally:
        client = MilvusClient(uri=milvus_server_uri)
        client.drop_collection(collection)
        client.close()
