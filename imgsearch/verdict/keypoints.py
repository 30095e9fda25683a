"""SIFT keypoints of a picture, of its mirror image (reflected, not recomputed), and their one-to-one matches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# SIFT works on a stored picture shrunk to this longest side: enough detail for a copy at 30% size, and ~4x
# cheaper than 1024 px. A query gets more of both, once per search: when the original is a small part of it
# (a photo in a page of text), the text must not take all the keypoints.
WORK_SIDE = 512
MAX_KEYPOINTS = 1000
QUERY_SIDE = 800
QUERY_KEYPOINTS = 2000
RATIO = 0.75  # Lowe's ratio test: a match must be clearly better than the second best
# A picture with fewer keypoints than this at SIFT's usual contrast threshold has little texture (fog, a sky, a
# night shot, a gradient): its keypoints are looked for again at LOW_CONTRAST, where the faint structure it has
# (cloud edges, a tree line, stars) gives enough to fit a transform. Every picture keeps a small grey copy of itself
# (THUMB_SIDE, 64 KB) for the dense check (verdict.dense), which either side's lack of texture calls for. Dev
# photos: 91 of 534 are under 100 at 0.04 (most of them telescope pictures); at 0.01, 69 of those 91 have 100 or
# more (80 at 0.005, where JPEG noise starts to count).
FEW_KEYPOINTS = 100
CONTRAST = 0.04
LOW_CONTRAST = 0.01
THUMB_SIDE = 256


@dataclass
class LocalFeatures:
    points: np.ndarray  # (n, 2) float32 keypoint positions in the work picture
    descriptors: np.ndarray  # (n, 128) uint8 SIFT descriptors
    size: tuple[int, int]  # the work picture's (width, height)
    full_size: tuple[int, int]  # the picture's full (width, height)
    textured: bool = True  # FEW_KEYPOINTS or more at the usual contrast threshold
    thumb: np.ndarray | None = None  # grey, longest side THUMB_SIDE, uint8 (for the dense check)


def local_features(
    image: Image.Image,
    full_size: tuple[int, int] | None = None,
    side: int = WORK_SIDE,
    max_keypoints: int = MAX_KEYPOINTS,
    contrast: float = CONTRAST,
) -> LocalFeatures:
    work = image
    if max(image.size) > side:
        work = image.copy()
        work.thumbnail((side, side), Image.Resampling.BILINEAR)
    grey = np.asarray(work.convert("L"))
    points, descriptors = _sift(grey, max_keypoints, contrast)
    textured = len(points) >= FEW_KEYPOINTS
    if not textured and contrast > LOW_CONTRAST:
        points, descriptors = _sift(grey, max_keypoints, LOW_CONTRAST)
    return LocalFeatures(points, descriptors, work.size, full_size or image.size, textured, grey_thumb(grey))


def grey_thumb(picture: Image.Image | np.ndarray) -> np.ndarray:
    """The dense check's picture: grey, longest side THUMB_SIDE at most."""
    small = Image.fromarray(picture) if isinstance(picture, np.ndarray) else picture.convert("L")
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(small)


def _sift(grey: np.ndarray, max_keypoints: int, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    sift = cv2.SIFT_create(max_keypoints, 3, contrast, 10, 1.6, cv2.CV_8U)  # uint8 descriptors: 4x less to cache
    keypoints, descriptors = sift.detectAndCompute(grey, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    if descriptors is None:
        descriptors = np.zeros((0, 128), dtype=np.uint8)
    return points, descriptors


# Keypoints of a file that cannot be read: nothing to match, so only the cosine rule can decide.
NO_FEATURES = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (1, 1), (1, 1))

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
    thumb = None if features.thumb is None else np.ascontiguousarray(features.thumb[:, ::-1])
    return LocalFeatures(points, features.descriptors[:, MIRROR_ORDER], features.size, features.full_size,
                         features.textured, thumb)


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
