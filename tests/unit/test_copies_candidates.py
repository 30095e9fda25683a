"""Which stored images are checked (``copies.candidates.choose``): each view's first hits, as many as the limit
(fewer for a view of a part), none under the floor; one candidate per stored image, with every view that
found it. Hits are made by hand; no model, no Milvus."""

from __future__ import annotations

from PIL import Image

from imgsearch.copies.candidates import PART_CANDIDATES, choose
from imgsearch.store import Hit
from imgsearch.views import View

PICTURE = View("picture", Image.new("RGB", (8, 8)))
FRAME_CUT = View("frame-cut", Image.new("RGB", (8, 8)), (0.1, 0.1, 0.9, 0.9))
REGION = View("region-1", Image.new("RGB", (8, 8)), (0.2, 0.2, 0.6, 0.6), region=True)


def _hits(*similarities: float, prefix: str = "s") -> list[Hit]:
    return [Hit(f"{prefix}{n}", s, 1 - s, {"path": f"/p/{prefix}{n}.jpg"}) for n, s in enumerate(similarities)]


def test_each_view_brings_its_first_hits_up_to_the_limit():
    first, second = choose([[PICTURE], [PICTURE]], [[_hits(0.9, 0.8, 0.7, 0.6, 0.5)], [_hits(0.9, prefix="t")]], 4)
    assert list(first) == ["s0", "s1", "s2", "s3"] and list(second) == ["t0"]


def test_a_view_of_a_part_brings_its_few_nearest_whatever_the_limit():
    part_hits = _hits(0.95, 0.9, 0.85, 0.8, 0.75, prefix="p")
    (found,) = choose([[PICTURE, FRAME_CUT]], [[_hits(0.6), part_hits]], 12)
    assert sorted(found) == sorted(["s0"] + [f"p{n}" for n in range(PART_CANDIDATES)])


def test_the_floor_stops_a_view_s_hits():
    (found,) = choose([[PICTURE]], [[_hits(0.9, 0.72, 0.69, 0.95)]], 6, floor=0.70)
    assert list(found) == ["s0", "s1"]  # hits come best first: the first under the floor ends the view's


def test_an_image_found_by_several_views_is_one_candidate_that_remembers_them():
    (found,) = choose([[PICTURE, REGION]], [[_hits(0.6), [Hit("s0", 0.9, 0.1, {"path": "/p/s0.jpg"})]]], 6)
    candidate = found["s0"]
    assert candidate.similarity == 0.9 and candidate.view == "region-1"
    assert candidate.whole_view == "picture" and candidate.whole_similarity == 0.6
    assert candidate.regions == {"region-1": (REGION.box, 0.9)}
