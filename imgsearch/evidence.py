"""What a copy verdict rests on, as one typed value: made by ``verdict``, read by the copy check, duplicates and
the reports through its attributes, and printed through ``as_dict`` (the ``evidence`` object of ``--json``).

Three kinds (``method``):

- ``geometry``: keypoints of the two pictures agree on one transform (a similarity, or a perspective warp for a
  picture photographed at an angle); every geometric field is set;
- ``dense``: too few keypoints to fit a transform (fog, a sky, a night shot), but the two pictures aligned pixel
  by pixel correlate in their fine structure (``correlation``), which two different skies do not; when a few
  keypoints placed the copy (turned, cropped) and the fine structure confirmed the placing, the geometric fields
  say where, as for ``geometry``;
- ``features``: too little texture to check (or the stored file is not readable here), so a strict cosine
  decided; ``file_checked`` says which;
- ``through-copies``: in a duplicates group, a copy of another copy whose overlap with the original is too small
  to measure directly.

Regions and places are boxes as fractions of a picture, ``[left, top, right, bottom]``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .views import WHOLE

GEOMETRY = "geometry"
DENSE = "dense"
FEATURES = "features"
THROUGH_COPIES = "through-copies"

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Evidence:
    method: str  # GEOMETRY, FEATURES or THROUGH_COPIES
    # geometry: the fit of the copy onto the original
    inliers: int | None = None  # matches agreeing on the transform
    matches: int | None = None  # matches passing the ratio test, one to one
    turned: float | None = None  # degrees counterclockwise, 0 <= turned < 360
    scale: float | None = None  # copy pixels per original pixel
    mirrored: bool | None = None
    original_region: list[float] | None = None  # the part of the original the copy shows
    original_shown: float | None = None  # its share of the original's area
    original_in_copy: list[float] | None = None  # where the original sits in the copy
    copy_covered: float | None = None  # the share of the copy the original covers
    perspective: bool | None = None  # photographed at an angle: the original's outline in the copy is keystoned
    original_corners: list[list[float]] | None = None  # the original's corners in the copy (TL, TR, BR, BL)
    # dense: the two pictures' fine structure, aligned, correlates this well (-1 to 1)
    correlation: float | None = None
    # dense: over this share of the picture, when what only one of them has (a watermark, a caption) was left out
    correlated_share: float | None = None
    # geometry and features
    similarity: float | None = None  # the cosine of the two vectors, rounded to 4 places
    # features: whether the stored file was read (too little texture) or could not be (not readable here)
    file_checked: bool | None = None
    view: str | None = None  # the query's view whose check found the copy (search only)

    @property
    def is_geometric(self) -> bool:
        return self.method == GEOMETRY

    @property
    def summary(self) -> str:
        """One sentence: what was done to the original to make this copy."""
        if self.method == THROUGH_COPIES:
            return "a copy of another copy in this group; too little of it overlaps the original to measure directly"
        if self.method == DENSE and self.inliers is not None:
            return (f"{self._edits()}; {self.inliers} matching keypoints place it and its fine structure there "
                    f"correlates {self.correlation:.2f}")
        if self.method == DENSE:
            angle = "photographed at an angle, " if self.perspective else ""
            over = "" if self.correlated_share is None else (
                f" over {self.correlated_share:.0%} of it (what only one has, a watermark or a caption, left out)")
            return (f"{angle}aligned pixel by pixel, fine structure correlates {self.correlation:.2f}{over}; too few "
                    "keypoints for a keypoint check")
        if self.method == FEATURES:
            reason = "too little texture to check geometry" if self.file_checked else "its file is not readable here"
            return f"near-identical features (cosine {self.similarity:.2f}); {reason}"
        return f"{self._edits()}; {self.inliers} matching keypoints agree"

    def _edits(self) -> str:
        """What the fit says was done to the original: turned, scaled, cropped, framed, mirrored, photographed."""
        parts = []
        if self.perspective:
            parts.append("photographed at an angle")
        if self.mirrored:
            parts.append("mirrored")
        off = min(self.turned, 360 - self.turned)
        if off >= 1.5:
            parts.append(f"turned {self.turned:.0f}° counterclockwise" if self.turned <= 180
                         else f"turned {off:.0f}° clockwise")
        if not 0.95 <= self.scale <= 1.05:
            parts.append(f"scaled to {self.scale:.0%}")
        if self.original_shown < 0.95:
            x0, y0, x1, y1 = self.original_region
            parts.append(f"shows {self.original_shown:.0%} of the original (x {x0:.2f}-{x1:.2f}, y {y0:.2f}-{y1:.2f})")
        if self.copy_covered < 0.95:
            parts.append(f"the original fills {self.copy_covered:.0%} of it (framed or inside a larger picture)")
        return ", ".join(parts) or "the whole picture, same size and orientation"

    def in_whole_query(self, box: Box) -> Evidence:
        """Evidence found with one part of the query (``box``), told in the whole query's terms: where the original
        sits in it, and how much of it the original covers."""
        if box == WHOLE or self.original_in_copy is None:
            return self
        x0, y0, x1, y1 = box
        px0, py0, px1, py1 = self.original_in_copy
        placed = [round(x0 + px0 * (x1 - x0), 3), round(y0 + py0 * (y1 - y0), 3),
                  round(x0 + px1 * (x1 - x0), 3), round(y0 + py1 * (y1 - y0), 3)]
        return replace(self, original_in_copy=placed, copy_covered=round(self.copy_covered * (x1 - x0) * (y1 - y0), 3))

    def seen_in(self, view: str) -> Evidence:
        return replace(self, view=view)

    def as_dict(self) -> dict:
        """The JSON form: the fields that are set, in declaration order, the summary before the view."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "view"}
        out = {k: v for k, v in out.items() if v is not None}
        out["summary"] = self.summary
        if self.view is not None:
            out["view"] = self.view
        return out
