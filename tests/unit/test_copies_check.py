"""The copy check's choice among its tries (a candidate found through a picture inside the query is checked with
that picture's keypoints first, then with the whole query's): geometry wins, whichever try found it; the view that
found it is recorded. A stand-in verifier answers from a table; no model, no files."""

from __future__ import annotations

from imgsearch.copies.check import judge_tries
from imgsearch.evidence import DENSE, GEOMETRY, Evidence
from imgsearch.verdict import COPY, NOT_A_COPY, Judgement


class TableVerifier:
    def __init__(self, answers: dict):
        self.answers = answers
        self.asked = []

    def judge(self, query, path, similarity):
        self.asked.append(query)
        return self.answers.get(query, NOT_A_COPY)


GEOMETRIC = Judgement(COPY, Evidence(GEOMETRY, inliers=40, matches=42, turned=0.0, scale=1.0, mirrored=False,
                                     original_region=[0, 0, 1, 1], original_shown=1.0,
                                     original_in_copy=[0, 0, 1, 1], copy_covered=1.0, similarity=0.9))
ALIGNED = Judgement(COPY, Evidence(DENSE, correlation=0.95, similarity=0.9))


def test_the_first_geometric_copy_wins_and_says_which_view_found_it():
    verifier = TableVerifier({"region-1": ALIGNED, "whole": GEOMETRIC})
    found = judge_tries(verifier, "/p/x.jpg", [("region-1", "region-1", 0.8), ("picture", "whole", 0.9)])
    assert found.evidence.method == GEOMETRY and found.evidence.view == "picture"
    assert verifier.asked == ["region-1", "whole"]


def test_geometry_stops_the_tries():
    verifier = TableVerifier({"region-1": GEOMETRIC, "whole": ALIGNED})
    found = judge_tries(verifier, "/p/x.jpg", [("region-1", "region-1", 0.8), ("picture", "whole", 0.9)])
    assert found.evidence.view == "region-1" and verifier.asked == ["region-1"]


def test_without_geometry_the_first_other_copy_stands_and_else_none():
    verifier = TableVerifier({"whole": ALIGNED})
    found = judge_tries(verifier, "/p/x.jpg", [("region-1", "region-1", 0.8), ("frame-cut", "whole", 0.9)])
    assert found.evidence.method == DENSE and found.evidence.view == "frame-cut"
    assert judge_tries(TableVerifier({}), "/p/x.jpg", [("picture", "whole", 0.9)]) == NOT_A_COPY
