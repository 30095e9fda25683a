"""The fixed calibration set of the int8 model: 64 small JPEGs shipped inside the package.

Static int8 quantization needs the range of every activation, measured on example inputs; the same inputs must
give the same model on every machine, so they ship with imgsearch (``calibration/``, about 0.7 MB) instead of
coming from the user's photos. They were made once, by :func:`make_calibration_set`, from scikit-image's bundled
photographs (CC0 / public domain, the demo's photos): 16 pictures, each whole and as three fixed crops (one
mirrored), resized to 224x224. ``MANIFEST.json`` records each file's sha256; a changed or missing file is refused
before it can change a model (:func:`calibration_files`).

    python -m imgsearch.weights.calibration     # remakes the files (needs scikit-image); the manifest follows
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import WeightsError

CALIBRATION_DIR = Path(__file__).with_name("calibration")
MANIFEST = "MANIFEST.json"
SIDE = 224  # the model's input: the files are already the size the model sees
JPEG_QUALITY = 85
# The demo's 15 photos and the right view of the stereo motorcycle (chelsea == cat: one of them only).
SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "camera", "moon", "coins", "motorcycle", "brick", "grass", "gravel", "cell", "motorcycle_right")
# (left, top, right, bottom) as shares of the picture, and whether the crop is mirrored: the whole picture, its
# centre, and two corners, so that the set holds close-ups as galleries do.
CROPS = (((0.0, 0.0, 1.0, 1.0), False), ((0.15, 0.15, 0.85, 0.85), False),
         ((0.0, 0.0, 0.6, 0.6), True), ((0.4, 0.4, 1.0, 1.0), False))


def calibration_files() -> list[Path]:
    """The shipped calibration JPEGs in their fixed order, each checked against the manifest's sha256."""
    try:
        manifest = json.loads((CALIBRATION_DIR / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"the int8 calibration set's manifest is unreadable ({e}): reinstall imgsearch") from None
    paths = []
    for name, sha in manifest["files"].items():
        path = CALIBRATION_DIR / name
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            actual = None
        if actual != sha:
            raise WeightsError(f"calibration file {path} is missing or changed (sha256 differs from "
                               f"{MANIFEST}): reinstall imgsearch")
        paths.append(path)
    return paths


def calibration_digest() -> str:
    """One sha256 over the manifest: which inputs made an int8 model (recorded in its sidecar)."""
    return hashlib.sha256((CALIBRATION_DIR / MANIFEST).read_bytes()).hexdigest()


def _source_image(name: str):
    """The picture scikit-image bundles under ``name`` (as ``imgsearch.demo.sample_image`` reads it)."""
    import skimage.data
    from PIL import Image

    if name.startswith("motorcycle"):
        return Image.fromarray(skimage.data.stereo_motorcycle()[1 if name == "motorcycle_right" else 0])
    return Image.fromarray(getattr(skimage.data, name)())


def make_calibration_set(folder: Path = CALIBRATION_DIR) -> list[Path]:
    """Write the calibration JPEGs and their manifest (deterministic for one Pillow/libjpeg version)."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, name in enumerate(SOURCES):
        picture = _source_image(name).convert("RGB")
        w, h = picture.size
        for j, ((left, top, right, bottom), mirrored) in enumerate(CROPS):
            crop = picture.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
            crop = crop.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
            if mirrored:
                crop = ImageOps.mirror(crop)
            path = folder / f"{i:02d}-{j}-{name}.jpg"
            crop.save(path, "JPEG", quality=JPEG_QUALITY)
            files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = {"made_from": "scikit-image's bundled photos (CC0 / public domain), see "
                             "imgsearch/weights/calibration.py", "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return [folder / name for name in files]


if __name__ == "__main__":
    made = make_calibration_set()
    print(f"{len(made)} files, {sum(p.stat().st_size for p in made) / 1e6:.2f} MB in {CALIBRATION_DIR}")
