"""Which stored images are checked for a copy: the nearest stored images of each of the query's views.

A view is the query seen one way (``views.View``): the picture, turned, without its frame, or a picture inside it
(a page's photo, a collage's tile: a region). Each stored image keeps the views that found it and their
similarities, so that the check can try the region that found it before the whole query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store import Collection, Hit

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
class Candidate:
    """A stored image that some views of one query found."""

    hit: Hit
    similarity: float  # the best over the views that found it
    view: str  # the view that scored it best
    whole_view: str = ""  # the best of the views of the whole query that found it ("": only regions did)
    whole_similarity: float = 0.0
    regions: dict = field(default_factory=dict)  # region view name -> (its box in the query, its similarity)

    def seen(self, hit: Hit, view) -> None:
        """Record that ``view`` (a ``views.View``) found this image at ``hit.similarity``."""
        similarity = hit.similarity
        if similarity > self.similarity:
            self.hit, self.similarity, self.view = hit, similarity, view.name
        if view.region:
            self.regions[view.name] = (view.box, similarity)
        elif similarity > self.whole_similarity:
            self.whole_view, self.whole_similarity = view.name, similarity


def embed_views(embedder, views_per_query: list[list], batch_size: int) -> list:
    """Each query's view vectors (one model call over all views of the batch)."""
    flat = [view.image for query_views in views_per_query for view in query_views]
    vectors = embedder.embed_images(flat, batch_size)
    out, position = [], 0
    for query_views in views_per_query:
        out.append(vectors[position : position + len(query_views)])
        position += len(query_views)
    return out


def gather(collection: Collection, views_per_query: list[list], vectors_per_query: list, limit: int,
           owner: str | None, floor: float = -1.0) -> list[dict[str, Candidate]]:
    """For each query, {stored id: Candidate} over the nearest ``limit`` images of each of its views
    (PART_CANDIDATES of a view of a part) at or above ``floor``, with the views that found each."""
    return choose(views_per_query, nearest(collection, vectors_per_query, limit, owner), limit, floor)


def nearest(collection: Collection, vectors_per_query: list, limit: int, owner: str | None) -> list[list]:
    """For each query, the nearest stored images of each of its views (enough for ``limit`` and for a part's)."""
    flat = [vector for vectors in vectors_per_query for vector in vectors]
    hits = collection.search(flat, top_k=max(limit, PART_CANDIDATES), owner=owner) if flat else []
    out, position = [], 0
    for vectors in vectors_per_query:
        out.append(hits[position : position + len(vectors)])
        position += len(vectors)
    return out


def choose(views_per_query: list[list], hits_per_query: list[list], limit: int,
           floor: float = -1.0) -> list[dict[str, Candidate]]:
    """For each query, {stored id: Candidate} over its views' first ``limit`` hits (PART_CANDIDATES for a view of
    a part) at or above ``floor``."""
    out = []
    for query_views, view_hits in zip(views_per_query, hits_per_query):
        candidates: dict[str, Candidate] = {}
        for view, hits in zip(query_views, view_hits):
            for hit in hits[: PART_CANDIDATES if view.part else limit]:
                if hit.similarity < floor:
                    break  # best first
                candidates.setdefault(hit.id, Candidate(hit, hit.similarity, view.name)).seen(hit, view)
        out.append(candidates)
    return out
