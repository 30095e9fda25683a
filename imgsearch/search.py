"""Searching a collection with query images: batched extraction, paginated nearest neighbours, a threshold,
and for VGG16 collections the verdict: each hit is a "copy" of the query (with its evidence) or "similar".

Scores: for VGG16 vectors ``similarity`` is the cosine similarity (1 = the same picture, about 0.3-0.5 for
unrelated photos) and ``distance`` is 1 - similarity; for pHash, ``distance`` is the Hamming distance (0-64)
and ``similarity`` is 1 - distance/64.

How the verdict is reached (``verify=True``, the default for VGG16 collections): the query is looked at in a few
views (``views.first_views``: the picture; the picture without a uniform frame, unless the model cuts that frame
itself, as VGG16 does black borders; and the pictures inside it: a page's photo, a collage's tiles); the nearest
stored images of each view are candidates, and each candidate is checked against the query with local features
(``verdict.Verifier``), and against the picture inside the query that found it, if one did. Only when that finds
no copy are the query's turned views searched too (``views.more_views``), for copies turned a quarter; their close
candidates are checked the same way. Copies come first on page 1; the page's ranked neighbours follow as
"similar", minus the copies, cut at the threshold.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from . import views
from .errors import ImageError, ImgsearchError
from .features import Embedder
from .files import looks_like_image_name, walk_files
from .store import Collection, Hit, check_owner, check_page
from .verdict import COPY, QUERY_SIDE, SIMILAR, Verifier

# The "same picture, edited" line for `imgsearch search`: no unrelated photo reached it in the benchmark (the
# best scored 0.785) while 84% of all edited copies and 100% of re-encoded, resized, bordered, recoloured or
# mirrored ones stay above it (benchmarks/RESULTS.md). The library's search_images applies none unless asked.
DEFAULT_THRESHOLD = 0.80
# Nearest stored images of each view that are checked for a copy: first-round views, then each further view.
# A copy's original is among the first few of the picture's own neighbours for nearly every edit that keeps
# the picture upright and whole (benchmarks/RESULTS.md); the further views only need to bring up what they add.
FIRST_CANDIDATES = 6
MORE_CANDIDATES = 2
# A turned view of a quarter-turned copy is the original upright, so the original scores as an unedited copy
# does (0.998-1.0 on the dev photos; 0.73-0.76 for the opposite turn); unrelated queries' turned views reached
# 0.84 at most, median 0.62. Only candidates this close are checked: most unrelated queries check none.
MORE_FLOOR = 0.70
# A part of the query (the picture inside its frame, a page's photo, a collage's tile) is the original nearly
# whole, as a crop is, whose original is among the picture's first two neighbours; a collage has up to four.
PART_CANDIDATES = 3


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
    evidence: dict | None = None  # for copies: how the copy relates to the original


@dataclass
class QueryResult:
    query: str
    page: int
    top_k: int
    results: list[Match] = field(default_factory=list)
    error: str | None = None
    not_image: bool = False  # the error is "this is no image at all"

    def as_dict(self) -> dict:
        out = {"query": self.query, "page": self.page, "top_k": self.top_k}
        out["results"] = [
            {
                k: v
                for k, v in asdict(m).items()
                if k in ("rank", "id", "path", "similarity", "distance", "owner")
                or (k == "match" and v is not None)
                or (k == "evidence" and v is not None)
            }
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
    verify: bool | None = None,
    copies_only: bool = False,
    verifier=None,
) -> Iterator[QueryResult]:
    """One QueryResult per query image, in order. ``threshold``: keep hits with similarity >= it;
    ``max_distance``: keep hits with distance <= it. Failed queries carry ``error``.

    ``verify`` (default: on for VGG16 collections) gives each hit a verdict, copies first; ``copies_only``
    keeps only the copies. ``verifier`` (a ``verdict.Verifier``) may be passed to reuse its cache of stored
    images' keypoints across calls.
    """
    offset = check_page(top_k, page)
    if owner is not None:
        owner = check_owner(owner)
    if verify is None:
        verify = not collection.binary
    if verify and collection.binary:
        raise ImgsearchError("the copy verdict needs a VGG16 collection; phash-legacy compares hashes only")
    if copies_only and not verify:
        raise ImgsearchError("--copies-only needs the copy verdict (it is off)")
    sources, found_in_folders = expand_queries(queries)
    search = _search_with_verdict if verify else _search_ranked
    for result in search(collection, embedder, sources, top_k, offset, page, threshold, max_distance, owner,
                         batch_size, copies_only, verifier):
        if result.error and _is_stray(result, found_in_folders):
            continue
        yield result


def _is_stray(result: QueryResult, found_in_folders: set[str]) -> bool:
    """A stray non-image in a query folder (a note, a sidecar) is skipped, not a failed query."""
    return result.query in found_in_folders and result.not_image and not looks_like_image_name(result.query)


def _search_ranked(collection, embedder, sources, top_k, offset, page, threshold, max_distance, owner, batch_size,
                   copies_only, verifier):
    for batch in embedder.embed_sources(sources, batch_size=batch_size):
        ok = [r for r in batch if r.vector is not None]
        hits_per_query = (
            collection.search([r.vector for r in ok], top_k=top_k, offset=offset, owner=owner) if ok else []
        )
        hits_by_source = dict(zip((id(r) for r in ok), hits_per_query))
        for result in batch:
            if result.error:
                yield QueryResult(result.source, page, top_k, error=result.error, not_image=result.not_image)
                continue
            matches = []
            for rank, hit in enumerate(hits_by_source[id(result)], start=offset + 1):
                similarity, distance = _scores(collection, hit.distance)
                # Ranks are ordered by score, so cutting by threshold keeps ranks contiguous across pages.
                if threshold is not None and similarity < threshold:
                    break
                if max_distance is not None and distance > max_distance:
                    break
                matches.append(_match(rank, hit, similarity, distance))
            yield QueryResult(result.source, page, top_k, matches)


def _match(rank: int, hit: Hit, similarity: float, distance: float, verdict=None, evidence=None) -> Match:
    return Match(
        rank=rank,
        id=hit.id,
        path=hit.entity.get("path", ""),
        similarity=similarity,
        distance=distance,
        owner=hit.entity.get("owner", ""),
        size=hit.entity.get("size", 0),
        match=verdict,
        evidence=evidence,
    )


@dataclass
class _Candidate:
    hit: Hit
    similarity: float  # the best over the views that found it
    view: str
    whole_view: str = ""  # the best of the views of the whole query that found it ("": only regions did)
    whole_similarity: float = 0.0
    regions: dict = field(default_factory=dict)  # region view name -> (its box, its similarity)


def _search_with_verdict(collection, embedder, sources, top_k, offset, page, threshold, max_distance, owner,
                         batch_size, copies_only, verifier):
    verifier = verifier or Verifier()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgsearch-verify") as pool:
        for start in range(0, len(sources), batch_size):
            chunk = sources[start : start + batch_size]
            loaded = list(pool.map(_load_or_error(embedder), chunk))
            queries = [(source, image) for source, image in zip(chunk, loaded) if not isinstance(image, ImageError)]
            first = [views.first_views(image.image, embedder.content_box(image.image)) for _, image in queries]
            first_vectors = _embed_views(embedder, first, batch_size)
            first_hits = _candidates(collection, first, first_vectors, FIRST_CANDIDATES, owner)
            # The page's ranking is the picture view's, as without the verdict.
            ranked = collection.search([v[0] for v in first_vectors], top_k=top_k, offset=offset, owner=owner) \
                if queries else []
            # Keypoints of every query, then every (query, candidate) check, each spread over both threads: one
            # query at a time would leave a core idle between queries (serve batches up to 32 of them).
            features = list(pool.map(lambda q: verifier.query(q[1].image, (q[1].width, q[1].height)), queries))
            judged = _judge(pool, verifier, features, first_hits, [{} for _ in queries])
            # Second round, only for queries whose first views found no copy.
            again = [n for n in range(len(queries)) if not _has_copy(judged[n])]
            more = [views.more_views(queries[n][1].image) for n in again]
            more_hits = _candidates(collection, more, _embed_views(embedder, more, batch_size), MORE_CANDIDATES, owner,
                                    floor=MORE_FLOOR)
            more_judged = _judge(pool, verifier, [features[n] for n in again], more_hits, [judged[n] for n in again])
            for n, found in zip(again, more_judged):
                judged[n].update(found)
            judged_by_image = {id(image): j for (_, image), j in zip(queries, judged)}
            ranked_by_image = dict(zip((id(image) for _, image in queries), ranked))
            for source, image in zip(chunk, loaded):
                if isinstance(image, ImageError):
                    yield QueryResult(image.source, page, top_k, error=image.reason, not_image=image.not_image)
                    continue
                yield QueryResult(
                    image.source, page, top_k,
                    _verdict_page(judged_by_image[id(image)], ranked_by_image[id(image)], offset, page, threshold,
                                  copies_only),
                )


def _load_or_error(embedder):
    def load(source):
        try:
            # Decoded with the detail the keypoint check wants; the views are shrunk to the model's size anyway.
            return embedder.load(source, min_side=QUERY_SIDE)
        except ImageError as e:
            return e

    return load


def _embed_views(embedder, views_per_query, batch_size) -> list:
    """Each query's view vectors (one model call over all views of the batch)."""
    flat = [view.image for query_views in views_per_query for view in query_views]
    vectors = embedder.embed_images(flat, batch_size)
    out, position = [], 0
    for query_views in views_per_query:
        out.append(vectors[position : position + len(query_views)])
        position += len(query_views)
    return out


def _candidates(collection, views_per_query, vectors_per_query, limit, owner, floor: float = -1.0) -> list[dict]:
    """For each query, {stored id: _Candidate} over the nearest ``limit`` images of each of its views
    (PART_CANDIDATES of a view of a part) at or above ``floor``, with the views that found each."""
    flat = [vector for vectors in vectors_per_query for vector in vectors]
    hits = collection.search(flat, top_k=max(limit, PART_CANDIDATES), owner=owner) if flat else []
    out, position = [], 0
    for query_views in views_per_query:
        candidates: dict[str, _Candidate] = {}
        for view, view_hits in zip(query_views, hits[position : position + len(query_views)]):
            for hit in view_hits[: PART_CANDIDATES if view.part else limit]:
                similarity = float(hit.distance)
                if similarity < floor:
                    break  # best first
                candidate = candidates.setdefault(hit.id, _Candidate(hit, similarity, view.name))
                if similarity > candidate.similarity:
                    candidate.hit, candidate.similarity, candidate.view = hit, similarity, view.name
                if view.region:
                    candidate.regions[view.name] = (view.box, similarity)
                elif similarity > candidate.whole_similarity:
                    candidate.whole_view, candidate.whole_similarity = view.name, similarity
        position += len(query_views)
        out.append(candidates)
    return out


def _judge(pool, verifier, features: list, candidates: list[dict], judged: list[dict]) -> list[dict]:
    """For each query: {id: (candidate, verdict, evidence)} for its candidates not judged yet.

    A candidate that a picture inside the query found is checked with that picture's own keypoints first (in a
    page, its text would take most of the query's), then with the whole query's; geometry is preferred to the
    low-texture cosine rule, whichever check it came from."""
    todo = [(n, c) for n, (found, done) in enumerate(zip(candidates, judged)) for key, c in found.items()
            if key not in done]
    boxes = list({(n, box) for n, c in todo for box, _ in c.regions.values()})
    # Each picture's keypoints once.
    regions = dict(zip(boxes, pool.map(lambda nb: features[nb[0]].region(nb[1]), boxes)))

    def one(task):
        n, candidate = task
        path = candidate.hit.entity.get("path", "")
        checks = sorted(candidate.regions.items(), key=lambda item: -item[1][1])
        tries = [(name, regions[(n, box)], similarity) for name, (box, similarity) in checks]
        # The whole query too; when only a picture inside it found the candidate, by geometry alone (similarity
        # 0: no cosine rule, no mirrored try, which that picture's own check made).
        tries.append((candidate.whole_view or candidate.view, features[n], candidate.whole_similarity))
        found = None
        for view, query, similarity in tries:
            verdict, evidence = verifier.judge(query, path, similarity)
            if verdict == COPY:
                evidence["view"] = view
                if evidence["method"] == "geometry":
                    return n, candidate.hit.id, (candidate, verdict, evidence)
                found = found or evidence
        if found is not None:
            return n, candidate.hit.id, (candidate, COPY, found)
        return n, candidate.hit.id, (candidate, SIMILAR, None)

    out: list[dict] = [{} for _ in candidates]
    for n, key, outcome in pool.map(one, todo):
        out[n][key] = outcome
    return out


def _has_copy(judged: dict) -> bool:
    return any(verdict == COPY for _, verdict, _ in judged.values())


def _verdict_page(judged, ranked_hits, offset, page, threshold, copies_only) -> list[Match]:
    copies = sorted(
        ((c, e) for c, verdict, e in judged.values() if verdict == COPY),
        # Geometric evidence first, the most agreeing keypoints first: the original before its smaller copies.
        key=lambda ce: (ce[1]["method"] != "geometry", -ce[1].get("inliers", 0), -ce[0].similarity),
    )
    matches, rank = [], offset
    if page == 1:
        for candidate, evidence in copies:
            rank += 1
            matches.append(_match(rank, candidate.hit, candidate.similarity, 1.0 - candidate.similarity, COPY,
                                  evidence))
    if copies_only:
        return matches
    copy_ids = {c.hit.id for c, _ in copies}
    for hit in ranked_hits:
        similarity = float(hit.distance)
        if threshold is not None and similarity < threshold:
            break
        if hit.id in copy_ids:
            continue  # listed with its evidence on page 1
        rank += 1
        matches.append(_match(rank, hit, similarity, 1.0 - similarity, SIMILAR))
    return matches


def _scores(collection: Collection, raw: float) -> tuple[float, float]:
    if collection.binary:
        bits = collection.config["dim"]
        return 1.0 - raw / bits, raw
    return raw, 1.0 - raw
