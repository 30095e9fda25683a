"""Search over a real collection: edited copies find their originals, pagination, threshold, owners, limits."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import SAMPLE_PHOTOS
from helpers import bordered_copy, run_cli

from imgsearch.errors import StoreError
from imgsearch.indexing import index_paths
from imgsearch.search import SearchOptions, search_images
from imgsearch.store import MAX_TOP_K, Store

ALICE = SAMPLE_PHOTOS[:8]


@pytest.fixture(scope="module")
def milvus(milvus_module):
    return milvus_module


@pytest.fixture(scope="module")
def gallery(milvus, vgg, photo_dir, tmp_path_factory):
    """All sample photos indexed: the first eight owned by alice, the rest by bob. Tests only read it."""
    tmp_path = tmp_path_factory.mktemp("gallery")
    folders = {"alice": tmp_path / "alice", "bob": tmp_path / "bob"}
    for owner, folder in folders.items():
        folder.mkdir()
    for name in SAMPLE_PHOTOS:
        shutil.copy2(photo_dir / f"{name}.jpg", folders["alice" if name in ALICE else "bob"] / f"{name}.jpg")
    with Store(milvus.uri) as store:
        coll = store.collection(milvus.collection, vgg.config())
        for owner, folder in folders.items():
            index_paths(coll, vgg, [folder], owner=owner)
    return folders


def _edited(sample_images, name):
    """The kind of copy users hold: black border, JPEG-recompressed."""
    return (bordered_copy(sample_images[name]), f"{name}-edited")


def test_edited_copies_find_their_original_at_rank_1(coll, vgg, sample_images):
    queries = [_edited(sample_images, name) for name in SAMPLE_PHOTOS]
    results = list(search_images(coll, vgg, queries, SearchOptions(top_k=3)))
    assert [r.query for r in results] == [f"{n}-edited" for n in SAMPLE_PHOTOS]
    for name, result in zip(SAMPLE_PHOTOS, results):
        assert result.results[0].path.endswith(f"/{name}.jpg"), (name, result.results[0])
        assert result.results[0].similarity > result.results[1].similarity
        assert [m.rank for m in result.results] == [1, 2, 3]


def test_pages_are_slices_of_one_ranking(coll, vgg, photo_dir):
    query = [photo_dir / "coffee.jpg"]
    (six,) = search_images(coll, vgg, query, SearchOptions(top_k=6))
    (page1,) = search_images(coll, vgg, query, SearchOptions(top_k=3, page=1))
    (page2,) = search_images(coll, vgg, query, SearchOptions(top_k=3, page=2))
    assert [(m.rank, m.id) for m in page1.results + page2.results] == [(m.rank, m.id) for m in six.results]
    assert [m.rank for m in page2.results] == [4, 5, 6]


def test_threshold_keeps_exactly_the_hits_at_least_that_similar(coll, vgg, photo_dir):
    query = [photo_dir / "rocket.jpg"]
    (full,) = search_images(coll, vgg, query, SearchOptions(top_k=10))
    cut = full.results[3].similarity
    (kept,) = search_images(coll, vgg, query, SearchOptions(top_k=10, threshold=cut))
    assert [m.id for m in kept.results] == [m.id for m in full.results if m.similarity >= cut]
    assert len(kept.results) == 4
    (none,) = search_images(coll, vgg, query, SearchOptions(top_k=10, threshold=0.99999))
    assert [m.path for m in none.results] == [full.results[0].path]  # only the image itself


def test_owner_sees_only_their_images(coll, vgg, photo_dir):
    (result,) = search_images(coll, vgg, [photo_dir / "coffee.jpg"], SearchOptions(top_k=20, owner="bob"))
    assert len(result.results) == len(SAMPLE_PHOTOS) - len(ALICE)
    assert {m.owner for m in result.results} == {"bob"}
    assert not any(m.path.endswith("/coffee.jpg") for m in result.results)  # coffee is alice's
    (nobody,) = search_images(coll, vgg, [photo_dir / "coffee.jpg"], SearchOptions(top_k=5, owner="carol"))
    assert nobody.results == []


def test_more_asked_than_stored_gives_each_row_once(coll, vgg, photo_dir):
    (result,) = search_images(coll, vgg, [photo_dir / "moon.jpg"], SearchOptions(top_k=100))
    ids = [m.id for m in result.results]
    assert len(ids) == len(SAMPLE_PHOTOS) == len(set(ids))
    (past_the_end,) = search_images(coll, vgg, [photo_dir / "moon.jpg"], SearchOptions(top_k=10, page=3))
    assert past_the_end.results == []


@pytest.mark.parametrize("top_k, page", [(MAX_TOP_K + 1, 1), (1000, 17), (0, 1), (10, 0)])
def test_server_limits_are_enforced_everywhere(coll, vgg, photo_dir, top_k, page):
    with pytest.raises(StoreError):
        list(search_images(coll, vgg, [photo_dir / "moon.jpg"], SearchOptions(top_k=top_k, page=page)))


def test_a_collection_of_other_settings_is_refused(milvus, vgg, gallery):
    from imgsearch.features import VGG16Features

    with Store(milvus.uri) as store:
        with pytest.raises(StoreError, match="pooling=max"):
            store.collection(milvus.collection, VGG16Features(pooling="gem").config())


# --- the command line --------------------------------------------------------------------------------


def _run(milvus, vgg_weights, *args, input=None):
    base = ["--uri", milvus.uri, "--collection", milvus.collection]
    return run_cli(*args, *base, input=input, weights=vgg_weights)


def test_cli_json_lines_one_per_query(milvus, vgg_weights, gallery, photo_dir, sample_images, tmp_path):
    edited = tmp_path / "copy.jpg"
    edited.write_bytes(_edited(sample_images, "chelsea")[0])
    args = ["search", str(edited), str(photo_dir / "camera.jpg"), "-k", "2", "--threshold", "-1", "--json"]
    result = _run(milvus, vgg_weights, *args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == [str(edited), str(photo_dir / "camera.jpg")]
    first = lines[0]
    assert (first["page"], first["top_k"], len(first["results"])) == (1, 2, 2)
    assert set(first["results"][0]) == {"rank", "id", "path", "similarity", "distance", "owner", "match", "evidence"}
    assert first["results"][0]["match"] == "copy" and first["results"][1]["match"] == "similar"
    assert first["results"][0]["path"].endswith("/chelsea.jpg") and first["results"][0]["owner"] == "alice"
    assert abs(first["results"][0]["similarity"] + first["results"][0]["distance"] - 1) < 1e-6


def test_cli_default_threshold_keeps_only_the_same_picture(milvus, vgg_weights, gallery, sample_images, tmp_path):
    from imgsearch.cli import gallery as cli_module
    from imgsearch.search import DEFAULT_THRESHOLD

    assert cli_module._DEFAULT_THRESHOLD == DEFAULT_THRESHOLD
    edited = tmp_path / "copy.jpg"
    edited.write_bytes(_edited(sample_images, "astronaut")[0])
    result = _run(milvus, vgg_weights, "search", str(edited), "-k", "5", "--json")
    hits = json.loads(result.stdout)["results"]
    assert [h["path"].rsplit("/", 1)[1] for h in hits] == ["astronaut.jpg"]  # the unrelated photos are cut
    everything = json.loads(_run(milvus, vgg_weights, "search", str(edited), "-k", "5", "--threshold", "-1",
                                 "--json").stdout)["results"]
    assert len(everything) == 5 and all(h["similarity"] < DEFAULT_THRESHOLD for h in everything[1:])


def test_cli_stdin_folder_and_table(milvus, vgg_weights, gallery, sample_images):
    data = _edited(sample_images, "rocket")[0]
    result = _run(milvus, vgg_weights, "search", "-", "-k", "1", "--json", input=data)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["path"].endswith("/rocket.jpg")
    (gallery["bob"] / "notes.txt").write_text("not a photo")  # skipped in a folder query, not an error
    result = _run(milvus, vgg_weights, "search", str(gallery["bob"]), "-k", "1", "--json")
    (gallery["bob"] / "notes.txt").unlink()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(SAMPLE_PHOTOS) - len(ALICE)
    assert all(line["results"][0]["path"] == line["query"] for line in lines)  # each finds itself
    table = _run(milvus, vgg_weights, "search", str(gallery["alice"] / "coffee.jpg"), "-k", "2")
    assert table.exit_code == 0 and "coffee.jpg" in table.stdout and "similarity" in table.stdout


def test_cli_errors_are_one_line(milvus, vgg_weights, gallery, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    result = _run(milvus, vgg_weights, "search", str(bad), "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["error"]
    result = _run(milvus, vgg_weights, "search", str(bad), "-k", "20000")
    assert result.exit_code == 2 and "16384" in result.stderr and "Traceback" not in result.output
    result = run_cli("search", bad, "--uri", milvus.uri, "--collection", "nothing_here")
    assert result.exit_code == 2 and "no collection" in result.stderr


def test_cli_stats(milvus, vgg_weights, gallery):
    result = _run(milvus, vgg_weights, "stats", "--json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["collections"]
    assert report["rows"] == len(SAMPLE_PHOTOS)
    assert report["owners"] == {"alice": len(ALICE), "bob": len(SAMPLE_PHOTOS) - len(ALICE)}
    assert report["config"]["model"] == "vgg16-imagenet" and report["config"]["dim"] == 512
