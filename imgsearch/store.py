"""The one Milvus wrapper: every storing or searching command goes through ``Store`` and ``Collection``.

Milvus Lite (a local ``.db`` directory, the default) and a Milvus server (``http://host:19530``) take the same
code path; the few differences (binary vectors, consistency, limits) are decided here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import StoreError

DEFAULT_COLLECTION = "images"
# Bumped when the fields change; a collection of another version is refused, never silently misread.
SCHEMA_VERSION = 1
SCHEMA_KEY = "imgsearch.schema"
CONFIG_KEY = "imgsearch.config"
# What a Milvus server enforces; Lite does not, and we enforce it on both so they behave the same.
MAX_TOP_K = 16384
MAX_PATH = 4096
MAX_OWNER = 255
OWNER_RE = re.compile(r"^[\w.@+ -]{0,255}$")
FIELDS = ("path", "size", "mtime", "content_hash", "width", "height", "owner", "indexed_at")
HNSW_SEARCH_EF = 256
CONNECT_TIMEOUT = 5.0  # seconds to reach a server; an unreachable URI fails within it


def default_uri() -> str:
    """``IMGSEARCH_URI``, else a Milvus Lite database in the user's data directory."""
    uri = os.environ.get("IMGSEARCH_URI")
    if uri:
        return uri
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("imgsearch")) / "milvus.db")


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def row_id(path: str) -> str:
    """A stable primary key for a file path: 128 bits, so collisions are out of reach even at 1e9 images."""
    return hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def check_owner(owner: str | None) -> str:
    owner = owner or ""
    if not OWNER_RE.match(owner):
        raise StoreError(
            f"owner {owner!r} is not allowed: use at most {MAX_OWNER} letters, digits, spaces and . _ @ + -"
        )
    return owner


def owner_filter(owner: str | None) -> str:
    """The Milvus filter for one owner's rows ("" for everyone's)."""
    # A JSON string literal is a valid Milvus string literal (quotes, backslashes, any Unicode).
    return "" if owner is None else f"owner == {json.dumps(check_owner(owner), ensure_ascii=False)}"


def check_page(top_k: int, page: int) -> int:
    """Return the search offset for a 1-based page, or refuse what a Milvus server would refuse."""
    if top_k < 1:
        raise StoreError("--top-k must be at least 1")
    if page < 1:
        raise StoreError("--page must be at least 1")
    if top_k > MAX_TOP_K:
        raise StoreError(f"--top-k {top_k} is over Milvus's limit of {MAX_TOP_K}")
    offset = (page - 1) * top_k
    if offset + top_k > MAX_TOP_K:
        raise StoreError(
            f"page {page} of {top_k} reaches rank {offset + top_k}; Milvus serves ranks up to {MAX_TOP_K} "
            "(offset + top-k): narrow the query with --threshold or --owner instead"
        )
    return offset


@dataclass
class Hit:
    """One stored row near a query. Both scores are set, for either kind of collection: for VGG16 vectors
    ``similarity`` is their cosine and ``distance`` 1 - cosine; for pHash ``distance`` is the Hamming distance in
    bits and ``similarity`` 1 - distance/bits."""

    id: str
    similarity: float
    distance: float
    entity: dict


class Store:
    """A connection to Milvus Lite or a Milvus server."""

    def __init__(self, uri: str | None = None, token: str | None = None, timeout: float = CONNECT_TIMEOUT):
        self.uri = uri or default_uri()
        self.token = token if token is not None else os.environ.get("IMGSEARCH_TOKEN", "")
        self.is_server = is_server_uri(self.uri)
        self.timeout = timeout
        self.client = self._connect(timeout)

    def _connect(self, timeout: float):
        from pymilvus import MilvusClient

        if not self.is_server:
            if not self.uri.endswith(".db"):
                raise StoreError(f"--uri {self.uri}: a Milvus Lite database path ends in .db; a server URI is http://...")
            path = Path(self.uri)
            if path.is_file():
                raise StoreError(f"{self.uri} is a file; a Milvus Lite database is a directory (give a new path)")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return MilvusClient(uri=self.uri, token=self.token, timeout=timeout)
        except Exception as e:  # pymilvus, grpc and milvus-lite raise their own types; all mean "could not connect"
            raise StoreError(self._explain_connect_error(e)) from None

    def _explain_connect_error(self, e) -> str:
        msg = (getattr(e, "message", None) or str(e) or type(e).__name__).splitlines()[0]
        if not self.is_server:
            if _lite_is_locked(Path(self.uri)):
                return (
                    f"cannot open Milvus Lite database {self.uri}: it is in use by another process "
                    "(Milvus Lite allows one process at a time; for several, serve it with "
                    f"`milvus-lite server --data-dir {self.uri} --host 127.0.0.1 --port 19530` and use "
                    "--uri http://127.0.0.1:19530)"
                )
            return f"cannot open Milvus Lite database {self.uri}: {msg}"
        if _grpc_code(e) in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return f"Milvus at {self.uri} refused the credentials: check IMGSEARCH_TOKEN (user:password or API key)"
        return f"cannot reach Milvus at {self.uri} within {self.timeout:g} s: {msg}"

    def close(self):
        """Disconnect; for Milvus Lite also stop its in-process server, so the database lock is released."""
        try:
            self.client.close()
        except Exception:
            pass
        if not self.is_server:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def collection_names(self) -> list[str]:
        return list(self.client.list_collections())

    def stored_config(self, name: str) -> dict | None:
        """The feature settings a collection was made with, or None if it does not exist."""
        if not self.client.has_collection(name):
            return None
        properties = self.client.describe_collection(name).get("properties") or {}
        if SCHEMA_KEY not in properties:
            raise StoreError(
                f"collection {name!r} at {self.uri} was not made by imgsearch; choose another --collection"
            )
        version = _int_or_none(properties[SCHEMA_KEY])
        if version != SCHEMA_VERSION:
            newer = version is not None and version > SCHEMA_VERSION
            raise StoreError(
                f"collection {name!r} was made by {'a newer' if newer else 'an older'} imgsearch "
                f"(schema v{properties[SCHEMA_KEY]}; this one reads v{SCHEMA_VERSION}): "
                + ("upgrade imgsearch" if newer else "index into a new --collection, then drop the old one")
            )
        return json.loads(properties[CONFIG_KEY])

    def collection(self, name: str, config: dict, create: bool = True) -> Collection:
        """Open (and load) a collection made with ``config``, creating it if allowed."""
        stored = self.stored_config(name)
        if stored is None:
            if not create:
                raise StoreError(f"no collection {name!r} at {self.uri}: index some images first")
            self._create(name, config)
        elif stored != config:
            raise StoreError(
                f"collection {name!r} holds vectors made with {_describe(stored)}, not {_describe(config)}; "
                "use the same settings or another --collection"
            )
        self.client.load_collection(name)
        return Collection(self, name, config)

    def drop(self, name: str):
        self.client.drop_collection(name)

    def _create(self, name: str, config: dict):
        binary = config["metric"] == "HAMMING"
        schema = collection_schema(config, server=self.is_server)
        index_params = self.client.prepare_index_params()
        index_params.add_index("vector", **self._index_spec(binary))
        # Our metadata rides in collection properties: Milvus Lite does not keep a collection's description.
        properties = {SCHEMA_KEY: str(SCHEMA_VERSION), CONFIG_KEY: json.dumps(config, sort_keys=True)}
        self.client.create_collection(name, schema=schema, consistency_level="Strong", properties=properties)
        # The index is made while the collection is empty, so it builds in the background as rows come (a long
        # create_index call over many rows is cut off). Not waited for: pymilvus polls its state every 0.5 s,
        # which was a third of a one-photo `imgsearch index`.
        self.client.create_index(name, index_params, sync=False)

    def _index_spec(self, binary: bool) -> dict:
        if binary:
            if self.is_server:
                return {"index_type": "BIN_FLAT", "metric_type": "HAMMING"}
            return {"index_type": "FLAT", "metric_type": "L2"}
        if self.is_server:
            return {"index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 16, "efConstruction": 200}}
        return {"index_type": "AUTOINDEX", "metric_type": "COSINE"}


def collection_schema(config: dict, server: bool):
    """The fields of an imgsearch collection (pymilvus ``CollectionSchema``); bulk extract writes the same ones."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="imgsearch images")
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
    if config["metric"] == "HAMMING" and server:
        schema.add_field("vector", DataType.BINARY_VECTOR, dim=config["dim"])
    else:
        # Lite has no binary vectors: 0/1 floats under squared L2 give exactly the Hamming distance.
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=config["dim"])
    schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
    schema.add_field("size", DataType.INT64)
    schema.add_field("mtime", DataType.DOUBLE)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    schema.add_field("width", DataType.INT32)
    schema.add_field("height", DataType.INT32)
    # A partition key, not partitions: thousands of owners cost no partition each.
    schema.add_field("owner", DataType.VARCHAR, max_length=MAX_OWNER, is_partition_key=True)
    schema.add_field("indexed_at", DataType.INT64)
    return schema


def _lite_is_locked(data_dir: Path) -> bool:
    """Whether another process holds Milvus Lite's advisory lock on this database."""
    lock = data_dir / "LOCK"
    if not lock.exists():
        return False
    try:
        import fcntl
    except ImportError:  # Windows: Lite's own message has to do
        return False
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _grpc_code(e: BaseException) -> str | None:
    """The gRPC status name behind a pymilvus error (pymilvus says 'Fail connecting' for a bad token too)."""
    while e is not None:
        code = getattr(e, "code", None)
        if callable(code):
            try:
                return getattr(code(), "name", None)
            except Exception:
                pass
        e = e.__cause__ or e.__context__
    return None


def _int_or_none(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _describe(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(config.items()))


class Collection:
    """One collection of image rows: a primary key, the vector and the file's metadata."""

    def __init__(self, store: Store, name: str, config: dict):
        self.store = store
        self.client = store.client
        self.name = name
        self.config = config
        self.binary = config["metric"] == "HAMMING"
        self.packed = self.binary and store.is_server  # BINARY_VECTOR takes bytes

    # -- vectors in and out ----------------------------------------------------------------------
    def _to_milvus(self, vector: np.ndarray):
        if self.packed:
            return np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes()
        return np.asarray(vector, dtype=np.float32).tolist()

    def _scores(self, raw: float) -> tuple[float, float]:
        """(similarity, distance) from what Milvus returns: a cosine, or a Hamming distance (on Lite, the squared
        L2 distance of 0/1 floats: exact integers in float32 for 64 bits)."""
        if self.binary:
            bits = int(round(raw))
            return 1.0 - bits / self.config["dim"], bits
        return float(raw), 1.0 - float(raw)

    # -- rows ------------------------------------------------------------------------------------
    def upsert(self, rows: list[dict]):
        """Insert or replace rows by primary key: re-running an interrupted index never duplicates."""
        if not rows:
            return
        data = [{**row, "vector": self._to_milvus(row["vector"])} for row in rows]
        if self.store.is_server:
            # Milvus 2.3's upsert into a partition-key collection hides the new rows from filters on that key
            # (owner searches miss them); delete + insert does not. A crash in between loses only the stale
            # rows, which the next run sees as new files and indexes again.
            self.client.delete(self.name, ids=[row["id"] for row in rows])
            self.client.insert(self.name, data)
        else:
            self.client.upsert(self.name, data)

    def get(self, ids: list[str], fields=("size", "mtime")) -> dict[str, dict]:
        found = {}
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            for row in self.client.get(self.name, ids=chunk, output_fields=list(fields)):
                found[row["id"]] = row
        return found

    def delete(self, ids: list[str]) -> int:
        for start in range(0, len(ids), 1000):
            self.client.delete(self.name, ids=ids[start : start + 1000])
        return len(ids)

    def count(self, filter: str = "") -> int:
        rows = self.client.query(self.name, filter=filter, output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def iterate(self, fields=("path",), filter: str = "", batch_size: int = 1000):
        """Every row (id plus ``fields``), a batch at a time, without loading the collection into memory."""
        iterator = self.client.query_iterator(
            self.name, batch_size=batch_size, filter=filter, output_fields=["id", *fields]
        )
        try:
            while True:
                batch = iterator.next()
                if not batch:
                    return
                yield from batch
        finally:
            iterator.close()

    def owners(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.iterate(("owner",)):
            counts[row["owner"]] = counts.get(row["owner"], 0) + 1
        return counts

    # -- search ----------------------------------------------------------------------------------
    def search(
        self,
        vectors: np.ndarray,
        top_k: int,
        offset: int = 0,
        owner: str | None = None,
        fields=("path", "size", "owner"),
    ) -> list[list[Hit]]:
        """Nearest rows for each vector, ranks offset+1 .. offset+top_k, best first."""
        if offset + top_k > MAX_TOP_K:
            raise StoreError(f"offset + top-k must be at most {MAX_TOP_K}")
        flt = owner_filter(owner)
        if self.binary:
            params = {"metric_type": "HAMMING" if self.packed else "L2", "params": {}}
        else:
            # HNSW needs ef >= the ranks asked for; Milvus's default of 64 missed the true top-1 for 8-10% of
            # queries at 100k-1M vectors, 256 for none, at the same latency (benchmarks/RESULTS.md).
            params = {"metric_type": "COSINE", "params": {"ef": max(HNSW_SEARCH_EF, offset + top_k)}}
        results = self.client.search(
            self.name,
            data=[self._to_milvus(v) for v in vectors],
            limit=top_k,
            offset=offset,
            filter=flt,
            output_fields=list(fields),
            search_params=params,
            consistency_level="Strong",
        )
        out = []
        for hits in results:
            seen, clean = set(), []
            for hit in hits:
                hit_id = hit.get("id") if isinstance(hit, dict) else getattr(hit, "id", None)
                # Milvus pads short result lists with id -1 (or empty): never show those, nor a row twice.
                if hit_id in (None, -1, "", "-1") or hit_id in seen:
                    continue
                seen.add(hit_id)
                entity = hit.get("entity", {}) if isinstance(hit, dict) else hit.entity
                similarity, distance = self._scores(hit["distance"])
                clean.append(Hit(str(hit_id), similarity, distance, dict(entity)))
            out.append(clean)
        return out


def now() -> int:
    return int(time.time())
