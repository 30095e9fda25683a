"""The Milvus wrapper: connection errors, schema checks, limits, on Milvus Lite and a real server."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from imgsearch.cli import cli
from imgsearch.errors import StoreError
from imgsearch.store import CONFIG_KEY, SCHEMA_KEY, SCHEMA_VERSION, Store, check_owner, check_page

CONFIG = {"model": "test", "dim": 8, "metric": "COSINE"}


def _rows(n, owner="", start=0):
    rng = np.random.default_rng(start)
    rows = []
    for i in range(start, start + n):
        v = rng.random(8).astype(np.float32)
        rows.append(
            {"id": f"{i:032x}", "vector": v / np.linalg.norm(v), "path": f"/photos/{i}.jpg", "size": i, "mtime": 1.5,
             "content_hash": "", "width": 1, "height": 1, "owner": owner, "indexed_at": 0}
        )
    return rows


def test_rows_replace_by_key_and_owner_filters_see_them(milvus):
    with Store(milvus.uri) as store:
        coll = store.collection(milvus.collection, CONFIG)
        coll.upsert(_rows(10, owner="alice"))
        coll.upsert(_rows(5, owner="bob", start=10))
        coll.upsert(_rows(3, owner="bob"))  # three of alice's rows change owner
        assert coll.count() == 15
        assert coll.owners() == {"alice": 7, "bob": 8}
        query = _rows(1)[0]["vector"][None]
        (hits,) = coll.search(query, top_k=20, owner="bob")
        assert len(hits) == 8 and {h.entity["owner"] for h in hits} == {"bob"}
        assert hits[0].id == f"{0:032x}"  # itself: cosine 1, distance 0
        assert abs(hits[0].similarity - 1) < 1e-5 and abs(hits[0].distance) < 1e-5


def test_settings_and_schema_versions_are_checked(milvus):
    with Store(milvus.uri) as store:
        store.collection(milvus.collection, CONFIG)
        assert store.stored_config(milvus.collection) == CONFIG
        with pytest.raises(StoreError, match="model=test"):
            store.collection(milvus.collection, {**CONFIG, "model": "other"})
        with pytest.raises(StoreError, match="no collection"):
            store.collection(milvus.collection + "_missing", CONFIG, create=False)
        for version, advice in ((SCHEMA_VERSION + 1, "upgrade imgsearch"), (0, "new --collection")):
            store.client.alter_collection_properties(milvus.collection, properties={SCHEMA_KEY: str(version)})
            with pytest.raises(StoreError, match=advice):
                store.stored_config(milvus.collection)


def test_a_collection_not_made_by_imgsearch_is_left_alone(milvus):
    from pymilvus import DataType

    with Store(milvus.uri) as store:
        schema = store.client.create_schema(auto_id=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
        store.client.create_collection(milvus.collection, schema=schema)
        with pytest.raises(StoreError, match="not made by imgsearch"):
            store.collection(milvus.collection, CONFIG)
        assert CONFIG_KEY not in store.client.describe_collection(milvus.collection)["properties"]


def test_limits_and_owner_names():
    assert check_page(10, 3) == 20
    assert check_page(16384, 1) == 0
    for top_k, page in ((16385, 1), (8192, 3), (0, 1), (5, 0)):
        with pytest.raises(StoreError):
            check_page(top_k, page)
    assert check_owner("Zoë Müller-Smith@studio.example") == "Zoë Müller-Smith@studio.example"
    for bad in ('x" || owner != "', "a\\b", "x" * 300):
        with pytest.raises(StoreError):
            check_owner(bad)


def test_lite_paths_that_cannot_be_a_database(tmp_path):
    path = tmp_path / "photos.db"
    path.write_text("not a database")
    with pytest.raises(StoreError, match="is a file"):
        Store(str(path))
    with pytest.raises(StoreError, match="ends in .db"):
        Store(str(tmp_path / "photos"))


def test_unreachable_server_fails_fast_in_one_line():
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["stats", "--uri", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "cannot reach Milvus at http://127.0.0.1:9" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert time.monotonic() - started < 10


def test_server_that_never_answers_fails_within_the_timeout():
    # A port that accepts connections and then says nothing: the case that would hang without a timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="cannot reach Milvus"):
            Store(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=2)
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.server
def test_invalid_token_is_a_clear_error(tmp_path):
    from milvus_server import MilvusServerUnavailable, skip_or_fail, start_server, stop_server

    try:
        handle = start_server(tmp_path / "auth-server", authorization=True)
    except MilvusServerUnavailable as e:
        skip_or_fail(e.reason)
    try:
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["stats", "--uri", handle.uri], env={"IMGSEARCH_TOKEN": "root:wrong"})
        assert result.exit_code == 2, result.output
        assert "refused the credentials" in result.stderr and handle.uri in result.stderr
        assert time.monotonic() - started < 10
        with Store(handle.uri, token=handle.token) as store:  # the right token works
            assert store.collection_names() == []
    finally:
        stop_server(handle)
