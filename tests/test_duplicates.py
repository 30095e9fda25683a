"""`imgsearch duplicates`: groups of copies over a real collection, the original chosen, reports, safe moves.

Real photos (scikit-image's samples) and edited copies of some of them (downscaled, cropped, framed, turned,
recompressed), indexed with genuine weights into a real Milvus Lite database (and the server, for the grouping).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import time
from html.parser import HTMLParser

import pytest
from conftest import SAMPLE_PHOTOS
from helpers import json_lines, run_cli
from PIL import Image

from imgsearch.duplicates import find_duplicates
from imgsearch.indexing import index_paths
from imgsearch.store import Store, row_id

EDITED = ("astronaut", "coffee", "rocket", "chelsea", "moon")


def _edits(sample_images) -> dict[str, Image.Image]:
    """copy file (relative to the edits folder) -> picture; each edited from the photo its name starts with."""
    astronaut, coffee = sample_images["astronaut"].convert("RGB"), sample_images["coffee"].convert("RGB")
    w, h = astronaut.size
    framed = Image.new("RGB", (coffee.width + 120, coffee.height + 120), (255, 255, 255))
    framed.paste(coffee, (60, 60))
    chelsea = sample_images["chelsea"].convert("RGB")
    moon = sample_images["moon"].convert("RGB")  # a dark photo whose own edges are nearly black
    black_framed = Image.new("RGB", (moon.width + 100, moon.height + 100), (0, 0, 0))
    black_framed.paste(moon, (50, 50))
    return {
        "astronaut-40pct.jpg": astronaut.resize((w * 4 // 10, h * 4 // 10)),
        "2024/astronaut-crop.jpg": astronaut.crop((w // 8, h // 8, w * 7 // 8, h * 7 // 8)),
        "coffee-framed.jpg": framed,
        "2024/coffee-turned.jpg": coffee.rotate(90, expand=True),
        "rocket-q30.jpg": sample_images["rocket"].convert("RGB"),  # recompressed: saved at quality 30 below
        "chelsea-half.jpg": chelsea.resize((chelsea.width // 2, chelsea.height // 2)),
        "moon-black-frame.jpg": black_framed,
    }


def _expected(folder) -> dict[str, set[str]]:
    """original path -> its copies' paths."""
    originals = folder / "originals"
    out: dict[str, set[str]] = {str(originals / f"{name}.jpg"): set() for name in EDITED}
    for rel in _edits_names():
        name = os.path.basename(rel).split("-")[0]
        out[str(originals / f"{name}.jpg")].add(str(folder / "edits" / rel))
    return out


def _edits_names():
    return ("astronaut-40pct.jpg", "2024/astronaut-crop.jpg", "coffee-framed.jpg", "2024/coffee-turned.jpg",
            "rocket-q30.jpg", "chelsea-half.jpg", "moon-black-frame.jpg")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, sample_images, vgg):
    """All sample photos (quality 95) and, written a second later, the edited copies (quality 85; rocket's at 30)."""
    folder = tmp_path_factory.mktemp("dups")
    originals = folder / "originals"
    originals.mkdir()
    for name in SAMPLE_PHOTOS:
        sample_images[name].convert("RGB").save(originals / f"{name}.jpg", quality=95)
    time.sleep(1.1)  # the copies are younger than their originals, as made copies are
    for rel, picture in _edits(sample_images).items():
        path = folder / "edits" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, quality=30 if rel.startswith("rocket") else 85)
    uri = str(folder / "imgsearch.db")
    with Store(uri) as store:
        index_paths(store.collection("images", vgg.config()), vgg, [folder])
    return folder, uri


def _as_sets(groups) -> dict[str, set[str]]:
    return {g["original"]["path"]: {c["path"] for c in g["copies"]} for g in groups}


def test_groups_are_exactly_the_copies_and_the_original_is_the_unedited_file(gallery, vgg):
    folder, uri = gallery
    with Store(uri) as store:
        report = find_duplicates(store.collection("images", vgg.config(), create=False))
    groups = [g.as_dict() for g in report.groups]
    # Exactly the planted groups: every unrelated photo (textures, cells, the moon...) stays out of them.
    assert _as_sets(groups) == _expected(folder)
    assert report.rows == len(SAMPLE_PHOTOS) + len(_edits_names())
    assert not report.unreadable
    by_original = {os.path.basename(g["original"]["path"]): g for g in groups}
    # The astronaut's copies are a downscale and a crop of it: the evidence says so, and decides.
    astronaut = by_original["astronaut.jpg"]
    assert astronaut["rule"] == "edited-from"
    evidence = {os.path.basename(c["path"]): c["evidence"] for c in astronaut["copies"]}
    assert 0.35 <= evidence["astronaut-40pct.jpg"]["scale"] <= 0.45
    assert 0.45 <= evidence["astronaut-crop.jpg"]["original_shown"] <= 0.65
    coffee = {os.path.basename(c["path"]): c["evidence"] for c in by_original["coffee.jpg"]["copies"]}
    assert coffee["coffee-framed.jpg"]["copy_covered"] < 0.8
    assert abs(coffee["coffee-turned.jpg"]["turned"] - 90) < 3
    assert by_original["rocket.jpg"]["rule"] == "least-recompressed"  # same pixels: the next rule decides
    # A black frame around a dark photo is a frame, not picture: the unframed file is the original.
    assert by_original["moon.jpg"]["rule"] == "edited-from"
    assert all(c["evidence"]["summary"] for g in groups for c in g["copies"])


def test_outputs_parse_json_csv_and_an_offline_contact_sheet(gallery, tmp_path):
    folder, uri = gallery
    result = run_cli("duplicates", "--uri", uri, "--json", "--csv", tmp_path / "g.csv", "--html", tmp_path / "g.html")
    assert result.exit_code == 0, result.output
    groups = json_lines(result.stdout)
    assert _as_sets(groups) == _expected(folder)
    assert set(groups[0]) == {"original", "copies", "rule", "reason"}
    assert set(groups[0]["copies"][0]) >= {"path", "similarity", "evidence"}

    with open(tmp_path / "g.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    originals = {r["path"] for r in rows if r["role"] == "original"}
    assert originals == set(_expected(folder))
    assert {r["path"] for r in rows if r["role"] == "copy"} == set().union(*_expected(folder).values())
    assert all(r["evidence"] for r in rows if r["role"] == "copy")

    class Sheet(HTMLParser):
        def __init__(self):
            super().__init__()
            self.images, self.figures = [], []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "img":
                self.images.append(attrs["src"])
            if tag == "figure":
                self.figures.append(attrs["class"])

    sheet = Sheet()
    sheet.feed((tmp_path / "g.html").read_text(encoding="utf-8"))
    assert sheet.figures.count("original") == len(groups)
    assert len(sheet.images) == len(groups) + sum(len(g["copies"]) for g in groups)
    assert all(src.startswith("data:image/jpeg;base64,") for src in sheet.images)  # nothing to fetch: offline
    thumb = Image.open(io.BytesIO(base64.b64decode(sheet.images[0].split(",", 1)[1])))
    assert max(thumb.size) <= 160


def test_without_yes_nothing_moves(gallery, tmp_path):
    folder, uri = gallery
    before = sorted(p for p in folder.rglob("*.jpg"))
    result = run_cli("duplicates", "--uri", uri, "--move-copies-to", tmp_path / "moved")
    assert result.exit_code == 0, result.output
    assert "would move" in result.stderr and "nothing moved" in result.stderr
    assert sorted(p for p in folder.rglob("*.jpg")) == before
    assert not (tmp_path / "moved").exists()


def test_user_errors_are_one_line_with_exit_2(gallery, tmp_path):
    folder, uri = gallery
    not_manifest = tmp_path / "notes.json"
    not_manifest.write_text("{}")
    for args in (["--undo", not_manifest], ["--yes"]):
        result = run_cli("duplicates", "--uri", uri, *args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_move_then_no_group_is_left_then_undo_restores_files_and_rows(gallery, vgg, tmp_path):
    """Runs last: it moves the module's copies and puts them back."""
    folder, uri = gallery
    dest = tmp_path / "moved"
    (dest / "2024").mkdir(parents=True)
    (dest / "2024" / "coffee-turned.jpg").write_bytes(b"someone else's file")  # must not be overwritten
    copies = sorted(set().union(*_expected(folder).values()))
    with Store(uri) as store:
        rows_before = store.collection("images", vgg.config(), create=False).count()

    result = run_cli("duplicates", folder, "--uri", uri, "--move-copies-to", dest, "--yes")
    assert result.exit_code == 0, result.output
    assert not any(os.path.exists(p) for p in copies)
    assert (dest / "astronaut-40pct.jpg").is_file() and (dest / "2024" / "astronaut-crop.jpg").is_file()
    assert (dest / "2024" / "coffee-turned.jpg").read_bytes() == b"someone else's file"
    assert (dest / "2024" / "coffee-turned (2).jpg").is_file()
    (manifest,) = dest.glob("imgsearch-duplicates-*.json")
    assert f"imgsearch duplicates --undo {manifest}" in result.stderr
    moved = {e["from"]: e["to"] for e in json.loads(manifest.read_text())["moves"]}
    assert sorted(moved) == copies
    with Store(uri) as store:
        coll = store.collection("images", vgg.config(), create=False)
        assert coll.count() == rows_before  # nothing lost or duplicated
        assert not coll.get([row_id(p) for p in copies])
        assert {r["path"] for r in coll.get([row_id(t) for t in moved.values()], ("path",)).values()} \
            == set(moved.values())

    again = run_cli("duplicates", folder, "--uri", uri, "--json")
    assert again.exit_code == 0, again.output
    assert json_lines(again.stdout) == []  # no group is left in the gallery

    undo = run_cli("duplicates", "--undo", manifest, "--uri", uri)
    assert undo.exit_code == 0, undo.output
    assert all(os.path.isfile(p) for p in copies)
    assert (dest / "2024" / "coffee-turned.jpg").read_bytes() == b"someone else's file"
    with Store(uri) as store:
        coll = store.collection("images", vgg.config(), create=False)
        assert coll.count() == rows_before
        assert {r["path"] for r in coll.get([row_id(p) for p in copies], ("path",)).values()} == set(copies)
        assert not coll.get([row_id(t) for t in moved.values()])
    restored = run_cli("duplicates", folder, "--uri", uri, "--json")
    assert _as_sets(json_lines(restored.stdout)) == _expected(folder)


@pytest.mark.server
def test_grouping_on_a_milvus_server(milvus_server_uri, vgg, sample_images, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "rocket", "camera"):
        sample_images[name].convert("RGB").save(folder / f"{name}.jpg", quality=95)
    astronaut = sample_images["astronaut"].convert("RGB")
    astronaut.resize((astronaut.width // 3, astronaut.height // 3)).save(folder / "astronaut-small.jpg", quality=80)
    name = "t_duplicates"
    with Store(milvus_server_uri) as store:
        if name in store.collection_names():
            store.drop(name)
        coll = store.collection(name, vgg.config())
        try:
            index_paths(coll, vgg, [folder], owner="alice")
            report = find_duplicates(coll, owner="alice")
            assert [(g.original.path, [c.member.path for c in g.copies], g.rule) for g in report.groups] == [
                (str(folder / "astronaut.jpg"), [str(folder / "astronaut-small.jpg")], "edited-from")
            ]
            assert find_duplicates(coll, owner="bob").groups == []
        finally:
            store.drop(name)


def test_a_mirrored_file_is_judged_a_mirrored_copy(sample_images, tmp_path):
    """Two stored files, one the other mirrored: the verdict tries the mirrored way with the first file's own
    keypoints reflected, and says so in its evidence."""
    from PIL import ImageOps

    from imgsearch.duplicates import FileJudge
    from imgsearch.verdict import COPY, MIRROR_SIMILARITY

    original, mirrored = tmp_path / "chelsea.jpg", tmp_path / "chelsea-mirrored.jpg"
    sample_images["chelsea"].convert("RGB").save(original, quality=90)
    ImageOps.mirror(sample_images["chelsea"].convert("RGB")).save(mirrored, quality=85)
    judgement = FileJudge()({"path": str(mirrored)}, {"path": str(original)}, MIRROR_SIMILARITY)
    verdict, evidence = judgement.match, judgement.evidence
    assert verdict == COPY and evidence.method == "geometry" and evidence.mirrored
