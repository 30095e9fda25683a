"""Incremental indexing: walk folders, embed what is new or changed, write batch by batch, prune what is gone.

Used by ``imgsearch index`` (VGG16 vectors) and ``imgsearch phash-legacy index`` (hashes) alike: the embedder
decides what a vector is, the collection where it goes.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import ImgsearchError
from .features import Embedded, Embedder
from .files import FileEntry, looks_like_image_name, walk_files
from .store import Collection, check_owner, now, row_id


@dataclass
class IndexSummary:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    pruned: int = 0
    not_images: int = 0  # files that are no image and do not claim to be one: not failures
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    interrupted: bool = False  # stopped on request before every file was looked at

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "pruned": self.pruned,
            "not_images": self.not_images,
            "failed": len(self.failed),
            "failures": [{"path": p, "reason": r} for p, r in self.failed],
            **({"interrupted": True} if self.interrupted else {}),
        }


# (files done, files to look at) after each step; the CLI draws a progress bar from it.
Progress = Callable[[int, int], None]


def index_paths(
    collection: Collection,
    embedder: Embedder,
    paths: Iterable[str],
    owner: str = "",
    batch_size: int = 16,
    prune: bool = False,
    include_hidden: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> IndexSummary:
    """``stop``: when set, the batch being written is finished and the rest left for the next run (which sees
    the finished files as unchanged); the summary says ``interrupted``."""
    owner = check_owner(owner)
    summary = IndexSummary()
    walk_errors: list[tuple[str, str]] = []
    roots = [os.path.abspath(os.fspath(p)) for p in paths]
    entries = list(walk_files(roots, include_hidden=include_hidden, errors=walk_errors))
    summary.failed.extend(walk_errors)
    total = len(entries)
    done = 0
    if progress:
        progress(done, total)

    # Unchanged files (same path, size, mtime and owner) are skipped before anything is decoded.
    todo: list[FileEntry] = []
    known: set[str] = set()
    for start in range(0, total, 1000):
        chunk = entries[start : start + 1000]
        stored = collection.get([row_id(e.path) for e in chunk], fields=("size", "mtime", "owner"))
        for entry in chunk:
            row = stored.get(row_id(entry.path))
            if row is None:
                todo.append(entry)
            elif row["size"] == entry.size and row["mtime"] == entry.mtime and row["owner"] == owner:
                summary.unchanged += 1
                done += 1
            else:
                known.add(entry.path)
                todo.append(entry)
    if progress:
        progress(done, total)

    by_path = {e.path: e for e in todo}
    for batch in embedder.embed_sources([e.path for e in todo], batch_size=batch_size):
        rows = image_rows(batch, by_path, owner, summary)
        # Written per batch: an interrupted run keeps everything finished, and re-running upserts, never duplicates.
        _write(collection, rows, known, summary)
        done += len(batch)
        if progress:
            progress(done, total)
        if stop is not None and stop.is_set():
            summary.interrupted = True
            return summary  # no prune either: the files not looked at are not gone

    if prune:
        summary.pruned = prune_missing(collection, roots)
    return summary


def make_row(path: str, embedded: Embedded, size: int, mtime: float, owner: str) -> dict:
    """The one place a row is made: for files (``index_paths``, ``bulk extract``) and bytes under a key."""
    return {
        "id": row_id(path),
        "vector": embedded.vector,
        "path": path,
        "size": size,
        "mtime": mtime,
        "content_hash": embedded.content_hash,
        "width": embedded.width,
        "height": embedded.height,
        "owner": owner,
        "indexed_at": now(),
    }


def _write(collection: Collection, rows: list[dict], known: set[str], summary: IndexSummary):
    collection.upsert(rows)
    for row in rows:
        if row["path"] in known:
            summary.updated += 1
        else:
            summary.new += 1


class InvalidKey(ImgsearchError):
    """A caller's key for an image (PUT /api/images/{key}) that is too long or has characters we refuse."""


# A caller's key for an image that has no file here (an object-store key, a URL, a database id). It is stored
# in the ``path`` field, so it must never look like a local path: a key starting with / or ~ could otherwise
# make a key row pass for an indexed file (the server's thumbnails read only absolute paths of local files).
MAX_KEY = 1024
KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:/@+=,!%-]*")


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY:
        raise InvalidKey(f"key must be 1 to {MAX_KEY} characters long (got {len(key)})")
    if not KEY_RE.fullmatch(key):
        raise InvalidKey(
            f"key {key[:80]!r} is not allowed: it must start with a letter or digit and use only letters, digits "
            "and . _ ~ : / @ + = , ! % - (so it can never name a local file)"
        )
    return key


def index_keyed(
    collection: Collection, embedder: Embedder, images: Iterable[tuple[str, bytes]], owner: str = "",
    batch_size: int = 16,
) -> IndexSummary:
    """Index images that arrive as bytes, each under its caller's key; a key indexed again replaces its row.

    Failures are ``(key, reason)`` in the summary, as files are in ``index_paths``.
    """
    owner = check_owner(owner)
    # One row per key: the last image given for a key wins, as a later PUT would.
    images = list({check_key(key): data for key, data in images}.items())
    summary = IndexSummary()
    known = set(collection.get([row_id(key) for key, _ in images], fields=("path",)))
    known_keys = {key for key, _ in images if row_id(key) in known}
    for batch in embedder.embed_sources([(data, key) for key, data in images], batch_size=batch_size):
        rows = []
        for result in batch:
            if result.error:
                summary.failed.append((result.source, result.error))
            else:
                rows.append(make_row(result.source, result, result.size, 0.0, owner))
        _write(collection, rows, known_keys, summary)
    return summary


def delete_keys(collection: Collection, keys: Iterable[str]) -> list[str]:
    """Delete the rows of these keys; returns the keys that were indexed (and are now gone)."""
    keys = [check_key(key) for key in keys]
    present = collection.get([row_id(key) for key in keys], fields=("path",))
    gone = [key for key in keys if row_id(key) in present]
    collection.delete([row_id(key) for key in gone])
    return gone


def image_rows(batch: list[Embedded], entries: dict[str, FileEntry], owner: str, summary: IndexSummary) -> list[dict]:
    """The collection rows of one embedded batch; failures and files that are no image are counted in ``summary``.

    ``imgsearch index`` and ``imgsearch bulk extract`` both write these, made by ``make_row``.
    """
    rows = []
    for result in batch:
        if result.error:
            if result.not_image and not looks_like_image_name(result.source):
                summary.not_images += 1
            else:
                summary.failed.append((result.source, result.error))
            continue
        entry = entries[result.source]
        rows.append(make_row(entry.path, result, entry.size, entry.mtime, owner))
    return rows


def prune_missing(collection: Collection, roots: list[str]) -> int:
    """Delete rows under ``roots`` whose files no longer exist; rows elsewhere are left alone."""
    prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)
    gone = [
        row["id"]
        for row in collection.iterate(("path",))
        if (row["path"] in roots or row["path"].startswith(prefixes)) and not os.path.exists(row["path"])
    ]
    return collection.delete(gone)
