"""The quick-start demo's material: real photos that need nothing of the user's.

scikit-image ships a handful of CC0 / public-domain photographs inside its wheel; the demo (and the test
suite) write them to a folder, index them, and search with an edited copy of one.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .errors import ImgsearchError

# chelsea == cat in scikit-image, so only one of them; of the stereo motorcycle, the left view only.
SAMPLE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "moon",
    "coins",
    "motorcycle",
    "brick",
    "grass",
    "gravel",
    "cell",
)
QUERY_PHOTO = "coffee"


def sample_image(name: str) -> Image.Image:
    try:
        import skimage.data
    except ImportError:
        raise ImgsearchError(
            "the demo photos come from scikit-image: pip install 'imgsearch[demo]' (or scikit-image)"
        ) from None
    if name == "motorcycle":
        return Image.fromarray(skimage.data.stereo_motorcycle()[0])
    return Image.fromarray(getattr(skimage.data, name)())


def write_sample_photos(folder: Path, quality: int = 95) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_PHOTOS:
        path = folder / f"{name}.jpg"
        sample_image(name).convert("RGB").save(path, quality=quality)
        paths.append(path)
    return paths


def add_black_border(img: Image.Image, share: float = 0.10) -> Image.Image:
    """The photo on a black canvas, ``share`` of each side added as border (as screenshots and reposts do)."""
    w, h = img.size
    bw, bh = int(w * share), int(h * share)
    canvas = Image.new("RGB", (w + 2 * bw, h + 2 * bh), (0, 0, 0))
    canvas.paste(img.convert("RGB"), (bw, bh))
    return canvas


def write_edited_copy(original: Path, dest: Path, border: float = 0.10, quality: int = 40) -> Path:
    """The kind of copy users hold: a black border added, then recompressed as a low-quality JPEG."""
    with Image.open(original) as img:
        add_black_border(img, border).save(dest, "JPEG", quality=quality)
    return dest
