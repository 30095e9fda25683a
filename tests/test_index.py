"""Incremental indexing into a real Milvus database: skip unchanged, re-embed changed, prune, survive kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from imgsearch.cli import cli
from imgsearch.indexing import index_paths
from imgsearch.store import Store


def _paths(coll) -> list[str]:
    return [row["path"] for row in coll.iterate(("path",))]


def _open(milvus, embedder):
    store = Store(milvus.uri)
    return store, store.collection(milvus.collection, embedder.config())


def test_reindex_embeds_nothing_then_only_the_changed_file(milvus, vgg, small_photo_dir):
    store, coll = _open(milvus, vgg)
    with store:
        before = vgg.images_embedded
        first = index_paths(coll, vgg, [small_photo_dir])
        assert (first.new, first.updated, first.unchanged, first.failed) == (6, 0, 0, [])
        assert vgg.images_embedded - before == 6 and coll.count() == 6

        second = index_paths(coll, vgg, [small_photo_dir])
        assert (second.new, second.updated, second.unchanged) == (0, 0, 6)
        assert vgg.images_embedded - before == 6  # nothing decoded or embedded again

        changed = small_photo_dir / "coffee.jpg"
        old_hash = coll.get([_id(changed)], fields=("content_hash",))[_id(changed)]["content_hash"]
        from PIL import Image

        Image.open(changed).rotate(180).save(changed, quality=80)
        third = index_paths(coll, vgg, [small_photo_dir])
        assert (third.new, third.updated, third.unchanged) == (0, 1, 5)
        assert vgg.images_embedded - before == 7
        assert coll.count() == 6
        new_hash = coll.get([_id(changed)], fields=("content_hash",))[_id(changed)]["content_hash"]
        assert new_hash != old_hash


def _id(path: Path) -> str:
    from imgsearch.store import row_id

    return row_id(str(path))


def test_prune_removes_rows_of_deleted_files_only(milvus, vgg, small_photo_dir, tmp_path, photo_dir):
    other = tmp_path / "other"
    other.mkdir()
    (other / "moon.jpg").write_bytes((photo_dir / "moon.jpg").read_bytes())
    store, coll = _open(milvus, vgg)
    with store:
        index_paths(coll, vgg, [small_photo_dir, other])
        assert coll.count() == 7
        (small_photo_dir / "rocket.jpg").unlink()
        (other / "moon.jpg").unlink()  # gone too, but outside the folder being pruned
        summary = index_paths(coll, vgg, [small_photo_dir], prune=True)
        assert summary.pruned == 1
        paths = _paths(coll)
        assert str(small_photo_dir / "rocket.jpg") not in paths
        assert str(other / "moon.jpg") in paths and len(paths) == 6


def test_bad_files_are_named_counted_and_the_rest_indexed(milvus, vgg, small_photo_dir, photo_dir):
    (small_photo_dir / "empty.jpg").write_bytes(b"")
    (small_photo_dir / "notes.txt").write_text("a shopping list\n")
    (small_photo_dir / "fake.png").write_text("not a png at all")
    data = (photo_dir / "moon.jpg").read_bytes()
    (small_photo_dir / "truncated.jpg").write_bytes(data[: len(data) // 3])
    store, coll = _open(milvus, vgg)
    with store:
        summary = index_paths(coll, vgg, [small_photo_dir])
    failed = dict(summary.failed)
    assert set(failed) == {str(small_photo_dir / n) for n in ("empty.jpg", "fake.png", "truncated.jpg")}
    assert "empty" in failed[str(small_photo_dir / "empty.jpg")]
    assert "truncated" in failed[str(small_photo_dir / "truncated.jpg")]
    assert summary.not_images == 1  # notes.txt: no image, and it does not claim to be one
    assert summary.new == 6


def test_images_are_recognised_by_content_not_name(milvus, vgg, small_photo_dir):
    os.rename(small_photo_dir / "coins.jpg", small_photo_dir / "coins.data")
    store, coll = _open(milvus, vgg)
    with store:
        summary = index_paths(coll, vgg, [small_photo_dir])
        assert summary.new == 6 and str(small_photo_dir / "coins.data") in _paths(coll)


def test_hidden_files_and_symlink_loops(milvus, vgg, small_photo_dir, photo_dir):
    hidden = small_photo_dir / ".thumbnails"
    hidden.mkdir()
    (hidden / "moon.jpg").write_bytes((photo_dir / "moon.jpg").read_bytes())
    (small_photo_dir / "loop").symlink_to(small_photo_dir)  # a folder that contains itself
    store, coll = _open(milvus, vgg)
    with store:
        assert index_paths(coll, vgg, [small_photo_dir]).new == 6
        assert index_paths(coll, vgg, [small_photo_dir], include_hidden=True).new == 1


def test_owner_is_stored_and_a_new_owner_rewrites_the_row(milvus, vgg, small_photo_dir):
    store, coll = _open(milvus, vgg)
    with store:
        index_paths(coll, vgg, [small_photo_dir], owner="alice")
        assert coll.owners() == {"alice": 6}
        summary = index_paths(coll, vgg, [small_photo_dir / "coffee.jpg"], owner="bob")
        assert summary.updated == 1
        assert coll.owners() == {"alice": 5, "bob": 1} and coll.count() == 6


def test_cli_index_summary_and_exit_codes(milvus, vgg_weights, small_photo_dir):
    (small_photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    args = ["index", str(small_photo_dir), "--uri", milvus.uri, "--collection", milvus.collection, "--json"]
    result = CliRunner().invoke(cli, args, env={"IMGSEARCH_WEIGHTS": str(vgg_weights)})
    assert result.exit_code == 1, result.output  # some files failed
    summary = json.loads(result.stdout)
    assert (summary["new"], summary["failed"], summary["rows"]) == (6, 1, 6)
    assert summary["failures"][0]["path"] == str(small_photo_dir / "broken.jpg")
    (small_photo_dir / "broken.jpg").unlink()
    result = CliRunner().invoke(cli, args[:-1], env={"IMGSEARCH_WEIGHTS": str(vgg_weights)})
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "unchanged" in result.stdout


def test_missing_path_is_a_failure_not_a_crash(milvus, vgg, tmp_path):
    store, coll = _open(milvus, vgg)
    with store:
        summary = index_paths(coll, vgg, [tmp_path / "does-not-exist"])
    assert summary.failed and "No such file" in summary.failed[0][1]


# --- Milvus Lite specifics: one process at a time, and kill -9 -------------------------------------


def _imgsearch(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "imgsearch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_second_process_gets_a_clear_error_quickly(lite_uri, vgg, small_photo_dir):
    store = Store(lite_uri)
    store.collection("images", vgg.config())
    try:
        started = time.monotonic()
        proc = _imgsearch("index", str(small_photo_dir), "--uri", lite_uri)
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        store.close()
    assert proc.returncode == 2
    assert "in use by another process" in err and lite_uri in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    # Python start and imports included; the lock itself is detected in well under a second.
    assert elapsed < 10, elapsed
    print(f"second process failed after {elapsed:.2f}s")


def test_console_script_exits_quickly_and_keeps_what_it_wrote(lite_uri, vgg_weights, small_photo_dir):
    """`imgsearch` ends with os._exit after the command (no module teardown): what index wrote must be there for
    the next process, and search's JSON must arrive whole, with the usual exit codes."""
    weights = ["--weights", str(vgg_weights)]
    proc = _imgsearch("index", str(small_photo_dir), "--uri", lite_uri, "--json", *weights)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["new"] == 6
    query = str(small_photo_dir / "coffee.jpg")
    proc = _imgsearch("search", query, "--uri", lite_uri, "--json", *weights)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    (line,) = out.splitlines()
    first = json.loads(line)["results"][0]
    assert first["path"] == query and first["match"] == "copy"
    with Store(lite_uri) as store:
        from imgsearch.features import VGG16Features

        assert store.collection("images", VGG16Features().config()).count() == 6
    proc = _imgsearch("search", query, "--uri", lite_uri, "--collection", "nothing-here")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and err.startswith("Error: no collection 'nothing-here'"), err


def test_quick_exit_still_waits_for_threads_and_runs_exit_handlers():
    script = """if True:
        import atexit, threading, time
        from imgsearch.cli.base import exit_quickly
        atexit.register(lambda: print("exit handler ran", flush=True))
        threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished", flush=True))).start()
        print("buffered, not flushed")
        exit_quickly(%s)
    """
    for code, status in (("None", 0), ("1", 1), ("'a message'", 1)):
        done = subprocess.run([sys.executable, "-c", script % code], capture_output=True, text=True, timeout=60)
        assert done.returncode == status, done.stderr
        assert done.stdout.splitlines() == ["buffered, not flushed", "thread finished", "exit handler ran"]
        assert done.stderr == ("a message\n" if code == "'a message'" else "")


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def test_kill_9_during_index_loses_nothing_and_duplicates_nothing(lite_uri, vgg_weights, photo_dir):
    args = ["index", str(photo_dir), "--uri", lite_uri, "--batch-size", "2", "--weights", str(vgg_weights)]
    proc = _imgsearch(*args)
    db = Path(lite_uri)
    deadline = time.monotonic() + 120
    sizes = set()
    # Kill once the database has been written to a few times (collection, then batches).
    while time.monotonic() < deadline and proc.poll() is None and len(sizes) < 4:
        sizes.add(_tree_size(db))
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(lite_uri) as store:
        if store.stored_config("images") is not None:
            from imgsearch.features import VGG16Features

            coll = store.collection("images", VGG16Features().config())
            partial = coll.count()
            assert partial <= len(list(photo_dir.iterdir()))
            print(f"rows after kill -9: {partial}")
    proc = _imgsearch(*args)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    with Store(lite_uri) as store:
        from imgsearch.features import VGG16Features

        coll = store.collection("images", VGG16Features().config())
        paths = _paths(coll)
    expected = sorted(str(p) for p in photo_dir.iterdir())
    assert sorted(paths) == expected  # every image once: nothing lost, nothing twice
