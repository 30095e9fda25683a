"""Image loading, border removal, preprocessing and VGG16 features, on real photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import SAMPLE_PHOTOS, add_black_border, jpeg_bytes
from PIL import Image

from imgsearch import features
from imgsearch.errors import ImageError
from imgsearch.features import crop_black_border, load_image


def _png_bytes(img, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _saved(img, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# --- loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_common_format_loads_to_rgb(sample_images, fmt):
    data = _saved(sample_images["coffee"].convert("RGB"), fmt)
    loaded = load_image(data)
    assert loaded.image.mode == "RGB"
    assert (loaded.width, loaded.height) == (600, 400)
    # Not garbage: the decoded picture is close to the original (GIF is palette-quantised, hence loose).
    ref = np.asarray(sample_images["coffee"].convert("RGB").resize(loaded.image.size), dtype=np.float32)
    assert np.abs(np.asarray(loaded.image, dtype=np.float32) - ref).mean() < 25


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red
    rgba.paste((0, 0, 255, 255), (0, 0, 20, 30))  # left half opaque blue
    rgb = np.asarray(load_image(_png_bytes(rgba)).image)
    assert tuple(rgb[5, 5]) == (0, 0, 255)
    assert tuple(rgb[5, 35]) == (255, 255, 255)
    la = Image.new("LA", (10, 10), (0, 0))
    assert tuple(np.asarray(load_image(_png_bytes(la)).image)[0, 0]) == (255, 255, 255)


def test_palette_with_transparency_cmyk_one_bit_and_16_bit(sample_images):
    p = sample_images["coffee"].convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    p.info["transparency"] = 0
    assert load_image(_png_bytes(p, transparency=0)).image.mode == "RGB"
    cmyk = load_image(_saved(sample_images["coffee"].convert("CMYK"), "JPEG")).image
    assert cmyk.mode == "RGB" and np.asarray(cmyk).mean() > 20
    one_bit = load_image(_png_bytes(sample_images["camera"].convert("1"))).image
    assert set(np.unique(np.asarray(one_bit))) <= {0, 255}
    grey16 = (np.asarray(sample_images["camera"], dtype=np.uint16) * 257).astype(np.uint16)
    img16 = Image.fromarray(grey16)
    loaded = load_image(_png_bytes(img16)).image
    # 16-bit grey is scaled to 8 bits, not clipped to white.
    assert np.abs(np.asarray(loaded)[..., 0].astype(int) - np.asarray(sample_images["camera"])).max() <= 1


def test_exif_orientation_is_applied(sample_images):
    img = sample_images["rocket"].convert("RGB")  # 640x427
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise for display
    loaded = load_image(_saved(img, "JPEG", exif=exif.tobytes()))
    assert (loaded.width, loaded.height) == (427, 640)
    assert loaded.image.size[0] < loaded.image.size[1]


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    pixel = np.asarray(load_image(buf.getvalue()).image)[0, 0]
    assert pixel[0] > 200 and pixel[1] < 50


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    big = Image.new("RGB", (6000, 4000), (120, 130, 140))  # 24 MP
    path = tmp_path / "big.jpg"
    big.save(path, quality=80)
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (6000, 4000)  # the file's real size is reported
    assert loaded.image.size == (750, 500)  # decoded at 1/8 scale, still >= DECODE_MIN_SIDE
    assert min(loaded.image.size) >= features.DECODE_MIN_SIDE


def test_path_and_bytes_load_the_same(photo_dir):
    path = photo_dir / "astronaut.jpg"
    a, b = load_image(path), load_image(path.read_bytes())
    assert a.content_hash == b.content_hash and a.size == b.size
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty"),
        (b"this is a text file, not a picture\n" * 10, "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "corrupt"),
    ],
)
def test_bad_input_names_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and reason in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_jpeg_is_an_error(tmp_path, sample_images):
    data = jpeg_bytes(sample_images["astronaut"])
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


# --- black borders ---------------------------------------------------------------------------------


def test_black_border_is_cut_despite_jpeg_noise(sample_images):
    photo = sample_images["coffee"].convert("RGB")
    bordered = Image.open(io.BytesIO(jpeg_bytes(add_black_border(photo, 0.10), quality=60)))
    cropped = crop_black_border(bordered.convert("RGB"))
    w, h = photo.size
    assert abs(cropped.size[0] - w) <= 4 and abs(cropped.size[1] - h) <= 4


def test_letterbox_bars_are_cut(sample_images):
    photo = sample_images["rocket"].convert("RGB")
    canvas = Image.new("RGB", (photo.width, photo.height + 200))
    canvas.paste(photo, (0, 100))
    assert crop_black_border(canvas).size == photo.size


def test_dark_photo_is_not_cut_to_nothing():
    dark = Image.fromarray((np.random.default_rng(0).random((200, 300, 3)) * 20).astype(np.uint8))
    assert crop_black_border(dark).size == (300, 200)
    tiny_content = Image.new("RGB", (300, 200))
    tiny_content.paste((255, 255, 255), (150, 100, 155, 105))  # a star in the night sky
    assert crop_black_border(tiny_content).size == (300, 200)


def test_photo_without_border_is_unchanged(sample_images):
    photo = sample_images["chelsea"].convert("RGB")
    assert crop_black_border(photo) is photo


def test_cli_choices_match_the_library():
    from imgsearch.cli import options as cli

    assert cli.POOLINGS == features.POOLINGS
    assert cli.RESIZE_FILTERS == tuple(features.RESIZE_FILTERS)
    assert cli.BORDER_TOLERANCE == features.BORDER_TOLERANCE


# --- preprocessing ---------------------------------------------------------------------------------


def test_preprocessing_equals_keras_vgg16(vgg):
    from keras.applications.vgg16 import preprocess_input

    rgb = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    assert np.allclose(features.vgg16_preprocess(rgb), preprocess_input(rgb.copy()), atol=1e-4)


# --- VGG16 vectors ---------------------------------------------------------------------------------


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_vectors_are_512d_unit_float32(vgg, photo_dir):
    result = vgg.embed_one(photo_dir / "coffee.jpg")
    assert result.vector.shape == (512,) and result.vector.dtype == np.float32
    assert abs(np.linalg.norm(result.vector) - 1) < 1e-5


def test_black_border_does_not_change_the_vector(vgg, sample_images):
    photo = sample_images["astronaut"].convert("RGB")
    plain = vgg.embed_one((jpeg_bytes(photo, 95), "plain")).vector
    bordered = vgg.embed_one((jpeg_bytes(add_black_border(photo, 0.10), 95), "bordered")).vector
    assert _cos(plain, bordered) >= 0.999
    # Without border removal the same pair is visibly further apart: the test can fail.
    from imgsearch.features import VGG16Features

    keep = VGG16Features(weights=vgg.weights, border_tolerance=-1)
    keep._model = vgg.model
    assert _cos(keep.embed_one((jpeg_bytes(photo, 95), "p")).vector,
                keep.embed_one((jpeg_bytes(add_black_border(photo, 0.10), 95), "b")).vector) < 0.999


def test_path_and_bytes_give_the_same_vector(vgg, photo_dir):
    path = photo_dir / "rocket.jpg"
    assert _cos(vgg.embed_one(path).vector, vgg.embed_one((path.read_bytes(), "rocket")).vector) >= 0.999


def test_edited_copies_find_their_originals(vgg, sample_images):
    """ImageNet quality: JPEG q30 + 50% downscale of each photo has its original as nearest neighbour."""
    names = list(SAMPLE_PHOTOS)
    originals = [(jpeg_bytes(sample_images[n], 95), n) for n in names]
    edited = []
    for n in names:
        img = sample_images[n].convert("RGB")
        img = img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)
        edited.append((jpeg_bytes(img, 30), n + "-edited"))
    a = np.stack([r.vector for batch in vgg.embed_sources(originals, batch_size=8) for r in batch])
    b = np.stack([r.vector for batch in vgg.embed_sources(edited, batch_size=8) for r in batch])
    sims = b @ a.T
    nearest = [names[i] for i in sims.argmax(axis=1)]
    assert nearest == names
    # and by a margin: the original is clearly closer than the runner-up
    margins = np.sort(sims, axis=1)[:, -1] - np.sort(sims, axis=1)[:, -2]
    assert margins.min() > 0.05


def test_failed_images_are_reported_in_order(vgg, tmp_path, photo_dir):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    sources = [photo_dir / "coffee.jpg", bad, photo_dir / "camera.jpg"]
    results = [r for batch in vgg.embed_sources(sources) for r in batch]
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].source == str(bad) and results[1].vector is None
