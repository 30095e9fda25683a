"""The duplicates rules on their own: which way an edit goes, which member is the original, union-find, where
moved copies go. No model, no Milvus: evidence and file facts are written out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgsearch.duplicates import Copy, Group, Member, choose_original, edit_direction, plan_moves, read_journal
from imgsearch.duplicates.moves import free_name
from imgsearch.duplicates.original import EDIT_MARGIN, PIXEL_TIE, QUANT_TIE, Facts, margin_is_frame
from imgsearch.duplicates.pairs import UnionFind
from imgsearch.errors import ImgsearchError
from imgsearch.evidence import FEATURES, GEOMETRY, Evidence

WHOLE = [0.0, 0.0, 1.0, 1.0]


def geometry(shown=1.0, covered=1.0, scale=1.0, region=WHOLE, in_copy=WHOLE) -> Evidence:
    return Evidence(GEOMETRY, inliers=100, matches=110, turned=0.0, scale=scale, mirrored=False,
                    original_region=list(region), original_shown=shown, original_in_copy=list(in_copy),
                    copy_covered=covered, similarity=0.9)


# --- edit_direction: +1 the stored file is the source of the query, -1 the other way, 0 it does not say ---------

def test_a_crop_comes_from_the_whole_picture():
    crop = geometry(shown=0.5, region=[0.25, 0.25, 0.75, 0.75])
    assert edit_direction(crop, False, False) == 1


def test_the_smaller_one_is_the_original_when_the_larger_is_framed_around_just_it():
    # The query shows part of the stored picture, and the stored picture's margin outside that part is a frame:
    # the stored file is the framed copy, the query the original. Without a frame the query is a crop.
    framed_stored = geometry(shown=0.64, region=[0.1, 0.1, 0.9, 0.9])
    assert edit_direction(framed_stored, False, True) == -1
    assert edit_direction(framed_stored, False, False) == 1


def test_a_picture_inside_the_query_is_framed_by_it_or_the_query_is_larger():
    inside = geometry(covered=0.64, in_copy=[0.1, 0.1, 0.9, 0.9])
    assert edit_direction(inside, True, False) == 1  # the query is the stored picture, framed
    assert edit_direction(inside, False, False) == -1  # the stored picture is a crop of the query


def test_framed_and_downscaled_at_once_says_nothing():
    # The query is a small copy of the picture inside the stored, framed file: which came first is for the
    # pixel rule (the framed file's picture alone) to say.
    assert edit_direction(geometry(shown=0.64, scale=0.3), False, True) == 0
    assert edit_direction(geometry(covered=0.64, scale=3.0), True, False) == 0


def test_scale_beyond_the_margin_says_which_was_made_smaller():
    low = 1 - EDIT_MARGIN
    assert edit_direction(geometry(scale=0.5), False, False) == 1
    assert edit_direction(geometry(scale=2.0), False, False) == -1
    assert edit_direction(geometry(scale=low + 0.01), False, False) == 0
    assert edit_direction(geometry(scale=1 / low - 0.01), False, False) == 0


def test_no_geometry_says_nothing():
    assert edit_direction(None, False, False) == 0
    assert edit_direction(Evidence(FEATURES, similarity=0.95, file_checked=True), True, True) == 0
    # Both partly shown (two overlapping crops): neither contains the other.
    assert edit_direction(geometry(shown=0.6, covered=0.6), False, False) == 0


def test_a_frame_is_a_uniform_margin_of_any_colour_whatever_the_picture_s_own_edges():
    rng = np.random.default_rng(5)
    picture = Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    for colour in ((0, 0, 0), (255, 255, 255), (128, 60, 60)):
        framed = ImageOps.expand(picture, border=30, fill=colour)
        box = (30 / 360, 30 / 260, 330 / 360, 230 / 260)
        assert margin_is_frame(framed, box), colour
        assert not margin_is_frame(framed, (0.0, 0.0, 1.0, 1.0))  # no margin at all
    # A dark night photo's own dark edge is no frame when the picture runs on into it with detail.
    busy = Image.fromarray(rng.integers(0, 40, (260, 360, 3), dtype=np.uint8))
    assert not margin_is_frame(busy, (30 / 360, 30 / 260, 330 / 360, 230 / 260))


# --- choose_original: the first rule that singles one member out decides ---------------------------------------

def member(name: str, mtime: float = 100.0) -> Member:
    return Member(name, f"/photos/{name}.jpg", 1000, mtime, 100, 100, "")


def facts(pixels=10_000, quantisation=2.0, digest="") -> Facts:
    return Facts(pixels, quantisation, digest)


def test_edited_from_decides_when_one_member_is_the_source_of_the_others():
    a, b, c = member("a"), member("b"), member("c")
    relations = {("b", "a"): geometry(scale=0.5), ("c", "a"): geometry(shown=0.5)}
    original, rule, reason = choose_original([a, b, c], relations, {m.id: facts() for m in (a, b, c)})
    assert (original.id, rule) == ("a", "edited-from") and "crops, downscales or framed" in reason


def test_most_pixels_decides_beyond_the_tie_margin_and_not_within_it():
    a, b = member("a"), member("b")
    bigger = {"a": facts(pixels=10_000), "b": facts(pixels=round(10_000 * (1 - 2 * PIXEL_TIE)))}
    assert choose_original([a, b], {}, bigger)[:2] == (a, "most-pixels")
    tied = {"a": facts(pixels=10_000, quantisation=4.0), "b": facts(pixels=round(10_000 * (1 - PIXEL_TIE / 2)))}
    original, rule, reason = choose_original([a, b], {}, tied)
    assert (original.id, rule) == ("b", "least-recompressed") and "quantisation 2.0" in reason


def test_least_recompressed_names_a_lossless_file_and_ties_within_its_margin():
    a, b = member("a"), member("b")
    assert choose_original([a, b], {}, {"a": facts(quantisation=3.0), "b": facts(quantisation=0.0)})[2] == \
        "least recompressed: lossless"
    close = {"a": facts(quantisation=2.0), "b": facts(quantisation=2.0 * (1 + QUANT_TIE / 2))}
    assert choose_original([a, b], {}, close)[1] == "earliest-mtime"


def test_a_frame_the_evidence_confirms_is_not_counted_as_pixels():
    # The framed file has more pixels, but its picture is the other file at 64% of its area: the unframed
    # file, larger than that, is the original, even where no edit direction is known (framed and downscaled).
    framed, plain = member("framed"), member("plain")
    relation = geometry(shown=0.64, region=[0.1, 0.1, 0.9, 0.9], scale=0.5)
    sizes = {"framed": facts(pixels=40_000), "plain": facts(pixels=30_000)}
    checks = {("framed", (0.1, 0.1, 0.9, 0.9)): True, ("plain", (0.0, 0.0, 1.0, 1.0)): False}
    assert choose_original([framed, plain], {("plain", "framed"): relation}, sizes, checks)[:2] == \
        (plain, "most-pixels")
    assert choose_original([framed, plain], {("plain", "framed"): relation}, sizes, {})[0] == framed


def test_identical_files_are_said_to_be_identical():
    a, b = member("a", mtime=50.0), member("b", mtime=60.0)
    original, rule, reason = choose_original([b, a], {}, {"a": facts(digest="x"), "b": facts(digest="x")})
    assert (original, rule) == (a, "earliest-mtime") and reason.startswith("identical files")
    assert not choose_original([b, a], {}, {"a": facts(digest="x"), "b": facts(digest="y")})[2].startswith(
        "identical")


def test_earliest_mtime_then_path_break_the_last_tie():
    older, newer = member("z", mtime=50.0), member("a", mtime=60.0)
    same = {m.id: facts() for m in (older, newer)}
    assert choose_original([newer, older], {}, same)[:2] == (older, "earliest-mtime")
    twin_a, twin_b = member("b", mtime=50.0), member("a", mtime=50.0)
    assert choose_original([twin_a, twin_b], {}, {"a": facts(), "b": facts()})[0].id == "a"


def test_edits_narrow_the_field_before_the_next_rule():
    # b and c are both unbeaten sources (c is a crop of nothing known, b the source of a): the pixel rule then
    # chooses among b and c only, never the beaten a, however many pixels it has.
    a, b, c = member("a"), member("b"), member("c")
    relations = {("a", "b"): geometry(scale=0.5)}
    sizes = {"a": facts(pixels=99_999), "b": facts(pixels=5_000), "c": facts(pixels=8_000)}
    assert choose_original([a, b, c], relations, sizes)[:2] == (c, "most-pixels")


# --- union-find ------------------------------------------------------------------------------------------------

def test_union_find_joins_transitively_with_the_smallest_id_as_root():
    links = UnionFind()
    links.union("d", "c")
    links.union("b", "a")
    links.union("c", "b")
    links.union("x", "y")
    links.union("a", "d")  # already joined: nothing changes
    assert sorted(links.groups()) == [["a", "b", "c", "d"], ["x", "y"]]
    assert links.find("d") == "a" and links.find("y") == "x"
    assert links.find("never-seen") == "never-seen"


def test_union_find_compresses_paths():
    links = UnionFind()
    for a, b in zip("edcb", "dcba"):
        links.union(a, b)
    links.find("e")
    assert all(links.parent[x] == "a" for x in "bcde")


# --- where moved copies go -------------------------------------------------------------------------------------

def group(original: str, *copies: str) -> Group:
    def m(path):
        return Member(path, path, 1, 1.0, 1, 1, "")

    return Group(m(original), [Copy(m(p), 0.9, None) for p in copies], "most-pixels", "")


def test_moves_keep_folders_relative_to_the_copies_common_folder(tmp_path):
    groups = [group("/p/a.jpg", "/p/2024/a-small.jpg"), group("/p/b.jpg", "/p/2023/trip/b-crop.jpg")]
    moves = plan_moves(groups, str(tmp_path / "dest"))
    assert [(m.source, m.target) for m in moves] == [
        ("/p/2024/a-small.jpg", str(tmp_path / "dest" / "2024" / "a-small.jpg")),
        ("/p/2023/trip/b-crop.jpg", str(tmp_path / "dest" / "2023" / "trip" / "b-crop.jpg")),
    ]
    assert plan_moves([group("/p/a.jpg")], str(tmp_path)) == []


def test_a_taken_name_gets_a_number_never_an_overwrite(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"already here")
    assert free_name(str(tmp_path / "x.jpg"), set()) == str(tmp_path / "x (2).jpg")
    assert free_name(str(tmp_path / "x.jpg"), {str(tmp_path / "x (2).jpg")}) == str(tmp_path / "x (3).jpg")
    assert free_name(str(tmp_path / "new.jpg"), set()) == str(tmp_path / "new.jpg")
    # Two copies that would land on one name in the plan: the second is numbered.
    moves = plan_moves([group("/p/a.jpg", "/p/one/c.jpg"), group("/p/b.jpg", "/p/one/c.jpg")], str(tmp_path))
    assert [m.target for m in moves] == [str(tmp_path / "c.jpg"), str(tmp_path / "c (2).jpg")]


@pytest.mark.parametrize("text", ["not json", "{}", json.dumps({"version": 99, "moves": []}), "[]"])
def test_only_a_moves_journal_is_read_back(tmp_path, text):
    path = tmp_path / "journal.json"
    path.write_text(text)
    with pytest.raises(ImgsearchError, match="moves journal"):
        read_journal(str(path))
