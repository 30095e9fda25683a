"""The legacy pHash: compatibility with imagehash.phash on real photos, helpers, and the phash-legacy commands."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pytest
from conftest import DEV_PHOTOS, SAMPLE_PHOTOS
from helpers import jpeg_bytes, run_cli
from PIL import Image

from imgsearch import phash
from imgsearch.cli.phash_legacy import _PHASH_DEFAULT_MAX_DISTANCE
from imgsearch.errors import ImageError
from imgsearch.phash import PHash, bits_to_hex, hamming, hash_image, hex_to_bits, segments

imagehash = pytest.importorskip("imagehash")

DEV_ORIGINALS = DEV_PHOTOS / "originals"
needs_dev_photos = pytest.mark.skipif(
    not DEV_ORIGINALS.is_dir(), reason=f"dev photo set not present at {DEV_ORIGINALS}"
)


def reference_hash(path) -> str:
    """What the legacy system stored: PIL open, imagehash.phash, str()."""
    with Image.open(path) as img:
        return str(imagehash.phash(img))


def batch_hashes(paths, **kw) -> dict[str, str]:
    return {r.source: bits_to_hex(r.vector) for b in PHash().embed_sources(map(str, paths), **kw) for r in b}


def assert_agreement(paths, minimum=0.99):
    ours = batch_hashes(paths, batch_size=32)
    disagreements = []
    for p in map(str, paths):
        ref = reference_hash(p)
        if ours[p] != ref:
            disagreements.append(f"{p}: imagehash {ref}, ours {ours[p]} (distance {hamming(ref, ours[p])})")
    print(f"agreement with imagehash.phash: {len(paths) - len(disagreements)}/{len(paths)}")
    print("\n".join(disagreements))
    assert (len(paths) - len(disagreements)) / len(paths) >= minimum, "\n".join(disagreements)


# --- the algorithm ------------------------------------------------------------------------------


def test_embedder_contract():
    h = PHash()
    assert (h.name, h.dim, h.metric) == ("phash", 64, "HAMMING")
    assert h.config() == {"model": "phash", "dim": 64, "metric": "HAMMING"}
    thumb = h.prepare(Image.new("RGB", (300, 200), (10, 200, 30)))
    assert thumb.shape == (32, 32) and thumb.dtype == np.float32
    bits = h.embed(np.stack([thumb, thumb]))
    assert bits.shape == (2, 64) and bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 1}


def test_dct_matches_scipy():
    fftpack = pytest.importorskip("scipy.fftpack")
    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 256, size=(5, 32, 32)).astype(np.float32)
    ours = phash.low_frequencies(thumbs)
    for thumb, low in zip(thumbs, ours):
        ref = fftpack.dct(fftpack.dct(thumb.astype(np.uint8), axis=0), axis=1)[:8, :8]
        np.testing.assert_allclose(low, ref, rtol=1e-9, atol=1e-6)


def test_same_hash_as_imagehash_on_sample_photos(tmp_path, sample_images, photo_dir):
    """The scikit-image photos as lossless PNG (grey and colour) and as JPEG: every one identical."""
    paths = []
    for name, img in sample_images.items():
        img.save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    paths += sorted(photo_dir.glob("*.jpg"))
    assert len(paths) == 2 * len(SAMPLE_PHOTOS)
    assert_agreement(paths, minimum=1.0)


@needs_dev_photos
def test_same_hash_as_imagehash_on_dev_photos():
    paths = sorted(DEV_ORIGINALS.glob("*.jpg"))
    assert len(paths) >= 200
    assert_agreement(paths, minimum=0.99)


def test_jpegs_are_decoded_at_full_size(photo_dir):
    """The reduced-scale JPEG decode would cost imagehash compatibility (see PHASH_DECODE_MIN_SIDE)."""
    path = photo_dir / "hubble_deep_field.jpg"
    assert PHash().load(path).image.size == Image.open(path).size == (1000, 872)


def test_batched_and_one_by_one_agree(photo_dir):
    paths = sorted(photo_dir.glob("*.jpg"))
    batched = batch_hashes(paths, batch_size=4, workers=2)
    assert batched == {str(p): hash_image(p) for p in paths}
    assert batched == batch_hashes(paths, batch_size=1, workers=1)
    data = (photo_dir / "coffee.jpg").read_bytes()
    assert hash_image((data, "coffee from bytes")) == batched[str(photo_dir / "coffee.jpg")]


def test_photo_hashes_are_balanced(photo_dir):
    """Comparing with the median sets exactly 32 of the 64 bits (no ties in photos), so distances are even."""
    for p in photo_dir.glob("*.jpg"):
        assert hex_to_bits(hash_image(p)).sum() == 32


def test_flat_images_hash_the_same_everywhere():
    h = PHash()
    flat = [Image.new("RGB", size, colour) for size in ((50, 40), (640, 480)) for colour in ((128,) * 3, (3, 90, 200))]
    thumbs = np.stack([h.prepare(img) for img in flat])
    assert {bits_to_hex(b) for b in h.embed(thumbs)} == {"8000000000000000"}
    assert bits_to_hex(h.embed(thumbs[:1])[0]) == "8000000000000000"
    assert bits_to_hex(h.embed(np.zeros((1, 32, 32), np.float32))[0]) == "0000000000000000"  # as imagehash


def test_exif_orientation_is_applied(sample_images):
    """Unlike a bare imagehash.phash(Image.open(...)), the picture is hashed the way it is shown."""
    upright = sample_images["astronaut"].convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera writes...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with "rotate 90 clockwise to display"
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    ours = hash_image((buf.getvalue(), "rotated.jpg"))
    assert hamming(ours, hash_image((jpeg_bytes(upright, 95), "upright.jpg"))) <= 2
    assert hamming(ours, str(imagehash.phash(Image.open(io.BytesIO(buf.getvalue()))))) > 10


def test_recompressed_copy_is_close_and_unrelated_photos_are_far(sample_images):
    hashes = {}
    for name, img in sample_images.items():
        original = hash_image((jpeg_bytes(img, 95), name))
        for quality in (75, 30):
            assert hamming(original, hash_image((jpeg_bytes(img, quality), name))) <= 4, (name, quality)
        half = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
        assert hamming(original, hash_image((jpeg_bytes(half, 90), name))) <= 4, name
        hashes[name] = original
    for (a, ha), (b, hb) in itertools.combinations(hashes.items(), 2):
        assert hamming(ha, hb) > phash.DEFAULT_MAX_DISTANCE, (a, b, hamming(ha, hb))


def test_unreadable_image_raises_image_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture")
    with pytest.raises(ImageError, match="notes.txt"):
        hash_image(bad)


# --- helpers ------------------------------------------------------------------------------------


def test_hex_bits_round_trip_and_imagehash_bit_order():
    rng = np.random.default_rng(1)
    for _ in range(50):
        bits = rng.integers(0, 2, 64).astype(np.uint8)
        text = bits_to_hex(bits)
        assert len(text) == 16 and text == text.lower()
        np.testing.assert_array_equal(hex_to_bits(text), bits)
        # imagehash reads the same string to the same 8x8 bit matrix, row by row
        np.testing.assert_array_equal(imagehash.hex_to_hash(text).hash.flatten().astype(np.uint8), bits)
        assert str(imagehash.ImageHash(bits.reshape(8, 8).astype(bool))) == text
    assert bits_to_hex(hex_to_bits("C2924C5532BDDFC8")) == "c2924c5532bddfc8"
    assert hex_to_bits("8000000000000000")[0] == 1 and hex_to_bits("0000000000000001")[-1] == 1


@pytest.mark.parametrize("bad", ["", "c2924c5532bddfc", "c2924c5532bddfc80", "g2924c5532bddfc8", "0xc2924c5532bddf",
                                 "c292 4c55 32bd dfc8", None, 0x1234])
def test_hex_to_bits_rejects_anything_but_16_hex_digits(bad):
    with pytest.raises(ValueError, match="16 hex digits"):
        hex_to_bits(bad)


def test_bits_to_hex_needs_64_bits():
    with pytest.raises(ValueError, match="64 bits"):
        bits_to_hex(np.zeros(63, np.uint8))


def test_hamming_properties(photo_dir):
    hashes = [hash_image(p) for p in sorted(photo_dir.glob("*.jpg"))]
    for a, b, c in itertools.combinations(hashes[:8], 3):
        assert hamming(a, a) == 0
        assert hamming(a, b) == hamming(b, a)
        assert hamming(a, c) <= hamming(a, b) + hamming(b, c)
        assert hamming(a, b) == imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)
    a = hashes[0]
    assert hamming(a, 1 - hex_to_bits(a)) == 64  # hex and bits mix
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("0000000000000000", "0000000000000003") == 2
    with pytest.raises(ValueError):
        hamming(a, "xyz")


def test_segments():
    assert segments("C2924C5532BDDFC8") == ["c2", "92", "4c", "55", "32", "bd", "df", "c8"]
    h = "0123456789abcdef"
    assert "".join(segments(h)) == h and len(segments(h)) == phash.SEGMENTS
    with pytest.raises(ValueError):
        segments("0123")


def test_pigeonhole_near_hashes_share_a_segment():
    """Why the legacy text index worked as a filter: within distance 7, some segment is unchanged."""
    rng = np.random.default_rng(2)
    for _ in range(200):
        bits = rng.integers(0, 2, 64).astype(np.uint8)
        flipped = bits.copy()
        flipped[rng.choice(64, size=7, replace=False)] ^= 1
        a, b = segments(bits_to_hex(bits)), segments(bits_to_hex(flipped))
        assert any(x == y for x, y in zip(a, b))


# --- phash-legacy hash ----------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path, photo_dir):
    text = tmp_path / "readme.txt"
    text.write_text("this is not an image\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((photo_dir / "coffee.jpg").read_bytes()[:3000])
    return [text, empty, truncated]


def test_hash_table(photo_dir):
    paths = [photo_dir / "astronaut.jpg", photo_dir / "coffee.jpg"]
    result = run_cli("phash-legacy", "hash", *paths)
    assert result.exit_code == 0, result.output
    for p in paths:
        h = reference_hash(p)
        assert h in result.stdout
        assert " ".join(segments(h)) in result.stdout
    assert result.stderr == ""


def test_hash_json_lines(photo_dir):
    paths = [photo_dir / "rocket.jpg", photo_dir / "chelsea.jpg"]
    result = run_cli("phash-legacy", "hash", "--json", *paths)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    for r, p in zip(rows, paths):
        assert r["hash"] == reference_hash(p) and r["segments"] == segments(r["hash"])


def test_hash_from_stdin(photo_dir):
    data = (photo_dir / "camera.jpg").read_bytes()
    result = run_cli("phash-legacy", "hash", "--json", "-", input=data)
    assert result.exit_code == 0, result.output
    expected = reference_hash(photo_dir / "camera.jpg")
    assert json.loads(result.stdout) == {"path": "-", "hash": expected, "segments": segments(expected)}


@pytest.mark.parametrize("as_json", [False, True])
def test_hash_bad_files_are_named_and_the_rest_go_on(photo_dir, bad_files, as_json):
    good = [photo_dir / "astronaut.jpg", photo_dir / "moon.jpg"]
    args = ["phash-legacy", "hash", good[0], *bad_files, good[1]] + (["--json"] if as_json else [])
    result = run_cli(*args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = result.stderr.splitlines()
    assert len(errors) == len(bad_files)
    for line, bad in zip(errors, bad_files):
        assert str(bad) in line and line.startswith("failed: ")
    assert "empty file" in errors[1] and "truncated" in errors[2] and "not an image" in errors[0]
    for p in good:
        assert reference_hash(p) in result.stdout
    if as_json:
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["path"] for r in rows] == [str(p) for p in (good[0], *bad_files, good[1])]
        assert [("error" in r) for r in rows] == [False, True, True, True, False]


def test_hash_only_bad_files_exit_1(bad_files):
    result = run_cli("phash-legacy", "hash", *bad_files)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 3 and result.stdout == ""


# --- phash-legacy compare -------------------------------------------------------------------------


def test_compare_similar_and_different(tmp_path, photo_dir, sample_images):
    copy = tmp_path / "coffee-q40.jpg"
    copy.write_bytes(jpeg_bytes(sample_images["coffee"], 40))
    similar = run_cli("phash-legacy", "compare", photo_dir / "coffee.jpg", copy)
    assert similar.exit_code == 0, similar.output
    assert "similar" in similar.stdout and str(copy) in similar.stdout
    different = run_cli("phash-legacy", "compare", photo_dir / "coffee.jpg", photo_dir / "astronaut.jpg")
    assert different.exit_code == 1, different.output
    assert "different" in different.stdout


def test_compare_json_and_max_distance(photo_dir):
    a, b = photo_dir / "coffee.jpg", photo_dir / "astronaut.jpg"
    distance = hamming(hash_image(a), hash_image(b))
    result = run_cli("phash-legacy", "compare", a, b, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "a": str(a), "b": str(b), "hash_a": hash_image(a), "hash_b": hash_image(b), "distance": distance,
        "max_distance": phash.DEFAULT_MAX_DISTANCE, "similar": False,
    }
    loose = run_cli("phash-legacy", "compare", a, b, "--json", "--max-distance", distance)
    assert loose.exit_code == 0 and json.loads(loose.stdout)["similar"] is True
    assert run_cli("phash-legacy", "compare", a, b, "--max-distance", 65).exit_code == 2


def test_compare_with_a_hash_and_stdin(photo_dir):
    path = photo_dir / "rocket.jpg"
    legacy = reference_hash(path).upper()
    result = run_cli("phash-legacy", "compare", legacy, path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["distance"] == 0
    result = run_cli("phash-legacy", "compare", "-", legacy, "--json", input=path.read_bytes())
    assert result.exit_code == 0 and json.loads(result.stdout)["hash_a"] == legacy.lower()
    result = run_cli("phash-legacy", "compare", "-", "-", input=path.read_bytes())
    assert result.exit_code == 2 and "only one of A and B" in result.output


def test_compare_errors_are_one_line_exit_2(photo_dir, bad_files):
    for bad in bad_files:
        result = run_cli("phash-legacy", "compare", photo_dir / "coffee.jpg", bad)
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1 and str(bad) in result.stderr and "Traceback" not in result.output
    result = run_cli("phash-legacy", "compare", "c2924c5532bddfc", photo_dir / "coffee.jpg")
    assert result.exit_code == 2
    assert "not a pHash (15 hex digits, expected 16)" in result.stderr


def test_help_documents_default_and_exit_codes():
    assert _PHASH_DEFAULT_MAX_DISTANCE == phash.DEFAULT_MAX_DISTANCE
    result = run_cli("phash-legacy", "compare", "--help")
    assert f"[default: {phash.DEFAULT_MAX_DISTANCE}]" in result.stdout
    assert "0  similar" in result.stdout and "1  different" in result.stdout
