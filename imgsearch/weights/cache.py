"""Our cache on disk: a ``.weights.h5`` file and the JSON sidecar beside it that records its sha256 and origin.

Both are written through a temp file and ``os.replace``, so a reader never sees half of either. A sidecar read
back is a claim to check against the file (``locate``), never a fact.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .results import one_line
from .sources import VERIFIED_SOURCES, sidecar_path


@dataclass(frozen=True)
class Sidecar:
    """The sidecar's fields, in the order they are written.

    Read back, each field is what the file says, ``None`` when it says nothing (``created``: ""): a file may be
    old, hand-edited or half-written, and what it claims is judged by :func:`locate.check_cache`.
    """

    file: str | None = None
    sha256: str | None = None
    size: int | None = None
    source: str | None = None
    verified: bool | None = None
    made_by: str | None = None
    artifact: dict | None = None  # the pinned artifact the weights were converted from: requirement, hashes
    reference_values_checked: bool | None = None
    created: str = ""

    @property
    def records_a_verified_source(self) -> bool:
        """Made by a source that verifies what it writes, and says it did (``verified`` exactly ``true``)."""
        return self.source in VERIFIED_SOURCES and self.verified is True

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: dict) -> Sidecar:
        return cls(**{f.name: data.get(f.name, f.default) for f in fields(cls)})


class UnreadableSidecar(Exception):
    """The sidecar exists but is no JSON object; its message says why in one line."""


def read_sidecar(weights_path: Path) -> Sidecar | None:
    """The sidecar of ``weights_path``; None if there is none. Raises UnreadableSidecar."""
    try:
        data = json.loads(sidecar_path(weights_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UnreadableSidecar(one_line(e)) from None
    if not isinstance(data, dict):
        raise UnreadableSidecar(f"a JSON {type(data).__name__}, not an object")
    return Sidecar.from_json(data)


def write_sidecar(weights_path: Path, sidecar: Sidecar) -> None:
    side = sidecar_path(weights_path)
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        tmp_side.write_text(sidecar.to_json(), encoding="utf-8")
        os.replace(tmp_side, side)
    finally:
        tmp_side.unlink(missing_ok=True)


def save_weights(model, dest: Path) -> tuple[str, int]:
    """Write ``model``'s weights to ``dest`` atomically; return their sha256 and size."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name[: -len('.weights.h5')]}.{os.getpid()}.tmp.weights.h5")
    try:
        model.save_weights(str(tmp))
        sha = file_hashes(tmp)["sha256"]
        size = tmp.stat().st_size
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return sha, size


def file_hashes(path, algorithms=("sha256",), chunk_size=1 << 20) -> dict[str, str]:
    """Hex digests of a file, all algorithms in one pass."""
    hs = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            for h in hs.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hs.items()}
