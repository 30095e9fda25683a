"""Loading the shards of ``imgsearch bulk extract`` into Milvus: the server's bulk import, else batched upserts.

A Milvus server reads each Parquet shard itself (``utility.do_bulk_insert``: one file per task on 2.3), a few
tasks at a time; we follow the tasks and then check the row count. Milvus Lite has no bulk import, and a server
may refuse the files (one that cannot see them, say): then the rows go in through ``Collection.upsert`` in
large batches, and the summary says so. Milvus does not enforce primary keys, so before a shard goes in we ask
which of its ids are stored already; those rows are left out, and importing the same shards twice adds nothing.
Into an empty collection that no earlier import of these shards reached, nothing can be stored twice, and the
lookups are skipped.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .bulk import read_manifest, read_vectors
from .errors import BulkError
from .indexing import Progress
from .store import Collection, Store

IN_FLIGHT = 8  # import tasks submitted at once; the server runs them one after another per data node anyway
# Shards go to the server in files of at least this many rows: each file is a task and a segment to load, and
# on a 2.3.5 standalone 100k rows were counted 29.5 s after the import began as 2 files, 39.4 s as 10; 1M rows
# as 10 files, 87 s (RESULTS.md). 100k rows are about 220 MB: under Milvus's 512 MB segments and the importer's
# 16 GB a file.
IMPORT_FILE_ROWS = 100_000
UPSERT_BATCH = 5000  # rows per upsert: about 11 MB of gRPC message, under Milvus's 64 MB limit
VISIBLE_TIMEOUT = 600.0  # seconds for imported rows to be counted (segments loaded; their index comes later)
STAGING = ".import"  # inside the shard folder: shards merged for import, without the rows already stored


@dataclass
class ImportSummary:
    reason: str = ""  # why rows went in by upserts rather than the server's bulk import
    shards: int = 0
    shards_skipped: int = 0  # every row already in the collection
    rows_bulk_inserted: int = 0
    rows_upserted: int = 0
    rows_present: int = 0  # already in the collection: left as they are
    rows_before: int = 0
    rows_after: int = 0
    ids_checked: bool = True  # False: an empty collection that never saw these shards, nothing to look up

    @property
    def method(self) -> str:
        if self.rows_upserted and self.rows_bulk_inserted:
            return "bulk insert + upsert"
        return "upsert" if self.rows_upserted or self.reason else "bulk insert"

    @property
    def rows_new(self) -> int:
        return self.rows_bulk_inserted + self.rows_upserted

    def as_dict(self) -> dict:
        return {"method": self.method, "rows_new": self.rows_new, **self.__dict__}


def import_shards(
    store: Store,
    collection: str,
    directory,
    server_dir: str | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> ImportSummary:
    """Import the shards in ``directory`` into ``collection`` (created if needed, with the manifest's config).

    ``server_dir``: where the server sees ``directory`` (its storage's path or bucket prefix); by default the
    same absolute path, which is right for a standalone server with local storage on this machine.
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise BulkError("bulk import reads the Parquet shards with pyarrow: pip install 'imgsearch[bulk]'") from None
    folder = Path(directory).absolute()
    manifest = read_manifest(folder)
    coll = store.collection(collection, manifest["config"])
    shards = [s for s in manifest["shards"] if s["rows"]]
    summary = ImportSummary(shards=len(shards))
    if not store.is_server:
        summary.reason = "Milvus Lite has no bulk import"
    server_folder = (server_dir or str(folder)).rstrip("/")
    bulk = _BulkInsert(store, collection, log) if store.is_server else None
    try:
        imported_before = bulk.finish_earlier_tasks(coll, folder, server_folder) if bulk else False
        summary.rows_before = coll.count()
        # The id check costs a lookup per 1,000 rows. An empty collection that never saw these shards needs none:
        # one extract run's shards hold each path, so each id, once (bulk.gather_inputs, _check_out_dir).
        summary.ids_checked = summary.rows_before > 0 or imported_before
        _ShardLoader(coll, bulk, folder, server_folder, summary, progress).load(shards)
    finally:
        if bulk:
            bulk.close()
    summary.rows_after = _wait_count(coll, summary.rows_before + summary.rows_new)
    _remove_staging(folder / STAGING)
    return summary


@dataclass
class _WaitingShard:
    """A shard that goes to the server together with the next ones, in one file."""

    path: Path
    present: set[str]  # its ids stored already: left out of the file
    new: int  # its rows that are not


@dataclass
class _Task:
    """An import task the server runs: the file it imports and that file's rows."""

    source: Path
    rows: int


class _ShardLoader:
    """Puts each shard's new rows in: gathered into files for the server's bulk import, else by upserts.

    It holds what one import has in hand: the shards waiting to go to the server together, the tasks in flight,
    and the rows read so far (the progress bar counts those read, less those still waiting or in flight).
    """

    def __init__(
        self,
        coll: Collection,
        bulk: _BulkInsert | None,
        folder: Path,
        server_folder: str,
        summary: ImportSummary,
        progress: Progress | None,
    ):
        self.coll, self.bulk, self.folder, self.server_folder = coll, bulk, folder, server_folder
        self.summary, self.progress = summary, progress
        self.waiting: list[_WaitingShard] = []
        self.in_flight: dict[int, _Task] = {}  # by task id, oldest first
        self.rows_read = 0
        self.rows_total = 0

    def load(self, shards: list[dict]) -> None:
        self.rows_total = sum(s["rows"] for s in shards)
        for shard in shards:
            self._load_one(self.folder / shard["file"])
            self._report(self.rows_read - self._rows_in_flight() - sum(w.new for w in self.waiting))
        self._send_waiting()
        while self.in_flight:
            self._wait_one()
            self._report(self.rows_read - self._rows_in_flight())

    def _load_one(self, path: Path) -> None:
        summary = self.summary
        ids = _ids(path)
        present = set(self.coll.get(ids, fields=("id",))) if summary.ids_checked else set()
        summary.rows_present += len(present)
        if len(present) == len(ids):
            summary.shards_skipped += 1
        elif self.bulk and not summary.reason:
            self.waiting.append(_WaitingShard(path, present, len(ids) - len(present)))
            if sum(w.new for w in self.waiting) >= IMPORT_FILE_ROWS:
                self._send_waiting()
        else:
            summary.rows_upserted += _upsert_file(self.coll, path, present)
        self.rows_read += len(ids)

    def _send_waiting(self) -> None:
        """Give the waiting shards to the server as one file (a task per file, and each imported file is a
        segment to index and load: a few large files import faster than many small ones)."""
        if not self.waiting:
            return
        rows = sum(w.new for w in self.waiting)
        if len(self.waiting) == 1 and not self.waiting[0].present:
            source = self.waiting[0].path
        else:
            source = _merged(self.waiting, self.folder / STAGING)
        try:
            task = self.bulk.submit(f"{self.server_folder}/{source.relative_to(self.folder)}")
            self.in_flight[task] = _Task(source, rows)
        except Exception as e:  # the server refuses bulk import itself
            self.summary.reason = f"the server refused the bulk import: {_one_line(e)}"
            self.summary.rows_upserted += sum(_upsert_file(self.coll, w.path, w.present) for w in self.waiting)
        self.waiting.clear()
        while len(self.in_flight) >= IN_FLIGHT or (self.in_flight and self.summary.reason):
            self._wait_one()

    def _wait_one(self) -> None:
        """Wait for the oldest import task; the rows of a failed one go in by upserts instead."""
        task_id = next(iter(self.in_flight))
        task = self.in_flight.pop(task_id)
        error = self.bulk.wait(task_id)
        if error is None:
            self.summary.rows_bulk_inserted += task.rows
            return
        self.summary.reason = self.summary.reason or f"the server's bulk import failed: {error}"
        self.summary.rows_upserted += _upsert_file(self.coll, task.source, set())

    def _rows_in_flight(self) -> int:
        return sum(task.rows for task in self.in_flight.values())

    def _report(self, rows_done: int) -> None:
        if self.progress:
            self.progress(rows_done, self.rows_total)


def _ids(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["id"]).column("id").to_pylist()


def _merged(group: list[_WaitingShard], staging: Path) -> Path:
    """One file of the group's shards, without the rows already stored (Milvus would store them a second time)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = []
    for shard in group:
        table = pq.read_table(shard.path)
        if shard.present:
            table = table.filter(pc.invert(pc.is_in(table.column("id"), value_set=pa.array(sorted(shard.present)))))
        tables.append(table.replace_schema_metadata(None))
    staging.mkdir(exist_ok=True)
    first, last = group[0].path.stem, group[-1].path.stem
    copy = staging / (f"{first}.parquet" if len(group) == 1 else f"{first}--{last}.parquet")
    pq.write_table(pa.concat_tables(tables), copy)
    return copy


def _upsert_file(coll: Collection, path: Path, present: set[str]) -> int:
    """The shard's rows that are not stored yet, through the collection's own upsert, in large batches."""
    import pyarrow.parquet as pq

    written = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=UPSERT_BATCH):
        vectors = read_vectors(batch, coll.config["dim"])
        rows = [
            {**row, "vector": vector}
            for row, vector in zip(batch.drop_columns(["vector"]).to_pylist(), vectors)
            if row["id"] not in present
        ]
        coll.upsert(rows)
        written += len(rows)
    return written


def _wait_count(coll: Collection, expected: int) -> int:
    """The row count once imported rows are visible: the server loads them after the task ends, searchable at
    once, and builds their HNSW index in the background afterwards."""
    deadline = time.monotonic() + VISIBLE_TIMEOUT
    while True:
        count = coll.count()
        if count == expected:
            return count
        if count > expected:
            raise BulkError(f"the collection holds {count:,} rows, more than the {expected:,} expected: "
                            "something else wrote to it during the import")
        if time.monotonic() > deadline:
            raise BulkError(f"the collection shows {count:,} rows, not the {expected:,} expected, "
                            f"{VISIBLE_TIMEOUT:.0f} s after the import ended")
        time.sleep(0.5)


def _remove_staging(staging: Path):
    if staging.is_dir():
        for copy in staging.glob("*.parquet"):
            copy.unlink()
        staging.rmdir()


def _one_line(e: BaseException) -> str:
    return ((getattr(e, "message", None) or str(e)).strip().splitlines() or [type(e).__name__])[0]


class _BulkInsert:
    """Milvus 2.3's bulk import (``utility.do_bulk_insert``, through pymilvus's ORM connection)."""

    def __init__(self, store: Store, collection: str, log):
        with warnings.catch_warnings():  # the ORM API is deprecated in pymilvus 3; 2.3 servers have no other
            warnings.simplefilter("ignore")
            from pymilvus import BulkInsertState, connections, utility

        self.utility, self.connections, self.states = utility, connections, BulkInsertState
        self.alias = f"imgsearch-bulk-{id(self)}"
        self.collection = collection
        self.log = log
        self._call(connections.connect, self.alias, uri=store.uri, token=store.token, timeout=store.timeout)

    def _call(self, fn, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    def submit(self, server_file: str) -> int:
        return self._call(self.utility.do_bulk_insert, self.collection, [server_file], using=self.alias)

    def wait(self, task: int) -> str | None:
        """None when the task completed, else the server's reason."""
        done = (self.states.ImportCompleted, self.states.ImportFailed, self.states.ImportFailedAndCleaned)
        while True:
            state = self._call(self.utility.get_bulk_insert_state, task, using=self.alias)
            if state.state in done:
                break
            time.sleep(0.5)
        if state.state == self.states.ImportCompleted:
            return None
        return state.infos.get("failed_reason") or state.state_name

    def finish_earlier_tasks(self, coll: Collection, folder: Path, server_folder: str) -> bool:
        """Tasks of an interrupted earlier import of these shards may still run: wait until their rows show,
        so that the id check below sees them and nothing is imported twice. True if any earlier task (running
        or ended: its rows may not show yet while the server loads them) imported a file of this folder."""
        tasks = self._call(self.utility.list_bulk_insert_tasks, collection_name=self.collection, using=self.alias)
        running = (self.states.ImportPending, self.states.ImportStarted, self.states.ImportPersisted)
        prefix = server_folder + "/"
        earlier = False
        for state in tasks:
            file = state.infos.get("files", "")
            earlier = earlier or file.startswith(prefix)
            if state.state not in running or not file.startswith(prefix):
                continue
            if self.log:
                self.log(f"waiting for import task {state.task_id} of an earlier run ({file})")
            if self.wait(state.task_id) is None:
                local = folder / file[len(prefix):]
                if local.is_file():
                    _wait_visible(coll, _ids(local))
        return earlier

    def close(self):
        with contextlib.suppress(Exception):  # closing a connection that is gone already
            self._call(self.connections.disconnect, self.alias)


def _wait_visible(coll: Collection, ids: list[str]):
    deadline = time.monotonic() + VISIBLE_TIMEOUT
    while len(coll.get(ids, fields=("id",))) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
