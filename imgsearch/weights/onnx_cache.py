"""The ONNX models in our cache: VGG16's conv part in fp32 and in int8, each made from the genuine weights once,
with a JSON sidecar that records its sha256 and what it was made from.

A model is used only when its file's sha256 equals its sidecar's and the sidecar says it was made from the weights
in use (and, for int8, from the shipped calibration set with today's settings). Anything else (a changed file, a
missing or unreadable sidecar, other weights, a model of an older imgsearch) is said in one line and the model is
made again from the genuine weights; a model that cannot be made is a WeightsError.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..errors import WeightsError
from .cache import file_hashes
from .results import ProgressLines, one_line, say
from .sources import cache_dir

MODEL_FILES = {"fp32": "vgg16_imagenet_notop.fp32.onnx", "int8": "vgg16_imagenet_notop.int8.onnx"}
ONNX_PRECISIONS = tuple(MODEL_FILES)
# Bumped when the graph or the way it is made changes: older files are remade.
FORMAT_VERSION = 1


def model_path(precision: str) -> Path:
    return cache_dir() / MODEL_FILES[precision]


def model_sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


@dataclass(frozen=True)
class ModelSidecar:
    """What an ONNX model file is and what made it; read back, a claim to check against the file."""

    file: str | None = None
    sha256: str | None = None
    size: int | None = None
    precision: str | None = None
    format_version: int | None = None
    weights_sha256: str | None = None  # the .h5 the model was made from
    calibration_sha256: str | None = None  # int8: the calibration set's manifest
    quantization: dict | None = None  # int8: quantize.SETTINGS
    made_by: str | None = None
    seconds: float | None = None
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> ModelSidecar | None:
        """The sidecar of model ``path``; None when there is none or it is no JSON object."""
        try:
            data = json.loads(model_sidecar_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        return cls(**{f.name: data.get(f.name, f.default) for f in fields(cls)})


@dataclass(frozen=True)
class Expected:
    """What a usable model's sidecar must say, for the weights and settings in use now."""

    precision: str
    weights_sha256: str
    calibration_sha256: str | None = None
    quantization: dict | None = None


@dataclass
class ModelFile:
    """A checked model file, ready for ONNX Runtime."""

    path: Path
    precision: str
    sha256: str
    built: bool  # made in this call (else found in the cache and checked)
    detail: str
    timings: dict = field(default_factory=dict)


def check_model(path: Path, expected: Expected) -> tuple[bool, str]:
    """(usable, why) for the cached model ``path``: its sha256 and its sidecar's claims against ``expected``."""
    if not path.is_file():
        return False, "not made yet"
    sidecar = ModelSidecar.read(path)
    if sidecar is None:
        return False, f"no readable sidecar {model_sidecar_path(path).name}: provenance unknown"
    if file_hashes(path)["sha256"] != sidecar.sha256:
        return False, "sha256 differs from its sidecar: the file changed since it was made"
    if sidecar.format_version != FORMAT_VERSION or sidecar.precision != expected.precision:
        return False, "made by another version of imgsearch"
    if sidecar.weights_sha256 != expected.weights_sha256:
        return False, "made from other weights than the ones in use"
    if (sidecar.calibration_sha256, sidecar.quantization) != (expected.calibration_sha256, expected.quantization):
        return False, "made with another calibration set or other quantization settings"
    return True, f"sha256 matches its sidecar; made {sidecar.created}".strip()


def ensure_model(expected: Expected, build: Callable[[Path], None], progress: ProgressLines | None = None,
                 what: str = "") -> ModelFile:
    """The checked cached model; made again by ``build(tmp_path)`` (then hashed and recorded) when unusable."""
    path = model_path(expected.precision)
    usable, why = check_model(path, expected)
    if usable:
        return ModelFile(path, expected.precision, ModelSidecar.read(path).sha256, False, why)
    if path.exists() or why != "not made yet":
        say(progress, f"The {expected.precision} ONNX model {path} is not used ({why}): making it again")
    say(progress, f"Making the {expected.precision} ONNX model of VGG16 from the genuine weights{what} ...")
    t = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        build(tmp)
        sha, size = file_hashes(tmp)["sha256"], tmp.stat().st_size
        seconds = round(time.monotonic() - t, 1)
        sidecar = ModelSidecar(path.name, sha, size, expected.precision, FORMAT_VERSION, expected.weights_sha256,
                               expected.calibration_sha256, expected.quantization, made_by(), seconds,
                               datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        _replace_text(model_sidecar_path(path), sidecar.to_json())
        os.replace(tmp, path)
    except OSError as e:
        raise WeightsError(f"cannot write the {expected.precision} ONNX model to {path}: {one_line(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    say(progress, f"  {path} ({size / 1e6:.1f} MB, {seconds:.0f} s)")
    return ModelFile(path, expected.precision, sha, True, f"made from the genuine weights in {seconds:.0f} s",
                     {"build": seconds})


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def made_by() -> str:
    versions = ", ".join(f"{p} {_version(p)}" for p in ("imgsearch", "onnx", "onnxruntime"))
    return f"imgsearch.weights.onnx_cache ({versions})"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"
