"""The dense check, for pictures with too few keypoints (fog, a sky, a night shot, bokeh): align the two pictures
pixel by pixel (OpenCV's ECC, an affine warp) and measure how well their fine structure correlates.

Only the fine structure counts (a band-pass: the picture less its blur), so two different skies, which share a
smooth gradient from light to dark, do not correlate, while a copy of one sky (recompressed, resized, recoloured,
watermarked, framed) keeps its clouds' texture where they were. The picture inside a uniform frame (a black border,
a white mat) is what is aligned. Copies that move the picture more than an affine warp started from "the same
place" can follow (a tight crop, a large turn) are left to the keypoints, which are looked for at a lower contrast
for such pictures (keypoints.LOW_CONTRAST).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .geometry import Fit, plausible_scale
from .keypoints import THUMB_SIDE

# The band kept: detail between these two blurs (pixels of a THUMB_SIDE picture). JPEG at quality 20 keeps it; a
# smooth gradient has none.
FINE_SIGMA = 1.0
COARSE_SIGMA = 6.0
# The two pictures' shapes (width / height, once a uniform frame is cut) may differ by this share: more is not the
# same picture whole.
ASPECT_TOLERANCE = 0.08
ITERATIONS = 60
# A copy lines up where it is, to within a little zoom and shift (a frame cut a few pixels off); two different
# skies or star fields correlate, when they do, only after a large warp. Ten of the flattest dev photos (JPEG 20,
# halved, recoloured, grey, 10% black border): 0.93-1.00 within a warp of 0.10 (0.13-0.21 for black borders around
# a black night sky, where the frame cannot be told from the sky); their 90 unrelated pairs: at most 0.75 within a
# warp of 0.25, 0.85 and 0.91 only beyond 0.49 (the warp: the largest change of a matrix entry, or a shift as a
# share of the side). Re-measured on the verdict benchmark's low-texture set (benchmarks/RESULTS.md, verdict).
MIN_CORRELATION = 0.85
MAX_WARP = 0.25


# A watermark, a logo or a caption over a low-texture picture is most of its fine structure: the benchmark's
# watermarked copies of low-texture dev photos correlated 0.05-0.95 with their originals, 20 of the 21 that can be
# compared under 0.85. So where a copy lines up where it is (OVERLAY_MAX_WARP), the pixels where the two fine
# structures disagree most (OVERLAY_SHARE of them, their disagreement blurred by OVERLAY_BLUR pixels: text and
# logos are compact) are left out, and the rest correlated again: 12 of the 21 then reach 0.85 (0.88-0.998). Every
# ordered pair of the 91 low-texture dev photos that can be compared (2,017 of 8,190): at most 0.60 within a warp
# of 0.10 (two pictures that share a foreground: 0.58), 0.80 and 0.90 only at warps of 0.16 and 0.24.
OVERLAY_SHARE = 0.15
OVERLAY_MAX_WARP = 0.05
OVERLAY_BLUR = 2.0


@dataclass(frozen=True)
class Alignment:
    correlation: float  # the two fine structures' correlation once aligned (-1 to 1)
    warp: float  # how far the alignment moved from "the same place": largest change of a matrix entry or shift
    share: float = 1.0  # of the picture correlated: less when what only one of them has was left out
    matrix: np.ndarray | None = field(default=None, repr=False, compare=False)  # ECC's 2x3 warp

    @property
    def is_copy(self) -> bool:
        if self.share < 1.0:
            return self.correlation >= MIN_CORRELATION and self.warp <= OVERLAY_MAX_WARP
        return self.correlation >= MIN_CORRELATION and self.warp <= MAX_WARP


# Fine structure weaker than this (grey levels, standard deviation) is none: a smooth or banded gradient.
MIN_DETAIL = 0.5


def fine_structure(grey: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The picture less its blur, without a margin where the blur meets the edge (a gradient's edges would
    otherwise be all the structure two different gradients have, and it would correlate). ``scale``: the
    picture's size against a THUMB_SIDE one; the band is the same share of the picture at every size."""
    fine = _band(grey.astype(np.float32), scale)
    margin = max(1, int(3 * COARSE_SIGMA * scale))
    return fine[margin:-margin, margin:-margin]


def _inside_frame(grey: np.ndarray) -> np.ndarray:
    from ..views import uniform_frame_box

    box = uniform_frame_box(Image.fromarray(grey).convert("RGB"))
    return grey if box is None else grey[box[1] : box[3], box[0] : box[2]]


def align(query: np.ndarray, stored: np.ndarray, any_shape: bool = False) -> Alignment | None:
    """How well the fine structure of two grey pictures correlates once aligned, and how far the alignment moved;
    None when they cannot be the same picture whole (other shapes) or the alignment does not converge.
    ``any_shape``: the query's shape says nothing of the original's (a photographed picture warped back to a
    rectangle: its sides' lengths are foreshortened), so it is stretched to the stored picture's.

    The pictures inside uniform frames are tried first, then the pictures whole: a night sky is dark at its edges,
    so what is cut as "frame" depends on the picture's size (the 30% copy of a 256 px nebula kept 29 x 18 px of
    it, its original 92 x 62), and only the whole pictures line up."""
    inside = (_inside_frame(query), _inside_frame(stored))
    same = inside[0] is query and inside[1] is stored
    tries = [inside] if same else [inside, (query, stored)]
    found = None
    for pair in tries:
        found = _align_pair(*pair, any_shape) or found
        if found is not None and found.is_copy:
            break
    return found


def _align_pair(query: np.ndarray, stored: np.ndarray, any_shape: bool) -> Alignment | None:
    import cv2

    (qh, qw), (sh, sw) = query.shape, stored.shape
    if any_shape and min(qh, qw) >= 64:
        side = max(qh, qw)  # as many pixels along the longest side, in the stored picture's shape
        qw, qh = (side, round(side * sh / sw)) if sw >= sh else (round(side * sw / sh), side)
        query = cv2.resize(query, (qw, qh), interpolation=cv2.INTER_AREA)
    if min(qh, qw, sh, sw) < 64 or abs(qw / qh - sw / sh) > ASPECT_TOLERANCE * (sw / sh):
        return None
    # Compared at the detail both have: a copy downscaled below THUMB_SIDE (a 256 px telescope picture at 30%
    # is 77 px) blown up to the stored picture's size has no fine structure left to correlate.
    if qw < sw:
        stored, (sh, sw) = cv2.resize(stored, (qw, qh), interpolation=cv2.INTER_AREA), (qh, qw)
    scale = max(sw, sh) / THUMB_SIDE
    template = fine_structure(stored, scale)
    moving = fine_structure(cv2.resize(query, (sw, sh), interpolation=cv2.INTER_AREA), scale)
    if template.std() < MIN_DETAIL or moving.std() < MIN_DETAIL:
        return None  # nothing fine at all: a plain colour or a smooth gradient
    found = _ecc(template, moving, (sw, sh))
    if found is not None and not found.is_copy and found.warp <= OVERLAY_MAX_WARP:
        return _without_overlay(template, moving, found) or found
    return found


def _without_overlay(template: np.ndarray, moving: np.ndarray, found: Alignment) -> Alignment | None:
    """The correlation of an alignment where the two fine structures agree best, what only one of them has (a
    watermark, a caption) left out (OVERLAY_SHARE); None when too little detail is left to tell."""
    import cv2

    h, w = template.shape
    placed = cv2.warpAffine(moving, found.matrix, (w, h), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP)
    disagree = cv2.GaussianBlur(np.abs(_standardised(template) - _standardised(placed)), (0, 0), OVERLAY_BLUR)
    keep = disagree <= np.quantile(disagree, 1 - OVERLAY_SHARE)
    kept_template, kept_placed = template[keep], placed[keep]
    if kept_template.std() < MIN_DETAIL or kept_placed.std() < MIN_DETAIL:
        return None
    correlation = float(np.corrcoef(kept_template, kept_placed)[0, 1])
    return Alignment(correlation, found.warp, round(float(keep.mean()), 3), found.matrix)


def _standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / max(float(values.std()), 1e-9)


def _ecc(template: np.ndarray, moving: np.ndarray, size: tuple[int, int],
         mask: np.ndarray | None = None) -> Alignment | None:
    """ECC's affine alignment of ``moving`` onto ``template`` (same shape) from "the same place": its correlation
    and how far it moved (a shift as a share of ``size``, the picture's); None when it does not converge."""
    import cv2

    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ITERATIONS, 1e-5)
    try:
        found, warp = cv2.findTransformECC(template, moving, warp, cv2.MOTION_AFFINE, criteria, mask, 1)
    except cv2.error:
        return None  # did not converge
    sw, sh = size
    moved = max(float(np.abs(warp[:, :2] - np.eye(2)).max()), abs(float(warp[0, 2])) / sw, abs(float(warp[1, 2])) / sh)
    return Alignment(float(found), moved, matrix=warp)


# Keypoints can place a copy that they cannot confirm alone (a fit needs 12 agreeing) and that a dense alignment from
# "the same place" cannot reach: a telescope picture's compact nebula (12-15 keypoints; its turned, cropped, mirrored
# copies' fits agree 5-8 of 5-8 matches), a tight crop of a small or blurred picture (a 42% crop of a 512 px photo, of
# a motion-blurred clock: 3-8 of 3-8), a 30% copy of a fine texture (skimage's grass: 10 of 10). Such a fit, most of
# its matches (SEED_INLIER_SHARE: with so few, one or two false matches are common; 7 of 9 agree for a clock's crop),
# places the copy on the stored picture, and the fine structure there must then correlate as a copy's does
# (MIN_CORRELATION) once ECC has refined the placing by a little (SEED_MAX_WARP), over a real share of the stored
# picture (SEED_MIN_OVERLAP, before the band's margin is cut from it: a 45% crop covers 20%, a 40% crop 16%) with some
# detail there (SEED_MIN_DETAIL: a crop of a monument's sky and stone had 0.39-0.41 grey levels; the dense check's
# MIN_DETAIL is for pictures whole). The correlation is what decides: those copies correlated 0.96-1.00, and every
# ordered pair of the 534 dev photos (284,622, textured ones too, each at its own cosine) had no placed copy at 3
# keypoints and 60% of the matches.
SEED_MIN_INLIERS = 3
SEED_INLIER_SHARE = 0.6
SEED_MIN_OVERLAP = 0.12
SEED_MAX_WARP = 0.10
SEED_MIN_DETAIL = 0.3
# ECC (20-40 ms) refines only a placing whose fine structure already correlates: the benchmark's copies placed by a
# few keypoints (tight crops, 30% copies, turned and mirrored telescope pictures: 30 placings) started at 0.75-1.00;
# the placings of dev photos' 30 nearest other dev photos (797 in 16,020 pairs) at -0.29 to 0.70, 99% of them under
# 0.26, so most fits of unrelated pictures that place anything cost two blurs, not an ECC. Over all 284,622 ordered
# pairs of dev photos, 12 placings started over 0.5, all telescope pictures placed on other ones: ECC took two of
# them to 0.90 and 0.88, but only by moving 0.28 and 1.29; within SEED_MAX_WARP, at most 0.76. A copy photographed at
# an angle, or mirrored, tilted and cropped, placed by a similarity, is refined by 0.09-0.10 to 0.96-0.99.
SEED_START_CORRELATION = 0.5


def places(fit: Fit | None) -> bool:
    """Whether a keypoint fit that does not convince alone may still place a copy for ``align_placed`` to confirm:
    SEED_MIN_INLIERS agreeing, SEED_INLIER_SHARE of the matches, at a scale a copy can have."""
    return (fit is not None and fit.inliers >= SEED_MIN_INLIERS and fit.inliers >= SEED_INLIER_SHARE * fit.matches
            and plausible_scale(fit))


def align_placed(query: np.ndarray, stored: np.ndarray, matrix: np.ndarray) -> Alignment | None:
    """How well the fine structure of two grey pictures correlates where ``matrix`` (3x3, query pixels -> stored
    pixels, a similarity or a perspective warp) places the query on the stored picture, after ECC refines the
    placing; None when the overlap is too small or there is no fine structure to compare."""
    import cv2

    sh, sw = stored.shape
    scale = max(sw, sh) / THUMB_SIDE
    placed = cv2.warpPerspective(query.astype(np.float32), matrix, (sw, sh), flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpPerspective(np.ones_like(query, np.uint8), matrix, (sw, sh), flags=cv2.INTER_NEAREST)
    if inside.mean() < SEED_MIN_OVERLAP:
        return None
    margin = max(1, int(3 * COARSE_SIGMA * scale))
    inside = cv2.erode(inside, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    if not inside.any():
        return None
    template = _band(stored.astype(np.float32), scale)
    moving = _band(placed, scale)
    kept = inside > 0
    if template[kept].std() < SEED_MIN_DETAIL or moving[kept].std() < SEED_MIN_DETAIL:
        return None
    if np.corrcoef(template[kept], moving[kept])[0, 1] < SEED_START_CORRELATION:
        return None  # nothing there lines up yet: ECC would only search
    return _ecc(template, moving, (sw, sh), inside)


def _band(grey: np.ndarray, scale: float) -> np.ndarray:
    """The picture less its blur, at its own size (``fine_structure`` cuts the edges away; a placing's mask does
    here)."""
    import cv2

    return cv2.GaussianBlur(grey, (0, 0), FINE_SIGMA * scale) - cv2.GaussianBlur(grey, (0, 0), COARSE_SIGMA * scale)
