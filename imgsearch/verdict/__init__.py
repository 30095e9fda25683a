"""The verdict: is a search hit a *copy* of the query (the same picture, edited) or only *similar*?

A cosine between two VGG16 vectors cannot say it alone: edited copies and look-alikes overlap. A copy verdict
rests on geometry instead (``geometry``): SIFT keypoints of the two pictures (``keypoints``) are matched (Lowe's
ratio test) and one transform is fitted with RANSAC, a similarity (turn, uniform scale, shift) or, for a picture
photographed at an angle, a perspective warp. Many matches that agree on one transform, spread over both
pictures, happen between a picture and its copy and not between two different photos. A mirrored copy is tried
mirrored. The transform is the evidence: how far the copy is turned and scaled, whether it is mirrored or seen at
an angle, which part of the original it shows and where the original sits inside it.

Pictures with little texture (fog, a sky, a night shot) get their keypoints at a lower contrast threshold, and
when those still cannot fit a transform, the two pictures are aligned pixel by pixel and their fine structure
compared (``dense``). A cosine alone decides only for a stored file that cannot be read here.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from ..errors import ImageError
from ..evidence import DENSE, FEATURES, Evidence
from ..features import load_image
from ..views import WHOLE, photographed_outline, rectified
from . import dense, geometry
from .geometry import MIN_INLIERS, Fit, evidence, fit_transform, is_convincing
from .keypoints import (FEW_KEYPOINTS, NO_FEATURES, QUERY_KEYPOINTS, QUERY_SIDE, RATIO, WORK_SIDE, LocalFeatures,
                        grey_thumb, local_features, mirrored_features, ratio_matches)

__all__ = [
    "COPY", "SIMILAR", "COPY_SIMILARITY", "MIRROR_SIMILARITY", "DENSE_SIMILARITY", "FEW_KEYPOINTS", "MIN_INLIERS",
    "NO_FEATURES", "NOT_A_COPY", "QUERY_SIDE", "RATIO", "WORK_SIDE", "Fit", "Judgement", "LocalFeatures",
    "QueryFeatures", "Verifier", "evidence", "fit_transform", "is_convincing", "local_features", "mirrored_features",
    "ratio_matches", "try_fits", "verify",
]

COPY = "copy"
SIMILAR = "similar"

# A copy by features alone, only where no file can be checked (a stored file not readable here: moved, remote):
# no unrelated photo came near it.
COPY_SIMILARITY = 0.90
# A mirrored try costs a second keypoint match; mirroring keeps the max-pooled VGG16 vector nearly as it is
# (every mirrored copy scored >= 0.80 in benchmarks/RESULTS.md), so only candidates this similar get one.
MIRROR_SIMILARITY = 0.75
# A tight crop (40% of each side) shows a part of the stored picture that, at WORK_SIDE, may hold only a few
# keypoints: a candidate this similar whose fit fails gets a closer look at the stored file (CLOSER_SIDE px, more
# keypoints, a lower contrast threshold), computed once and cached beside the first.
CLOSER_SIMILARITY = 0.70
CLOSER_SIDE = 1024
CLOSER_KEYPOINTS = 4000
CLOSER_CONTRAST = 0.02
CLOSER_SHOWN = 0.5  # the closer look's copies show at most this share of the stored picture (a 45% crop: 0.2)
# The dense check aligns two pictures (20-40 ms); copies of low-texture photos that it can align (recompressed,
# resized, recoloured, watermarked, framed) keep their vectors close, so only candidates this similar get one.
# A print of a night sky photographed at an angle and warped back scored 0.67-0.70 against its original (its
# fine structure then correlated 0.93-0.98; unrelated star fields at most 0.32), hence 0.65, not 0.70.
DENSE_SIMILARITY = 0.65
# Two stored files are compared with the first one's stored keypoints (WORK_SIDE, cached), not a query's (QUERY_SIDE,
# twice the keypoints): there a stereo pair's parallax can fall within RANSAC's tolerance (OpenCV's aloe pair: 214
# of 296 and 189 of 302 agreeing; two of mrpt's robot-camera frames 26 of 43), where as queries they stay similar.
# A fit explaining less than this share of its matches is looked at again with the first file as a query: 10 of the
# verdict benchmark's 2,370 copies fitted that way (pages, mirror images), and all stay copies.
QUERY_LOOK_SHARE = 0.75


_NOT_LOOKED = object()  # a lazily found value not looked for yet (None is an answer: nothing found)


class QueryFeatures:
    """A query's keypoints, and its mirror image's, reflected from them when first needed; or those of one part of
    it (``region``), which tell their evidence in the whole query's terms. A stored file can stand in the query's
    place (``of_stored``): that is how duplicates judges two stored files."""

    def __init__(self, plain: LocalFeatures, image: Image.Image | None = None,
                 box: tuple[float, float, float, float] = WHOLE):
        self.plain = plain
        self.image = image  # the decoded query, for its parts' keypoints; None for a stored file's
        self.full_size = plain.full_size
        self.box = box  # the part of the whole query these keypoints are of, as fractions of it
        self.whole = self  # the whole query, for the keypoints of a part of it
        self._mirrored: LocalFeatures | None = None
        self._regions: dict[tuple, QueryFeatures] = {}
        self._photographed: tuple | None | object = _NOT_LOOKED

    @classmethod
    def of_image(cls, image: Image.Image, full_size: tuple[int, int]) -> QueryFeatures:
        return cls(local_features(image, full_size, QUERY_SIDE, QUERY_KEYPOINTS), image)

    @classmethod
    def of_stored(cls, features: LocalFeatures) -> QueryFeatures:
        return cls(features)

    def region(self, box: tuple[float, float, float, float]) -> QueryFeatures:
        """Keypoints of one part of the query (a photo in a page, a collage's tile) at the query's detail: the
        rest (a page's text) takes none of the keypoints, and a small photo is not shrunk with its page."""
        if box == WHOLE:
            return self
        if box not in self._regions:
            w, h = self.image.size
            crop = self.image.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
            fw, fh = self.full_size
            full = (max(1, round((box[2] - box[0]) * fw)), max(1, round((box[3] - box[1]) * fh)))
            part = QueryFeatures(local_features(crop, full, QUERY_SIDE, QUERY_KEYPOINTS), crop, box)
            part.whole = self
            self._regions[box] = part
        return self._regions[box]

    @property
    def mirrored(self) -> LocalFeatures:
        if self._mirrored is None:
            self._mirrored = mirrored_features(self.plain)
        return self._mirrored

    @property
    def photographed(self) -> tuple[np.ndarray, list[list[float]]] | None:
        """For a picture photographed at an angle (``views.photographed_outline``): the picture warped back to a
        rectangle, as the dense check's grey thumb, and its corners in the query (fractions); else None. Looked
        for once, when a dense check first asks."""
        if self._photographed is _NOT_LOOKED:
            corners = photographed_outline(self.image) if self.image is not None else None
            self._photographed = None
            if corners is not None:
                w, h = self.image.size
                placed = [[round(float(x) / w, 3), round(float(y) / h, 3)] for x, y in corners]
                self._photographed = (grey_thumb(rectified(self.image, corners)), placed)
        return self._photographed


def verify(query: QueryFeatures, stored: LocalFeatures, try_mirrored: bool = True) -> Fit | None:
    """A convincing fit of the query onto a stored picture (as it is, else mirrored), or None."""
    return try_fits(query, stored, try_mirrored)[0]


def try_fits(query: QueryFeatures, stored: LocalFeatures,
             try_mirrored: bool = True) -> tuple[Fit | None, list[tuple[LocalFeatures, Fit | None]]]:
    """(a convincing fit or None, every fit tried with the keypoints it was made of): the query as it is, then
    mirrored, until one convinces. The unconvincing ones may still place a copy (``placed_judgement``)."""
    tried = []
    for side in [query.plain] + ([query.mirrored] if try_mirrored else []):
        fit = geometry.fit_transform(side, stored, mirrored=side is not query.plain)
        tried.append((side, fit))
        if geometry.is_convincing(fit, side, stored):
            return fit, tried
    return None, tried


@dataclass(frozen=True)
class Judgement:
    """The verdict on one (query, stored image) pair: COPY with its evidence, or SIMILAR."""

    match: str  # COPY or SIMILAR
    evidence: Evidence | None = None

    @property
    def is_copy(self) -> bool:
        return self.match == COPY


NOT_A_COPY = Judgement(SIMILAR)


def dense_judgement(query: QueryFeatures, stored: LocalFeatures, similarity: float,
                    try_mirrored: bool) -> Judgement | None:
    """A copy by the dense check of the pictures whole, plain or mirrored, when one of the two has little texture."""
    if similarity < DENSE_SIMILARITY or query.plain.thumb is None or stored.thumb is None:
        return None
    tries = [(query.plain.thumb, False)] + ([(query.mirrored.thumb, True)] if try_mirrored else [])
    for thumb, mirrored in tries:
        found = dense.align(thumb, stored.thumb)
        if found is not None and found.is_copy:
            return Judgement(COPY, Evidence(DENSE, mirrored=mirrored, correlation=round(found.correlation, 3),
                                            correlated_share=_partly(found), similarity=round(similarity, 4)))
    photographed = query.photographed
    if photographed is not None:
        thumb, corners = photographed
        found = dense.align(thumb, stored.thumb, any_shape=True)
        if found is not None and found.is_copy:
            return Judgement(COPY, Evidence(DENSE, perspective=True, original_corners=corners,
                                            correlation=round(found.correlation, 3), correlated_share=_partly(found),
                                            similarity=round(similarity, 4)))
    return None


def _partly(found: dense.Alignment) -> float | None:
    """The share of the picture a dense copy's correlation is over, when not all of it."""
    return found.share if found.share < 1.0 else None


def placed_judgement(query: QueryFeatures, stored: LocalFeatures, similarity: float,
                     tried: list[tuple[LocalFeatures, Fit | None]]) -> Judgement | None:
    """A copy placed by a few keypoints (too few for a fit alone: ``dense.SEED_MIN_INLIERS`` or more, most of
    the matches) whose fine structure correlates where they place it: the evidence tells the fit's turn, scale and
    placing, and the correlation that confirmed it. ``tried``: the fits ``try_fits`` made, with their keypoints."""
    if query.plain.thumb is None or stored.thumb is None:
        return None
    for side, fit in tried:
        if not dense.places(fit):
            continue
        found = dense.align_placed(side.thumb, stored.thumb, _in_thumbs(fit.matrix, side, stored))
        if found is not None and found.correlation >= dense.MIN_CORRELATION and found.warp <= dense.SEED_MAX_WARP:
            placed = replace(evidence(fit, side, stored, similarity), method=DENSE,
                             correlation=round(found.correlation, 3))
            return Judgement(COPY, placed.in_whole_query(query.box))
    return None


def _in_thumbs(matrix: np.ndarray, query: LocalFeatures, stored: LocalFeatures) -> np.ndarray:
    """A fit's matrix (work pixels) in the two pictures' dense-check thumbs' pixels."""
    to_query = query.thumb.shape[1] / query.size[0]
    to_stored = stored.thumb.shape[1] / stored.size[0]
    return np.diag([to_stored, to_stored, 1.0]) @ matrix @ np.diag([1 / to_query, 1 / to_query, 1.0])


class Verifier:
    """Decides copy or similar for (query, stored file) pairs; stored files' keypoints are cached by path,
    size and mtime, so a long-lived process (serve, duplicates) reads each file once."""

    def __init__(self, cache_size: int = 512):
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.files_read = 0

    def stored(self, path: str, closer: bool = False) -> LocalFeatures | None:
        """Keypoints of a stored image's file; None when it is not readable here (moved, remote, no file).
        ``closer``: the closer look (more pixels, more keypoints, a lower contrast) for a second try."""
        try:
            stat = os.stat(path)
        except (OSError, ValueError):
            return None
        key = (path, stat.st_size, stat.st_mtime, closer)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            loaded = load_image(path)
        except ImageError:
            return None
        if closer:
            features = local_features(loaded.image, (loaded.width, loaded.height), CLOSER_SIDE, CLOSER_KEYPOINTS,
                                      CLOSER_CONTRAST)
        else:
            features = local_features(loaded.image, (loaded.width, loaded.height))
        with self._lock:
            self.files_read += 1
            self._cache[key] = features
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return features

    def query(self, image: Image.Image, full_size: tuple[int, int]) -> QueryFeatures:
        return QueryFeatures.of_image(image, full_size)

    def judge(self, query: QueryFeatures, path: str, similarity: float) -> Judgement:
        """Copy (with its evidence) or similar, for the stored image at ``path``."""
        stored = self.stored(path)
        if stored is None:  # nothing to check: only a strict cosine can say
            if similarity >= COPY_SIMILARITY:
                return Judgement(COPY, Evidence(FEATURES, similarity=round(similarity, 4), file_checked=False))
            return NOT_A_COPY
        try_mirrored = similarity >= MIRROR_SIMILARITY
        fit, tried = try_fits(query, stored, try_mirrored)
        if fit is not None:
            found = evidence(fit, query.plain if not fit.mirrored else query.mirrored, stored, similarity)
            return Judgement(COPY, found.in_whole_query(query.box))
        if similarity >= CLOSER_SIMILARITY:
            found = self._closer_look(query, path, similarity, try_mirrored)
            if found is not None:
                return found
        placed = placed_judgement(query, stored, similarity, tried)
        if placed is not None:
            return placed
        if stored.textured and query.plain.textured:
            return NOT_A_COPY  # enough texture to tell, and the geometry says no
        return dense_judgement(query, stored, similarity, try_mirrored) or NOT_A_COPY

    def _closer_look(self, query: QueryFeatures, path: str, similarity: float, try_mirrored: bool) -> Judgement | None:
        """A copy found against the stored file's closer look, if it is what that look is for: a small part of the
        stored picture (CLOSER_SHOWN). With four times the keypoints, a second shot's flat background can reach the
        share rule (OpenCV's aloe stereo pair inside a page: 492 agreeing), so a whole-picture fit here says nothing."""
        closer = self.stored(path, closer=True)
        fit = verify(query, closer, try_mirrored) if closer is not None else None
        if fit is None:
            return None
        found = evidence(fit, query.plain if not fit.mirrored else query.mirrored, closer, similarity)
        return Judgement(COPY, found.in_whole_query(query.box)) if found.original_shown <= CLOSER_SHOWN else None

    def judge_files(self, query_path: str, stored_path: str, similarity: float) -> Judgement:
        """The same verdict between two stored files, the first in the query's place (its cached keypoints, and
        its mirror image's reflected from them; looked at again as a query where a fit explains less than
        QUERY_LOOK_SHARE of its matches); a file not readable here has no keypoints."""
        query = QueryFeatures.of_stored(self.stored(query_path) or NO_FEATURES)
        judgement = self.judge(query, stored_path, similarity)
        found = judgement.evidence
        if found is None or not found.is_geometric or found.inliers >= QUERY_LOOK_SHARE * found.matches:
            return judgement
        try:
            loaded = load_image(query_path, min_side=QUERY_SIDE)
        except ImageError:
            return judgement
        return self.judge(self.query(loaded.image, (loaded.width, loaded.height)), stored_path, similarity)
