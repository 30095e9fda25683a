"""Bulk extraction for billions of images: the embedding as an Apache Spark job, written as Parquet shards.

The driver lists the images and cuts the list into shards of a fixed size; each shard is one Spark task, which
embeds its images with the same ``Embedder`` and row building as ``imgsearch index`` (``indexing.image_rows``) and
writes one Parquet file in Milvus's import format. A finished shard is written under a temporary name and renamed
into place, so a re-run skips it; its failures travel in the file's own metadata, and ``manifest.json`` sums
everything up once every shard is there. ``bulk_import.py`` loads the shards into Milvus.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import BulkError
from .features import VGG16Features
from .files import FileEntry, walk_files
from .indexing import IndexSummary, Progress, image_rows
from .store import check_owner, collection_schema

MANIFEST = "manifest.json"
FORMAT = "imgsearch-bulk/1"
SHARD_META_KEY = b"imgsearch.shard"
# 10,000 rows make a Parquet file of about 25 MB (Milvus takes up to 16 GB a file) and one task of about
# 50 minutes on one core: a lost task costs little, and a billion images are 100,000 files.
DEFAULT_SHARD_SIZE = 10_000


@dataclass
class Shard:
    name: str
    paths: list[str]


def plan_shards(paths: list[str], shard_size: int) -> list[Shard]:
    """Fixed slices of the input; a shard's name carries a digest of its paths, so another input never matches."""
    shards = []
    for number, start in enumerate(range(0, len(paths), shard_size)):
        chunk = paths[start : start + shard_size]
        digest = hashlib.blake2b("\n".join(chunk).encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
        shards.append(Shard(f"part-{number:06d}-{digest}.parquet", chunk))
    return shards


def gather_inputs(paths, paths_file: str | None, include_hidden: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """Absolute paths of the files under ``paths`` plus those listed in ``paths_file``, each once, in order."""
    errors: list[tuple[str, str]] = []
    found = [entry.path for entry in walk_files([os.path.abspath(p) for p in paths], include_hidden, errors)]
    if paths_file:
        try:
            with open(paths_file, encoding="utf-8", errors="surrogateescape") as f:
                found += [os.path.abspath(line.rstrip("\r\n")) for line in f if line.strip()]
        except OSError as e:
            raise BulkError(f"cannot read the list of paths {paths_file}: {e.strerror or e}") from None
    return list(dict.fromkeys(found)), errors  # a path twice would be two rows with one primary key


# --- Parquet shards in Milvus's import format ------------------------------------------------------------


def arrow_schema(config: dict):
    """The Arrow schema of the collection's fields (``store.collection_schema``), as Milvus's importer reads it."""
    import pyarrow as pa
    from pymilvus import DataType

    types = {
        DataType.VARCHAR: pa.string(),
        DataType.INT64: pa.int64(),
        DataType.INT32: pa.int32(),
        DataType.DOUBLE: pa.float64(),
        DataType.FLOAT_VECTOR: pa.list_(pa.float32()),
    }
    fields = collection_schema(config, server=True).fields
    if any(f.dtype not in types for f in fields):
        raise BulkError(f"bulk shards hold float vectors only, not a {config['model']} collection")
    return pa.schema([pa.field(f.name, types[f.dtype], nullable=False) for f in fields])


def write_shard(path: Path, rows: list[dict], config: dict, meta: dict):
    """Write rows as one Parquet file, atomically: readers see the whole file or none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(config)
    columns = []
    for field in schema:
        if field.name == "vector":
            vectors = np.asarray([row["vector"] for row in rows], dtype=np.float32).reshape(len(rows), config["dim"])
            offsets = np.arange(0, vectors.size + 1, config["dim"], dtype=np.int32)
            columns.append(pa.ListArray.from_arrays(offsets, pa.array(vectors.ravel()), type=field.type))
        else:
            columns.append(pa.array([row[field.name] for row in rows], type=field.type))
    table = pa.Table.from_arrays(columns, schema=schema.with_metadata({SHARD_META_KEY: json.dumps(meta)}))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def shard_meta(path: Path) -> dict:
    """What a shard's task recorded: inputs, rows, failures, config, owner, the worker that made it."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
        return json.loads(metadata[SHARD_META_KEY])
    except (OSError, KeyError, ValueError) as e:
        raise BulkError(f"{path} is no imgsearch shard ({e}): move it out of the folder") from None


def read_vectors(batch, dim: int) -> np.ndarray:
    """The vector column of an Arrow record batch as an (n, dim) float32 array."""
    return batch.column("vector").flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


# --- the task each worker runs ---------------------------------------------------------------------------

# Per worker process: Spark reuses its Python workers, so the model is built once and serves every task there.
_worker_embedders: dict[str, VGG16Features] = {}


def _worker_embedder(options: dict) -> VGG16Features:
    key = json.dumps(options, sort_keys=True)
    if key not in _worker_embedders:
        try:
            from pyspark import TaskContext

            context = TaskContext.get()
            threads = context.cpus() if context else None
        except ImportError:
            threads = None
        if threads:  # as many TensorFlow threads as Spark gave this task cores: no oversubscription
            os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
            os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
        embedder = VGG16Features(**options)
        embedder.model  # noqa: B018  (built here, once, not inside the first batch)
        _worker_embedders[key] = embedder
    return _worker_embedders[key]


def extract_shard(task: dict) -> dict:
    """Embed one shard's images and write its Parquet file; a finished shard is left as it is."""
    path = Path(task["out"]) / task["name"]
    if path.exists():
        return shard_meta(path)
    embedder = _worker_embedder(task["options"])
    summary = IndexSummary()
    entries: dict[str, FileEntry] = {}
    for source in task["paths"]:
        try:
            st = os.stat(source)
        except OSError as e:
            summary.failed.append((source, e.strerror or str(e)))
            continue
        entries[source] = FileEntry(source, st.st_size, st.st_mtime)
    rows = []
    for batch in embedder.embed_sources(list(entries), batch_size=task["batch_size"]):
        rows.extend(image_rows(batch, entries, task["owner"], summary))
    meta = {
        "inputs": len(task["paths"]),
        "rows": len(rows),
        "not_images": summary.not_images,
        "failures": [{"path": p, "reason": r} for p, r in summary.failed],
        "config": embedder.config(),
        "owner": task["owner"],
        "worker": {"host": socket.gethostname(), "pid": os.getpid(), "models_built": len(_worker_embedders)},
    }
    write_shard(path, rows, embedder.config(), meta)
    return meta


# --- the driver ------------------------------------------------------------------------------------------


def extract(
    paths,
    out_dir,
    *,
    paths_file: str | None = None,
    options: dict | None = None,
    owner: str = "",
    shard_size: int = DEFAULT_SHARD_SIZE,
    batch_size: int = 16,
    master: str | None = None,
    include_hidden: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Extract the images under ``paths`` (and listed in ``paths_file``) into shards in ``out_dir``; return the
    manifest (what manifest.json holds)."""
    owner = check_owner(owner)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if "weights" in options:  # the workers resolve it, maybe from another working directory
        options["weights"] = os.path.abspath(options["weights"])
    config = VGG16Features(**options).config()  # the settings only: the driver never builds the model
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    sources, walk_failures = gather_inputs(paths, paths_file, include_hidden)
    if not sources:
        why = f" ({walk_failures[0][0]}: {walk_failures[0][1]})" if walk_failures else ""
        raise BulkError(f"no files to extract{why}")
    shards = plan_shards(sources, shard_size)
    _check_out_dir(out, shards, config, owner)
    for leftover in out.glob(".part-*.tmp"):  # half-written by a killed run: ours, and worthless
        leftover.unlink()
    todo = [s for s in shards if not (out / s.name).exists()]
    if log:
        log(
            f"{len(sources):,} files in {len(shards):,} shard(s) of up to {shard_size:,}; "
            f"{len(shards) - len(todo):,} already done; Spark master {master or 'local[*]'}"
        )
    if todo:
        _run_spark(todo, out, options, owner, batch_size, master, sources_total=len(sources), progress=progress)
    elif progress:
        progress(len(sources), len(sources))
    return write_manifest(out, shards, config, owner, walk_failures, master)


def _check_out_dir(out: Path, shards: list[Shard], config: dict, owner: str):
    planned = {s.name for s in shards}
    for existing in sorted(out.glob("part-*.parquet")):
        if existing.name not in planned:
            raise BulkError(
                f"{out} holds {existing.name}, a shard of another input (other files, order or --shard-size): "
                "use a new --out folder"
            )
        meta = shard_meta(existing)
        if meta.get("config") != config or meta.get("owner") != owner:
            raise BulkError(
                f"{existing} was made with other settings ({meta.get('config')}, owner {meta.get('owner')!r}): "
                "use the same options or a new --out folder"
            )


# Spark's own logging, errors only (its default prints a dozen INFO/WARN lines at every start).
SPARK_LOG4J2 = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark: %p %c{1}: %m%n
"""


def _spark_context(master: str | None, workdir: Path):
    try:
        with warnings.catch_warnings():  # pyspark warns about pandas versions; the job uses no pandas
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark import SparkConf, SparkContext
    except ImportError:
        raise BulkError("bulk extract runs on Apache Spark: pip install 'imgsearch[bulk]'") from None
    log_config = workdir / "log4j2.properties"
    log_config.write_text(SPARK_LOG4J2, encoding="utf-8")
    conf = (
        SparkConf()
        .setAppName("imgsearch bulk extract")
        .setMaster(master or "local[*]")
        .set("spark.python.worker.reuse", "true")  # the model stays loaded between a worker's tasks
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log_config}")
    )
    if master is None or master.startswith("local"):
        # The workers run this very interpreter (with imgsearch and TensorFlow), and nothing leaves loopback.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf.set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return SparkContext.getOrCreate(conf)
    except Exception as e:  # no Java, a wrong master URL: pyspark raises its own kinds
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BulkError(
            f"cannot start Apache Spark (master {master or 'local[*]'}; it needs Java 17, e.g. "
            f"apt-get install openjdk-17-jre-headless): {first}"
        ) from None


def _run_spark(todo, out, options, owner, batch_size, master, sources_total, progress):
    tasks = [
        {"name": s.name, "paths": s.paths, "out": str(out), "options": options, "owner": owner,
         "batch_size": batch_size}
        for s in todo
    ]
    pending = {s.name: len(s.paths) for s in todo}
    done = sources_total - sum(pending.values())
    workdir = Path(tempfile.mkdtemp(prefix="imgsearch-spark-"))
    failure: list[BaseException] = []
    try:
        sc = _spark_context(master, workdir)

        def job():
            try:
                sc.parallelize(tasks, len(tasks)).map(extract_shard).collect()
            except BaseException as e:  # reported by the driver's thread below
                failure.append(e)

        runner = threading.Thread(target=job, name="imgsearch-spark-job", daemon=True)
        try:
            runner.start()
            while runner.is_alive():
                runner.join(0.5)
                # Finished shards appear in the folder (renamed into place): that is the progress, on any cluster.
                for name in [n for n in pending if (out / n).exists()]:
                    done += pending.pop(name)
                if progress:
                    progress(done, sources_total)
        except KeyboardInterrupt:
            sc.cancelAllJobs()
            raise
        finally:
            sc.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failure:
        raise BulkError(
            f"the Spark job failed: {_python_error_line(failure[0])}; finished shards are kept, "
            "run the same command again to go on"
        )


def _python_error_line(e: BaseException) -> str:
    """The worker's own exception line out of a Spark error (which wraps it in a Java stack trace)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error: " in line and not line.startswith(("at ", "org.apache", "py4j")):
            return line
    return lines[0] if lines else type(e).__name__


def write_manifest(out: Path, shards: list[Shard], config: dict, owner: str, walk_failures, master) -> dict:
    import pyspark

    listed, failures, rows, not_images = [], [{"path": p, "reason": r} for p, r in walk_failures], 0, 0
    for shard in shards:
        path = out / shard.name
        meta = shard_meta(path)
        size = path.stat().st_size
        listed.append({"file": shard.name, "inputs": meta["inputs"], "rows": meta["rows"], "bytes": size})
        failures += meta["failures"]
        rows += meta["rows"]
        not_images += meta["not_images"]
    manifest = {
        "format": FORMAT,
        "config": config,
        "owner": owner,
        "files": sum(s["inputs"] for s in listed),
        "rows": rows,
        "failed": len(failures),
        "not_images": not_images,
        "failures": failures,
        "shards": listed,
        "engine": {"name": "Apache Spark", "version": pyspark.__version__, "master": master or "local[*]"},
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    temporary = out / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, out / MANIFEST)
    return manifest


def read_manifest(directory) -> dict:
    """The manifest of a finished extraction, with each shard checked to be there."""
    folder = Path(directory)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BulkError(
            f"no {MANIFEST} in {folder}: the extraction is not finished (run the same `imgsearch bulk extract` again)"
        ) from None
    except (OSError, ValueError) as e:
        raise BulkError(f"cannot read {folder / MANIFEST}: {e}") from None
    if manifest.get("format") != FORMAT:
        raise BulkError(f"{folder / MANIFEST} is not an imgsearch bulk manifest ({FORMAT})")
    for shard in manifest["shards"]:
        if not (folder / shard["file"]).is_file():
            raise BulkError(f"{folder / shard['file']} is listed in the manifest but missing")
    return manifest
