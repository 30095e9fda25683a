"""Image decoding, preprocessing and feature extraction.

One pipeline serves every command: ``load_image`` turns a path or bytes into an RGB picture (EXIF orientation,
every mode, reduced-scale JPEG decoding); an ``Embedder`` subclass turns pictures into vectors, only its own
algorithm (VGG16 here, pHash in ``phash.py``); ``Embedder.embed_sources`` runs decoding in threads, overlapped
with the model, batch by batch.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .precision import ONNX_PRECISIONS, PRECISIONS, keras_policy
from .precision import resolve as resolve_precision

try:  # HEIC/HEIF/AVIF where the optional extra is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
except ImportError:  # pragma: no cover - depends on the optional extra
    pass

# Pillow refuses images over 2 x MAX_IMAGE_PIXELS (about 179 MP) as decompression bombs; keep that guard
# but silence the warning it gives between 1x and 2x: those images decode fine at reduced scale.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

# Most pixels an image may have *as decoded*: a bigger one is refused from its header, before any of it is decoded.
# JPEGs first shrink by their DCT scale (up to 1/8, ``draft``), so a 150 MP photo decodes to 2.3 MP and passes;
# other formats (PNG, TIFF, WebP...) can only be decoded whole, so 40 MP (8K frames, 40 MP cameras' exports) is
# 120 MB as RGB, where a 144 MP PNG would be 430 MB and several seconds. ``imgsearch serve --max-pixels`` sets it.
DEFAULT_MAX_PIXELS = 40_000_000
# Every refusal for size starts with this: the server answers those 413, other broken images 422.
TOO_MANY_PIXELS = "too many pixels"

# JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides at least this long:
# a 24 MP photo costs a 1/8 decode, and there is still margin above 224 px after a black border is cut.
DECODE_MIN_SIDE = 320

IMAGE_SIZE = 224
VGG16_DIM = 512
# keras.applications.vgg16.preprocess_input ("caffe" mode): BGR order, ImageNet channel means, no scaling.
CAFFE_BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)

RESIZE_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
POOLINGS = ("max", "avg", "gem")
GEM_P = 3.0

# A border line is one whose pixels are (nearly) all darker than this: JPEG ringing lifts black to ~10-20.
BORDER_TOLERANCE = 24
# Share of a line's pixels that must be dark; a few bright specks (noise, a timestamp) do not stop the cut.
BORDER_DARK_SHARE = 0.98
# Never keep less than this share of a side: a dark photo is left as it is rather than cut to a sliver.
BORDER_MIN_KEEP = 0.15


@dataclass
class LoadedImage:
    """A decoded picture and what we know of its file."""

    source: str
    image: Image.Image  # RGB, possibly decoded at reduced scale
    width: int  # full size, after EXIF orientation
    height: int
    size: int  # bytes
    content_hash: str  # blake2b-128 of the bytes, hex


NOT_AN_IMAGE = "not an image (or an unsupported format)"
# Signatures of the formats we read: a file that starts like an image but cannot be identified is a broken
# image (a failure to report), not some other kind of file.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def _unidentified(label: str, head: bytes) -> ImageError:
    if head.startswith(IMAGE_MAGIC):
        return ImageError(label, "corrupt image (its header cannot be read)")
    return ImageError(label, NOT_AN_IMAGE, not_image=True)


def _read_image_file(path: str) -> bytes:
    """The file's bytes, but only once its header says it is an image: a video is not read whole to learn that."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ImageError(path, "empty file (0 bytes)")
            try:
                Image.open(f)  # identifies the format from the header; decodes nothing
            except UnidentifiedImageError:
                f.seek(0)
                raise _unidentified(path, f.read(16)) from None
            except Image.DecompressionBombError:
                raise _bomb(path) from None
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                raise ImageError(path, f"corrupt image header ({e})") from None
            f.seek(0)
            return f.read()
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as e:
        raise ImageError(path, f"cannot read: {e.strerror or e}") from None


def _bomb(label: str) -> ImageError:
    limit = 2 * Image.MAX_IMAGE_PIXELS / 1e6
    return ImageError(label, f"{TOO_MANY_PIXELS}: over the decompression-bomb limit of {limit:.0f} MP")


def _check_pixels(label: str, img: Image.Image, full_size: tuple[int, int], max_pixels: int | None):
    """Refuse, from the header alone, a picture whose decode (after any JPEG draft) would pass ``max_pixels``."""
    width, height = img.size
    if max_pixels is None or width * height <= max_pixels:
        return
    full = f"{full_size[0]}x{full_size[1]}"
    scaled = "" if img.size == full_size else f", {width}x{height} at the smallest JPEG scale"
    raise ImageError(label, f"{TOO_MANY_PIXELS}: {full} ({full_size[0] * full_size[1] / 1e6:.1f} MP{scaled}) is "
                            f"over the limit of {max_pixels / 1e6:g} MP decoded")


def load_image(source, *, label: str | None = None, min_side: int | None = DECODE_MIN_SIDE,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode a path or image bytes to RGB. Raises ImageError naming the source for anything unreadable.

    ``min_side``: JPEGs are decoded at the smallest DCT scale keeping both sides at least this long;
    None decodes at full size (pHash needs that to match imagehash bit for bit). ``max_pixels``: most pixels
    decoded (after that scaling); a bigger image is refused before decoding (None: Pillow's bomb limit only).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), label or "<bytes>"
        if not data:
            raise ImageError(label, "empty input (0 bytes)")
    else:
        label = label or os.fspath(source)
        data = _read_image_file(os.fspath(source))
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        if img.format == "JPEG" and min_side:
            img.draft("RGB", (min_side, min_side))
        _check_pixels(label, img, (width, height), max_pixels)
        img.load()
        orientation = img.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if orientation in (2, 3, 4, 5, 6, 7, 8):  # exif_transpose copies the picture even when upright
            img = ImageOps.exif_transpose(img)
        rgb = to_rgb(img)
    except UnidentifiedImageError:
        raise _unidentified(label, data[:16]) from None
    except Image.DecompressionBombError:
        raise _bomb(label) from None
    except (OSError, SyntaxError, ValueError, IndexError, TypeError, EOFError) as e:
        # Pillow signals truncated and corrupt data with these; the message says what it found.
        raise ImageError(label, f"corrupt or truncated image ({e})") from None
    return LoadedImage(
        source=label,
        image=rgb,
        width=width,
        height=height,
        size=len(data),
        content_hash=hashlib.blake2b(data, digest_size=16).hexdigest(),
    )


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white, as a viewer shows it."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # 16/32-bit grey: scale to 8 bits instead of clipping everything above 255 to white.
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max()
        arr = arr * (255.0 / top) if top > 255 else arr
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def black_border_box(
    img: Image.Image,
    tolerance: int = BORDER_TOLERANCE,
    dark_share: float = BORDER_DARK_SHARE,
    min_keep: float = BORDER_MIN_KEEP,
) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the picture inside black edge rows and columns (a border, letterbox bars, a
    photo on a black canvas), or None when there are none to cut."""
    if tolerance < 0:
        return None
    w, h = img.size
    edges = ((0, 0, w, 1), (0, h - 1, w, h), (0, 0, 1, h), (w - 1, 0, w, h))
    if all((np.asarray(img.crop(e).convert("L")) <= tolerance).mean() < dark_share for e in edges):
        return None  # no edge line is dark, so the scan below would cut nothing: a quarter of its cost, most photos
    grey = np.asarray(img.convert("L"))
    dark = grey <= tolerance
    rows = np.flatnonzero(dark.mean(axis=1) < dark_share)  # rows with content
    cols = np.flatnonzero(dark.mean(axis=0) < dark_share)
    if rows.size == 0 or cols.size == 0:
        return None  # all dark: a night photo, not a border
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (bottom - top) < min_keep * h or (right - left) < min_keep * w:
        return None
    if (top, bottom, left, right) == (0, h, 0, w):
        return None
    return left, top, right, bottom


def crop_black_border(img: Image.Image, tolerance: int = BORDER_TOLERANCE) -> Image.Image:
    """The picture without its black border (the same image when it has none)."""
    box = black_border_box(img, tolerance)
    return img if box is None else img.crop(box)


def vgg16_preprocess(rgb_224: np.ndarray) -> np.ndarray:
    """Keras's VGG16 preprocess_input ("caffe"): RGB -> BGR, minus the ImageNet means. Thread-safe numpy."""
    return np.subtract(rgb_224[..., ::-1], CAFFE_BGR_MEANS, dtype=np.float32)  # one pass, no intermediate float copy


def pool_feature_map(fmap: np.ndarray, pooling: str) -> np.ndarray:
    """(n, h, w, c) block5 activations -> (n, c) L2-normalised vectors."""
    if pooling == "max":
        pooled = fmap.max(axis=(1, 2))
    elif pooling == "avg":
        pooled = fmap.mean(axis=(1, 2))
    elif pooling == "gem":
        pooled = np.power(np.power(np.maximum(fmap, 1e-6), GEM_P).mean(axis=(1, 2)), 1.0 / GEM_P)
    else:
        raise ValueError(f"unknown pooling {pooling!r}")
    return l2_normalise(pooled.astype(np.float32))


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass
class Embedded:
    """The outcome for one source: a vector, or the reason it failed."""

    source: str
    vector: np.ndarray | None = None
    error: str | None = None
    not_image: bool = False  # the error is "this file is no image at all"
    width: int = 0
    height: int = 0
    size: int = 0
    content_hash: str = ""


class Embedder:
    """Turns pictures into vectors. Subclasses supply only their algorithm: ``prepare`` and ``embed``.

    ``prepare`` runs per image in decoding threads (numpy/Pillow, which release the GIL); ``embed`` runs per
    batch in the calling thread. A source is a path, or a ``(bytes, label)`` pair for images that arrive as data.
    """

    name = "embedder"  # what made the vectors; stored with the collection
    dim = 0
    metric = "COSINE"  # COSINE (similarity of float vectors) or HAMMING (bits)
    decode_min_side: int | None = DECODE_MIN_SIDE
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # the decoding guard (load_image); serve sets its --max-pixels

    def __init__(self):
        self.images_embedded = 0  # counts real work: incremental indexing is proved on it
        self.model_passes = 0  # calls of ``embed`` (one batch each): the server's metrics show them

    def settings(self) -> dict:
        """Constructor arguments that change the vectors (not where weights come from)."""
        return {}

    def content_box(self, image: Image.Image) -> tuple[int, int, int, int] | None:
        """The part of a picture that ``prepare`` keeps, when it cuts something away (None: all of it)."""
        return None

    def prepare(self, image: Image.Image) -> np.ndarray:
        raise NotImplementedError

    def embed(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict:
        """What defines the vectors: stored with a collection, which is only ever used with the same config."""
        return {"model": self.name, "dim": self.dim, "metric": self.metric, **self.settings()}

    @classmethod
    def for_collection(cls, stored: dict | None, **options):
        """The embedder for a collection: its stored settings, unless options say otherwise (None = not given).

        A conflict is left for ``Store.collection`` to refuse, with both configs in the message.
        """
        given = {k: v for k, v in options.items() if v is not None}
        if stored and stored.get("model") == cls.name:
            defaults = cls().settings()
            given = {**{k: stored[k] for k in defaults if k in stored}, **given}
        return cls(**given)

    def load(self, source, min_side: int | None = None) -> LoadedImage:
        """Decode a source; ``min_side`` asks for more detail than the model needs (None: the model's own)."""
        min_side = self.decode_min_side if min_side is None or self.decode_min_side is None else max(
            min_side, self.decode_min_side
        )
        if isinstance(source, tuple):
            data, label = source
            return load_image(data, label=label, min_side=min_side, max_pixels=self.max_pixels)
        return load_image(source, min_side=min_side, max_pixels=self.max_pixels)

    def _load_and_prepare(self, source) -> tuple[Embedded, np.ndarray | None]:
        try:
            loaded = self.load(source)
            array = self.prepare(loaded.image)
        except ImageError as e:
            return Embedded(source=e.source, error=e.reason, not_image=e.not_image), None
        meta = Embedded(
            source=loaded.source,
            width=loaded.width,
            height=loaded.height,
            size=loaded.size,
            content_hash=loaded.content_hash,
        )
        return meta, array

    def embed_sources(self, sources: Iterable, batch_size: int = 16, workers: int = 2) -> Iterator[list[Embedded]]:
        """Yield one list of Embedded per batch, in input order; decoding of the next batch overlaps the model."""
        it = iter(sources)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgsearch-decode") as pool:
            pending: deque = deque()

            def fill():
                while len(pending) < 2 * batch_size:
                    try:
                        pending.append(pool.submit(self._load_and_prepare, next(it)))
                    except StopIteration:
                        return

            fill()
            while pending:
                done = [pending.popleft().result() for _ in range(min(batch_size, len(pending)))]
                fill()  # queue the next decodes before the model takes the cores
                ready = [(meta, array) for meta, array in done if array is not None]
                if ready:
                    vectors = self.embed(np.stack([array for _, array in ready]))
                    self.images_embedded += len(ready)
                    self.model_passes += 1
                    for (meta, _), vector in zip(ready, vectors):
                        meta.vector = vector
                yield [meta for meta, _ in done]

    def embed_images(self, images: list[Image.Image], batch_size: int = 16) -> np.ndarray:
        """Vectors of pictures already decoded (a query's views), in batches of the model."""
        out = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([self.prepare(image) for image in images[start : start + batch_size]])
            out.append(self.embed(batch))
            self.images_embedded += len(batch)
            self.model_passes += 1
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def embed_one(self, source) -> Embedded:
        """One image; raises ImageError instead of returning a failed result."""
        (result,) = next(self.embed_sources([source], batch_size=1, workers=1))
        if result.error:
            raise ImageError(result.source, result.error)
        return result


class VGG16Features(Embedder):
    """VGG16 (ImageNet weights, no top) on 224x224 RGB; block5 pooled to 512 dimensions, L2-normalised."""

    dim = VGG16_DIM
    metric = "COSINE"

    def __init__(
        self,
        weights: str | None = None,
        pooling: str = "max",
        resize: str = "bilinear",
        border_tolerance: int = BORDER_TOLERANCE,
        precision: str = "auto",
        progress=None,
    ):
        super().__init__()
        self.progress = progress  # called with a line of text while weights are fetched on first use
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
        if resize not in RESIZE_FILTERS:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_FILTERS)}")
        self.weights = weights
        self.pooling = pooling
        self.resize = resize
        self.border_tolerance = border_tolerance
        # Not a setting: vectors of every precision are interchangeable (precision.py). Resolved when the model is
        # built.
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.precision_used = self.precision_reason = None
        self._model = None
        self.weights_info = None

    name = "vgg16-imagenet"

    def settings(self) -> dict:
        return {"pooling": self.pooling, "resize": self.resize, "border_tolerance": self.border_tolerance}

    @classmethod
    def preload(cls, weights: str | None = None, precision: str | None = None, **_settings) -> None:
        """Start loading the ONNX Runtime model in a background thread, while the caller opens its store: a
        one-shot search pays for the slower of the two instead of both. Best effort: the first embedder of these
        ``weights`` and ``precision`` takes the result; where there is none (bf16, a model still to be made, any
        error) it loads the model itself, and says what went wrong."""
        key = _preload_key(weights, precision or "auto")
        with _PRELOADS_LOCK:
            if key not in _PRELOADS:
                _PRELOADS[key] = _Preload(weights, precision or "auto")

    @classmethod
    def forget_preload(cls, weights: str | None = None, precision: str | None = None, **_settings) -> None:
        """Drop a preload nobody will take (the command failed first), so that a later one in this process loads
        afresh."""
        with _PRELOADS_LOCK:
            _PRELOADS.pop(_preload_key(weights, precision or "auto"), None)

    @property
    def model(self):
        """Loaded on first use: commands that never extract never pay for it.

        fp32 and int8: an ``OnnxVGG16`` (ONNX Runtime; TensorFlow is never imported); bf16: the Keras model. Both
        answer ``predict_on_batch`` with block5's (n, 7, 7, 512) map.
        """
        if self._model is None:
            with _PRELOADS_LOCK:
                preload = _PRELOADS.pop(_preload_key(self.weights, self.precision), None)
            loaded = preload.result() if preload is not None else None
            if loaded is not None:
                self.weights_info, self.precision_used, self.precision_reason, self._model = loaded
                return self._model
            from . import weights as weights_mod

            self.weights_info = weights_mod.resolve_weights(self.weights, progress=self.progress)
            self.precision_used, self.precision_reason = resolve_precision(self.precision)
            if self.precision_used in ONNX_PRECISIONS:
                from . import vgg16_onnx

                # Made from the checked weights once, then checked against its sidecar on every load.
                self._model = vgg16_onnx.load(self.precision_used, self.weights_info, progress=self.progress)
            else:
                # Builds, loads (a corrupt file is a WeightsError) and checks the reference values.
                with keras_policy(self.precision_used):
                    self._model = weights_mod.build_vgg16(self.weights_info.path,
                                                          input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
        return self._model

    def content_box(self, image: Image.Image) -> tuple[int, int, int, int] | None:
        return black_border_box(image, self.border_tolerance)

    def prepare(self, image: Image.Image) -> np.ndarray:
        image = crop_black_border(image, self.border_tolerance)
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), RESIZE_FILTERS[self.resize])
        return vgg16_preprocess(np.asarray(image))

    def embed(self, batch: np.ndarray) -> np.ndarray:
        # Keras: predict_on_batch, 7% more images/s than model(x) here, same output (benchmarks/RESULTS.md).
        fmap = self.model.predict_on_batch(batch)
        return pool_feature_map(np.asarray(fmap, dtype=np.float32), self.pooling)  # bf16 maps pool in float32


class _Preload:
    """A model being loaded in a daemon thread (a command that fails first does not wait for it at exit)."""

    def __init__(self, weights: str | None, precision: str):
        self._done = threading.Event()
        self._loaded = None
        threading.Thread(target=self._run, args=(weights, precision), name="imgsearch-preload", daemon=True).start()

    def _run(self, weights, precision):
        try:
            from . import vgg16_onnx
            from .weights import resolve_weights

            info = resolve_weights(weights, auto_fetch=False)
            used, reason = resolve_precision(precision, measure=False)
            engine = vgg16_onnx.load_if_made(used, info) if used in ONNX_PRECISIONS else None
            if engine is not None:
                self._loaded = (info, used, reason, engine)
        except Exception:  # noqa: BLE001  (best effort: the caller loads the model itself and reports the error)
            pass
        finally:
            self._done.set()

    def result(self):
        """(weights info, precision, why, model), or None: then the caller loads the model itself."""
        self._done.wait()
        return self._loaded


def _preload_key(weights, precision) -> tuple:
    from .weights.sources import cache_dir

    return weights, precision, str(cache_dir())  # another cache directory holds other model files


_PRELOADS: dict[tuple, _Preload] = {}
_PRELOADS_LOCK = threading.Lock()
