"""bulk_import's shard loop, tested directly: fake shards, a fake collection and a fake server (no Milvus, no Parquet).

Which shards go to the server together, when the loop waits, what falls back to upserts, and the progress it
reports. The real imports (a Milvus 2.3.5 server and Milvus Lite) are tests/test_bulk.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch import bulk_import
from imgsearch.bulk_import import ImportSummary, _ShardLoader

FOLDER = Path("/shards")


class FakeCollection:
    def __init__(self, stored=()):
        self.stored = set(stored)
        self.lookups = 0

    def get(self, ids, fields):
        self.lookups += 1
        return [i for i in ids if i in self.stored]


class FakeServer:
    """Accepts every file (or refuses them all) and reports each task's end; records what it was given."""

    def __init__(self, refuse=False, fail=()):
        self.refuse, self.fail = refuse, set(fail)
        self.files: list[str] = []
        self.waited: list[int] = []

    def submit(self, server_file):
        if self.refuse:
            raise RuntimeError("bulk insert is not supported\nsecond line")
        self.files.append(server_file)
        return len(self.files)  # task ids 1, 2, ...

    def wait(self, task):
        self.waited.append(task)
        return "file not found" if task in self.fail else None


@pytest.fixture
def shards(monkeypatch):
    """Shards part-0 .. part-N of 4 rows each (ids p<shard>-<row>); upserts and merges recorded, not done."""
    calls = {"upserted": [], "merged": []}

    def ids(path):
        n = int(path.stem.split("-")[1])
        return [f"p{n}-{i}" for i in range(4)]

    def upsert(coll, path, present):
        calls["upserted"].append((path.stem, set(present)))
        return len([i for i in ids(path) if i not in present])

    def merged(group, staging):
        calls["merged"].append([shard.path.stem for shard in group])
        return staging / f"{group[0].path.stem}--{group[-1].path.stem}.parquet"

    monkeypatch.setattr(bulk_import, "_ids", ids)
    monkeypatch.setattr(bulk_import, "_upsert_file", upsert)
    monkeypatch.setattr(bulk_import, "_merged", merged)
    monkeypatch.setattr(bulk_import, "IMPORT_FILE_ROWS", 10)  # three shards of 4 rows make a file
    return calls


def _load(n_shards, coll, server=None, ids_checked=True, reason=""):
    summary, progress = ImportSummary(shards=n_shards, reason=reason, ids_checked=ids_checked), []
    loader = _ShardLoader(coll, server, FOLDER, "/srv/shards", summary, lambda done, total: progress.append(done))
    loader.load([{"file": f"part-{i}.parquet", "rows": 4} for i in range(n_shards)])
    return summary, progress


def test_shards_go_to_the_server_in_files_of_at_least_import_file_rows(shards):
    server = FakeServer()
    summary, progress = _load(5, FakeCollection(), server)
    assert shards["merged"] == [["part-0", "part-1", "part-2"], ["part-3", "part-4"]]
    assert server.files == ["/srv/shards/.import/part-0--part-2.parquet", "/srv/shards/.import/part-3--part-4.parquet"]
    assert (summary.rows_bulk_inserted, summary.rows_upserted, summary.reason) == (20, 0, "")
    # Rows count as done once their task ended: waiting and in-flight rows are not yet in.
    assert progress == [0, 0, 0, 0, 0, 12, 20]


def test_a_single_shard_with_nothing_stored_is_imported_as_it_is(shards):
    server = FakeServer()
    _load(1, FakeCollection(), server)
    assert server.files == ["/srv/shards/part-0.parquet"] and shards["merged"] == []


def test_stored_rows_are_left_out_and_a_shard_stored_whole_is_skipped(shards):
    server = FakeServer()
    coll = FakeCollection({"p0-0", "p0-1", "p0-2", "p0-3", "p1-2"})
    summary, _ = _load(2, coll, server)
    assert (summary.shards_skipped, summary.rows_present, summary.rows_bulk_inserted) == (1, 5, 3)
    assert shards["merged"] == [["part-1"]]  # one shard, but without its stored row: a copy goes in


def test_an_empty_collection_that_never_saw_the_shards_is_not_looked_up(shards):
    coll = FakeCollection({"p0-0"})
    summary, _ = _load(2, coll, FakeServer(), ids_checked=False)
    assert coll.lookups == 0 and summary.rows_present == 0 and summary.rows_bulk_inserted == 8


def test_at_most_in_flight_tasks_run_and_the_oldest_is_waited_for_first(shards, monkeypatch):
    monkeypatch.setattr(bulk_import, "IMPORT_FILE_ROWS", 1)  # a file per shard
    monkeypatch.setattr(bulk_import, "IN_FLIGHT", 2)
    server = FakeServer()
    summary, progress = _load(4, FakeCollection(), server)
    assert server.waited == [1, 2, 3, 4] and summary.rows_bulk_inserted == 16
    assert progress == [0, 4, 8, 12, 16]


def test_a_failed_task_goes_in_by_upserts_and_so_does_everything_after_it(shards, monkeypatch):
    monkeypatch.setattr(bulk_import, "IMPORT_FILE_ROWS", 1)
    monkeypatch.setattr(bulk_import, "IN_FLIGHT", 1)
    server = FakeServer(fail={1})
    summary, _ = _load(3, FakeCollection(), server)
    assert summary.reason == "the server's bulk import failed: file not found"
    assert server.files == ["/srv/shards/part-0.parquet"]  # nothing more is sent once one failed
    assert shards["upserted"] == [("part-0", set()), ("part-1", set()), ("part-2", set())]
    assert (summary.rows_bulk_inserted, summary.rows_upserted, summary.method) == (0, 12, "upsert")


def test_a_server_that_refuses_bulk_import_gets_upserts_without_the_stored_rows(shards):
    summary, _ = _load(4, FakeCollection({"p1-0"}), FakeServer(refuse=True))
    assert summary.reason == "the server refused the bulk import: bulk insert is not supported"
    assert shards["upserted"] == [("part-0", set()), ("part-1", {"p1-0"}), ("part-2", set()), ("part-3", set())]
    assert summary.rows_upserted == 15 and summary.rows_present == 1


def test_without_a_server_every_shard_is_upserted(shards):
    summary, progress = _load(2, FakeCollection({"p0-3"}), None, reason="Milvus Lite has no bulk import")
    assert shards["upserted"] == [("part-0", {"p0-3"}), ("part-1", set())] and shards["merged"] == []
    assert (summary.rows_upserted, summary.rows_present, summary.method) == (7, 1, "upsert")
    assert progress == [4, 8]
