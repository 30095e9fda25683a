"""int8 and the ONNX Runtime engine on real things: the genuine weights, scikit-image's photos, Milvus Lite.

Speed is a benchmark matter (benchmarks/throughput.py); nothing here is timed.
"""

from __future__ import annotations

import json
import shutil

import numpy as np

# Before TensorFlow: see tests/test_precision.py.
import pymilvus  # noqa: F401
import pytest
from helpers import run_cli

from imgsearch import vgg16_onnx
from imgsearch.cli import EXIT_OK
from imgsearch.demo import SAMPLE_PHOTOS
from imgsearch.features import VGG16Features
from imgsearch.weights import onnx_cache, resolve_weights

# The quality guard of issue 22: every photo's int8 vector within this cosine of its fp32 vector.
INT8_MIN_COSINE = 0.99


def vectors(embedder, paths):
    return np.stack([r.vector for batch in embedder.embed_sources(paths) for r in batch])


@pytest.fixture(scope="module")
def sample_paths(photo_dir):
    return [photo_dir / f"{name}.jpg" for name in SAMPLE_PHOTOS]


@pytest.fixture(scope="module")
def fp32_and_int8(vgg_weights, sample_paths):
    fp32 = VGG16Features(weights=str(vgg_weights), precision="fp32")
    int8 = VGG16Features(weights=str(vgg_weights), precision="int8")
    return fp32, int8, vectors(fp32, sample_paths), vectors(int8, sample_paths)


def test_int8_vectors_agree_with_fp32_per_photo(fp32_and_int8):
    fp32, int8, a, b = fp32_and_int8
    assert (fp32.precision_used, int8.precision_used) == ("fp32", "int8")
    assert isinstance(int8.model, vgg16_onnx.OnnxVGG16) and int8.model.model.path.name.endswith("int8.onnx")
    cosines = (a * b).sum(axis=1)
    assert cosines.min() >= INT8_MIN_COSINE, dict(zip(SAMPLE_PHOTOS, cosines.round(4)))
    assert not np.allclose(a, b, atol=1e-4)  # int8 really computes something else
    # Each photo's int8 vector is nearest its own fp32 vector.
    assert list((b @ a.T).argmax(axis=1)) == list(range(len(SAMPLE_PHOTOS)))


def test_onnx_fp32_is_the_keras_model(vgg_weights, fp32_and_int8, sample_paths):
    """The TensorFlow-free fp32 engine gives Keras's vectors: the reference stays Keras."""
    _, _, onnx_fp32, _ = fp32_and_int8
    keras_fp32 = VGG16Features(weights=str(vgg_weights), precision="fp32")
    from imgsearch.weights import build_vgg16

    keras_fp32._model = build_vgg16(vgg_weights)  # the Keras model behind the same pipeline
    reference = vectors(keras_fp32, sample_paths)
    assert (onnx_fp32 * reference).sum(axis=1).min() >= 0.99999


def test_no_tensorflow_on_the_int8_and_fp32_path(vgg_weights, photo_dir):
    import subprocess
    import sys

    code = ("import sys; from imgsearch.features import VGG16Features\n"
            f"for p in ('int8', 'fp32'): VGG16Features(weights={str(vgg_weights)!r}, precision=p)"
            f".embed_one({str(photo_dir / 'coffee.jpg')!r})\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture
def private_cache(tmp_path, monkeypatch, vgg_weights):
    """A fresh cache directory holding copies of the cached models: tests change files there, never the user's."""
    fp32 = VGG16Features(weights=str(vgg_weights), precision="int8")
    fp32.model  # noqa: B018  (made in the real cache if they are not yet)
    for name in onnx_cache.MODEL_FILES.values():
        for path in (fp32.model.model.path.with_name(name), onnx_cache.model_sidecar_path(
                fp32.model.model.path.with_name(name))):
            shutil.copy2(path, tmp_path / path.name)
    monkeypatch.setenv("IMGSEARCH_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_a_tampered_int8_model_is_refused_and_made_again_the_same(private_cache, vgg_weights):
    info = resolve_weights(str(vgg_weights))
    path = onnx_cache.model_path("int8")
    original = onnx_cache.ModelSidecar.read(path).sha256
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of a weight changed
    path.write_bytes(bytes(data))
    lines = []
    model = vgg16_onnx.model_file("int8", info, progress=lines.append)
    assert model.built and "sha256 differs from its sidecar" in lines[0]
    # Made again from the genuine weights and the shipped calibration set: the same model, byte for byte.
    assert model.sha256 == original == onnx_cache.ModelSidecar.read(path).sha256


def test_a_tampered_fp32_model_is_refused_and_made_again(private_cache, vgg_weights):
    info = resolve_weights(str(vgg_weights))
    path = onnx_cache.model_path("fp32")
    original = onnx_cache.ModelSidecar.read(path).sha256
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    model = vgg16_onnx.model_file("fp32", info)
    assert model.built and model.sha256 == original


def test_fp32_collection_searched_with_int8_queries(vgg_weights, photo_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    names = SAMPLE_PHOTOS[:6]
    for name in names:
        shutil.copy2(photo_dir / f"{name}.jpg", folder / f"{name}.jpg")
    where = ["--uri", str(tmp_path / "lite.db")]
    result = run_cli("index", folder, *where, "--precision", "fp32", "--json", weights=vgg_weights)
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout.splitlines()[-1])["precision"] == "fp32"
    queries = [folder / f"{name}.jpg" for name in names]
    result = run_cli("search", *queries, *where, "--json", "-k", "2", "--no-verdict", weights=vgg_weights,
                     env={"IMGSEARCH_PRECISION": "int8"})
    assert result.exit_code == EXIT_OK, result.output
    for line, query in zip(result.stdout.splitlines(), queries):
        hits = json.loads(line)["results"]
        assert hits[0]["path"] == str(query) and hits[0]["similarity"] >= INT8_MIN_COSINE
    # Indexing more in int8 goes into the same collection.
    shutil.copy2(photo_dir / "moon.jpg", folder / "moon.jpg")
    result = run_cli("index", folder, *where, "--precision", "int8", "--json", weights=vgg_weights)
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["new"], summary["unchanged"], summary["precision"]) == (1, 6, "int8")


def test_extract_int8_from_the_cli(vgg_weights, photo_dir):
    photo = str(photo_dir / "coffee.jpg")
    got = {}
    for p in ("fp32", "int8"):
        result = run_cli("extract", photo, "--json", "--precision", p, weights=vgg_weights)
        assert result.exit_code == EXIT_OK, result.output
        got[p] = np.array(json.loads(result.stdout)["vector"])
    assert float(got["fp32"] @ got["int8"]) >= INT8_MIN_COSINE


def test_search_loads_the_model_while_the_store_opens(vgg_weights, photo_dir, tmp_path, monkeypatch):
    """`imgsearch search` starts the ONNX model in a background thread before Milvus opens, and takes it."""
    from imgsearch import features

    # Earlier in-process commands may have left a preload of their own (a one-shot process exits instead).
    monkeypatch.setattr(features, "_PRELOADS", {})
    where = ["--uri", str(tmp_path / "lite.db")]
    assert run_cli("index", photo_dir / "coffee.jpg", *where, "--precision", "int8", weights=vgg_weights).exit_code == 0

    def no_second_load(*args, **kwargs):
        raise AssertionError("the model was loaded again in the main thread")

    monkeypatch.setattr(vgg16_onnx, "load", no_second_load)
    result = run_cli("search", photo_dir / "coffee.jpg", *where, "--json", "--precision", "int8", weights=vgg_weights)
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["results"][0]["path"] == str(photo_dir / "coffee.jpg")
    assert not features._PRELOADS  # taken, not left for a later command
    # A command that fails before it takes the preload leaves none behind either.
    result = run_cli("search", photo_dir / "coffee.jpg", "--uri", tmp_path / "other.db", "--precision", "int8")
    assert result.exit_code != EXIT_OK and not features._PRELOADS
