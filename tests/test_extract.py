"""imgsearch extract: tables, JSON vectors, .npy output, and bad input named in one line."""

from __future__ import annotations

import json

import numpy as np
from helpers import run_cli


def _extract(vgg_weights, *args, input=None):
    return run_cli("extract", *args, input=input, weights=vgg_weights)


def test_json_and_npy_give_the_library_vectors(vgg, vgg_weights, photo_dir, tmp_path):
    photos = [str(photo_dir / "coffee.jpg"), str(photo_dir / "rocket.jpg")]
    result = _extract(vgg_weights, *photos, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == photos
    assert (lines[0]["width"], lines[0]["height"]) == (600, 400)
    for line, path in zip(lines, photos):
        assert np.allclose(line["vector"], vgg.embed_one(path).vector, atol=1e-5)

    out = tmp_path / "vectors.npy"
    result = _extract(vgg_weights, *photos, "--npy", str(out))
    assert result.exit_code == 0, result.output
    array = np.load(out)
    assert array.shape == (2, 512) and array.dtype == np.float32
    assert np.allclose(np.linalg.norm(array, axis=1), 1, atol=1e-5)
    assert (tmp_path / "vectors.npy.paths.txt").read_text().splitlines() == photos
    assert "coffee.jpg" in result.stdout and "1.0000" in result.stdout  # the table: norm of each vector


def test_stdin_and_bad_inputs(vgg_weights, photo_dir, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    result = _extract(vgg_weights, "-", str(empty), str(text), "--json",
                      input=(photo_dir / "camera.jpg").read_bytes())
    assert result.exit_code == 1  # some failed, not all
    assert result.stderr.splitlines() == [
        f"failed: {empty}: empty file (0 bytes)",
        f"failed: {text}: not an image (or an unsupported format)",
    ]
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert paths == ["-", str(empty), str(text)]
    result = _extract(vgg_weights, str(empty))
    assert result.exit_code == 2 and "Traceback" not in result.output  # nothing could be extracted
