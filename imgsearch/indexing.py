"""Incremental indexing: walk folders, embed what is new or changed, write batch by batch, prune what is gone.

Used by ``imgsearch index`` (VGG16 vectors) and ``imgsearch phash-legacy index`` (hashes) alike: the embedder
decides what a vector is, the collection where it goes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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
) -> IndexSummary:
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
        collection.upsert(rows)
        for row in rows:
            if row["path"] in known:
                summary.updated += 1
            else:
                summary.new += 1
        done += len(batch)
        if progress:
            progress(done, total)

    if prune:
        summary.pruned = prune_missing(collection, roots)
    return summary


def image_rows(batch: list[Embedded], entries: dict[str, FileEntry], owner: str, summary: IndexSummary) -> list[dict]:
    """The collection rows of one embedded batch; failures and files that are no image are counted in ``summary``.

    The one place a row is made: ``imgsearch index`` and ``imgsearch bulk extract`` both write these.
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
        rows.append(
            {
                "id": row_id(entry.path),
                "vector": result.vector,
                "path": entry.path,
                "size": entry.size,
                "mtime": entry.mtime,
                "content_hash": result.content_hash,
                "width": result.width,
                "height": result.height,
                "owner": owner,
                "indexed_at": now(),
            }
        )
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
