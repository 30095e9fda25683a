"""Searching a collection with query images: batched extraction, paginated nearest neighbours, a threshold.

Scores: for VGG16 vectors ``similarity`` is the cosine similarity (1 = the same picture, about 0.3-0.5 for
unrelated photos) and ``distance`` is 1 - similarity; for pHash, ``distance`` is the Hamming distance (0-64)
and ``similarity`` is 1 - distance/64.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from .features import Embedder
from .files import looks_like_image_name, walk_files
from .store import Collection, check_owner, check_page

# The "same picture, edited" line for `imgsearch search`: no unrelated photo reached it in the benchmark (the
# best scored 0.785) while 84% of all edited copies and 100% of re-encoded, resized, bordered, recoloured or
# mirrored ones stay above it (benchmarks/RESULTS.md). The library's search_images applies none unless asked.
DEFAULT_THRESHOLD = 0.80


@dataclass
class Match:
    rank: int
    id: str
    path: str
    similarity: float
    distance: float
    owner: str
    size: int


@dataclass
class QueryResult:
    query: str
    page: int
    top_k: int
    results: list[Match] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        out = {"query": self.query, "page": self.page, "top_k": self.top_k}
        out["results"] = [
            {k: v for k, v in asdict(m).items() if k in ("rank", "id", "path", "similarity", "distance", "owner")}
            for m in self.results
        ]
        if self.error:
            out["error"] = self.error
        return out


def expand_queries(queries: Iterable, include_hidden: bool = False) -> tuple[list, set[str]]:
    """A folder stands for the files in it; ``(bytes, label)`` pairs and files pass through.

    Returns the sources and the set of those found in folders (where a file that is no image is skipped).
    """
    sources, found = [], set()
    for query in queries:
        if isinstance(query, tuple) or not os.path.isdir(query):
            sources.append(query)
        else:
            paths = [e.path for e in walk_files([query], include_hidden=include_hidden)]
            sources.extend(paths)
            found.update(paths)
    return sources, found


def search_images(
    collection: Collection,
    embedder: Embedder,
    queries: Iterable,
    top_k: int = 10,
    page: int = 1,
    threshold: float | None = None,
    max_distance: float | None = None,
    owner: str | None = None,
    batch_size: int = 16,
) -> Iterator[QueryResult]:
    """One QueryResult per query image, in order. ``threshold``: keep hits with similarity >= it;
    ``max_distance``: keep hits with distance <= it. Failed queries carry ``error``."""
    offset = check_page(top_k, page)
    if owner is not None:
        owner = check_owner(owner)
    sources, found_in_folders = expand_queries(queries)
    for batch in embedder.embed_sources(sources, batch_size=batch_size):
        ok = [r for r in batch if r.vector is not None]
        hits_per_query = (
            collection.search([r.vector for r in ok], top_k=top_k, offset=offset, owner=owner) if ok else []
        )
        hits_by_source = dict(zip((id(r) for r in ok), hits_per_query))
        for result in batch:
            if result.error:
                # A stray non-image in a query folder (a note, a sidecar) is skipped, not a failed query.
                stray = result.not_image and result.source in found_in_folders
                if not (stray and not looks_like_image_name(result.source)):
                    yield QueryResult(result.source, page, top_k, error=result.error)
                continue
            matches = []
            for rank, hit in enumerate(hits_by_source[id(result)], start=offset + 1):
                similarity, distance = _scores(collection, hit.distance)
                # Ranks are ordered by score, so cutting by threshold keeps ranks contiguous across pages.
                if threshold is not None and similarity < threshold:
                    break
                if max_distance is not None and distance > max_distance:
                    break
                matches.append(
                    Match(
                        rank=rank,
                        id=hit.id,
                        path=hit.entity.get("path", ""),
                        similarity=similarity,
                        distance=distance,
                        owner=hit.entity.get("owner", ""),
                        size=hit.entity.get("size", 0),
                    )
                )
            yield QueryResult(result.source, page, top_k, matches)


def _scores(collection: Collection, raw: float) -> tuple[float, float]:
    if collection.binary:
        bits = collection.config["dim"]
        return 1.0 - raw / bits, raw
    return raw, 1.0 - raw
