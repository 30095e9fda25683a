"""The verdict's pure rules: which perspective outlines are a flat picture seen at an angle, what a warp says
(turned, scaled, keystoned), the share of its matches a small keypoint fit must explain, the dense check's
acceptance line and what it leaves out (a watermark), and turning a tilted picture back upright. No model, no
Milvus; pictures are drawn here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from imgsearch.verdict import dense
from imgsearch.verdict.geometry import (MIN_INLIERS, SMALL_FIT, Fit, _turn_and_work_scale, is_convincing,
                                        is_keystoned, original_outline, plausible_outline)
from imgsearch.verdict.keypoints import LocalFeatures
from imgsearch.views import _keystone, _quadrilateral, turned_back

SQUARE = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], dtype=np.float64)


def _clouds(seed: int) -> np.ndarray:
    """A low-texture grey picture: smooth random structure, like fog or a nebula (256 px)."""
    import cv2

    noise = np.random.default_rng(seed).normal(0, 1, (256, 256)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 3)
    return (128 + 8 * blurred / blurred.std()).clip(0, 255).astype(np.float32)


def _marked(grey: np.ndarray) -> np.ndarray:
    """The same picture under an agency's mark: a line of light text and a round logo."""
    picture = Image.fromarray(grey.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    draw.text((12, 170), "(c) 2026 Example Photo Agency", fill=230, font=ImageFont.load_default(size=16))
    draw.ellipse((20, 20, 56, 56), fill=60, outline=230)
    return np.asarray(picture, np.float32)


def test_what_only_one_picture_has_is_left_out_only_of_a_copy_in_place():
    """Left out, a watermark no longer hides a copy's fine structure; two different pictures under the same mark
    still do not correlate, whatever is left out."""
    in_place = dense.Alignment(0.0, 0.0, matrix=np.eye(2, 3, dtype=np.float32))
    original = dense.fine_structure(_clouds(1))
    copy = dense.fine_structure(_marked(_clouds(1)))
    other = dense.fine_structure(_marked(_clouds(2)))
    found = dense._without_overlay(original, copy, in_place)
    assert found.is_copy and found.correlation >= dense.MIN_CORRELATION
    assert found.share == pytest.approx(1 - dense.OVERLAY_SHARE, abs=0.01)
    assert np.corrcoef(original.ravel(), copy.ravel())[0, 1] < dense.MIN_CORRELATION  # whole, the mark hides it
    unrelated = dense._without_overlay(original, other, in_place)
    assert unrelated is None or (unrelated.correlation < 0.5 and not unrelated.is_copy)
    # Beyond a warp of OVERLAY_MAX_WARP the same correlation over a share is not a copy: it must line up in place.
    assert not dense.Alignment(0.99, dense.OVERLAY_MAX_WARP + 0.01, share=0.85).is_copy
    assert dense.Alignment(0.99, dense.OVERLAY_MAX_WARP + 0.01).is_copy


def test_a_rectangle_seen_up_to_about_35_degrees_off_axis_is_plausible():
    assert plausible_outline(SQUARE)
    keystone = np.array([[0, 10], [100, 0], [100, 100], [0, 90]], dtype=np.float64)  # left side further away
    assert plausible_outline(keystone) and is_keystoned(keystone)
    assert not is_keystoned(SQUARE)


@pytest.mark.parametrize("quad, why", [
    ([[0, 0], [100, 0], [0, 100], [100, 100]], "self-crossing"),
    ([[0, 0], [100, 0], [60, 40], [0, 100]], "not convex"),
    ([[0, 40], [100, 0], [100, 100], [0, 60]], "far side under half the near one"),
    ([[0, 0], [100, 0], [200, 100], [100, 100]], "sheared beyond 50-130 degrees"),
])
def test_outlines_no_flat_picture_makes_are_refused(quad, why):
    assert not plausible_outline(np.array(quad, dtype=np.float64)), why


def _shifted_fit(inliers: int, matches: int) -> tuple[Fit, LocalFeatures]:
    """A plain shift agreed by ``inliers`` keypoints spread over a 400x300 picture, out of ``matches``."""
    rng = np.random.default_rng(inliers * 100 + matches)
    points = rng.uniform((20, 20), (380, 280), size=(inliers, 2))
    side = LocalFeatures(np.zeros((0, 2)), np.zeros((0, 128), np.uint8), (400, 300), (400, 300))
    return Fit(np.array([[1.0, 0, 5], [0, 1.0, 3], [0, 0, 1]]), inliers, matches, False, points, points + (5, 3)), side


@pytest.mark.parametrize("inliers, matches, convincing", [
    (MIN_INLIERS, 18, True),  # two thirds of the matches
    (MIN_INLIERS, 19, False),  # 63%: enough for a large fit, not for one this small
    (MIN_INLIERS, 20, False),  # the least both counts allowed: where a second shot and a stereo look-alike sat
    (SMALL_FIT - 1, 23, False),
    (SMALL_FIT, 26, True),  # 62%: a large fit keeps the 60% rule
    (SMALL_FIT, 27, False),
    (MIN_INLIERS - 1, 11, False),
])
def test_a_small_fit_must_explain_two_thirds_of_its_matches(inliers, matches, convincing):
    fit, side = _shifted_fit(inliers, matches)
    assert is_convincing(fit, side, side) is convincing


@pytest.mark.parametrize("inliers, matches, places", [
    (3, 3, True),  # a 42% crop of a 512 px photo: 3 of 3
    (3, 5, True),  # 60%
    (3, 6, False),
    (7, 9, True),  # a clock's crop: two false matches among nine
    (5, 9, False),
    (2, 2, False),  # two points fit any similarity
])
def test_a_few_keypoints_place_a_copy_when_most_matches_agree(inliers, matches, places):
    fit, _ = _shifted_fit(inliers, matches)
    assert dense.places(fit) is places


def test_a_degenerate_scale_places_nothing():
    fit, _ = _shifted_fit(5, 5)
    assert not dense.places(Fit(np.diag([20.0, 20.0, 1.0]), 5, 5, False, fit.query_points, fit.stored_points))
    assert not dense.places(None)


def test_a_warp_tells_its_turn_and_scale_like_the_similarity_nearest_to_it():
    angle, scale = math.radians(30), 0.5  # query -> stored: turned 30 degrees, stored pixels per query pixel
    similarity = np.array([[scale * math.cos(angle), -scale * math.sin(angle), 10],
                           [scale * math.sin(angle), scale * math.cos(angle), 5], [0, 0, 1]])
    for perspective in (False, True):
        fit = Fit(similarity, 50, 50, False, np.zeros((0, 2)), np.zeros((0, 2)), perspective=perspective)
        turn, work_scale = _turn_and_work_scale(fit, (200, 100))
        assert turn == pytest.approx(angle) and work_scale == pytest.approx(scale)
    outline = original_outline(similarity, (200, 100))
    assert plausible_outline(outline) and not is_keystoned(outline)


def test_the_dense_check_wants_a_close_alignment_in_place():
    assert dense.Alignment(0.95, 0.02).is_copy
    assert not dense.Alignment(dense.MIN_CORRELATION - 0.01, 0.0).is_copy
    assert not dense.Alignment(0.99, dense.MAX_WARP + 0.01).is_copy  # two star fields lined up by a large warp


def test_the_dense_check_tells_a_copy_of_a_sky_from_another_sky():
    rng = np.random.default_rng(3)

    def sky(seed):
        noise = np.random.default_rng(seed).normal(0, 1, (64, 96)).astype(np.float32)
        clouds = np.kron(noise, np.ones((4, 4), np.float32))  # soft blobs
        gradient = np.linspace(60, 200, 256, dtype=np.float32)[:, None] * np.ones((1, 384), np.float32)
        return np.clip(gradient + 12 * clouds, 0, 255).astype(np.uint8)

    one, other = sky(1), sky(2)
    copy = np.clip(one.astype(np.float32) * 0.9 + 10 + rng.normal(0, 2, one.shape), 0, 255).astype(np.uint8)
    assert dense.align(copy, one).is_copy
    found = dense.align(other, one)
    assert found is None or not found.is_copy
    # Gradients have no fine structure: two of them are never a copy by the dense check, whatever their edges.
    dark = np.tile(np.linspace(10, 90, 384, dtype=np.float32), (256, 1))
    darker = (np.linspace(0, 1, 256, dtype=np.float32)[:, None] ** 2) * 70 + dark * 0.5
    assert dense.align(dark.astype(np.uint8), darker.astype(np.uint8)) is None
    assert dense.align(dark.astype(np.uint8), dark.astype(np.uint8)) is None


def test_a_picture_turned_on_a_plain_background_is_turned_back_upright():
    picture = Image.new("RGB", (300, 180), (200, 120, 40))
    ImageDraw.Draw(picture).rectangle((20, 20, 120, 90), fill=(30, 90, 200))
    for angle in (10, 30, -25):
        turn, upright = turned_back(picture.rotate(angle, expand=True, fillcolor=(0, 0, 0)))
        assert turn == pytest.approx(-angle, abs=1.0)
        assert upright.size == pytest.approx((300, 180), abs=8)
    assert turned_back(picture.rotate(1, expand=True)) is None  # too little turn: the picture view's job
    assert turned_back(picture) is None  # a photo that fills the query


def test_a_scene_that_goes_on_past_the_outline_is_a_second_photo_not_a_photographed_picture():
    from imgsearch.verdict.geometry import scene_continues
    from imgsearch.verdict.keypoints import LocalFeatures

    rng = np.random.default_rng(4)
    outline = np.array([[100, 80], [400, 100], [400, 300], [100, 320]], dtype=np.float64)  # in a 500 x 400 copy

    def features(points):
        return LocalFeatures(np.asarray(points, np.float32), np.zeros((len(points), 128), np.uint8), (500, 400),
                             (500, 400))

    everywhere = rng.uniform((0, 0), (500, 400), (1500, 2))  # a wall photographed twice: texture all over
    assert scene_continues(outline, features(everywhere))
    inside = everywhere[[cv2_inside(outline, p) for p in everywhere]]  # a print on a plain table
    assert not scene_continues(outline, features(inside))
    filling = np.array([[0, 0], [500, 0], [500, 400], [0, 400]], dtype=np.float64)  # no band to look at
    assert not scene_continues(filling, features(everywhere))


def cv2_inside(quad, point) -> bool:
    import cv2

    return cv2.pointPolygonTest(quad.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0


def test_a_hull_becomes_four_corners_top_left_first_and_keystone_is_its_worst_angle():
    trapezoid = np.array([[10, 30], [200, 0], [200, 150], [10, 120]], np.float32)
    # The hull as OpenCV gives it (any start, counterclockwise), with points along its sides.
    hull = np.array([[200, 150], [200, 75], [200, 0], [105, 15], [10, 30], [10, 120], [105, 135]], np.int32)
    quad = _quadrilateral(hull[:, None, :])
    assert np.allclose(quad, trapezoid)
    assert _keystone(quad) == pytest.approx(math.degrees(math.atan2(30, 190)), abs=0.1)
    assert _keystone(np.array([[0, 0], [100, 0], [100, 60], [0, 60]], np.float32)) == pytest.approx(0, abs=1e-3)
    turned = np.array([[50, 0], [100, 50], [50, 100], [0, 50]], np.float32)  # a square turned 45 degrees
    assert _keystone(turned) == pytest.approx(0, abs=1e-3)
    circle = [[100 + 50 * math.cos(a), 100 + 50 * math.sin(a)] for a in np.linspace(0, 2 * math.pi, 40)[:-1]]
    assert _quadrilateral(np.array(circle, np.int32)[:, None, :]) is None
