"""The verdict: is a search hit a *copy* of the query (the same picture, edited) or only *similar*?

A cosine between two VGG16 vectors cannot say it alone: edited copies and look-alikes overlap. A copy verdict
rests on geometry instead: SIFT keypoints of the two pictures are matched (Lowe's ratio test) and a similarity
transform (turn, uniform scale, shift) is fitted with RANSAC. Many matches that agree on one transform, spread
over both pictures, happen between a picture and its copy and not between two different photos. A mirrored copy
is tried mirrored. The transform is the evidence: how far the copy is turned and scaled, whether it is mirrored,
which part of the original it shows and where the original sits inside it.

Pictures with little texture (fog, a gradient, a night sky) give few keypoints; for them the verdict falls back
on a strict cosine (``COPY_SIMILARITY``), said as such in the evidence.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import ImageError
from .evidence import FEATURES, GEOMETRY, Evidence
from .features import load_image
from .views import WHOLE

COPY = "copy"
SIMILAR = "similar"

# SIFT works on a stored picture shrunk to this longest side: enough detail for a copy at 30% size, and ~4x
# cheaper than 1024 px. A query gets more of both, once per search: when the original is a small part of it
# (a photo in a page of text), the text must not take all the keypoints.
WORK_SIDE = 512
MAX_KEYPOINTS = 1000
QUERY_SIDE = 800
QUERY_KEYPOINTS = 2000
RATIO = 0.75  # Lowe's ratio test: a match must be clearly better than the second best
# A copy is the same picture, so its keypoints land where the transform puts them to within a pixel or two;
# a second shot of the same scene (a stereo pair, a burst) has parallax and does not (benchmarks/RESULTS.md).
RANSAC_PIXELS = 3.0  # reprojection error allowed, in pixels of the stored picture at WORK_SIDE
# A geometric copy verdict needs this many matches agreeing on one transform, and this share of all the (one to
# one) matches that pass the ratio test: copies of dev photos measured 16-180 agreeing and 89-97%; two shots of
# one scene (the dev photos' stereo pairs) up to 147 agreeing but 19-57% (docs/verdict.md; benchmarks/RESULTS.md,
# verdict: the most agreeing keypoints in unrelated pairs).
MIN_INLIERS = 12
MIN_INLIER_SHARE = 0.6
# The agreeing keypoints must cover this share of one of the two pictures: a cluster in one dark corner (JPEG
# block artefacts matching under a shift) or a line of points is no evidence. The better-covered side counts,
# since a photo inside a page covers little of the page.
MIN_SPREAD = 0.02
# A copy by features alone, only where geometry cannot tell (a picture with fewer keypoints than
# FEW_KEYPOINTS: fog, a gradient, a night sky; or a stored file not readable here): no unrelated photo came
# near it. Where both pictures have texture, geometry decides: two shots of one scene can score above it.
COPY_SIMILARITY = 0.90
FEW_KEYPOINTS = 100
# A mirrored try costs a second keypoint match; mirroring keeps the max-pooled VGG16 vector nearly as it is
# (every mirrored copy scored >= 0.80 in benchmarks/RESULTS.md), so only candidates this similar get one.
MIRROR_SIMILARITY = 0.75
SCALE_RANGE = (1 / 12, 12)  # a fitted scale outside this is a degenerate fit, not a copy


@dataclass
class LocalFeatures:
    points: np.ndarray  # (n, 2) float32 keypoint positions in the work picture
    descriptors: np.ndarray  # (n, 128) uint8 SIFT descriptors
    size: tuple[int, int]  # the work picture's (width, height)
    full_size: tuple[int, int]  # the picture's full (width, height)


def local_features(
    image: Image.Image,
    full_size: tuple[int, int] | None = None,
    side: int = WORK_SIDE,
    max_keypoints: int = MAX_KEYPOINTS,
) -> LocalFeatures:
    import cv2

    work = image
    if max(image.size) > side:
        work = image.copy()
        work.thumbnail((side, side), Image.Resampling.BILINEAR)
    grey = np.asarray(work.convert("L"))
    sift = cv2.SIFT_create(max_keypoints, 3, 0.04, 10, 1.6, cv2.CV_8U)  # uint8 descriptors: 4x less to cache
    keypoints, descriptors = sift.detectAndCompute(grey, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    if descriptors is None:
        descriptors = np.zeros((0, 128), dtype=np.uint8)
    return LocalFeatures(points, descriptors, work.size, full_size or image.size)


# SIFT is mirror-symmetric: the mirror image's keypoints are the picture's, reflected, with each descriptor's 4x4
# grid flipped across the keypoint's orientation and its 8 orientation bins reversed. Reordering the descriptors
# costs nothing, where a second SIFT pass costs as much as the first (0.2 s for a query); on the 45 mirrored copies
# of the verdict benchmark both gave convincing fits for all 45, with 485 and 489 agreeing keypoints (medians).
_GRID = np.arange(128).reshape(4, 4, 8)  # OpenCV's layout: (grid row, grid column, orientation bin)
MIRROR_ORDER = _GRID[::-1, :, (-np.arange(8)) % 8].ravel()


def mirrored_features(features: LocalFeatures) -> LocalFeatures:
    """The keypoints SIFT finds in the mirror image of a picture, from those it found in the picture."""
    points = features.points.copy()
    points[:, 0] = features.size[0] - 1 - points[:, 0]  # keypoints sit on pixel centres: x -> (w - 1) - x
    return LocalFeatures(points, features.descriptors[:, MIRROR_ORDER], features.size, features.full_size)


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


# Keypoints of a file that cannot be read: nothing to match, so only the cosine rule can decide.
NO_FEATURES = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (1, 1), (1, 1))


@dataclass
class Fit:
    matrix: np.ndarray  # 2x3: query work pixels -> stored work pixels
    inliers: int
    matches: int
    mirrored: bool
    query_points: np.ndarray  # the inliers, in the query's work pixels (mirrored ones when mirrored)
    stored_points: np.ndarray


def ratio_matches(query: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query indices, stored indices) of the descriptor matches that pass Lowe's ratio test, one to one.

    Exact nearest neighbours as OpenCV's brute-force matcher finds them (the same matches), from one matrix
    product instead of its knnMatch and a loop over its results. The product is OpenCV's, not numpy's: OpenBLAS's
    threads spin while they wait, and took the core from the other check thread's SIFT (a stored file's keypoints
    and two matches, two threads at a time: 69 ms with knnMatch, 76 with numpy's product, 60 with OpenCV's;
    benchmarks/RESULTS.md, verdict: cheaper checks)."""
    import cv2

    q = query.astype(np.float32)
    s = stored.astype(np.float32)
    # Squared distances less |q|^2, which is the same along a row: enough to find a row's two nearest.
    partial = cv2.gemm(q, s, -2.0, None, 0.0, flags=cv2.GEMM_2_T)
    partial += (s * s).sum(axis=1)
    rows = np.arange(len(q))
    nearest = partial.argmin(axis=1)
    best = partial[rows, nearest].copy()
    partial[rows, nearest] = np.inf
    second = partial.min(axis=1)
    norms = (q * q).sum(axis=1)
    best = np.sqrt(np.maximum(best + norms, 0))
    second = np.sqrt(np.maximum(second + norms, 0))
    good = np.flatnonzero(best < RATIO * second)
    # One to one: many query keypoints along a straight edge (the black corners of a tilted copy) can all match
    # one stored keypoint, and a transform that folds them onto that point "agrees" with every one of them. The
    # closest match of each stored keypoint stays (the first of equals).
    order = good[np.lexsort((best[good], nearest[good]))]
    first_of_each = np.ones(len(order), dtype=bool)
    first_of_each[1:] = nearest[order][1:] != nearest[order][:-1]
    kept = np.sort(order[first_of_each])
    return kept, nearest[kept]


def fit_transform(query: LocalFeatures, stored: LocalFeatures, mirrored: bool = False) -> Fit | None:
    """The similarity transform most keypoint matches agree on, or None when there is too little to fit."""
    import cv2

    if len(query.descriptors) < 2 or len(stored.descriptors) < 2:
        return None
    query_index, stored_index = ratio_matches(query.descriptors, stored.descriptors)
    if len(query_index) < 3:
        return None
    src = query.points[query_index]
    dst = stored.points[stored_index]
    matrix, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS, maxIters=2000, confidence=0.995
    )
    if matrix is None:
        return None
    keep = mask.ravel().astype(bool)
    return Fit(matrix, int(keep.sum()), len(query_index), mirrored, src[keep], dst[keep])


def _spread(points: np.ndarray, size: tuple[int, int]) -> float:
    """Share of the picture covered by the bounding box of the points."""
    if len(points) < 2:
        return 0.0
    span = points.max(axis=0) - points.min(axis=0)
    return float(span[0] * span[1]) / float(size[0] * size[1])


def is_convincing(fit: Fit | None, query: LocalFeatures, stored: LocalFeatures) -> bool:
    if fit is None or fit.inliers < MIN_INLIERS or fit.inliers < MIN_INLIER_SHARE * fit.matches:
        return False
    scale = math.hypot(fit.matrix[0, 0], fit.matrix[1, 0])
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        return False
    return max(_spread(fit.query_points, query.size), _spread(fit.stored_points, stored.size)) >= MIN_SPREAD


def verify(query: QueryFeatures, stored: LocalFeatures, try_mirrored: bool = True) -> Fit | None:
    """A convincing fit of the query onto a stored picture (as it is, else mirrored), or None."""
    fit = fit_transform(query.plain, stored)
    if is_convincing(fit, query.plain, stored):
        return fit
    if not try_mirrored:
        return None
    mirrored = fit_transform(query.mirrored, stored, mirrored=True)
    if is_convincing(mirrored, query.mirrored, stored):
        return mirrored
    return None


def _polygon_share(corners: np.ndarray, size: tuple[int, int]) -> tuple[list[float], float]:
    """Box (fractions, clipped) and area share of a quadrilateral inside a w x h picture."""
    import cv2

    w, h = size
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    area, _ = cv2.intersectConvexConvex(corners.astype(np.float32), frame)
    x0, y0 = np.clip(corners.min(axis=0), 0, (w, h))
    x1, y1 = np.clip(corners.max(axis=0), 0, (w, h))
    box = [round(float(x0 / w), 3), round(float(y0 / h), 3), round(float(x1 / w), 3), round(float(y1 / h), 3)]
    return box, float(max(area, 0.0)) / float(w * h)


def evidence(fit: Fit, query: LocalFeatures, stored: LocalFeatures, similarity: float) -> Evidence:
    """What the fit says the copy is, relative to the original, in plain numbers and one sentence."""
    matrix = fit.matrix
    a, b = float(matrix[0, 0]), float(matrix[1, 0])
    work_scale = math.hypot(a, b)  # stored work pixels per query work pixel
    # In full-size pixels: copy pixels per original pixel.
    query_factor = query.full_size[0] / query.size[0]
    stored_factor = stored.full_size[0] / stored.size[0]
    scale = query_factor / (work_scale * stored_factor)
    # The matrix turns query pixels into stored pixels; in image coordinates (y down) a positive angle is
    # clockwise on screen, so the copy is turned that far counterclockwise from the original.
    turned = round(math.degrees(math.atan2(b, a)) % 360.0, 1) % 360.0  # 359.97 is 0.0, not 360.0
    qw, qh = query.size
    copy_corners = np.array([[0, 0], [qw, 0], [qw, qh], [0, qh]], dtype=np.float64)
    in_stored = copy_corners @ matrix[:, :2].T + matrix[:, 2]
    region, shown = _polygon_share(in_stored, stored.size)
    inverse = np.vstack([matrix, [0, 0, 1]])
    inverse = np.linalg.inv(inverse)[:2]
    sw, sh = stored.size
    original_corners = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], dtype=np.float64)
    in_copy = original_corners @ inverse[:, :2].T + inverse[:, 2]
    placement, covered = _polygon_share(in_copy, query.size)
    if fit.mirrored:  # the fit was made on the mirrored query: tell the place in the copy as it really is
        placement = [round(1 - placement[2], 3), placement[1], round(1 - placement[0], 3), placement[3]]
    return Evidence(
        GEOMETRY,
        inliers=fit.inliers,
        matches=fit.matches,
        turned=turned,
        scale=round(scale, 3),
        mirrored=fit.mirrored,
        original_region=region,
        original_shown=round(shown, 3),
        original_in_copy=placement,
        copy_covered=round(covered, 3),
        similarity=round(similarity, 4),
    )


@dataclass(frozen=True)
class Judgement:
    """The verdict on one (query, stored image) pair: COPY with its evidence, or SIMILAR."""

    match: str  # COPY or SIMILAR
    evidence: Evidence | None = None

    @property
    def is_copy(self) -> bool:
        return self.match == COPY


NOT_A_COPY = Judgement(SIMILAR)


class Verifier:
    """Decides copy or similar for (query, stored file) pairs; stored files' keypoints are cached by path,
    size and mtime, so a long-lived process (serve, duplicates) reads each file once."""

    def __init__(self, cache_size: int = 512):
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.files_read = 0

    def stored(self, path: str) -> LocalFeatures | None:
        """Keypoints of a stored image's file; None when it is not readable here (moved, remote, no file)."""
        try:
            stat = os.stat(path)
        except (OSError, ValueError):
            return None
        key = (path, stat.st_size, stat.st_mtime)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            loaded = load_image(path)
        except ImageError:
            return None
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
        if stored is not None:
            fit = verify(query, stored, try_mirrored=similarity >= MIRROR_SIMILARITY)
            if fit is not None:
                found = evidence(fit, query.plain if not fit.mirrored else query.mirrored, stored, similarity)
                return Judgement(COPY, found.in_whole_query(query.box))
            if min(len(stored.points), len(query.plain.points)) >= FEW_KEYPOINTS:
                return NOT_A_COPY  # enough texture to tell, and the geometry says no
        if similarity >= COPY_SIMILARITY:
            return Judgement(COPY, Evidence(FEATURES, similarity=round(similarity, 4), file_checked=stored is not None))
        return NOT_A_COPY

    def judge_files(self, query_path: str, stored_path: str, similarity: float) -> Judgement:
        """The same verdict between two stored files, the first in the query's place (its cached keypoints, and
        its mirror image's reflected from them); a file not readable here has no keypoints."""
        query = QueryFeatures.of_stored(self.stored(query_path) or NO_FEATURES)
        return self.judge(query, stored_path, similarity)
