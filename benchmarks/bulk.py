"""Bulk path speed: `imgsearch bulk extract` (Spark, local mode) against `imgsearch index`, and `bulk import` against
index's insert path.

    python benchmarks/bulk.py [PHOTOS] [--count 234] [--repeats 3] [--shard-size 20] [--rows 100000] [--index-rows 20000]
        [--import-shard-rows 10000]
    python benchmarks/bulk.py --no-import     # extraction only;  --no-extract: import only

Extraction, interleaved (each repeat runs both commands in turn, so drift of a shared machine hits both alike),
on the first COUNT photos of the folder (linked into a work folder), each into a new database / shard folder:

- index: ``imgsearch index FOLDER --uri NEW.db --json`` (subprocess, end to end);
- bulk extract: ``imgsearch bulk extract FOLDER --out NEW --shard-size S --json`` (subprocess, end to end: Spark
  local[*], one Python worker per core, each with its model);
- the same two on 8 photos, once: the difference gives the per-photo rate without start-up, which is what a
  billion-image job runs at.

Import, on a real Milvus 2.3.5 standalone (tests/milvus_server.py, 127.0.0.1) and on Milvus Lite: ROWS synthetic
rows (random unit vectors, realistic metadata) written as shards of IMPORT_SHARD_ROWS (10,000), then

- bulk import: ``import_shards`` (server: do_bulk_insert, until the count shows every row; Lite: 5,000-row upserts);
- index's insert path: ``Collection.upsert`` of 16-row batches (what ``index_paths`` does per batch), INDEX_ROWS rows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


TICKS = os.sysconf("SC_CLK_TCK")


def _session_cpu(session: int) -> dict[int, float]:
    """CPU seconds so far of every process in a session (the command, Spark's JVM, its Python workers)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # fields after the name: state ppid pgrp session ... utime(11) stime(12)
            found[int(name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return found


def run_cli(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one imgsearch command, all its processes (exit 1 = some inputs failed: fine)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "imgsearch", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        cpu.update(_session_cpu(proc.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        sys.exit(f"imgsearch {' '.join(args)} failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    return seconds, sum(cpu.values())


def extraction(photos: list[str], repeats: int, shard_size: int) -> list[list]:
    folder = common.linked_folder(photos, "bulk-photos")
    small = common.linked_folder(photos[:8], "bulk-photos-8")
    scratch = Path(tempfile.mkdtemp(prefix="bulk-bench-", dir=common.WORK_DIR))

    def index(src: Path) -> float:
        db = scratch / f"index-{time.monotonic_ns()}.db"
        try:
            return run_cli(["index", str(src), "--uri", str(db), "--json"])
        finally:
            shutil.rmtree(db, ignore_errors=True)

    def bulk(src: Path) -> float:
        out = scratch / f"shards-{time.monotonic_ns()}"
        try:
            return run_cli(["bulk", "extract", str(src), "--out", str(out), "--shard-size", str(shard_size), "--json"])
        finally:
            shutil.rmtree(out, ignore_errors=True)

    times: dict[str, list[float]] = {"index": [], "bulk": []}
    cpu: dict[str, list[float]] = {"index": [], "bulk": []}
    try:
        for repeat in range(repeats):
            for name, fn in (("index", index), ("bulk", bulk)):
                wall, cpu_seconds = fn(folder)
                times[name].append(wall)
                cpu[name].append(cpu_seconds)
                common.log(f"repeat {repeat + 1}: {name} {len(photos)} photos: {wall:.1f} s, {cpu_seconds:.1f} CPU s")
        small = {"index": index(small), "bulk": bulk(small)}
        common.log(f"8 photos: {small}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    n = len(photos)
    rates = {k: [n / t for t in v] for k, v in times.items()}
    small_times = {k: v[0] for k, v in small.items()}
    steady = {k: (n - 8) / (common.median(times[k]) - small_times[k]) for k in times}
    # Photos per CPU-second without start-up: the per-core rate a long job runs at, whatever else shares the cores.
    per_core = {k: (n - 8) / (common.median(cpu[k]) - small[k][1]) for k in cpu}
    rows = []
    labels = {"index": "`imgsearch index` (Milvus Lite)", "bulk": "`imgsearch bulk extract` (Spark local[*])"}
    for name, label in labels.items():
        ratio = common.median(rates[name]) / common.median(rates["index"])
        rows.append([
            label, common.spread(rates[name]), f"{ratio:.0%}", f"{common.median(times[name]):.1f}",
            f"{small_times[name]:.1f}", f"{steady[name]:.2f}", f"{steady[name] / steady['index']:.0%}",
            f"{common.median(cpu[name]):.0f} / {small[name][1]:.0f}", f"{per_core[name]:.2f}",
            f"{per_core[name] / per_core['index']:.0%}",
        ])
    return rows


def synthetic_rows(count: int, seed: int = 0, owner: str = "") -> list[dict]:
    """Rows as one `bulk extract` run writes them: one owner (so one partition, one segment per file)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, 512), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    from imgsearch.store import row_id

    return [
        {
            "id": row_id(f"/gallery/{seed}/{i:09d}.jpg"), "vector": vectors[i], "path": f"/gallery/{seed}/{i:09d}.jpg",
            "size": 250_000 + i, "mtime": 1.7e9 + i, "content_hash": f"{i:032x}", "width": 1024, "height": 768,
            "owner": owner, "indexed_at": 1_800_000_000,
        }
        for i in range(count)
    ]


def write_synthetic_shards(folder: Path, rows: list[dict], config: dict, per_shard: int = 10_000):
    from imgsearch.bulk import Shard, write_manifest, write_shard

    folder.mkdir(parents=True)
    shards = []
    for number, start in enumerate(range(0, len(rows), per_shard)):
        chunk = rows[start : start + per_shard]
        shard = Shard(f"part-{number:06d}-synthetic.parquet", [])
        meta = {"inputs": len(chunk), "rows": len(chunk), "not_images": 0, "failures": [], "config": config,
                "owner": "", "worker": {}}
        write_shard(folder / shard.name, chunk, config, meta)
        shards.append(shard)
    write_manifest(folder, shards, config, "", [], None)


def timed_import(uri: str, folder: Path, collection: str,
                 wait_indexed: bool) -> tuple[float, float, float | None, str, int]:
    """Seconds until the last import task ended, until every row is counted, and (server) until every row is
    indexed; the method and the row count."""
    from imgsearch.bulk_import import import_shards
    from imgsearch.store import Store

    loaded = []

    def progress(done: int, total: int):
        if done == total and not loaded:
            loaded.append(time.perf_counter())

    with Store(uri) as store:
        t = time.perf_counter()
        summary = import_shards(store, collection, folder, progress=progress)
        seconds = time.perf_counter() - t
        indexed = None
        if store.is_server and wait_indexed:
            common.wait_indexed(store, collection, summary.rows_after)
            indexed = time.perf_counter() - t
        store.drop(collection)
    return (loaded[0] if loaded else t + seconds) - t, seconds, indexed, summary.method, summary.rows_after


def timed_index_inserts(uri: str, rows: list[dict], config: dict, collection: str,
                        wait_indexed: bool) -> tuple[float, float | None]:
    """Seconds for index's 16-row upserts until every row is counted; on a server also the seconds until the rows
    are where a bulk import leaves them: flushed into sealed segments and covered by the HNSW index."""
    from imgsearch.store import Store

    with Store(uri) as store:
        coll = store.collection(collection, config)
        t = time.perf_counter()
        for start in range(0, len(rows), 16):
            coll.upsert(rows[start : start + 16])
        assert coll.count() == len(rows)
        seconds = time.perf_counter() - t
        indexed = None
        if store.is_server and wait_indexed:
            store.client.flush(collection)
            common.wait_indexed(store, collection, len(rows))
            indexed = time.perf_counter() - t
        store.drop(collection)
    return seconds, indexed


def importing(total_rows: int, index_rows: int, shard_rows: int, server_only: bool = False,
              wait_indexed: bool = True) -> list[list]:
    sys.path.insert(0, str(REPO / "tests"))
    from milvus_server import start_server, stop_server

    from imgsearch.features import VGG16Features

    config = VGG16Features().config()
    scratch = Path(tempfile.mkdtemp(prefix="bulk-import-", dir=common.WORK_DIR))
    results = []
    try:
        rows = synthetic_rows(total_rows)
        shards = scratch / "shards"
        write_synthetic_shards(shards, rows, config, shard_rows)
        common.log(f"{total_rows:,} synthetic rows in {len(list(shards.glob('*.parquet')))} shards")
        handle = start_server(scratch / "server")
        try:
            targets = [("Milvus 2.3.5 server", handle.uri), ("Milvus Lite", str(scratch / "lite.db"))]
            targets = targets[:1] if server_only else targets
            for label, uri in targets:
                tasks_seconds, seconds, bulk_indexed, method, count = timed_import(uri, shards, "bulk_bench", wait_indexed)
                assert count == total_rows, (count, total_rows)
                common.log(f"{label}: bulk import ({method}) of {total_rows:,} rows: tasks ended after "
                           f"{tasks_seconds:.1f} s, counted after {seconds:.1f} s, indexed after {bulk_indexed} s")
                insert_seconds, index_indexed = timed_index_inserts(
                    uri, synthetic_rows(index_rows, seed=1), config, "index_bench", wait_indexed)
                common.log(f"{label}: {index_rows:,} rows by 16-row upserts, counted after {insert_seconds:.1f} s, "
                           f"flushed and indexed after {index_indexed} s")

                def rate(rows, s):
                    return f"{rows / s:,.0f}" if s else "-"

                def ratio(s_bulk, s_index):
                    return f"{(total_rows / s_bulk) / (index_rows / s_index):.1f}x" if s_bulk and s_index else "-"

                results.append([
                    label, method, f"{total_rows:,}", f"{tasks_seconds:.1f}", f"{seconds:.1f}",
                    f"{bulk_indexed:.1f}" if bulk_indexed else "-", f"{index_rows:,}", f"{insert_seconds:.1f}",
                    f"{index_indexed:.1f}" if index_indexed else "-",
                    f"{rate(total_rows, seconds)} / {rate(index_rows, insert_seconds)}", ratio(seconds, insert_seconds),
                    f"{rate(total_rows, bulk_indexed)} / {rate(index_rows, index_indexed)}",
                    ratio(bulk_indexed, index_indexed),
                ])
        finally:
            stop_server(handle)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="?", default=common.DEFAULT_ORIGINALS)
    parser.add_argument("--count", type=int, default=234)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-size", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--index-rows", type=int, default=20_000)
    parser.add_argument("--import-shard-rows", type=int, default=10_000,
                        help="rows per synthetic shard (bulk extract's default --shard-size) [10000]")
    parser.add_argument("--no-extract", action="store_true")
    parser.add_argument("--no-import", action="store_true")
    parser.add_argument("--server-only", action="store_true", help="import: the Milvus server alone, not Lite")
    parser.add_argument("--no-wait-indexed", action="store_true",
                        help="import: do not wait for the server's HNSW index (1M rows take it ~20 min on 2 cores)")
    args = parser.parse_args()
    common.WORK_DIR.mkdir(parents=True, exist_ok=True)

    common.header("Bulk path: `bulk extract` against `index`, `bulk import` against index's inserts")
    if not args.no_extract:
        photos = common.image_files(args.photos)[: args.count]
        rows = extraction(photos, args.repeats, args.shard_size)
        print(f"### Extraction: {len(photos)} photos from `{args.photos}`, {args.repeats} repeats, interleaved "
              f"(shards of {args.shard_size})\n")
        print(common.table(
            ["command", "photos/s end to end (median; range)", "vs index", "wall s (median)", "wall s, 8 photos",
             "photos/s without start-up", "vs index", "CPU s (N / 8 photos)", "photos per CPU-s without start-up",
             "vs index"], rows))
        print()
    if not args.no_import:
        rows = importing(args.rows, args.index_rows, args.import_shard_rows, args.server_only,
                         not args.no_wait_indexed)
        print(f"### Import: synthetic 512-d rows, shards of {args.import_shard_rows:,}\n")
        print(common.table(
            ["target", "bulk import by", "rows", "bulk: s until the tasks ended", "bulk: s until counted",
             "bulk: s until indexed", "index's 16-row upserts: rows", "index: s until counted",
             "index: s until flushed and indexed", "rows/s counted (bulk / index)", "bulk vs index, counted",
             "rows/s indexed (bulk / index)", "bulk vs index, indexed"], rows))
    common.footer()


if __name__ == "__main__":
    main()
