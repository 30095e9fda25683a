"""Near-duplicate accuracy: does an edited copy of a photo find its original, and how does a false match score?

    python benchmarks/accuracy.py [ORIGINALS] [--distractors DIR] [--positives 80] [--check-milvus]
    python benchmarks/accuracy.py --quick                      # smoke run, about 4 minutes
    python benchmarks/accuracy.py --positives 0                # every gallery original as a query (slow)

Data (nothing is copied into the repository; edits and caches go under $IMGSEARCH_BENCH_DIR, default
/tmp/imgsearch-bench):
- gallery = originals minus a fixed-seed held-out share (--holdout, 15%) + the distractors;
- queries = edited copies of the originals, made with a fixed seed (see EDITS): for a gallery original the
  original is the right answer ("positive"); for a held-out original there is no right answer ("negative": its
  best score is what a false match looks like). The unedited held-out originals are negatives too.
- --positives N uses a fixed-seed sample of N gallery originals as positive query sources (0 = all) to keep the
  first run short; all held-out originals are always used.

Methods, side by side on the same gallery and queries:
- imgsearch's VGG16Features through its library path (``embed_sources``: load_image, crop_black_border, resize,
  preprocess, model, pooling), default settings and one option changed at a time;
- the seed's recipe exactly: keras VGG16(pooling="max") on ``keras.utils.load_img(path, target_size=(224, 224))``
  (NEAREST resize of the full decode, no border removal), preprocess_input, model.predict, divided by the L2 norm;
- phash-legacy (imgsearch.phash.PHash, Hamming distance; similarity = 1 - d/64) and imagehash.phash (the peer).

Cost control (documented, not hidden): a VGG16 pass costs about 0.15 s per image on 2 cores. All three poolings
come from one model pass: ``CachedVGG16.embed`` runs ``self.model(batch, training=False)`` exactly like
``VGG16Features.embed`` and pools the block5 map with the library's ``pool_feature_map`` for max, avg and gem.
Pooled vectors are cached on disk keyed by the weights' sha256 and a hash of the preprocessed 224x224 input, so
a setting that leaves an image's input unchanged (e.g. a border tolerance on a photo without border) costs
nothing, and re-runs are cheap. A check at start compares the cached path with plain ``VGG16Features`` vectors.

Similarity: exact dot products in numpy over the gallery (Milvus search is exact at this size); --check-milvus
confirms the default method once through index_paths + search_images on a fresh Milvus Lite database.
Ties (pHash distances) count as expected values under random tie-breaking.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402

EDITS_VERSION = 1  # bump when an edit changes: edits are regenerated into a new folder
DEFAULT_SEED = 2026

# name -> short description (for the table). "original" is only used as a negative query (held-out photos).
EDITS = {
    "jpeg-q20": "re-encoded as JPEG quality 20",
    "downscale-30%": "both sides x0.3 (LANCZOS)",
    "watermark": "semi-transparent text line + logo in a corner",
    "border-10%": "black frame, 10% of each side",
    "letterbox": "black bars, 12.5% of the new height each (pillarbox for portrait)",
    "screenshot": "shrunk to 60% of a black 1280x800 canvas, off-centre (PNG)",
    "crop-70%": "centre crop to 70% of each side",
    "colour": "brightness x1.2, saturation x1.4, warm cast",
    "hflip": "horizontal mirror",
    "rotate-90": "rotated 90 degrees",
    "crop+border+jpeg": "centre crop 80%, 8% black frame, JPEG quality 30",
    "screenshot-ui": "extra stress case: shrunk onto a dark-grey (40) window with a lighter title bar (PNG)",
}
QUICK_EDITS = ("jpeg-q20", "border-10%", "screenshot", "crop-70%", "rotate-90")
ORIGINAL = "original"

# (label, resize, border_tolerance, pooling); the first is imgsearch's default.
VGG_METHODS = {
    "default": ("bilinear", 24, "max"),
    "pool avg": ("bilinear", 24, "avg"),
    "pool gem": ("bilinear", 24, "gem"),
    "resize nearest": ("nearest", 24, "max"),
    "resize lanczos": ("lanczos", 24, "max"),
    "border off": ("bilinear", -1, "max"),
    "tol 10": ("bilinear", 10, "max"),
    "tol 48": ("bilinear", 48, "max"),
}
OTHER_METHODS = ("seed recipe", "phash-legacy", "imagehash.phash")
ALL_METHODS = (*VGG_METHODS, *OTHER_METHODS)
QUICK_METHODS = ("default", "pool gem", "seed recipe", "phash-legacy", "imagehash.phash")
HASH_METHODS = ("phash-legacy", "imagehash.phash")
THRESHOLD_GRID = (0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95)
DETAIL_THRESHOLDS = (0.60, 0.65, 0.70, 0.75, 0.80, 0.85)
DETAIL_DISTANCES = (4, 6, 7, 8, 10, 12, 14)
DISTANCE_GRID = (4, 6, 7, 8, 10, 12, 14, 16, 18, 20, 22)


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- edits ---------------------------------------------------------------------------------------------------


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _on_canvas(img, canvas_size, fill, rng, share=0.6):
    cw, ch = canvas_size
    scale = min(share * cw / img.width, share * ch / img.height)
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", canvas_size, fill)
    x = int(rng.integers(0, cw - small.width + 1))
    y = int(rng.integers(0, ch - small.height + 1))
    canvas.paste(small, (x, y))
    return canvas, (x, y)


def make_edit(name: str, img: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """The edited copy as file bytes and its extension. ``img`` is the RGB original at full size."""
    w, h = img.size
    if name == "jpeg-q20":
        return _jpeg(img, 20), ".jpg"
    if name == "downscale-30%":
        return _jpeg(img.resize((round(w * 0.3), round(h * 0.3)), Image.Resampling.LANCZOS), 90), ".jpg"
    if name == "watermark":
        out = img.convert("RGBA")
        layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        size = max(12, h // 14)
        font = ImageFont.load_default(size=size)
        text = "(c) 2026 Example Photo Agency"
        tw = draw.textlength(text, font=font)
        x = int(rng.integers(0, max(1, int(w - tw)))) if tw < w else 0
        y = int(h * rng.uniform(0.55, 0.85))
        draw.text((x, y), text, font=font, fill=(255, 255, 255, 150), stroke_width=max(1, size // 12),
                  stroke_fill=(0, 0, 0, 110))
        r = max(10, int(0.09 * min(w, h)))  # logo: a ring with two letters, in a random corner
        cx = r + int(0.04 * w) if rng.random() < 0.5 else w - r - int(0.04 * w)
        cy = r + int(0.04 * h) if rng.random() < 0.5 else h - r - int(0.04 * h)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(230, 40, 40, 170), outline=(255, 255, 255, 200),
                     width=max(2, r // 8))
        logo_font = ImageFont.load_default(size=r)
        draw.text((cx, cy), "IS", font=logo_font, fill=(255, 255, 255, 230), anchor="mm")
        return _jpeg(Image.alpha_composite(out, layer), 90), ".jpg"
    if name == "border-10%":
        bx, by = round(0.1 * w), round(0.1 * h)
        canvas = Image.new("RGB", (w + 2 * bx, h + 2 * by), (0, 0, 0))
        canvas.paste(img, (bx, by))
        return _jpeg(canvas, 90), ".jpg"
    if name == "letterbox":
        if w >= h:  # bars top and bottom, each 12.5% of the new height
            bar = round(h / 0.75 * 0.125)
            canvas = Image.new("RGB", (w, h + 2 * bar), (0, 0, 0))
            canvas.paste(img, (0, bar))
        else:
            bar = round(w / 0.75 * 0.125)
            canvas = Image.new("RGB", (w + 2 * bar, h), (0, 0, 0))
            canvas.paste(img, (bar, 0))
        return _jpeg(canvas, 90), ".jpg"
    if name == "screenshot":
        canvas, _ = _on_canvas(img, (1280, 800), (0, 0, 0), rng)
        return _png(canvas), ".png"
    if name == "screenshot-ui":
        canvas, _ = _on_canvas(img, (1280, 800), (40, 40, 40), rng, share=0.7)
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((0, 0, 1279, 36), fill=(72, 72, 76))
        draw.text((12, 8), "IMG_0042.jpg - Photo Viewer", font=ImageFont.load_default(size=18), fill=(220, 220, 220))
        return _png(canvas), ".png"
    if name == "crop-70%":
        cw, ch = round(0.7 * w), round(0.7 * h)
        left, top = (w - cw) // 2, (h - ch) // 2
        return _jpeg(img.crop((left, top, left + cw, top + ch)), 90), ".jpg"
    if name == "colour":
        out = ImageEnhance.Brightness(img).enhance(1.2)
        out = ImageEnhance.Color(out).enhance(1.4)
        arr = np.asarray(out, dtype=np.float32) * np.array([1.08, 1.0, 0.9], dtype=np.float32)
        return _jpeg(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), 90), ".jpg"
    if name == "hflip":
        return _jpeg(ImageOps.mirror(img), 90), ".jpg"
    if name == "rotate-90":
        return _jpeg(img.transpose(Image.Transpose.ROTATE_90), 90), ".jpg"
    if name == "crop+border+jpeg":
        cw, ch = round(0.8 * w), round(0.8 * h)
        left, top = (w - cw) // 2, (h - ch) // 2
        cropped = img.crop((left, top, left + cw, top + ch))
        bx, by = round(0.08 * cw), round(0.08 * ch)
        canvas = Image.new("RGB", (cw + 2 * bx, ch + 2 * by), (0, 0, 0))
        canvas.paste(cropped, (bx, by))
        return _jpeg(canvas, 30), ".jpg"
    raise ValueError(name)


def ensure_edits(originals: list[str], edits: list[str], seed: int) -> dict[tuple[str, str], str]:
    """(edit, original path) -> path of the edited copy, generated once under the work dir."""
    root = common.WORK_DIR / f"edits-v{EDITS_VERSION}-seed{seed}"
    out = {}
    made = 0
    for index, path in enumerate(originals):
        stem = Path(path).stem
        img = None
        for e_index, edit in enumerate(EDITS):
            if edit not in edits:
                continue
            folder = root / edit
            existing = [folder / f"{stem}{ext}" for ext in (".jpg", ".png")]
            found = next((p for p in existing if p.exists()), None)
            if found is None:
                if img is None:
                    with Image.open(path) as im:
                        img = ImageOps.exif_transpose(im).convert("RGB")
                # One generator per (seed, photo name, edit): adding photos or edits changes no other copy.
                name_key = int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little")
                rng = np.random.default_rng([seed, name_key, e_index])
                data, ext = make_edit(edit, img, rng)
                folder.mkdir(parents=True, exist_ok=True)
                found = folder / f"{stem}{ext}"
                tmp = found.with_suffix(found.suffix + ".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, found)
                made += 1
            out[(edit, path)] = str(found)
    if made:
        log(f"generated {made} edited copies under {root}")
    return out


# --- vectors -------------------------------------------------------------------------------------------------


class VectorCache:
    """key -> float32 array, persisted as one .npz (keys + stacked values)."""

    def __init__(self, path: Path, shape: tuple):
        self.path, self.shape, self.data, self.dirty = path, shape, {}, False
        if path.exists():
            with np.load(path) as z:
                self.data = dict(zip(z["keys"].tolist(), z["values"]))

    def save(self):
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.data), dtype="U64")
        values = np.stack(list(self.data.values())).astype(np.float32) if self.data else np.zeros((0, *self.shape))
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, keys=keys, values=values)
        os.replace(tmp, self.path)
        self.dirty = False


def make_cached_vgg16_class():
    from imgsearch.features import POOLINGS, VGG16Features, pool_feature_map

    class CachedVGG16(VGG16Features):
        """VGG16Features whose ``embed`` returns (n, 3, 512): max, avg, gem of one model pass, cached by input."""

        def __init__(self, cache: VectorCache, model, **settings):
            super().__init__(**settings)
            self.cache = cache
            self._model = model  # one loaded model shared by every setting
            self.computed = 0

        def embed(self, batch):
            keys = [hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).hexdigest() for a in batch]
            missing = [i for i, k in enumerate(keys) if k not in self.cache.data]
            if missing:
                fmap = np.asarray(self.model(batch[missing], training=False))  # as VGG16Features.embed
                pooled = np.stack([pool_feature_map(fmap, p) for p in POOLINGS], axis=1)
                for i, vectors in zip(missing, pooled):
                    self.cache.data[keys[i]] = vectors
                self.cache.dirty = True
                self.computed += len(missing)
            return np.stack([self.cache.data[k] for k in keys])

    return CachedVGG16


def vgg_vectors(paths, resize, tolerance, cache, model, batch_size) -> tuple[dict[str, np.ndarray], int]:
    """path -> (3, 512) [max, avg, gem] through VGG16Features' pipeline with these settings."""
    cls = make_cached_vgg16_class()
    embedder = cls(cache, model, resize=resize, border_tolerance=tolerance)
    out = {}
    last = time.perf_counter()
    for batch in embedder.embed_sources(paths, batch_size=batch_size):
        for r in batch:
            if r.error:
                raise SystemExit(f"{r.source}: {r.error}")
            out[r.source] = r.vector
        if time.perf_counter() - last > 60:
            cache.save()
            last = time.perf_counter()
            log(f"  resize={resize} tol={tolerance}: {len(out)}/{len(paths)} ({embedder.computed} computed)")
    cache.save()
    return out, embedder.computed


def check_cached_path(paths, model, cache):
    """The cached, shared-pass vectors equal what plain VGG16Features gives (same model object)."""
    from imgsearch.features import POOLINGS, VGG16Features

    worst = 0.0
    cached, _ = vgg_vectors(paths, "bilinear", 24, cache, model, 16)
    for p_index, pooling in enumerate(POOLINGS):
        plain = VGG16Features(pooling=pooling)
        plain._model = model
        for batch in plain.embed_sources(paths):
            for r in batch:
                worst = max(worst, float(np.abs(r.vector - cached[r.source][p_index]).max()))
    return worst


def seed_recipe_vectors(paths, weights_path, cache: VectorCache, batch_size=16) -> tuple[dict, int]:
    """The 2020 seed exactly: keras load_img (NEAREST, full decode, no border removal), preprocess_input,
    VGG16(pooling='max').predict, divided by the L2 norm. Batched predict: same arithmetic as one at a time."""
    from imgsearch.weights import import_keras

    keras = import_keras()
    from keras.applications.vgg16 import preprocess_input

    keys = {}
    for p in paths:
        keys[p] = hashlib.blake2b(Path(p).read_bytes(), digest_size=16).hexdigest()
    todo = [p for p in paths if keys[p] not in cache.data]
    if todo:
        from concurrent.futures import ThreadPoolExecutor

        model = keras.applications.VGG16(
            weights=str(weights_path), input_shape=(224, 224, 3), pooling="max", include_top=False
        )

        def load(p):
            return keras.utils.img_to_array(keras.utils.load_img(p, target_size=(224, 224)))

        chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        # Decoding of the next chunk overlaps the model (the benchmark's speed only; the arithmetic is the seed's).
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending = [pool.submit(load, p) for p in chunks[0]]
            for n, chunk in enumerate(chunks):
                x = np.stack([f.result() for f in pending])
                pending = [pool.submit(load, p) for p in chunks[n + 1]] if n + 1 < len(chunks) else []
                feats = model.predict(preprocess_input(x), verbose=0)
                feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
                for p, f in zip(chunk, feats):
                    cache.data[keys[p]] = f.astype(np.float32)
                cache.dirty = True
                if n and n % 40 == 0:
                    cache.save()
                    log(f"  seed recipe: {n * batch_size}/{len(todo)}")
        cache.save()
    return {p: cache.data[keys[p]] for p in paths}, len(todo)


def phash_vectors(paths) -> dict[str, np.ndarray]:
    from imgsearch.phash import PHash

    out = {}
    for batch in PHash().embed_sources(paths, batch_size=64):
        for r in batch:
            out[r.source] = r.vector.astype(np.uint8)
    return out


def imagehash_vectors(paths) -> dict[str, np.ndarray]:
    import imagehash

    out = {}
    for p in paths:
        with Image.open(p) as img:
            out[p] = imagehash.phash(img).hash.reshape(-1).astype(np.uint8)
    return out


# --- scoring -------------------------------------------------------------------------------------------------


def similarities(queries: np.ndarray, gallery: np.ndarray, hashed: bool) -> np.ndarray:
    if hashed:  # 1 - Hamming/64, exact
        q, g = queries.astype(np.int32), gallery.astype(np.int32)
        same = q @ g.T + (1 - q) @ (1 - g).T
        return same.astype(np.float64) / q.shape[1]
    return queries.astype(np.float64) @ gallery.astype(np.float64).T


def evaluate(sims: np.ndarray, truth: np.ndarray) -> dict:
    """Per query: best score, score of the true original, expected hit@1/@10 under random tie-breaking."""
    best = sims.max(axis=1)
    n = len(truth)
    true_score = np.full(n, np.nan)
    hit1 = np.zeros(n)
    hit10 = np.zeros(n)
    for i in np.flatnonzero(truth >= 0):
        s = sims[i, truth[i]]
        greater = int((sims[i] > s).sum())
        ties = int((sims[i] == s).sum()) - 1
        true_score[i] = s
        hit1[i] = 1.0 / (ties + 1) if greater == 0 else 0.0
        hit10[i] = min(1.0, max(0.0, (10 - greater) / (ties + 1)))
    return {"best": best, "true": true_score, "hit1": hit1, "hit10": hit10}


def threshold_stats(true_score, hit1, neg_best) -> dict:
    """Threshold keeping 99% of the originals found at top-1; negatives admitted there; the no-negative point."""
    order = np.argsort(-true_score)
    s_sorted, w_sorted = true_score[order], hit1[order]
    cum = np.cumsum(w_sorted)
    found = cum[-1]
    # Largest threshold t such that the hits with score >= t are at least 99% of the hits found.
    k = int(np.searchsorted(cum, 0.99 * found - 1e-9))
    t99 = float(s_sorted[min(k, len(s_sorted) - 1)])
    max_neg = float(neg_best.max())
    kept_clean = float(hit1[true_score > max_neg].sum())
    return {
        "t99": t99,
        "kept_t99": float(hit1[true_score >= t99].sum()) / len(hit1),
        "admitted_t99": float((neg_best >= t99).mean()),
        "max_neg": max_neg,
        "kept_clean": kept_clean / len(hit1),
        "kept_clean_of_found": kept_clean / found if found else 0.0,
    }


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# --- main ----------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("originals", nargs="?", default=common.DEFAULT_ORIGINALS)
    parser.add_argument("--distractors", default=common.DEFAULT_DISTRACTORS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--holdout", type=float, default=0.15, help="share of originals kept out of the gallery")
    parser.add_argument("--positives", type=int, default=80,
                        help="gallery originals used as positive query sources, fixed-seed sample; 0 = all [80]")
    parser.add_argument("--originals-count", type=int, default=0, help="use only N originals (fixed-seed); 0 = all")
    parser.add_argument("--distractors-count", type=int, default=0, help="use only N distractors; 0 = all")
    parser.add_argument("--edits", default=",".join(EDITS), help="comma-separated edits [all]")
    parser.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated methods [all]")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 60 originals, 60 distractors, 5 edits, 5 methods")
    parser.add_argument("--check-milvus", action="store_true",
                        help="also run the default method through index_paths + search_images on Milvus Lite")
    parser.add_argument("--detail", default="pool gem,phash-legacy",
                        help="methods (besides default) with a per-edit score table [pool gem,phash-legacy]")
    parser.add_argument("--json", help="write per-method summaries to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.originals_count = args.originals_count or 60
        args.distractors_count = args.distractors_count or 60
        args.positives = 0
        if args.edits == ",".join(EDITS):
            args.edits = ",".join(QUICK_EDITS)
        if args.methods == ",".join(ALL_METHODS):
            args.methods = ",".join(QUICK_METHODS)
    edits = [e for e in args.edits.split(",") if e]
    methods = [m for m in args.methods.split(",") if m]
    for e in edits:
        if e not in EDITS:
            parser.error(f"unknown edit {e!r}; choose from {', '.join(EDITS)}")
    for m in methods:
        if m not in ALL_METHODS:
            parser.error(f"unknown method {m!r}; choose from {', '.join(ALL_METHODS)}")

    t_start = time.perf_counter()
    load_start = common.load_average()
    rng = np.random.default_rng(args.seed)
    originals = common.image_files(args.originals)
    if args.originals_count:
        originals = sorted(rng.permutation(originals)[: args.originals_count].tolist())
    distractors = common.image_files(args.distractors)
    if args.distractors_count:
        distractors = distractors[: args.distractors_count]
    n_hold = round(args.holdout * len(originals))
    held = set(np.random.default_rng([args.seed, 1]).permutation(originals)[:n_hold].tolist())
    in_gallery = [p for p in originals if p not in held]
    positives = in_gallery
    if args.positives and args.positives < len(in_gallery):
        positives = sorted(np.random.default_rng([args.seed, 2]).permutation(in_gallery)[: args.positives].tolist())
    negatives = sorted(held)
    gallery = in_gallery + distractors
    gallery_index = {p: i for i, p in enumerate(gallery)}

    edited = ensure_edits(positives + negatives, edits, args.seed)
    queries = []  # (edit, source original, query path, index of the true original in the gallery or -1)
    for src in positives:
        for e in edits:
            queries.append((e, src, edited[(e, src)], gallery_index[src]))
    for src in negatives:
        queries.append((ORIGINAL, src, src, -1))
        for e in edits:
            queries.append((e, src, edited[(e, src)], -1))
    q_paths = [q[2] for q in queries]
    truth = np.array([q[3] for q in queries])
    all_paths = list(dict.fromkeys(gallery + q_paths))
    log(f"gallery {len(gallery)} ({len(in_gallery)} originals + {len(distractors)} distractors); "
        f"{len(positives)} positive and {len(negatives)} negative sources; {len(queries)} queries; "
        f"{len(all_paths)} images per method")

    vectors: dict[str, dict[str, np.ndarray]] = {}
    timings: dict[str, str] = {}
    vgg_wanted = [m for m in methods if m in VGG_METHODS]
    model = weights_info = None
    if vgg_wanted or "seed recipe" in methods:
        from imgsearch.features import POOLINGS
        from imgsearch.weights import resolve_weights

        weights_info = resolve_weights(None)
        sha = (weights_info.sha256 or common.version("tensorflow-cpu"))[:12]
        vgg_cache = VectorCache(common.WORK_DIR / "cache" / f"vgg16-pooled-{sha}.npz", (3, 512))
        seed_cache = VectorCache(common.WORK_DIR / "cache" / f"seed-recipe-{sha}.npz", (512,))
    if vgg_wanted:
        from imgsearch.features import VGG16Features

        loader = VGG16Features(precision="fp32")  # pinned: the vector caches hold fp32 vectors
        model = loader.model
        worst = check_cached_path(sorted(in_gallery)[:8] + [edited[(edits[0], positives[0])]], model, vgg_cache)
        log(f"cached shared-pass vectors vs plain VGG16Features: max |difference| {worst:.2e}")
        if worst > 1e-4:
            raise SystemExit(f"the cached path differs from VGG16Features by {worst}: fix the benchmark")
        by_prep: dict[tuple, list[str]] = {}
        for m in vgg_wanted:
            resize, tol, pooling = VGG_METHODS[m]
            by_prep.setdefault((resize, tol), []).append(m)
        for (resize, tol), names in by_prep.items():
            t0 = time.perf_counter()
            pooled, computed = vgg_vectors(all_paths, resize, tol, vgg_cache, model, args.batch_size)
            seconds = time.perf_counter() - t0
            log(f"VGG16 resize={resize} tol={tol}: {computed} computed, {len(all_paths) - computed} cached, "
                f"{seconds:.0f} s")
            for m in names:
                p_index = POOLINGS.index(VGG_METHODS[m][2])
                vectors[m] = {p: v[p_index] for p, v in pooled.items()}
                timings[m] = f"{computed} computed in {seconds:.0f} s"
            # Every pooling of this preprocessing, for the combinations table.
            for p_index, pooling in enumerate(POOLINGS):
                vectors.setdefault(f"{resize}/tol {tol}/{pooling}", {p: v[p_index] for p, v in pooled.items()})
    if "seed recipe" in methods:
        t0 = time.perf_counter()
        vectors["seed recipe"], computed = seed_recipe_vectors(all_paths, weights_info.path, seed_cache)
        timings["seed recipe"] = f"{computed} computed in {time.perf_counter() - t0:.0f} s"
        log(f"seed recipe: {timings['seed recipe']}")
    if "phash-legacy" in methods:
        t0 = time.perf_counter()
        vectors["phash-legacy"] = phash_vectors(all_paths)
        timings["phash-legacy"] = f"{time.perf_counter() - t0:.0f} s"
    if "imagehash.phash" in methods:
        t0 = time.perf_counter()
        vectors["imagehash.phash"] = imagehash_vectors(all_paths)
        timings["imagehash.phash"] = f"{time.perf_counter() - t0:.0f} s"

    # --- evaluate every method (and every free pooling/preprocessing combination) -------------------------
    results = {}
    for name, vecs in vectors.items():
        hashed = name in HASH_METHODS
        g = np.stack([vecs[p] for p in gallery])
        q = np.stack([vecs[p] for p in q_paths])
        results[name] = evaluate(similarities(q, g, hashed), truth)
    edit_of = np.array([q[0] for q in queries])
    pos = truth >= 0
    neg = ~pos

    shown = [m for m in methods if m in results]

    print(f"## Near-duplicate accuracy ({len(edits)} edits, {len(shown)} methods)\n")
    print(f"Date: {time.strftime('%Y-%m-%d')}; load average at start: {load_start}")
    print(f"Machine: {common.machine_line()}")
    print(f"Command: `{common.command_line()}`\n")
    print(f"Gallery: {len(gallery)} images = {len(in_gallery)} originals + {len(distractors)} distractors "
          f"(`{args.distractors}`). Queries: {len(edits)} edited copies each of {len(positives)} gallery "
          f"originals (positives: {int(pos.sum())} queries) and of {len(negatives)} held-out originals "
          f"(+ the held-out originals themselves; negatives: {int(neg.sum())} queries). Seed {args.seed}, "
          f"holdout {args.holdout:.0%}. Scores: cosine similarity (VGG16), 1 - Hamming/64 (pHash).\n")

    for key, title in (("hit1", "Recall@1"), ("hit10", "Recall@10")):
        print(f"### {title} of the original, per edit\n")
        rows = []
        for e in edits:
            mask = pos & (edit_of == e)
            rows.append([e] + [pct(results[m][key][mask].mean()) for m in shown])
        rows.append(["**all edits**"] + [f"**{pct(results[m][key][pos].mean())}**" for m in shown])
        print(common.table(["edit", *shown], rows) + "\n")

    def summary_row(name):
        r = results[name]
        ts = threshold_stats(r["true"][pos], r["hit1"][pos], r["best"][neg])
        nb = r["best"][neg]
        hashed = name in HASH_METHODS or name.startswith("phash")
        row = {
            "method": name,
            "r1": r["hit1"][pos].mean(),
            "r10": r["hit10"][pos].mean(),
            "neg_median": float(np.median(nb)),
            "neg_p95": float(np.percentile(nb, 95)),
            "neg_p99": float(np.percentile(nb, 99)),
            **ts,
        }
        if hashed:
            row["d99"] = int(round(64 * (1 - ts["t99"])))
            row["d_clean"] = int(round(64 * (1 - ts["max_neg"]))) - 1
        return row

    summaries = {m: summary_row(m) for m in results}

    print("\n### Thresholds: true originals kept vs negatives admitted\n")
    print("`t99`: the highest threshold that keeps 99% of the originals found at top-1 (kept = top-1 is the "
          "original and its score >= t, as a share of all positive queries). `no-neg`: the lowest threshold "
          "admitting no negative is just above the best negative score. pHash: distance d <-> similarity "
          "1 - d/64.\n")
    rows = []
    for m in shown:
        s = summaries[m]
        if m in HASH_METHODS:
            t99 = f"{s['t99']:.3f} (d <= {s['d99']})"
            clean = f"> {s['max_neg']:.3f} (d <= {s['d_clean']})"
        else:
            t99 = f"{s['t99']:.3f}"
            clean = f"> {s['max_neg']:.3f}"
        rows.append([m, pct(s["r1"]), pct(s["r10"]), f"{s['neg_median']:.3f}", f"{s['neg_p95']:.3f}",
                     f"{s['neg_p99']:.3f}", f"{s['max_neg']:.3f}", t99, pct(s["kept_t99"]), pct(s["admitted_t99"]),
                     clean, pct(s["kept_clean"]), pct(s["kept_clean_of_found"])])
    print(common.table(
        ["method", "R@1", "R@10", "neg best: median", "p95", "p99", "max", "t99", "kept at t99",
         "negatives admitted at t99", "no-neg threshold", "kept there", "kept there, of found"], rows))

    vgg_default = "default" if "default" in results else None
    vgg_shown = [m for m in shown if m not in HASH_METHODS]
    detail = [m for m in dict.fromkeys([vgg_default, *args.detail.split(",")]) if m in results]
    for m in detail:
        r = results[m]
        hashed = m in HASH_METHODS
        if hashed:  # in Hamming distances: d = 64 (1 - similarity)
            as_text = lambda x: f"{64 * (1 - x):.0f}"  # noqa: E731
            cuts = [1 - d / 64 for d in DETAIL_DISTANCES]
            cut_names = [f"kept at d <= {d}" for d in DETAIL_DISTANCES]
            heads = ["distance to original: median", "p95", "max"]
            title = "the distance to the original and the share kept at fixed max distances"
        else:
            as_text = lambda x: f"{x:.3f}"  # noqa: E731
            cuts = list(DETAIL_THRESHOLDS)
            cut_names = [f"kept at {t:.2f}" for t in DETAIL_THRESHOLDS]
            heads = ["score of original: median", "p5", "min"]
            title = "the score of the original and the share kept at fixed thresholds"
        print(f"\n### {m}: per edit, {title}\n")
        rows = []
        for e in edits:
            mask = pos & (edit_of == e)
            scores = r["true"][mask]
            row = [e, pct(r["hit1"][mask].mean()), as_text(np.median(scores)), as_text(np.percentile(scores, 5)),
                   as_text(scores.min())]
            row += [pct((r["hit1"][mask] * (scores >= t - 1e-12)).mean()) for t in cuts]
            row.append(as_text(r["best"][neg & (edit_of == e)].max()))
            rows.append(row)
        nmask = neg & (edit_of == ORIGINAL)
        rows.append([ORIGINAL + " (negatives only)", "-", "-", "-", "-", *["-"] * len(cuts),
                     as_text(r["best"][nmask].max())])
        print(common.table(["edit", "R@1", *heads, *cut_names,
                            "closest negative" if hashed else "best negative score"], rows))

    if vgg_shown:
        print("\n### Share kept / negatives admitted at fixed thresholds (VGG16 methods)\n")
        rows = []
        for t in THRESHOLD_GRID:
            row = [f"{t:.2f}"]
            for m in vgg_shown:
                rm = results[m]
                kept = (rm["hit1"][pos] * (rm["true"][pos] >= t)).mean()
                adm = (rm["best"][neg] >= t).mean()
                row.append(f"{pct(kept)} / {pct(adm)}")
            rows.append(row)
        print(common.table(["threshold", *vgg_shown], rows))

    hash_shown = [m for m in shown if m in HASH_METHODS]
    if hash_shown:
        print("\n### Share kept / negatives admitted at fixed max distances (pHash)\n")
        rows = []
        for d in DISTANCE_GRID:
            t = 1 - d / 64
            row = [str(d)]
            for m in hash_shown:
                rm = results[m]
                kept = (rm["hit1"][pos] * (rm["true"][pos] >= t - 1e-12)).mean()
                adm = (rm["best"][neg] >= t - 1e-12).mean()
                row.append(f"{pct(kept)} / {pct(adm)}")
            rows.append(row)
        print(common.table(["max distance", *hash_shown], rows))

    combos = [k for k in results if k.count("/") == 2]
    if combos:
        print("\n### Every pooling x preprocessing combination computed (poolings share one model pass)\n")
        rows = []
        for k in sorted(combos, key=lambda k: -summaries[k]["r1"]):
            s = summaries[k]
            rows.append([k, pct(s["r1"]), pct(s["r10"]), f"{s['max_neg']:.3f}", f"{s['t99']:.3f}",
                         pct(s["admitted_t99"]), pct(s["kept_clean"])])
        print(common.table(["resize/border tolerance/pooling", "R@1", "R@10", "max negative", "t99",
                            "negatives admitted at t99", "kept above max negative"], rows))

    if args.check_milvus and vgg_default:
        print("\n### Cross-check through Milvus Lite (index_paths + search_images, default settings)\n")
        print(check_milvus(gallery, queries, edits, results[vgg_default], gallery_index))

    print("\nExtraction: " + "; ".join(f"{m}: {t}" for m, t in timings.items() if m in shown))
    print(f"Total run time {time.perf_counter() - t_start:.0f} s.")
    common.footer()
    if args.json:
        Path(args.json).write_text(json.dumps({"summaries": summaries, "args": vars(args)}, indent=1, default=float))


def check_milvus(gallery, queries, edits, numpy_result, gallery_index) -> str:
    """The library end to end on a fresh Lite db for two edits' queries; compares top-1 with the numpy result."""
    import tempfile

    from imgsearch.features import VGG16Features
    from imgsearch.indexing import index_paths
    from imgsearch.search import SearchOptions, search_images
    from imgsearch.store import Store

    check_edits = [e for e in ("crop-70%", "screenshot", "jpeg-q20") if e in edits][:2] or edits[:1]
    chosen = [i for i, q in enumerate(queries) if q[0] in check_edits]
    paths = [queries[i][2] for i in chosen]
    with tempfile.TemporaryDirectory(dir=str(common.WORK_DIR)) as tmp:
        t0 = time.perf_counter()
        with Store(os.path.join(tmp, "check.db")) as store:
            embedder = VGG16Features(precision="fp32")  # as the cached vectors it is checked against
            coll = store.collection("accuracy", embedder.config())
            summary = index_paths(coll, embedder, gallery)
            t_index = time.perf_counter() - t0
            results = list(search_images(coll, embedder, paths, SearchOptions(top_k=10)))
        t_all = time.perf_counter() - t0
    same_top1 = 0
    worst = 0.0
    milvus_hit1 = numpy_hit1 = 0.0
    n_pos = 0
    for i, res in zip(chosen, results):
        top = res.results[0]
        np_best = numpy_result["best"][i]
        worst = max(worst, abs(top.similarity - np_best))
        truth = queries[i][3]
        if truth >= 0:
            n_pos += 1
            milvus_hit1 += top.path == os.path.abspath(gallery[truth])
            numpy_hit1 += numpy_result["hit1"][i]
        same_top1 += abs(top.similarity - np_best) < 1e-4
    return (
        f"{summary.new} gallery images indexed in {t_index:.0f} s, {len(paths)} queries ({', '.join(check_edits)}) "
        f"searched; top-1 score equal to numpy's (within 1e-4) for {same_top1}/{len(paths)} queries, largest "
        f"difference {worst:.1e}; recall@1 {milvus_hit1:.0f}/{n_pos} through Milvus vs {numpy_hit1:.0f}/{n_pos} in "
        f"numpy ({t_all:.0f} s in all)."
    )


if __name__ == "__main__":
    main()
