"""Query views: the ways a query picture is looked at, so that a copy's original is found behind geometric edits.

A copy may be the original turned, framed, cropped, or pasted into a page. Stored images keep one vector each
(nothing to re-index, one row per image); the *query* is looked at several ways instead, in two rounds:

- first: the picture itself, and the picture with a uniform frame cut away (any colour: a grey window, a white
  mat), when it has one;
- more, only when the first round verified no copy: the picture turned by 90, 180 and 270 degrees, its centre
  half (a tilted copy without its corners), and four corner windows of 60% (a photo inside a page or a collage).

Each view records where it came from (a box of the query, a rotation) so that evidence can be told in the
query's own terms.
"""

from __future__ import annotations

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

# (name, box as fractions of the query: left, top, right, bottom)
WINDOWS = (
    ("centre", (0.25, 0.25, 0.75, 0.75)),
    ("top-left", (0.0, 0.0, 0.6, 0.6)),
    ("top-right", (0.4, 0.0, 1.0, 0.6)),
    ("bottom-left", (0.0, 0.4, 0.6, 1.0)),
    ("bottom-right", (0.4, 0.4, 1.0, 1.0)),
)
ROTATIONS = (90, 180, 270)  # counterclockwise, as PIL turns pictures


@dataclass
class View:
    name: str
    image: Image.Image
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # the part of the query this view shows
    rotation: int = 0  # degrees the view is turned from the query, counterclockwise


def first_views(image: Image.Image) -> list[View]:
    """The picture, plus the picture without its uniform frame when it has one."""
    views = [View("picture", image)]
    box = uniform_frame_box(image)
    if box is not None:
        w, h = image.size
        views.append(View("frame-cut", image.crop(box), (box[0] / w, box[1] / h, box[2] / w, box[3] / h)))
    return views


def more_views(image: Image.Image) -> list[View]:
    """Turned and windowed views, for copies the first round could not place."""
    views = [View(f"turned-{angle}", image.rotate(angle, expand=True), rotation=angle) for angle in ROTATIONS]
    w, h = image.size
    for name, (x0, y0, x1, y1) in WINDOWS:
        crop = image.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
        views.append(View(name, crop, (x0, y0, x1, y1)))
    return views


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
    step = max(1, -(-max(image.size) // FRAME_SIDE))
    arr = np.asarray(image.convert("RGB"), dtype=np.int16)[::step, ::step]
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
    return (
        min(left * step, image.width),
        min(top * step, image.height),
        min(right * step, image.width),
        min(bottom * step, image.height),
    )


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
