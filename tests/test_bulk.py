"""bulk extract on a real Apache Spark (local mode) and bulk import into a real Milvus 2.3.5 server and Milvus Lite.

One extraction of 45 real photos (scikit-image's, whole and two corners each), a corrupt JPEG and a text file,
in shards of 8, is shared by the module: killed for real after two shards, then resumed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgsearch.bulk import MANIFEST, shard_meta
from imgsearch.cli import cli
from imgsearch.demo import SAMPLE_PHOTOS, write_edited_copy
from imgsearch.features import VGG16Features
from imgsearch.indexing import index_paths
from imgsearch.store import Store, collection_schema

if os.environ.get("CI", "").strip().lower() != "true":  # on CI a missing extra is a failure, not a skip
    pytest.importorskip("pyspark", reason="bulk extract needs the bulk extra: pip install '.[bulk]'")
    pytest.importorskip("pyarrow", reason="bulk extract needs the bulk extra: pip install '.[bulk]'")
import pyarrow.parquet as pq  # noqa: E402

SHARD_SIZE = 8
PHOTOS = 3 * len(SAMPLE_PHOTOS)  # each photo whole, its top-left and its bottom-right third


@pytest.fixture(scope="module")
def bulk_photos(tmp_path_factory, photo_dir) -> Path:
    folder = tmp_path_factory.mktemp("bulk-photos")
    for name in SAMPLE_PHOTOS:
        shutil.copy2(photo_dir / f"{name}.jpg", folder / f"{name}.jpg")
        with Image.open(photo_dir / f"{name}.jpg") as img:
            w, h = img.size
            img.crop((0, 0, w // 3, h // 3)).save(folder / f"{name}-top-left.jpg", quality=95)
            img.crop((2 * w // 3, 2 * h // 3, w, h)).save(folder / f"{name}-bottom-right.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)
    (folder / "notes.txt").write_text("a shopping list\n")
    return folder


def _extract(args, vgg_weights):
    result = CliRunner().invoke(cli, ["bulk", "extract", *args, "--json"], env={"IMGSEARCH_WEIGHTS": str(vgg_weights)})
    manifest = json.loads(result.stdout) if result.stdout.strip() else None
    return result, manifest


@dataclass
class Extraction:
    out: Path
    manifest: dict
    stderr: str
    before_kill: dict[str, tuple[int, int]]  # shard -> (inode, mtime) of the shards finished when it was killed


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, bulk_photos, vgg_weights) -> Extraction:
    """The module's one extraction: killed for real after two shards, then run again to the end."""
    out = tmp_path_factory.mktemp("bulk-out") / "shards"
    args = [str(bulk_photos), "--out", str(out), "--shard-size", str(SHARD_SIZE)]
    env = {**os.environ, "IMGSEARCH_WEIGHTS": str(vgg_weights), "PYTHONPATH": os.pathsep.join(sys.path)}
    job = subprocess.Popen([sys.executable, "-m", "imgsearch", "bulk", "extract", *args], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(list(out.glob("part-*.parquet"))) < 2 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the driver, Spark's JVM and its Python workers
        job.wait()
    before_kill = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}

    result, manifest = _extract(args, vgg_weights)
    assert result.exit_code == 1, result.output  # one image failed: listed, not fatal
    return Extraction(out, manifest, result.stderr, before_kill)


def _shard_rows(out: Path) -> dict[str, dict]:
    rows = {}
    for shard in sorted(out.glob("part-*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            rows[row["id"]] = row
    return rows


def test_extract_makes_a_row_per_photo_and_lists_the_bad_image(extracted, bulk_photos):
    out, manifest = extracted.out, extracted.manifest
    assert manifest == json.loads((out / MANIFEST).read_text()) | {"out": str(out)}
    counts = (manifest["files"], manifest["rows"], manifest["failed"], manifest["not_images"])
    assert counts == (PHOTOS + 2, PHOTOS, 1, 1)
    (failure,) = manifest["failures"]
    assert failure["path"] == str(bulk_photos / "broken.jpg") and "corrupt" in failure["reason"]
    assert manifest["config"] == VGG16Features().config()
    shards = sorted(out.glob("part-*.parquet"))
    assert [s["file"] for s in manifest["shards"]] == [s.name for s in shards] and len(shards) == 6
    assert sum(s["rows"] for s in manifest["shards"]) == PHOTOS
    # The collection's own fields and types, as Milvus's importer reads them.
    schema = pq.read_schema(shards[0])
    assert schema.names == [f.name for f in collection_schema(manifest["config"], server=True).fields]
    assert str(schema.field("vector").type) == "list<element: float>"
    # Each Python worker built the model once and ran several shards with it (in each of the two runs).
    workers = [shard_meta(s)["worker"] for s in shards]
    assert all(w["models_built"] == 1 for w in workers)
    assert len({w["pid"] for w in workers}) < len(shards)


def test_rows_equal_those_of_index(extracted, bulk_photos, vgg, tmp_path):
    bulk_rows = _shard_rows(extracted.out)
    assert len(bulk_rows) == PHOTOS
    with Store(str(tmp_path / "index.db")) as store:
        coll = store.collection("images", vgg.config())
        index_paths(coll, vgg, [bulk_photos / f"{name}.jpg" for name in SAMPLE_PHOTOS])  # the whole photos
        fields = ("path", "size", "mtime", "content_hash", "width", "height", "owner")
        indexed = {row["id"]: row for row in coll.iterate(("vector", *fields))}
    assert len(indexed) == len(SAMPLE_PHOTOS) and set(indexed) <= set(bulk_rows)
    for row_id, row in indexed.items():
        bulk_row = bulk_rows[row_id]
        assert {f: bulk_row[f] for f in fields} == {f: row[f] for f in fields}
        a, b = np.asarray(bulk_row["vector"]), np.asarray(row["vector"])
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.999, row["path"]


def test_killed_extraction_resumed_without_redoing_finished_shards(extracted):
    assert 2 <= len(extracted.before_kill) < 6
    assert f"{len(extracted.before_kill)} already done" in extracted.stderr
    for name, stat in extracted.before_kill.items():
        path = extracted.out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stat  # not written again
    assert not list(extracted.out.glob(".*.tmp"))  # what the kill left half-written is gone


def test_extract_refuses_a_folder_of_another_input(extracted, bulk_photos, vgg_weights, tmp_path):
    out = tmp_path / "shards"
    shutil.copytree(extracted.out, out)
    result, _ = _extract([str(bulk_photos), "--out", str(out), "--shard-size", "5"], vgg_weights)
    assert result.exit_code == 2 and "another input" in result.stderr and "Traceback" not in result.output


def _import(directory, uri, collection, *extra):
    result = CliRunner().invoke(
        cli, ["bulk", "import", str(directory), "--uri", uri, "--collection", collection, "--json", *extra]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def _search_rank1(query, uri, collection, vgg_weights) -> str:
    result = CliRunner().invoke(
        cli, ["search", str(query), "--uri", uri, "--collection", collection, "--json"],
        env={"IMGSEARCH_WEIGHTS": str(vgg_weights)},
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["results"][0]["path"]


@pytest.mark.server
def test_bulk_import_into_a_milvus_server(extracted, bulk_photos, milvus_server_uri, vgg, vgg_weights, tmp_path):
    out = extracted.out
    collection = "bulk_import"
    with Store(milvus_server_uri) as store:
        # Three photos indexed beforehand: their rows must not be imported a second time.
        coll = store.collection(collection, vgg.config())
        index_paths(coll, vgg, [bulk_photos / f"{name}.jpg" for name in ("coffee", "rocket", "moon")])
    try:
        summary, stderr = _import(out, milvus_server_uri, collection)
        assert summary["method"] == "bulk insert" and not summary["reason"], stderr
        assert (summary["rows_before"], summary["rows_present"], summary["rows_bulk_inserted"]) == (3, 3, PHOTOS - 3)
        assert summary["ids_checked"]
        assert summary["rows_after"] == PHOTOS

        query = write_edited_copy(bulk_photos / "coffee.jpg", tmp_path / "coffee-border-jpeg40.jpg")
        assert _search_rank1(query, milvus_server_uri, collection, vgg_weights) == str(bulk_photos / "coffee.jpg")
        query = write_edited_copy(bulk_photos / "astronaut.jpg", tmp_path / "astronaut-border-jpeg40.jpg")
        assert _search_rank1(query, milvus_server_uri, collection, vgg_weights) == str(bulk_photos / "astronaut.jpg")

        again, _ = _import(out, milvus_server_uri, collection)
        assert (again["rows_new"], again["shards_skipped"], again["rows_after"]) == (0, 6, PHOTOS)
    finally:
        with Store(milvus_server_uri) as store:
            store.drop(collection)


@pytest.mark.server
def test_a_refused_bulk_import_falls_back_to_upserts(extracted, milvus_server_uri):
    out = extracted.out
    collection = "bulk_refused"
    try:
        # The server looks for the files where they are not: its import task fails, the rows go in by upserts.
        summary, stderr = _import(out, milvus_server_uri, collection, "--server-dir", "/nonexistent/shards")
        assert summary["method"] == "upsert" and "failed" in summary["reason"]
        assert "loaded with batched upserts" in stderr
        assert (summary["rows_upserted"], summary["rows_after"]) == (PHOTOS, PHOTOS)
    finally:
        with Store(milvus_server_uri) as store:
            store.drop(collection)


def test_milvus_lite_gets_batched_upserts_and_no_duplicates(extracted, lite_uri, bulk_photos, vgg_weights, tmp_path):
    out = extracted.out
    summary, stderr = _import(out, lite_uri, "images")
    assert "loaded with batched upserts: Milvus Lite has no bulk import" in stderr
    assert (summary["method"], summary["rows_upserted"], summary["rows_after"]) == ("upsert", PHOTOS, PHOTOS)
    assert not summary["ids_checked"]  # an empty collection: one extraction's shards hold each id once
    again, _ = _import(out, lite_uri, "images")
    assert (again["rows_new"], again["rows_present"], again["rows_after"]) == (0, PHOTOS, PHOTOS)
    assert again["ids_checked"]
    query = write_edited_copy(bulk_photos / "chelsea.jpg", tmp_path / "chelsea-border-jpeg40.jpg")
    assert _search_rank1(query, lite_uri, "images", vgg_weights) == str(bulk_photos / "chelsea.jpg")


def test_import_of_an_unfinished_extraction_is_refused(tmp_path, lite_uri):
    (tmp_path / "shards").mkdir()
    result = CliRunner().invoke(cli, ["bulk", "import", str(tmp_path / "shards"), "--uri", lite_uri])
    assert result.exit_code == 2 and "not finished" in result.stderr and "Traceback" not in result.output
