"""The legacy perceptual hash ("phash-legacy"): 64 bits per image, compared by Hamming distance.

The first-generation system hashed every photo with ``imagehash.phash`` and searched by splitting the hash
into 8 one-byte segments matched in a text index. ``PHash`` computes the same hash (same bits, same hex
string) without scipy: a 32x32 greyscale LANCZOS thumbnail, a DCT-II on both axes as two small matmuls with a
precomputed cosine matrix, and the 8x8 lowest frequencies compared with their median.

It runs through the shared ``Embedder`` pipeline (threaded decoding, EXIF orientation, every mode to RGB),
so a hash is a 64-dimensional binary vector like any other embedding. JPEGs are decoded at full size, as
imagehash does (see PHASH_DECODE_MIN_SIDE). Two deliberate differences from a bare
``imagehash.phash(Image.open(path))``: the picture is turned upright by its EXIF orientation, and transparency
is composited on white (imagehash drops the alpha channel), so such files can hash differently.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from .features import Embedder

HASH_SIZE = 8  # 8x8 lowest DCT frequencies -> 64 bits
HIGHFREQ_FACTOR = 4  # thumbnail side = HASH_SIZE * HIGHFREQ_FACTOR, as imagehash
THUMB_SIZE = HASH_SIZE * HIGHFREQ_FACTOR  # 32
HASH_BITS = HASH_SIZE * HASH_SIZE  # 64
HEX_DIGITS = HASH_BITS // 4  # 16
SEGMENTS = 8  # the seed's text index: one segment per byte, two hex digits each

# Two photos whose hashes differ in at most this many bits are called similar (compare's and search's default):
# it keeps 99% of re-encoded, resized, recoloured and watermarked copies; 2 of 455 unrelated queries (screenshots,
# whose black canvas dominates the hash) came within it (benchmarks/RESULTS.md).
DEFAULT_MAX_DISTANCE = 10

# JPEG decoding scale. imagehash decodes at full size; a reduced-scale (draft) decode changes thumbnail pixels
# by a few grey levels, enough to swap the DCT coefficients next to the median (a 2-bit difference, sometimes
# 4 or 6). On the 234 dev photos (<= 1024 px), hashes decoded at 1/2 to 1/8 scale are identical to imagehash's
# for only 73-88% of the photos that were reduced (min side 32: 73%, 128: 85%, 256/320: 88%); with the full
# decode, 100%. So PHash decodes at full size (decode_min_side None).
# Setting decode_min_side = 128 on an instance is the faster, not bit-exact alternative (about 2.5-3x on 1024 px
# photos; 85% identical, the others 2-4 bits apart); it is not a stored setting.
PHASH_DECODE_MIN_SIDE = None

# DCT coefficients are rounded to this many decimals before the median comparison. On real photos the two
# coefficients either side of the median are far apart (at least 2.1 on the dev photos), so no bit changes;
# but flat images (a solid colour, a blank scan) have AC coefficients that are exactly 0 up to float noise,
# and the noise differs between BLAS kernels and batch sizes. Rounded, a flat image hashes the same everywhere
# (8000000000000000: only the DC term is above the median) instead of depending on the machine.
_ROUND_DECIMALS = 6

_HEX_RE = re.compile(r"[0-9a-fA-F]{16}")


def _dct_matrix(n: int = THUMB_SIZE, rows: int = HASH_SIZE) -> np.ndarray:
    """The first ``rows`` rows of scipy's unnormalised DCT-II: ``X[k] = 2 * sum_i x[i] cos(pi k (2i+1) / 2n)``.

    The factor 2 (4 on both axes) does not change a comparison with the median, but keeping scipy's exact
    scale keeps the coefficients comparable with ``scipy.fftpack.dct`` when checking.
    """
    k = np.arange(rows, dtype=np.float64)[:, None]
    i = np.arange(n, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * i + 1.0) / (2.0 * n))


_DCT_LOW = _dct_matrix()  # (8, 32)
_DCT_LOW_T = np.ascontiguousarray(_DCT_LOW.T)  # (32, 8)


def low_frequencies(batch: np.ndarray) -> np.ndarray:
    """(n, 32, 32) grey thumbnails -> (n, 8, 8) lowest DCT-II frequencies (rows: vertical frequency)."""
    batch = np.asarray(batch, dtype=np.float64)
    return _DCT_LOW @ batch @ _DCT_LOW_T


def bits_from_thumbnails(batch: np.ndarray) -> np.ndarray:
    """(n, 32, 32) grey thumbnails -> (n, 64) uint8 0/1 bits, row-major over the 8x8 block (imagehash's order)."""
    low = np.round(low_frequencies(batch).reshape(len(batch), HASH_BITS), _ROUND_DECIMALS)
    median = np.median(low, axis=1, keepdims=True)
    return (low > median).astype(np.uint8)


class PHash(Embedder):
    """imagehash-compatible 64-bit perceptual hash; vectors are (64,) uint8 0/1 bits, metric HAMMING."""

    name = "phash"
    dim = HASH_BITS
    metric = "HAMMING"
    decode_min_side = PHASH_DECODE_MIN_SIDE

    def prepare(self, image: Image.Image) -> np.ndarray:
        """RGB picture -> 32x32 grey thumbnail as float32 (integer values 0..255, exactly as imagehash)."""
        thumb = image.convert("L").resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
        return np.asarray(thumb, dtype=np.float32)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return bits_from_thumbnails(batch)


def bits_to_hex(bits) -> str:
    """64 0/1 bits (imagehash's order: first bit = most significant bit of the first hex digit) -> 16 hex digits."""
    arr = np.asarray(bits).reshape(-1)
    if arr.size != HASH_BITS:
        raise ValueError(f"a pHash has {HASH_BITS} bits, got {arr.size}")
    return np.packbits(arr.astype(bool)).tobytes().hex()


def is_hash(text) -> bool:
    """True if ``text`` is a pHash written as 16 hex digits."""
    return isinstance(text, str) and _HEX_RE.fullmatch(text.strip()) is not None


def hex_to_bits(text: str) -> np.ndarray:
    """16 hex digits (either case) -> (64,) uint8 0/1 bits. ValueError for anything else."""
    if not is_hash(text):
        raise ValueError(f"not a 64-bit pHash: {text!r} (expected exactly {HEX_DIGITS} hex digits, e.g. 'c3b1...')")
    return np.unpackbits(np.frombuffer(bytes.fromhex(text.strip()), dtype=np.uint8))


def _as_bits(h) -> np.ndarray:
    if isinstance(h, str):
        return hex_to_bits(h).astype(bool)
    arr = np.asarray(h).reshape(-1)
    if arr.size != HASH_BITS:
        raise ValueError(f"a pHash has {HASH_BITS} bits, got {arr.size}")
    return arr.astype(bool)


def hamming(a, b) -> int:
    """Number of differing bits between two hashes, each 16 hex digits or 64 0/1 bits."""
    return int(np.count_nonzero(_as_bits(a) != _as_bits(b)))


def segments(text: str) -> list[str]:
    """The 8 one-byte segments of a hash, two hex digits each, in order (the seed's text-index terms).

    Two hashes within distance 7 share at least one segment at the same position (pigeonhole), which is
    what made the text index a candidate filter; position matters: index a segment with its position.
    """
    hex_to_bits(text)  # validates: ValueError for anything but 16 hex digits
    h = text.strip().lower()
    return [h[i : i + 2] for i in range(0, HEX_DIGITS, 2)]


_default: PHash | None = None


def _hasher() -> PHash:
    global _default
    if _default is None:
        _default = PHash()
    return _default


def hash_image(source) -> str:
    """pHash of one image (a path, or a ``(bytes, label)`` pair) as 16 hex digits; ImageError if unreadable.

    Decodes and hashes in the calling thread (no pool): the cheap path for one image at a time.
    """
    hasher = _hasher()
    loaded = hasher.load(source)
    thumb = hasher.prepare(loaded.image)
    return bits_to_hex(hasher.embed(thumb[None])[0])
