"""The edited copies of the verdict benchmark (benchmarks/verdict.py): the families of edits, the low-texture set,
and the look-alike distractors that grow the gallery.

Every copy is made once per (photo, variant) with its own fixed-seed generator, so adding photos or variants
changes no other copy.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from accuracy import make_edit

SEED = 2610

# family -> [(variant, tuned?)]
FAMILIES = {
    "recompressed": [("jpeg-q20", True), ("jpeg-q35", False)],
    "downscaled": [("scale-30%", True), ("scale-50%", False)],
    "recoloured": [("colour", True)],
    "mirrored": [("mirror", True)],
    "black border": [("border-10%", True), ("letterbox", False)],
    "uniform frame": [("frame-white", True), ("frame-grey", True), ("frame-red", True), ("window-ui", True),
                      ("frame-blue", False), ("frame-beige", False)],
    "rotated 90/180/270": [("turn-90", True), ("turn-180", True), ("turn-270", True)],
    "tilted": [("tilt-3", True), ("tilt-7", True), ("tilt-11", True), ("tilt-15", True), ("tilt-5", False),
               ("tilt-13", False)],
    "cropped": [("crop-80%", True), ("crop-65%", True), ("crop-50%", True), ("crop-57%", False)],
    "inside a page": [("page-40%", True), ("page-60%", True), ("page-50%", False)],
    "collage": [("collage-2x2", True), ("collage-1x3", False)],
    "text over it": [("caption", True), ("watermark", True), ("caption-top", False)],
    # Issue 21's families: what people really make.
    "photographed at an angle": [("persp-20", True), ("persp-30", True), ("shot-25", True), ("shot-30", True),
                                 ("persp-35", False), ("shot-20", False)],
    "turned any angle": [("turn-20", True), ("turn-45", True), ("turn-60", True), ("turn-33", False),
                         ("turn-52", False)],
    "cropped tight": [("crop-40%", True), ("crop-45%", True), ("crop-42%", False)],
    "filtered": [("grey", True), ("sepia", True), ("vignette", True), ("sepia-vignette", False)],
    "mirrored, tilted, cropped": [("mirror-tilt-crop", True), ("mirror-tilt-crop-2", False)],
}
# The low-texture set goes through one tuned variant of every family (and the held-back ones of the new families).
LOW_TEXTURE_VARIANTS = ("jpeg-q20", "scale-30%", "colour", "mirror", "border-10%", "frame-white", "turn-90",
                        "tilt-7", "crop-65%", "page-50%", "collage-2x2", "watermark", "persp-30", "shot-25",
                        "turn-45", "crop-45%", "grey", "sepia-vignette", "mirror-tilt-crop", "shot-20", "crop-42%")
NEGATIVE_EDITS = ("original", "page-50%", "tilt-7", "shot-25", "turn-45")
# Low-texture unrelated queries: held-out telescope pictures and flat photos, unedited and photographed.
LOW_TEXTURE_NEGATIVE_EDITS = ("original", "shot-25", "jpeg-q20")
FRAME_COLOURS = {"white": (250, 250, 250), "grey": (128, 128, 128), "red": (190, 30, 40), "blue": (30, 60, 190),
                 "beige": (232, 222, 198)}


def _jpeg(img, quality=90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _scaled(img, factor):
    return img.resize((max(1, round(img.width * factor)), max(1, round(img.height * factor))), Image.Resampling.LANCZOS)


def _text_lines(draw, box, rng, colour=(90, 90, 90)):
    """Grey 'text' lines (short words) filling a box: the look of a page's body text."""
    x0, y0, x1, y1 = box
    y = y0
    font = ImageFont.load_default(size=14)
    while y + 16 < y1:
        x = x0
        while x < x1 - 40:
            word = "".join(chr(int(c)) for c in rng.integers(97, 123, size=int(rng.integers(2, 9))))
            draw.text((x, y), word, font=font, fill=colour)
            x += int(draw.textlength(word, font=font)) + 7
        y += 20


def make_copy(variant: str, img: Image.Image, rng: np.random.Generator, fillers: list[Image.Image]) -> bytes:
    made = _new_kind_copy(variant, img, rng)
    if made is not None:
        return made
    w, h = img.size
    kind, _, arg = variant.partition("-")
    if variant == "jpeg-q20":
        return make_edit("jpeg-q20", img, rng)[0]
    if variant == "jpeg-q35":
        return _jpeg(img, 35)
    if kind == "scale":
        return _jpeg(_scaled(img, int(arg.rstrip("%")) / 100))
    if variant in ("colour", "border-10%", "letterbox", "watermark"):
        return make_edit(variant, img, rng)[0]
    if variant == "mirror":
        return _jpeg(ImageOps.mirror(img))
    if kind == "frame":
        share = rng.uniform(0.08, 0.15)
        bx, by = round(share * w), round(share * h)
        canvas = Image.new("RGB", (w + 2 * bx, h + 2 * by), FRAME_COLOURS[arg])
        canvas.paste(img, (bx, by))
        return _jpeg(canvas)
    if variant == "window-ui":
        return make_edit("screenshot-ui", img, rng)[0]
    if kind == "turn":
        return _jpeg(img.rotate(int(arg), expand=True))
    if kind == "tilt":
        angle = int(arg) * (1 if rng.random() < 0.5 else -1)
        return _jpeg(img.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC))
    if kind == "crop":
        share = int(arg.rstrip("%")) / 100
        cw, ch = round(share * w), round(share * h)
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return _jpeg(img.crop((left, top, left + cw, top + ch)))
    if kind == "page":
        # The picture at this share of the page's width, among lines of text, on a white page.
        share = int(arg.rstrip("%")) / 100
        pw = 1000
        ph = 1300
        small = _scaled(img, share * pw / w)
        page = Image.new("RGB", (pw, ph), (255, 255, 255))
        draw = ImageDraw.Draw(page)
        draw.text((60, 40), "Weekly news: photographs of the week", font=ImageFont.load_default(size=34),
                  fill=(20, 20, 20))
        _text_lines(draw, (60, 110, pw - 60, ph - 40), rng)
        x = int(rng.integers(40, max(41, pw - small.width - 40)))
        y = int(rng.integers(110, max(111, ph - small.height - 40)))
        page.paste(small, (x, y))
        return _jpeg(page)
    if kind == "collage":
        cols, rows = (2, 2) if arg == "2x2" else (3, 1)
        tile = 400
        canvas = Image.new("RGB", (cols * tile + (cols + 1) * 10, rows * tile + (rows + 1) * 10), (245, 245, 245))
        slot = int(rng.integers(0, cols * rows))
        others = iter(fillers)
        for index in range(cols * rows):
            picture = img if index == slot else next(others)
            picture = ImageOps.fit(picture, (tile, tile))  # square tiles: a collage crops its pictures
            canvas.paste(picture, (10 + (index % cols) * (tile + 10), 10 + (index // cols) * (tile + 10)))
        return _jpeg(canvas)
    if variant in ("caption", "caption-top"):
        out = img.copy()
        draw = ImageDraw.Draw(out)
        size = max(16, h // 9)
        font = ImageFont.load_default(size=size)
        texts = [("top", "WHEN THE PHOTO"), ("bottom", "IS EXACTLY RIGHT")]
        if variant == "caption-top":
            texts = [("top", "LOOK AT THIS ONE!")]
        for where, text in texts:
            y = int(0.04 * h) if where == "top" else int(0.96 * h) - size
            draw.text((w / 2, y), text, font=font, fill=(255, 255, 255), anchor="ma", stroke_width=max(2, size // 12),
                      stroke_fill=(0, 0, 0))
        return _jpeg(out)
    if variant == "original":
        return _jpeg(img, 92)
    raise ValueError(variant)


def _new_kind_copy(variant: str, img: Image.Image, rng: np.random.Generator) -> bytes | None:
    """Issue 21's edits; None for the others."""
    kind, _, arg = variant.partition("-")
    if kind in ("persp", "shot"):
        return _jpeg(photographed(img, int(arg), rng, shot=kind == "shot"), 85)
    if kind == "turn" and int(arg) % 90:
        angle = int(arg) * (1 if rng.random() < 0.5 else -1)
        return _jpeg(img.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC))
    if variant == "grey":
        return _jpeg(ImageOps.grayscale(img).convert("RGB"))
    if variant in ("sepia", "sepia-vignette"):
        out = ImageOps.colorize(ImageOps.grayscale(img), (40, 26, 13), (255, 240, 192))
        return _jpeg(_vignette(out) if variant == "sepia-vignette" else out)
    if variant == "vignette":
        return _jpeg(_vignette(img))
    if variant.startswith("mirror-tilt-crop"):
        angle, share = (5, 0.8) if variant == "mirror-tilt-crop" else (8, 0.7)
        out = ImageOps.mirror(img).rotate(angle * (1 if rng.random() < 0.5 else -1), expand=True,
                                          resample=Image.Resampling.BICUBIC)
        w, h = out.size
        cw, ch = round(share * w), round(share * h)
        left, top = (w - cw) // 2, (h - ch) // 2
        return _jpeg(out.crop((left, top, left + cw, top + ch)))
    return None


def _vignette(img: Image.Image, strength: float = 0.75) -> Image.Image:
    w, h = img.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / np.sqrt(2)
    mask = np.clip(1 - strength * r ** 2, 0, 1)[..., None]
    return Image.fromarray((np.asarray(img.convert("RGB"), np.float32) * mask).astype(np.uint8))


def photographed(img: Image.Image, degrees: int, rng: np.random.Generator, shot: bool) -> Image.Image:
    """The picture seen about ``degrees`` off-axis (left, right, up or down, with a little turn): a plain warp on
    black, or (``shot``) a hand-held photo of a print or a screen: the picture on a table or wall colour, light
    falling off across it, a little blur and sensor noise."""
    import cv2

    w, h = img.size
    t = np.tan(np.radians(degrees)) * 0.45  # how much the far side shrinks
    side = int(rng.integers(0, 4))
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    far = {0: [[0, t * h / 2], [w, 0], [w, h], [0, h - t * h / 2]],  # left side further away
           1: [[0, 0], [w, t * h / 2], [w, h - t * h / 2], [0, h]],
           2: [[t * w / 2, 0], [w - t * w / 2, 0], [w, h], [0, h]],  # top further away
           3: [[0, 0], [w, 0], [w - t * w / 2, h], [t * w / 2, h]]}[side]
    dst = np.float32(far) + rng.normal(0, 0.01 * min(w, h), (4, 2)).astype(np.float32)
    margin = 0.08 if shot else 0.0
    out_w, out_h = round(w * (1 + 2 * margin)), round(h * (1 + 2 * margin))
    dst += np.float32([margin * w, margin * h])
    turn = np.radians(rng.uniform(-4, 4))
    centre = np.float32([out_w / 2, out_h / 2])
    rot = np.float32([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    dst = (dst - centre) @ rot.T + centre
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    background = tuple(int(c) for c in rng.integers(30, 200, 3)) if shot else (0, 0, 0)
    warped = cv2.warpPerspective(np.asarray(img.convert("RGB")), matrix, (out_w, out_h),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    if not shot:
        return Image.fromarray(warped)
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx / out_w - 0.5) + np.sin(angle) * (yy / out_h - 0.5))
    light = np.clip(1.0 - rng.uniform(0.3, 0.5) * (ramp + 0.5), 0.35, 1.05)[..., None]
    out = np.asarray(warped, np.float32) * light + rng.normal(0, 4, warped.shape)
    shot_img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    return shot_img.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))


def make_queries(photos: list[str], variants: list[str], fillers: list[str], folder: Path) -> dict:
    """(variant, photo) -> path of the copy, made once (fixed seed per photo and variant)."""
    out = {}
    filler_images = None
    for photo in photos:
        stem = Path(photo).stem
        img = None
        for variant in variants:
            target = folder / variant / f"{stem}.jpg"
            if not target.exists():
                if img is None:
                    with Image.open(photo) as im:
                        img = ImageOps.exif_transpose(im).convert("RGB")
                if filler_images is None:
                    filler_images = [Image.open(f).convert("RGB") for f in fillers]
                key = int.from_bytes(hashlib.blake2b(f"{stem}/{variant}".encode(), digest_size=8).digest(), "little")
                rng = np.random.default_rng([SEED, key])
                pool = [f for f, path in zip(filler_images, fillers) if path != photo]
                picks = [pool[i] for i in rng.choice(len(pool), size=3, replace=False)]
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".tmp")
                tmp.write_bytes(make_copy(variant, img, rng, picks))
                os.replace(tmp, target)
            out[(variant, photo)] = str(target)
    return out




# --- the low-texture set and the look-alike distractors ------------------------------------------------------

FEW_KEYPOINTS = 100  # as imgsearch.verdict.keypoints: fewer than this at SIFT's usual contrast is little texture


def keypoint_count(path: str) -> int:
    import cv2

    with Image.open(path) as im:
        grey = im.convert("L")
        grey.thumbnail((512, 512))
    return len(cv2.SIFT_create(1000, 3, 0.04, 10, 1.6).detect(np.asarray(grey), None))


def low_texture(paths: list[str]) -> list[str]:
    """The photos with little texture among ``paths`` (fog, skies, night, flat colour), in order."""
    return [p for p in paths if keypoint_count(p) < FEW_KEYPOINTS]


DERIVED_KINDS = ("crop", "flip", "recolour", "mix", "crop-flip")


def make_distractors(sources: list[str], count: int, folder: Path) -> list[str]:
    """``count`` look-alike photos made from ``sources`` (never from an original a query is made of): crops,
    mirror images, recolourings and mixes of two, each saved once as a JPEG under ``folder``."""
    out, cache = [], {}
    for n in range(count):
        target = folder / f"derived-{n:05d}.jpg"
        out.append(str(target))
        if target.exists():
            continue
        rng = np.random.default_rng([SEED, 7, n])
        kind = DERIVED_KINDS[n % len(DERIVED_KINDS)]
        picks = rng.choice(len(sources), size=2, replace=False)
        images = []
        for i in picks:
            if i not in cache:
                if len(cache) > 64:
                    cache.clear()
                with Image.open(sources[i]) as im:
                    cache[i] = ImageOps.exif_transpose(im).convert("RGB")
            images.append(cache[i])
        picture = _derived(kind, images[0], images[1], rng)
        target.parent.mkdir(parents=True, exist_ok=True)
        picture.save(target, "JPEG", quality=88)
    return out


def _derived(kind: str, a: Image.Image, b: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = a.size
    if kind in ("crop", "crop-flip"):
        share = rng.uniform(0.5, 0.85)
        cw, ch = round(share * w), round(share * h)
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        out = a.crop((left, top, left + cw, top + ch))
        return ImageOps.mirror(out) if kind == "crop-flip" else out
    if kind == "flip":
        return ImageOps.flip(a) if rng.random() < 0.3 else ImageOps.mirror(a)
    if kind == "recolour":
        out = ImageEnhance.Color(a).enhance(rng.uniform(0.2, 1.8))
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.3))
        arr = np.asarray(out, np.float32) * rng.uniform(0.8, 1.2, 3).astype(np.float32)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    # mix: two photos blended, or side by side
    b = b.resize(a.size)
    if rng.random() < 0.5:
        return Image.blend(a, b, rng.uniform(0.35, 0.65))
    cut = int(w * rng.uniform(0.35, 0.65))
    out = a.copy()
    out.paste(b.crop((cut, 0, w, h)), (cut, 0))
    return out
