"""Resolution: the first usable weights in the documented order, else a fetch if allowed, else a clear error."""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightsError
from .fetch import fetch_weights
from .locate import check_cache, check_explicit, check_keras_cache, explicit_choice, info_from_candidate
from .results import WeightsInfo
from .sources import how_to_message


def resolve_weights(explicit=None, auto_fetch=True, progress=None) -> WeightsInfo:
    """Find the weights in the documented order; fetch them if allowed. Raises WeightsError, never guesses."""
    path, origin = explicit_choice(explicit)
    if path:
        c = check_explicit(path, origin)
        if not c.exists:
            what = "is a directory" if Path(c.path).is_dir() else "does not exist"
            raise WeightsError(f"weights file {c.path} (given by {origin}) {what}. " + how_to_message())
        return info_from_candidate(c)

    cache = check_cache()
    if cache.usable:
        return info_from_candidate(cache)
    kc = check_keras_cache()
    if kc.usable:
        return info_from_candidate(kc)
    if auto_fetch:
        return fetch_weights(progress=progress)
    raise WeightsError(
        f"no VGG16 ImageNet weights found (cache {cache.path}: {cache.detail}; "
        f"Keras cache {kc.path}: {kc.detail}). " + how_to_message()
    )
