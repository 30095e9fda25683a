"""Searching a collection with query images: batched extraction, paginated nearest neighbours, a threshold,
and for VGG16 collections the copy verdict: each hit is a "copy" of the query (with its evidence) or "similar".

Scores: for VGG16 vectors ``similarity`` is the cosine similarity (1 = the same picture, about 0.3-0.5 for
unrelated photos) and ``distance`` is 1 - similarity; for pHash, ``distance`` is the Hamming distance (0-64)
and ``similarity`` is 1 - distance/64 (``store.Hit`` carries both).

With the verdict (``SearchOptions.verify``, the default for VGG16 collections), ``copies.find_copies`` finds the
copies among the nearest images of the query's views; they come first on page 1, with their evidence, and the
page's ranked neighbours follow as "similar", minus the copies, cut at the threshold.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from .copies import QUERY_SIDE, FoundCopy, find_copies
from .errors import ImageError, ImgsearchError
from .evidence import Evidence
from .features import Embedder
from .files import looks_like_image_name, walk_files
from .store import Collection, Hit, check_owner, check_page
from .verdict import COPY, SIMILAR, Verifier

# The "same picture, edited" line for `imgsearch search`: no unrelated photo reached it in the benchmark (the
# best scored 0.785) while 84% of all edited copies and 100% of re-encoded, resized, bordered, recoloured or
# mirrored ones stay above it (benchmarks/RESULTS.md). The library's search_images applies none unless asked.
DEFAULT_THRESHOLD = 0.80


@dataclass(frozen=True)
class SearchOptions:
    """What to search for, shared by the library, the CLI, the server and its batching (equal options, one call).

    ``threshold``: keep hits with similarity >= it; ``max_distance``: keep hits with distance <= it (None: no
    cut). ``verify`` (None: on for VGG16 collections) gives each hit a verdict, copies first; ``copies_only``
    keeps only the copies."""

    top_k: int = 10
    page: int = 1
    threshold: float | None = None
    max_distance: float | None = None
    owner: str | None = None
    verify: bool | None = None
    copies_only: bool = False

    @property
    def offset(self) -> int:
        """Ranks before this page (also checks the page against Milvus's limits)."""
        return check_page(self.top_k, self.page)

    def for_collection(self, collection: Collection) -> SearchOptions:
        """These options checked against a collection, ``verify`` decided; raises on a contradiction."""
        check_page(self.top_k, self.page)
        owner = check_owner(self.owner) if self.owner is not None else None
        verify = not collection.binary if self.verify is None else self.verify
        if verify and collection.binary:
            raise ImgsearchError("the copy verdict needs a VGG16 collection; phash-legacy compares hashes only")
        if self.copies_only and not verify:
            raise ImgsearchError("--copies-only needs the copy verdict (it is off)")
        return replace(self, owner=owner, verify=verify)

    def keeps(self, hit: Hit) -> bool:
        """Whether a ranked hit passes the threshold and the distance cut."""
        if self.threshold is not None and hit.similarity < self.threshold:
            return False
        return self.max_distance is None or hit.distance <= self.max_distance


@dataclass
class Match:
    rank: int
    id: str
    path: str
    similarity: float
    distance: float
    owner: str
    size: int
    match: str | None = None  # "copy" or "similar"; None where no verdict is made (phash-legacy, verify=False)
    evidence: Evidence | None = None  # for copies: how the copy relates to the original

    @classmethod
    def of_hit(cls, rank: int, hit: Hit, match: str | None = None, evidence: Evidence | None = None) -> Match:
        entity = hit.entity
        return cls(rank, hit.id, entity.get("path", ""), hit.similarity, hit.distance, entity.get("owner", ""),
                   entity.get("size", 0), match, evidence)

    def as_dict(self) -> dict:
        out = {"rank": self.rank, "id": self.id, "path": self.path, "similarity": self.similarity,
               "distance": self.distance, "owner": self.owner}
        if self.match is not None:
            out["match"] = self.match
        if self.evidence is not None:
            out["evidence"] = self.evidence.as_dict()
        return out


@dataclass
class QueryResult:
    query: str
    page: int
    top_k: int
    results: list[Match] = field(default_factory=list)
    error: str | None = None
    not_image: bool = False  # the error is "this is no image at all"

    def as_dict(self) -> dict:
        out = {"query": self.query, "page": self.page, "top_k": self.top_k,
               "results": [m.as_dict() for m in self.results]}
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
    options: SearchOptions = SearchOptions(),
    batch_size: int = 16,
    verifier: Verifier | None = None,
) -> Iterator[QueryResult]:
    """One QueryResult per query image (a path, a folder, or ``(bytes, label)``), in order; failed queries carry
    ``error``. ``verifier`` may be passed to reuse its cache of stored images' keypoints across calls."""
    options = options.for_collection(collection)
    sources, found_in_folders = expand_queries(queries)
    if options.verify:
        results = _search_with_verdict(collection, embedder, sources, options, batch_size, verifier or Verifier())
    else:
        results = _search_ranked(collection, embedder, sources, options, batch_size)
    for result in results:
        if result.error and _is_stray(result, found_in_folders):
            continue
        yield result


def _is_stray(result: QueryResult, found_in_folders: set[str]) -> bool:
    """A stray non-image in a query folder (a note, a sidecar) is skipped, not a failed query."""
    return result.query in found_in_folders and result.not_image and not looks_like_image_name(result.query)


def _search_ranked(collection, embedder, sources, options: SearchOptions, batch_size) -> Iterator[QueryResult]:
    for batch in embedder.embed_sources(sources, batch_size=batch_size):
        ok = [r for r in batch if r.vector is not None]
        hits = iter(collection.search([r.vector for r in ok], top_k=options.top_k, offset=options.offset,
                                      owner=options.owner) if ok else [])
        for result in batch:
            if result.error:
                yield QueryResult(result.source, options.page, options.top_k, error=result.error,
                                  not_image=result.not_image)
                continue
            yield QueryResult(result.source, options.page, options.top_k, ranked_page(next(hits), options))


def ranked_page(hits: list[Hit], options: SearchOptions, first_rank: int | None = None,
                match: str | None = None, skip: set[str] = frozenset()) -> list[Match]:
    """The page's hits as matches, ranked from ``first_rank`` (default: the page's first), until the first one the
    threshold or distance cut drops (ranks are ordered by score, so the cut keeps them contiguous across pages);
    ``skip``: ids listed already."""
    rank = options.offset if first_rank is None else first_rank - 1
    matches = []
    for hit in hits:
        if not options.keeps(hit):
            break
        if hit.id in skip:
            continue
        rank += 1
        matches.append(Match.of_hit(rank, hit, match))
    return matches


def verdict_page(copies: list[FoundCopy], ranked_hits: list[Hit], options: SearchOptions) -> list[Match]:
    """Page 1 lists the copies first (best first, with their evidence), then the ranked neighbours as "similar"
    minus the copies, cut at the threshold; later pages, the ranked neighbours alone."""
    matches = []
    if options.page == 1:
        for copy in copies:
            hit = replace(copy.hit, similarity=copy.similarity, distance=1.0 - copy.similarity)
            matches.append(Match.of_hit(options.offset + len(matches) + 1, hit, COPY, copy.evidence))
    if options.copies_only:
        return matches
    listed = {copy.hit.id for copy in copies}
    return matches + ranked_page(ranked_hits, options, options.offset + len(matches) + 1, SIMILAR, listed)


def _search_with_verdict(collection, embedder, sources, options: SearchOptions, batch_size,
                         verifier: Verifier) -> Iterator[QueryResult]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgsearch-verify") as pool:
        for start in range(0, len(sources), batch_size):
            loaded = list(pool.map(_loader(embedder), sources[start : start + batch_size]))
            images = [image for image in loaded if not isinstance(image, ImageError)]
            found = find_copies(collection, embedder, verifier, pool, images, options.owner, batch_size)
            ranked = collection.search([f.picture_vector for f in found], top_k=options.top_k,
                                       offset=options.offset, owner=options.owner) if images else []
            found, ranked = iter(found), iter(ranked)
            for image in loaded:
                if isinstance(image, ImageError):
                    yield QueryResult(image.source, options.page, options.top_k, error=image.reason,
                                      not_image=image.not_image)
                    continue
                page = verdict_page(next(found).copies, next(ranked), options)
                yield QueryResult(image.source, options.page, options.top_k, page)


def _loader(embedder):
    def load(source):
        try:
            # Decoded with the detail the keypoint check wants; the views are shrunk to the model's size anyway.
            return embedder.load(source, min_side=QUERY_SIDE)
        except ImageError as e:
            return e

    return load
