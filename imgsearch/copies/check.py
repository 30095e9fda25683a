"""Checking candidates: is each stored image a copy of the query? (``verdict.Verifier`` on every pair.)"""

from __future__ import annotations

from dataclasses import dataclass

from ..verdict import NOT_A_COPY, Judgement, QueryFeatures, Verifier
from .candidates import Candidate


@dataclass(frozen=True)
class Checked:
    candidate: Candidate
    judgement: Judgement


def check_candidates(pool, verifier: Verifier, features: list[QueryFeatures],
                     candidates: list[dict[str, Candidate]], checked: list[dict]) -> list[dict[str, Checked]]:
    """For each query: {id: Checked} for its candidates not in ``checked`` yet, spread over the pool's threads.

    A candidate that a picture inside the query found is checked with that picture's own keypoints first (in a
    page, its text would take most of the query's), then with the whole query's; geometry is preferred to the
    low-texture cosine rule, whichever check it came from."""
    todo = [(n, c) for n, (found, done) in enumerate(zip(candidates, checked)) for key, c in found.items()
            if key not in done]
    boxes = list({(n, box) for n, c in todo for box, _ in c.regions.values()})
    # Each picture's keypoints once.
    regions = dict(zip(boxes, pool.map(lambda nb: features[nb[0]].region(nb[1]), boxes)))

    def one(task):
        n, candidate = task
        tries = [(name, regions[(n, box)], similarity)
                 for name, (box, similarity) in sorted(candidate.regions.items(), key=lambda item: -item[1][1])]
        # The whole query too; when only a picture inside it found the candidate, by geometry alone (similarity
        # 0: no cosine rule, no mirrored try, which that picture's own check made).
        tries.append((candidate.whole_view or candidate.view, features[n], candidate.whole_similarity))
        return n, Checked(candidate, judge_tries(verifier, candidate.hit.entity.get("path", ""), tries))

    out: list[dict[str, Checked]] = [{} for _ in candidates]
    for n, result in pool.map(one, todo):
        out[n][result.candidate.hit.id] = result
    return out


def judge_tries(verifier: Verifier, path: str, tries: list[tuple[str, QueryFeatures, float]]) -> Judgement:
    """The first geometric copy verdict over the tries (view name, its keypoints, its similarity), else the
    first copy by features, else not a copy."""
    found = None
    for view, query, similarity in tries:
        judgement = verifier.judge(query, path, similarity)
        if judgement.is_copy:
            judgement = Judgement(judgement.match, judgement.evidence.seen_in(view))
            if judgement.evidence.is_geometric:
                return judgement
            found = found or judgement
    return found or NOT_A_COPY
