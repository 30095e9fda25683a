"""Search's own rules, without a model or Milvus: options checked against a collection, the threshold and distance
cuts, the verdict's page (copies first, then the ranked neighbours), and the evidence's words and JSON."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from imgsearch.copies import FoundCopy
from imgsearch.errors import ImgsearchError
from imgsearch.evidence import DENSE, FEATURES, GEOMETRY, THROUGH_COPIES, Evidence
from imgsearch.search import SearchOptions, ranked_page, verdict_page
from imgsearch.store import Hit, StoreError


@dataclass
class FakeCollection:
    binary: bool


def hit(name: str, similarity: float) -> Hit:
    return Hit(name, similarity, 1.0 - similarity, {"path": f"/p/{name}.jpg", "owner": "", "size": 1})


def copy_of(name: str, similarity: float, inliers: int | None = 50) -> FoundCopy:
    evidence = geometry(inliers) if inliers is not None else Evidence(FEATURES, similarity=similarity,
                                                                      file_checked=True)
    return FoundCopy(hit(name, similarity), similarity, evidence)


def geometry(inliers=50, **changes) -> Evidence:
    fields = dict(inliers=inliers, matches=inliers + 5, turned=0.0, scale=1.0, mirrored=False,
                  original_region=[0.0, 0.0, 1.0, 1.0], original_shown=1.0, original_in_copy=[0.0, 0.0, 1.0, 1.0],
                  copy_covered=1.0, perspective=False, original_corners=[[0, 0], [1, 0], [1, 1], [0, 1]],
                  similarity=0.9)
    fields.update(changes)
    return Evidence(GEOMETRY, **fields)


# --- options ---------------------------------------------------------------------------------------------------

def test_the_verdict_is_on_for_vgg16_collections_and_off_for_phash():
    assert SearchOptions().for_collection(FakeCollection(binary=False)).verify is True
    assert SearchOptions().for_collection(FakeCollection(binary=True)).verify is False
    assert SearchOptions(verify=False).for_collection(FakeCollection(binary=False)).verify is False


@pytest.mark.parametrize("options, message", [
    (SearchOptions(verify=True), "needs a VGG16 collection"),
    (SearchOptions(copies_only=True), "--copies-only needs the copy verdict"),
])
def test_contradictions_are_refused_on_phash(options, message):
    with pytest.raises(ImgsearchError, match=message):
        options.for_collection(FakeCollection(binary=True))


def test_pages_and_owners_are_checked():
    assert SearchOptions(top_k=7, page=3).offset == 14
    with pytest.raises(StoreError, match="Milvus serves ranks up to 16384"):
        SearchOptions(top_k=1000, page=17).for_collection(FakeCollection(binary=False))
    with pytest.raises(StoreError, match="owner"):
        SearchOptions(owner="a/b").for_collection(FakeCollection(binary=False))
    assert SearchOptions(owner="").for_collection(FakeCollection(binary=False)).owner == ""


def test_equal_options_are_one_group():
    assert len({SearchOptions(top_k=5), SearchOptions(top_k=5), SearchOptions(top_k=6)}) == 2


# --- cuts and pages --------------------------------------------------------------------------------------------

def test_the_threshold_stops_at_the_first_hit_below_it():
    hits = [hit("a", 0.95), hit("b", 0.85), hit("c", 0.79), hit("d", 0.81)]  # d out of order: never reached
    page = ranked_page(hits, SearchOptions(threshold=0.80))
    assert [(m.rank, m.id) for m in page] == [(1, "a"), (2, "b")]
    assert [m.id for m in ranked_page(hits, SearchOptions())] == ["a", "b", "c", "d"]


def test_the_distance_cut_and_later_pages_rank_from_the_offset():
    hits = [Hit("a", 1 - 2 / 64, 2, {}), Hit("b", 1 - 8 / 64, 8, {}), Hit("c", 1 - 12 / 64, 12, {})]
    page = ranked_page(hits, SearchOptions(top_k=3, page=2, max_distance=10))
    assert [(m.rank, m.id, m.distance) for m in page] == [(4, "a", 2), (5, "b", 8)]


def test_page_one_lists_the_copies_first_then_the_rest_without_them():
    copies = [copy_of("orig", 0.93, inliers=200), copy_of("crop", 0.97, inliers=40)]
    ranked = [hit("crop", 0.97), hit("other", 0.96), hit("orig", 0.93), hit("far", 0.70)]
    page = verdict_page(copies, ranked, SearchOptions(top_k=4, threshold=0.80))
    assert [(m.rank, m.id, m.match) for m in page] == [
        (1, "orig", "copy"), (2, "crop", "copy"), (3, "other", "similar")]
    assert page[0].evidence.inliers == 200 and page[2].evidence is None
    assert page[0].similarity == 0.93 and page[0].distance == pytest.approx(0.07)


def test_copies_are_shown_whatever_their_similarity_and_only_them_when_asked():
    copies = [copy_of("turned", 0.55)]
    page = verdict_page(copies, [hit("near", 0.9), hit("turned", 0.55)], SearchOptions(threshold=0.80))
    assert [(m.id, m.match) for m in page] == [("turned", "copy"), ("near", "similar")]
    only = verdict_page(copies, [hit("near", 0.9)], SearchOptions(copies_only=True))
    assert [m.id for m in only] == ["turned"]


def test_later_pages_hold_the_ranked_neighbours_alone():
    copies = [copy_of("orig", 0.99)]
    page = verdict_page(copies, [hit("x", 0.6), hit("orig", 0.55), hit("y", 0.5)],
                        SearchOptions(top_k=3, page=2, threshold=-1))
    assert [(m.rank, m.id, m.match) for m in page] == [(4, "x", "similar"), (5, "y", "similar")]


def test_geometric_copies_come_before_copies_by_features_and_more_agreeing_keypoints_first():
    found = [copy_of("flat", 0.99, inliers=None), copy_of("few", 0.95, inliers=20), copy_of("many", 0.90, 300)]
    assert [c.hit.id for c in sorted(found, key=lambda c: c.order)] == ["many", "few", "flat"]


# --- evidence --------------------------------------------------------------------------------------------------

def test_the_summary_says_what_was_done_to_the_original():
    assert geometry().summary == "the whole picture, same size and orientation; 50 matching keypoints agree"
    edited = geometry(mirrored=True, turned=350.0, scale=0.5, original_shown=0.5,
                      original_region=[0.0, 0.0, 0.5, 1.0], copy_covered=0.6)
    assert edited.summary == ("mirrored, turned 10° clockwise, scaled to 50%, shows 50% of the original "
                              "(x 0.00-0.50, y 0.00-1.00), the original fills 60% of it (framed or inside a larger "
                              "picture); 50 matching keypoints agree")
    assert geometry(turned=90.0).summary.startswith("turned 90° counterclockwise")
    assert geometry(perspective=True).summary.startswith("photographed at an angle;")
    dense = Evidence(DENSE, correlation=0.93, similarity=0.8)
    assert dense.summary.startswith("aligned pixel by pixel, fine structure correlates 0.93")
    assert list(dense.as_dict()) == ["method", "correlation", "similarity", "summary"]
    assert geometry(turned=1.0).summary.startswith("the whole picture")  # under 1.5 degrees is no turn
    assert "its file is not readable here" in Evidence(FEATURES, similarity=0.93, file_checked=False).summary
    assert "too little texture" in Evidence(FEATURES, similarity=0.93, file_checked=True).summary
    assert Evidence(THROUGH_COPIES).summary.startswith("a copy of another copy")


def test_evidence_from_a_part_of_the_query_is_told_in_the_whole_query_s_terms():
    part = geometry(original_in_copy=[0.0, 0.0, 1.0, 1.0], copy_covered=1.0)
    whole = part.in_whole_query((0.5, 0.25, 1.0, 0.75))
    assert whole.original_in_copy == [0.5, 0.25, 1.0, 0.75] and whole.copy_covered == 0.25
    assert "the original fills 25% of it" in whole.summary
    assert part.in_whole_query((0.0, 0.0, 1.0, 1.0)) is part


def test_as_dict_keeps_the_json_keys_and_their_order():
    found = geometry().seen_in("picture").as_dict()
    assert list(found) == ["method", "inliers", "matches", "turned", "scale", "mirrored", "original_region",
                           "original_shown", "original_in_copy", "copy_covered", "perspective", "original_corners",
                           "similarity", "summary", "view"]
    flat = Evidence(FEATURES, similarity=0.95, file_checked=True).as_dict()
    assert list(flat) == ["method", "similarity", "file_checked", "summary"]
    assert Evidence(THROUGH_COPIES).as_dict()["method"] == "through-copies"
