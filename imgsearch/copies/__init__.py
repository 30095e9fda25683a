"""Copy detection for search: which stored images are copies of a query (the same picture, edited), with evidence.

The query is looked at in a few views (``views.first_views``: the picture; the picture without a uniform frame,
unless the model cuts that frame itself, as VGG16 does black borders; and the pictures inside it: a page's photo,
a collage's tiles); the nearest stored images of each view are candidates (``candidates``), and each candidate is
checked against the query with local features (``check``, through ``verdict.Verifier``), and against the picture
inside the query that found it, if one did. Only when that finds no copy are the query's turned views searched
too (``views.more_views``), for copies turned a quarter; their close candidates are checked the same way.

``find_copies`` does this for a batch of decoded queries; ``search.search_images`` puts the copies first on page 1
and the ranked neighbours after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import views
from ..evidence import Evidence
from ..store import Collection, Hit
from ..verdict import QUERY_SIDE, Verifier
from .candidates import FIRST_CANDIDATES, MORE_CANDIDATES, MORE_FLOOR, embed_views, gather
from .check import Checked, check_candidates

__all__ = ["QUERY_SIDE", "FoundCopy", "CopySearch", "find_copies"]


@dataclass(frozen=True)
class FoundCopy:
    hit: Hit
    similarity: float  # the best over the query's views that found it
    evidence: Evidence

    @property
    def order(self) -> tuple:
        """Geometric evidence first, the most agreeing keypoints first: the original before its smaller copies."""
        return (not self.evidence.is_geometric, -(self.evidence.inliers or 0), -self.similarity)


@dataclass(frozen=True)
class CopySearch:
    """What the copy check found for one query."""

    picture_vector: np.ndarray  # the picture view's vector: the page's ranking is its, as without the verdict
    copies: list[FoundCopy]  # best first (FoundCopy.order)


def find_copies(collection: Collection, embedder, verifier: Verifier, pool, images: list,
                owner: str | None, batch_size: int) -> list[CopySearch]:
    """The copies of each decoded query (``features.LoadedImage``, decoded at ``QUERY_SIDE`` or more).

    Keypoints of every query, then every (query, candidate) check, each spread over the pool's threads: one
    query at a time would leave a core idle between queries (serve batches up to 32 of them)."""
    # The queries' keypoints (OpenCV, outside the GIL) are found on the pool's threads while this one looks at the
    # views, runs the model and searches: a one-shot query's 0.1 s of SIFT no longer waits for those.
    pending = [pool.submit(verifier.query, image.image, (image.width, image.height)) for image in images]
    first = [views.first_views(image.image, embedder.content_box) for image in images]
    first_vectors = embed_views(embedder, first, batch_size)
    first_candidates = gather(collection, first, first_vectors, FIRST_CANDIDATES, owner)
    features = [job.result() for job in pending]
    checked = check_candidates(pool, verifier, features, first_candidates, [{} for _ in images])
    # Second round, only for queries whose first views found no copy.
    again = [n for n in range(len(images)) if not any(c.judgement.is_copy for c in checked[n].values())]
    more = [views.more_views(images[n].image) for n in again]
    more_candidates = gather(collection, more, embed_views(embedder, more, batch_size), MORE_CANDIDATES, owner,
                             floor=MORE_FLOOR)
    more_checked = check_candidates(pool, verifier, [features[n] for n in again], more_candidates,
                                    [checked[n] for n in again])
    for n, found in zip(again, more_checked):
        checked[n].update(found)
    return [CopySearch(vectors[0], _copies(found)) for vectors, found in zip(first_vectors, checked)]


def _copies(checked: dict[str, Checked]) -> list[FoundCopy]:
    found = [FoundCopy(c.candidate.hit, c.candidate.similarity, c.judgement.evidence)
             for c in checked.values() if c.judgement.is_copy]
    return sorted(found, key=lambda copy: copy.order)
