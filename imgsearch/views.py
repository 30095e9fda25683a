"""Query views: the ways a query picture is looked at, so that a copy's original is found behind geometric edits.

A copy may be the original turned, framed, cropped, or pasted into a page. Stored images keep one vector each
(nothing to re-index, one row per image); the *query* is looked at several ways instead, in two rounds:

- first: the picture itself, the picture with a uniform frame cut away (any colour: a grey window, a white
  mat), when it has one, and each picture found inside it (``picture_regions``: the photos of a page among its
  text, the tiles of a collage), when it is made of pictures;
- also in the first round, a picture turned by any angle on a plain background (the corners a rotation leaves)
  turned back upright (``turned_back``), and a picture photographed at an angle (a print on a table: a keystoned
  outline) warped back to a rectangle (``photographed_outline``, ``rectified``);
- and each of those parts of the query shaved of a thin rim, where the rim hid a dark picture's black edges from
  the model's own cut (``rimless_views``);
- more, only when the first round verified no copy: the picture turned a quarter left, a quarter right and upside
  down (and the turned-back picture a quarter each way, as it may be a quarter off).
  A copy turned by 180 degrees keeps its edges' orientations (a line at angle a is at a + 180), so its max-pooled
  vector hardly moves and the picture view's candidates nearly always hold its original: 30 of 30 in the dev
  gallery, but 27 of 30 among ten times as many look-alikes (benchmarks/RESULTS.md, verdict), hence its view.

Each view records where it came from (a box of the query, a rotation) so that evidence can be told in the
query's own terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Frames are looked for on every k-th pixel, k such that the longest side is about this long: a few ms, and no
# smoothing, so a title bar's text stays thin.
FRAME_SIDE = 256
# A line (row or column) at the edge is frame when most of its pixels are within this many grey levels of the
# line's median colour. 80%, not all: a title bar with text on it is still frame, and a line through the
# picture is mostly picture. Tuned on the dev photos: 1 of 79 unframed photos gets a (harmless) frame view, and
# white, grey, red, black and window frames are all found, even at JPEG quality 40.
FRAME_TOLERANCE = 3
FRAME_SHARE = 0.80
# Within a frame, a short run of busier lines (the text of a title bar) is crossed when frame lines follow it.
FRAME_GAP = 0.06
# A frame-cut view is only worth a model pass when the frame is at least this share of a side.
FRAME_MIN_CUT = 0.03
FRAME_MIN_KEEP = 0.15
# The frame is found on every k-th line, and a JPEG's ringing makes the lines where frame meets picture busy, so
# the box found can keep a few lines of frame; on a textured picture those move its vector (a red frame's 3 px
# left on grass: 0.48 against the original, 0.99 without). So each edge is looked at again in full: lines within
# EDGE_TOLERANCE grey levels of the frame's colour (for FRAME_SHARE of their pixels) up to k + EDGE_REACH lines past
# it are frame, and the first line that is not, a blend of frame and picture, is cut too. On the dev benchmark's
# 234 framed copies the frame-cut view's cosine to the original went from median 0.971 (40 under 0.90) to 0.998
# (1 under 0.90, a tiny nebula whose black the frame detection takes for frame: the page view finds that one).
# The pictures inside a page or a collage are found on the same lines and get the same exact edges, the background
# around them taken for frame: over the benchmark's 284 pages and collages the best region's cosine went from mean
# 0.867 to 0.896 (a 2x2 collage's tiles 0.817 to 0.909); 8 went down by over 0.02, a picture whose own edge has the
# page's colour losing a few lines of it.
EDGE_TOLERANCE = 24
EDGE_REACH = 8

ROTATIONS = (90, 180, 270)  # the picture turned in the second round, counterclockwise, as PIL turns pictures
TURNED_BACK_ROTATIONS = (90, 270)  # the turned-back picture comes back within 45 degrees of upright or a quarter off
# A picture turned by any angle on a plain background (the corners a rotation leaves, black or any colour) is
# turned back upright (to within a quarter turn) for a view of its own, when the non-background part is one
# rectangle (filling TURNED_FILL of its rotated box) covering TURNED_MIN_AREA of the query, turned by at least
# TURNED_MIN_ANGLE degrees (less is the picture view's job: its vector hardly moves).
TURNED_FILL = 0.9
TURNED_MIN_AREA = 0.25
TURNED_MIN_ANGLE = 3.0
PixelBox = tuple[int, int, int, int]  # (left, top, right, bottom) in pixels
WHOLE = (0.0, 0.0, 1.0, 1.0)  # a box (left, top, right, bottom, as fractions) that is all of the query

# A picture photographed at an angle (a print on a table, a screen): its outline is a convex quadrilateral that
# stands out from a plain background (light may fall off across it: the background is a colour plane fitted to
# the query's border). It gets a view of its own, the picture inside the outline warped back to a rectangle, when
# the outline covers OUTLINE_MIN_AREA of the query and is keystoned (an angle OUTLINE_MIN_KEYSTONE degrees or more
# off square; a rectangle, turned or not, is the frame-cut and turned-back views' job). On the verdict benchmark's
# copies (benchmarks/RESULTS.md, verdict): found in 255 of 255 shots of a print at 20-25 degrees, and in 3 of 1,000
# copies that are not photographed (tilts, borders, pages); the view brought the original of 41 of 48 shots of
# low-texture pictures to rank 1 or 2 (18 of 48 before).
OUTLINE_BORDER = 0.02  # the border that shows the background: this share of the longest side
OUTLINE_TOLERANCE = 12  # grey levels from the background plane, at least (3x its spread along the border)
OUTLINE_MIN_AREA = 0.25
OUTLINE_MAX_AREA = 0.97
OUTLINE_FILL = 0.95  # the outline fills this share of its quadrilateral, which differs from its hull by 3% at most
OUTLINE_MIN_KEYSTONE = 2.5

# Pictures inside a page or a collage: solid blocks that differ from the background (the colour most of the
# border has). A pixel is background within this many levels on every channel (JPEG moves flat colours by a few).
REGION_TOLERANCE = 12
REGION_BORDER_SHARE = 0.6  # no background unless this share of the border pixels has its colour
# Thin things (lines of text, rules, captions) are removed by an opening with a square this share of the longest
# side (5 px at 256): text sampled on every k-th pixel is a scatter of dots, a picture a solid block.
REGION_OPENING = 0.02
REGION_MIN_SIDE = 0.12  # a region spans at least this share of each side of the query
# Its outline fills this share of its box: a photo whose own edge is partly background-coloured (a white wall on
# a white page) leaves notches in it; a cut-out object on a plain background leaves more.
REGION_MIN_FILL = 0.65
REGION_SIDE_SHARE = 0.7  # and runs straight along at least three sides of its box (see _straight_sides)
REGION_MAX_SIDE = 0.9  # a block spanning this much of both sides is the picture itself (the frame-cut view)
MAX_REGIONS = 4
# A part cut out of a query (a framed picture, a page's photo, a print warped back) keeps a rim of what was around
# it: a pixel line of the frame, the page, the table. On a dark picture (a night sky, a telescope picture) that
# rim stops the model's black-border cut (``features.black_border_box``), which the stored original had, so the
# view frames the picture otherwise than the original's vector does: a white-framed galaxy's frame-cut view scored
# 0.60 against its original, 0.97 with 1% shaved off each side; a page's nebula 0.67 -> 0.97 with 4%; a
# photographed star cluster 0.57 -> 0.82 with either. Where a shave uncovers a black border, the shaved part is a
# view as well (one or two more model passes, for dark parts only).
RIM_SHAVES = (0.01, 0.04)
# Tiles of one grid have one size and line up, to within this share of a side (sampled pixels, JPEG edges); the
# gutter between them is narrower than GRID_MAX_PITCH - 1 tiles; a cell they place is a picture when at least
# GRID_MIN_FILL of it is not background.
GRID_TOLERANCE = 0.04
GRID_MAX_PITCH = 1.5
GRID_MIN_FILL = 0.5


@dataclass
class View:
    name: str
    image: Image.Image
    box: tuple[float, float, float, float] = WHOLE  # the part of the query this view shows
    rotation: int = 0  # degrees the view is turned from the query, counterclockwise
    region: bool = False  # a picture found inside the query: its candidates are checked with its own keypoints

    @property
    def part(self) -> bool:
        """A view of a part of the query (frame cut away, a picture inside): it shows the original nearly whole."""
        return self.box != WHOLE


def first_views(image: Image.Image, model_cut: Callable[[Image.Image], PixelBox | None] | None = None) -> list[View]:
    """The picture, plus the picture without its uniform frame when it has one, plus each picture inside it.

    ``model_cut``: the part of a picture the model itself looks at, when it cuts something away (VGG16 cuts
    black borders; ``Embedder.content_box``): a frame it cuts already needs no view of its own, the picture view
    is that view; and a dark part's rim that stops the cut is shaved (``rimless_views``).

    The pictures inside (a page's photos, a collage's tiles) are looked at in this round, not the next: a photo
    that fills the query has none (none of 534 dev photos had one), so they cost a model pass only to queries
    that are made of pictures, and they find those queries' originals before the turned views of the next round.
    """
    w, h = image.size
    views = [View("picture", image)]
    model_box = model_cut(image) if model_cut is not None else None
    frame = uniform_frame_box(image)
    if frame is not None and not _same_box(frame, model_box, image.size):
        views.append(View("frame-cut", image.crop(frame), (frame[0] / w, frame[1] / h, frame[2] / w, frame[3] / h)))
    upright = turned_back(image)
    if upright is not None:
        views.append(View("turned-back", upright[1], rotation=upright[0]))
    corners = photographed_outline(image)
    if corners is not None:
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        outline_box = (max(0.0, float(x0) / w), max(0.0, float(y0) / h),
                       min(1.0, float(x1) / w), min(1.0, float(y1) / h))
        views.append(View("rectified", rectified(image, corners), outline_box))
    for i, box in enumerate(picture_regions(image)):
        if frame is not None and _overlap(box, frame) > 0.8:
            continue  # the framed picture itself: the frame-cut view shows it already
        views.append(View(f"region-{i + 1}", image.crop(box), (box[0] / w, box[1] / h, box[2] / w, box[3] / h),
                          region=True))
    if model_cut is None:
        return views
    return views + [rimless for view in views[1:] for rimless in rimless_views(view, model_cut)]


def rimless_views(view: View, model_cut: Callable[[Image.Image], PixelBox | None]) -> list[View]:
    """The view shaved of a thin rim (RIM_SHAVES), for each shave that uncovers a part for the model to cut
    (``model_cut``: its black border) other than the view's own (compared in the view's pixels)."""
    w, h = view.image.size
    cuts, found = [model_cut(view.image)], []
    for share in RIM_SHAVES:
        rim = round(share * max(w, h))
        if min(w, h) - 2 * rim < 16:
            break
        shaved = view.image.crop((rim, rim, w - rim, h - rim))
        cut = model_cut(shaved)
        if cut is None:
            continue
        cut = (cut[0] + rim, cut[1] + rim, cut[2] + rim, cut[3] + rim)
        if any(_same_box(cut, other, (w, h)) for other in cuts):
            continue  # the same picture the model already sees
        cuts.append(cut)
        found.append(View(f"{view.name}-rimless-{round(share * 100)}", shaved, view.box, view.rotation, view.region))
    return found


def turned_back(image: Image.Image) -> tuple[float, Image.Image] | None:
    """(degrees turned back counterclockwise, the picture upright and cut out) for a picture turned by an angle on
    a plain background, or None. Upright means within a quarter turn: a turn of 60 degrees comes back turned a
    quarter, which the next round's quarter turns of this view undo."""
    import cv2

    arr, step = _sampled(image)
    h, w = arr.shape[:2]
    if h < 16 or w < 16:
        return None
    border = np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])
    background = _dominant_colour(border)
    if (np.abs(border - background) <= REGION_TOLERANCE).all(axis=1).mean() < REGION_BORDER_SHARE:
        return None
    mask = (np.abs(arr - background) > REGION_TOLERANCE).any(axis=2).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    (_, _), (rw, rh), angle = cv2.minAreaRect(outline)
    if rw * rh < TURNED_MIN_AREA * w * h or cv2.contourArea(outline) < TURNED_FILL * rw * rh:
        return None
    turn = (-angle) % 90.0  # OpenCV's box angle, as PIL's counterclockwise turn, within a quarter
    turn = turn - 90.0 if turn > 45.0 else turn
    if abs(turn) < TURNED_MIN_ANGLE:
        return None
    fill = tuple(int(c) for c in background)
    upright = image.convert("RGB").rotate(-turn, expand=True, resample=Image.Resampling.BILINEAR, fillcolor=fill)
    box = _content_box(upright, background)
    return (-turn, upright.crop(box)) if box is not None else None


def _content_box(image: Image.Image, background: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box of what is not background (at the sampled resolution, in full-size pixels)."""
    arr, step = _sampled(image)
    rows, cols = np.nonzero((np.abs(arr - background) > REGION_TOLERANCE).any(axis=2))
    if rows.size == 0:
        return None
    # A pixel in from each side: the turned edges blend with the background.
    x0, y0 = (cols.min() + 1) * step, (rows.min() + 1) * step
    x1, y1 = cols.max() * step, rows.max() * step
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None


def photographed_outline(image: Image.Image) -> np.ndarray | None:
    """The corners (top left, top right, bottom right, bottom left; pixels, float32) of a picture photographed at
    an angle on a plain background, or None: see OUTLINE_MIN_AREA and the lines above it."""
    import cv2

    arr, step = _sampled(image)
    h, w = arr.shape[:2]
    if h < 32 or w < 32:
        return None
    pixels = arr.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    border = np.zeros((h, w), bool)
    b = max(1, round(OUTLINE_BORDER * max(h, w)))
    border[:b], border[-b:], border[:, :b], border[:, -b:] = True, True, True, True
    plane = np.stack([np.ones((h, w), np.float32), xx / w, yy / h], axis=-1)
    coef, *_ = np.linalg.lstsq(plane[border], pixels[border], rcond=None)
    spread = np.abs(pixels[border] - plane[border] @ coef).max(axis=1)
    tolerance = max(OUTLINE_TOLERANCE, 3 * float(np.percentile(spread, 90)))
    if (spread <= tolerance).mean() < REGION_BORDER_SHARE:
        return None  # the border is no plain background: a photo that fills the query
    mask = (np.abs(pixels - plane @ coef) > tolerance).any(axis=2).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    hull = cv2.convexHull(outline)
    area = cv2.contourArea(hull)
    if not OUTLINE_MIN_AREA * w * h <= area <= OUTLINE_MAX_AREA * w * h:
        return None
    quad = _quadrilateral(hull)
    if quad is None or _keystone(quad) < OUTLINE_MIN_KEYSTONE:
        return None
    quad_area = cv2.contourArea(quad)
    if cv2.contourArea(outline) < OUTLINE_FILL * quad_area or abs(quad_area - area) > (1 - OUTLINE_FILL) * area:
        return None  # a blob (a nebula on a night sky), not a straight-sided picture
    return quad * step


def _quadrilateral(hull: np.ndarray) -> np.ndarray | None:
    """The hull simplified to four corners, top left first and clockwise; None if it is no quadrilateral."""
    import cv2

    perimeter = cv2.arcLength(hull, True)
    for epsilon in (0.01, 0.02, 0.03, 0.05):
        approx = cv2.approxPolyDP(hull, epsilon * perimeter, True)
        if len(approx) == 4:
            quad = approx[:, 0, :].astype(np.float32)
            centre = quad.mean(axis=0)
            quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
            return np.roll(quad, -int(np.argmin(quad.sum(axis=1))), axis=0)
    return None


def _keystone(quad: np.ndarray) -> float:
    """How far the quadrilateral's angles are from square: the largest, in degrees."""
    worst = 0.0
    for i in range(4):
        a, b = quad[i - 1] - quad[i], quad[(i + 1) % 4] - quad[i]
        cosine = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        worst = max(worst, abs(float(np.degrees(np.arccos(np.clip(cosine, -1, 1)))) - 90.0))
    return worst


def rectified(image: Image.Image, corners: np.ndarray) -> Image.Image:
    """The picture inside the corners warped back to a rectangle (its sides' mean lengths: the true shape is
    unknown from one photo, which the checks allow for)."""
    import cv2

    tl, tr, br, bl = corners
    width = max(8, round((np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2))
    height = max(8, round((np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2))
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    warped = cv2.warpPerspective(np.asarray(image.convert("RGB")), matrix, (width, height), flags=cv2.INTER_LINEAR)
    return Image.fromarray(warped)


def more_views(image: Image.Image) -> list[View]:
    """Turned views, for copies the first round could not place: turned a quarter, a picture's edges change
    orientation and its vector moves (the picture view's candidates missed the original of 4 of 36 quarter-turned
    copies of dev photos). A picture turned back upright (``turned_back``) may be a quarter off too: it is turned
    a quarter each way as well.

    Windows of the query (its centre half, corner windows of 60%) were looked at here too; on the dev benchmark
    they found no copy the other views missed and cost five model passes, most of an unrelated query's time."""
    found = [View(f"turned-{angle}", image.rotate(angle, expand=True), rotation=angle) for angle in ROTATIONS]
    upright = turned_back(image)
    if upright is not None:
        turn, picture = upright
        found += [View(f"turned-back-{angle}", picture.rotate(angle, expand=True), rotation=round(turn + angle, 1))
                  for angle in TURNED_BACK_ROTATIONS]
    return found


def picture_regions(image: Image.Image, max_regions: int = MAX_REGIONS) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of each rectangular picture inside the query, largest first: the photos of a
    page among its text, the tiles of a collage between its gutters. No region for a photo that fills the query (its
    border has no single colour), nor for a picture that is nearly all of it (that is the frame-cut view)."""
    import cv2

    arr, step = _sampled(image)
    h, w = arr.shape[:2]
    if h < 16 or w < 16:
        return []
    border = np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])
    background = _dominant_colour(border)
    if (np.abs(border - background) <= REGION_TOLERANCE).all(axis=1).mean() < REGION_BORDER_SHARE:
        return []
    mask = (np.abs(arr - background) > REGION_TOLERANCE).any(axis=2).astype(np.uint8)
    side = max(3, round(REGION_OPENING * max(h, w)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    found = []
    for label in range(1, count):
        x, y, bw, bh, _ = stats[label]
        if bw < REGION_MIN_SIDE * w or bh < REGION_MIN_SIDE * h:
            continue
        if bw > REGION_MAX_SIDE * w and bh > REGION_MAX_SIDE * h:
            continue
        if (x == 0) + (y == 0) + (x + bw == w) + (y + bh == h) > 1:
            continue  # part of a photo whose edge has the "background" colour (a sky); a picture cut off by one
            # edge of the page still counts
        # The outline's area, holes included: a photo's own flat patches (a white sky) are no gaps in it.
        outline = (labels[y : y + bh, x : x + bw] == label).astype(np.uint8)
        contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        filled = np.zeros_like(outline)
        cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
        if filled.sum() < REGION_MIN_FILL * bw * bh or _straight_sides(filled) < 3:
            continue
        found.append((int(bw * bh), (x, y, x + bw, y + bh)))
    found += [((c[2] - c[0]) * (c[3] - c[1]), c) for c in _grid_cells([box for _, box in found], mask)]
    if not found:
        return []
    found.sort(key=lambda f: (-f[0], f[1][1], f[1][0]))
    pixels = np.asarray(image.convert("RGB"))  # only where there are edges to make exact
    return [
        _exact_edges(pixels, (int(x0 * step), int(y0 * step), int(min(x1 * step, image.width)),
                              int(min(y1 * step, image.height))), step)
        for _, (x0, y0, x1, y1) in found[:max_regions]
    ]


def _grid_cells(boxes: list[tuple], mask: np.ndarray) -> list[tuple]:
    """The cells of a grid that the regions found lay out but that were not found themselves (a collage tile
    whose own edges are the gutter's colour): tiles of one size give the grid's columns and rows, repeated at
    their pitch across the query. A cell counts when it lies within the query and is mostly not background."""
    h, w = mask.shape
    best: list[tuple] = []
    for a in boxes:
        size = (a[2] - a[0], a[3] - a[1])
        same = [b for b in boxes if all(abs(b[i + 2] - b[i] - size[i]) <= GRID_TOLERANCE * size[i] for i in (0, 1))]
        if len(same) > len(best):
            best = same
    if len(best) < 2:
        return []
    size = (best[0][2] - best[0][0], best[0][3] - best[0][1])
    columns = _grid_starts([b[0] for b in best], size[0], w)
    rows = _grid_starts([b[1] for b in best], size[1], h)
    cells: list[tuple] = []
    for x in columns:
        for y in rows:
            cell = (x, y, x + size[0], y + size[1])
            if any(_overlap(cell, other) > 0.2 for other in [*boxes, *cells]):
                continue
            if mask[y : y + size[1], x : x + size[0]].mean() >= GRID_MIN_FILL:
                cells.append(cell)
    return cells


def _grid_starts(starts: list[int], size: int, limit: int) -> list[int]:
    """Where a grid's tiles start along one side: the tiles found, and more at their pitch (tile plus gutter)
    while they fit in the query."""
    distinct: list[int] = []
    for start in sorted(starts):
        if not distinct or start - distinct[-1] > GRID_TOLERANCE * size:
            distinct.append(start)
    if len(distinct) < 2:
        return distinct
    pitch = min(b - a for a, b in zip(distinct, distinct[1:]))
    if not size <= pitch <= GRID_MAX_PITCH * size:
        return distinct
    first = distinct[0] - pitch * (distinct[0] // pitch)
    return list(range(first, limit - size + 1, pitch))


def _sampled(image: Image.Image) -> tuple[np.ndarray, int]:
    """Every k-th pixel of the picture (RGB, int16 for differences), k such that the longest side is about
    FRAME_SIDE; and k. Frames and regions are looked for on this, in a few ms."""
    step = max(1, -(-max(image.size) // FRAME_SIDE))
    return np.asarray(image.convert("RGB"))[::step, ::step].astype(np.int16), step


def _same_box(a: tuple, b: tuple | None, size: tuple[int, int], tolerance: float = FRAME_MIN_CUT) -> bool:
    """Do two boxes of a picture differ by less than ``tolerance`` of a side at every edge?"""
    if b is None:
        return False
    w, h = size
    return all(abs(a[i] - b[i]) < tolerance * (w if i % 2 == 0 else h) for i in range(4))


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over union of two boxes."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union else 0.0


def _straight_sides(block: np.ndarray, share: float = REGION_SIDE_SHARE) -> int:
    """How many sides of a component's box the component runs along (for this share of the side, in one of the
    two outermost lines): 4 for a pasted photo, 3 when one edge of it fades into the background, few for a blob."""
    sides = (block[:2], block[-2:], block[:, :2].T, block[:, -2:].T)
    return sum(int(side.mean(axis=1).max() >= share) for side in sides)


def _dominant_colour(pixels: np.ndarray) -> np.ndarray:
    """The median of the pixels in the most common coarse colour bin (32 levels a channel)."""
    bins = pixels // 32
    keys = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    return np.median(pixels[keys == values[np.argmax(counts)]], axis=0)


def uniform_frame_box(
    image: Image.Image,
    tolerance: int = FRAME_TOLERANCE,
    share: float = FRAME_SHARE,
    min_cut: float = FRAME_MIN_CUT,
    min_keep: float = FRAME_MIN_KEEP,
) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the picture inside a frame of uniform lines, or None when there is none.

    Each edge line may have its own colour (a window's title bar above its grey canvas); a line with some text on it
    (under 1 - share of its pixels) still counts as frame.
    """
    arr, step = _sampled(image)
    h, w = arr.shape[:2]
    if h < 16 or w < 16:
        return None
    rows = _uniform_lines(arr, tolerance, share)
    cols = _uniform_lines(arr.transpose(1, 0, 2), tolerance, share)
    top = _frame_depth(rows)
    bottom = h - _frame_depth(rows[::-1])
    left = _frame_depth(cols)
    right = w - _frame_depth(cols[::-1])
    if bottom - top < min_keep * h or right - left < min_keep * w:
        return None  # a flat picture (fog, a plain wall), not a frame
    if max(top / h, (h - bottom) / h, left / w, (w - right) / w) < min_cut:
        return None
    coarse = (min(left * step, image.width), min(top * step, image.height), min(right * step, image.width),
              min(bottom * step, image.height))
    return _exact_edges(np.asarray(image.convert("RGB")), coarse, step)


def _exact_edges(pixels: np.ndarray, box: tuple[int, int, int, int], step: int) -> tuple[int, int, int, int]:
    """A box found on every ``step``-th line with each edge moved, in full resolution, to where the frame (or the
    background) around it ends, past the line blending the two (EDGE_TOLERANCE, EDGE_REACH)."""
    columns = pixels.transpose(1, 0, 2)
    exact = list(box)
    # (lines across the side, the edge's first picture line, the way inwards) for left, top, right, bottom
    for index, (lines, edge, inwards) in enumerate(((columns, box[0], 1), (pixels, box[1], 1),
                                                    (columns, box[2] - 1, -1), (pixels, box[3] - 1, -1))):
        start = edge - inwards * step  # outside the box: frame, as the sampling saw it
        if not 0 <= start < len(lines):
            continue
        colour = np.median(lines[start], axis=0)
        line, stop = start, edge + inwards * (step + EDGE_REACH)
        while (stop - line) * inwards > 0 and 0 <= line < len(lines) and _is_frame_line(lines[line], colour):
            line += inwards
        if line == start:
            continue  # not the frame the sampling saw: keep its edge
        cut = line + inwards  # the blended line goes too
        exact[index] = cut if inwards == 1 else cut + 1
    left, top, right, bottom = exact
    return (left, top, right, bottom) if right - left > step and bottom - top > step else box


def _is_frame_line(line: np.ndarray, colour: np.ndarray) -> bool:
    return bool((np.abs(line.astype(np.int16) - colour).max(axis=1) <= EDGE_TOLERANCE).mean() >= FRAME_SHARE)


def _uniform_lines(arr: np.ndarray, tolerance: int, share: float) -> np.ndarray:
    """For each row of (lines, length, 3): are nearly all its pixels within tolerance of its median colour?"""
    median = np.median(arr, axis=1, keepdims=True)
    close = (np.abs(arr - median) <= tolerance).all(axis=2)
    return close.mean(axis=1) >= share


def _frame_depth(flags: np.ndarray, gap: float = FRAME_GAP) -> int:
    """How many lines from the edge are frame: leading frame lines, across gaps of at most ``gap`` of the side
    that more frame lines follow."""
    longest_gap = max(1, int(gap * len(flags)))
    depth = i = 0
    while i < len(flags):
        if flags[i]:
            i += 1
            depth = i
            continue
        frame_again = np.flatnonzero(flags[i : i + longest_gap + 1])
        if depth == 0 or frame_again.size == 0:
            break  # the edge itself is busy (no frame), or the busy run is too long (the picture)
        i += int(frame_again[0])
    return depth
