"""Realistic stored vectors for the duplicates scale benchmark: real VGG16 vectors of the dev photos, their edited
copies and many views made from them, then a million by small perturbations and mixtures in feature space.

Real part (computed once with the model, cached under the benchmark work dir):
- ``photos``: the 534 dev photos (234 originals + 300 distractors) as indexing stores them;
- ``copies``: 2 edited copies of each dev original (kinds from ``duplicates.EDITS``: recompressed, downscaled,
  bordered, cropped, framed, mirrored, turned, recoloured, watermarked), with the photo each was made from;
- ``views``: new pictures made from the dev photos: crops of 15-45% of a photo's area at any place (often
  mirrored and rescaled), blends of two photos, 2x2 collages of four photos' crops, and one photo's crop pasted
  into another; these are the "many real-image vectors" between which the synthetic ones are spread.

Synthetic part (``synthetic_vectors``): each row is a re-normalised mixture of two or three real vectors (photos
or views) with per-dimension log-normal noise, non-negative like VGG16's pooled maps; 1% of rows get 1-3 planted
copies made by adding a real edit's displacement (a real copy's vector minus its photo's) to the row. The real
photos and their real copies are stored among them too, as planted groups of their own.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image, ImageOps

import _common as common
from accuracy import log

REAL_VERSION = 1  # bump when the real part changes: its cache is recomputed
VIEWS = 5000
COPIES_PER_ORIGINAL = 2
VIEW_KINDS = ("crop", "blend", "collage", "inset")


def _crop(img: Image.Image, rng, low=0.15, high=0.45) -> Image.Image:
    """A crop of ``low``-``high`` of the picture's area, aspect ratio jittered, at a random place."""
    w, h = img.size
    area = rng.uniform(low, high)
    aspect = float(np.exp(rng.uniform(-0.4, 0.4)))
    cw = max(16, min(w, round(w * np.sqrt(area) * aspect)))
    ch = max(16, min(h, round(h * np.sqrt(area) / aspect)))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((left, top, left + cw, top + ch))


def make_view(kind: str, pictures: list[Image.Image], rng) -> Image.Image:
    """A new picture from one to four dev photos (``pictures``, RGB)."""
    if kind == "crop":
        out = _crop(pictures[0], rng)
        if rng.random() < 0.5:
            out = ImageOps.mirror(out)
        scale = rng.uniform(0.5, 1.5)
        return out.resize((max(16, round(out.width * scale)), max(16, round(out.height * scale))))
    if kind == "blend":
        a, b = pictures[0], pictures[1].resize(pictures[0].size)
        return Image.blend(a, b, float(rng.uniform(0.3, 0.7)))
    if kind == "collage":
        tile = 256
        canvas = Image.new("RGB", (2 * tile, 2 * tile))
        for i, p in enumerate(pictures[:4]):
            canvas.paste(_crop(p, rng, 0.3, 0.9).resize((tile, tile)), ((i % 2) * tile, (i // 2) * tile))
        return canvas
    if kind == "inset":
        base = pictures[0].copy()
        part = _crop(pictures[1], rng, 0.3, 0.9)
        share = rng.uniform(0.3, 0.5)
        part = part.resize((max(16, round(base.width * share)), max(16, round(base.height * share))))
        base.paste(part, (int(rng.integers(0, base.width - part.width + 1)),
                          int(rng.integers(0, base.height - part.height + 1))))
        return base
    raise ValueError(kind)


def real_vectors(seed: int = 13, views: int = VIEWS) -> dict[str, np.ndarray]:
    """The real part, from the cache under the work dir or computed with the model (about 0.15 s per picture on
    2 cores)."""
    cache = common.WORK_DIR / "duplicates-realistic" / f"real-v{REAL_VERSION}-seed{seed}-{views}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return dict(data)
    from duplicates import EDITS, edit_bytes

    from imgsearch.features import VGG16Features, load_image

    embedder = VGG16Features()
    rng = np.random.default_rng(seed)
    originals = common.image_files(common.DEFAULT_ORIGINALS)
    paths = originals + common.image_files(common.DEFAULT_DISTRACTORS)
    t0 = time.perf_counter()
    images = [load_image(p, min_side=None).image for p in paths]
    images = [im if max(im.size) <= 1024 else ImageOps.contain(im, (1024, 1024)) for im in images]
    photos = embedder.embed_images(images)
    log(f"real vectors: {len(paths)} photos in {time.perf_counter() - t0:.0f} s")

    copy_of, copy_kind, copy_pictures = [], [], []
    for i, path in enumerate(originals):
        with Image.open(path) as im:
            full = im.convert("RGB")
        for kind in rng.choice(EDITS, COPIES_PER_ORIGINAL, replace=False):
            data = edit_bytes(str(kind), full, rng)
            copy_pictures.append(load_image(data, label=f"{path}:{kind}").image)
            copy_of.append(i)
            copy_kind.append(str(kind))
    copies = embedder.embed_images(copy_pictures)
    del copy_pictures
    log(f"real vectors: {len(copies)} edited copies, {time.perf_counter() - t0:.0f} s so far")

    view_kind, view_sources, out = [], [], []
    for start in range(0, views, 256):
        pictures = []
        for _ in range(min(256, views - start)):
            kind = str(rng.choice(VIEW_KINDS))
            sources = rng.choice(len(images), 4, replace=False)
            pictures.append(make_view(kind, [images[s] for s in sources], rng))
            view_kind.append(kind)
            view_sources.append(sources)
        out.append(embedder.embed_images(pictures))
        log(f"real vectors: {start + len(pictures)}/{views} views, {time.perf_counter() - t0:.0f} s so far")
    data = {"photos": photos, "photo_paths": np.array(paths), "originals": np.array(len(originals)),
            "copies": copies, "copy_of": np.array(copy_of), "copy_kind": np.array(copy_kind),
            "views": np.concatenate(out), "view_kind": np.array(view_kind), "view_sources": np.array(view_sources)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(cache)
    return data


if __name__ == "__main__":
    import sys

    real_vectors(views=int(sys.argv[1]) if len(sys.argv) > 1 else VIEWS)


# --- a million from the real ones ----------------------------------------------------------------------------

MIX_ALPHA = 0.3  # Dirichlet concentration of the 2-3 real vectors mixed into a row (tuned, see nn_check)
NOISE_SIGMA = 0.3  # per-dimension log-normal noise (tuned, see nn_check)
PLANTED_SHARE = 0.01  # rows given 1-3 planted copies
# A real edit's displacement is scaled by this before it is added to a synthetic row: at 1.0 the planted copies
# sat nearer their originals than real copies do (cosine p5 0.85 against 0.68); at 1.4 the two distributions
# agree from the median up and the low tail comes closer (nn_check prints both).
EDIT_REACH = 1.4


def _normalised(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def mixtures(pool: np.ndarray, rows: int, rng, alpha: float = MIX_ALPHA, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """``rows`` new vectors, each a mixture of 2-3 pool vectors with log-normal noise, non-negative, unit length."""
    parts = rng.integers(2, 4, rows)
    picks = rng.integers(0, len(pool), (rows, 3))
    weights = rng.dirichlet([alpha] * 3, rows)
    weights[parts == 2, 2] = 0
    mixed = np.einsum("rk,rkd->rd", weights, pool[picks])
    mixed *= np.exp(sigma * rng.standard_normal(mixed.shape)).astype(np.float32)
    return _normalised(np.maximum(mixed, 0))


def edit_displacements(real: dict) -> np.ndarray:
    """Each real edited copy's vector minus its photo's (what an edit does in feature space), times EDIT_REACH."""
    return EDIT_REACH * (real["copies"] - real["photos"][real["copy_of"]])


def planted_copies(bases: np.ndarray, displacements: np.ndarray, rng) -> np.ndarray:
    """A copy of each base vector: the base moved by a real edit's displacement, kept non-negative."""
    moved = bases + displacements[rng.integers(0, len(displacements), len(bases))]
    return _normalised(np.maximum(moved, 0))


def synthetic_batches(n: int, seed: int, real: dict, batch: int = 5000):
    """The stored rows of a realistic run, as (vectors, group) batches: group -1 for a row in no planted group.

    First the real rows: the 534 dev photos, each original with its real edited copies (group = photo index);
    then ``n`` mixtures, ``PLANTED_SHARE`` of them followed by 1-3 planted copies. The same seed gives the
    same rows on every target."""
    rng = np.random.default_rng(seed)
    photos, copies, copy_of = real["photos"], real["copies"], real["copy_of"]
    originals = int(real["originals"])
    groups = np.where(np.arange(len(photos)) < originals, np.arange(len(photos)), -1)
    yield photos, groups
    yield copies, copy_of.astype(np.int64)
    pool = np.concatenate([photos, real["views"]])
    displacements = edit_displacements(real)
    next_group, made = len(photos), 0
    while made < n:
        count = min(batch, n - made)
        base = mixtures(pool, count, rng)
        vectors, group = [base], [np.full(count, -1, dtype=np.int64)]
        for p in np.flatnonzero(rng.random(count) < PLANTED_SHARE):
            k = int(rng.integers(1, 4))
            vectors.append(planted_copies(np.repeat(base[p : p + 1], k, axis=0), displacements, rng))
            group[0][p] = next_group
            group.append(np.full(k, next_group, dtype=np.int64))
            next_group += 1
        yield np.concatenate(vectors), np.concatenate(group)
        made += count


def nearest_cosines(vectors: np.ndarray) -> np.ndarray:
    """Each vector's cosine to its nearest other (exact)."""
    cos = vectors @ vectors.T
    np.fill_diagonal(cos, -np.inf)
    return cos.max(axis=1)


def nn_check(real: dict, seed: int = 13) -> list[list]:
    """Rows for a table: nearest-neighbour cosines of real and synthetic vectors at equal counts (percentiles),
    and how near copies are to their original, real edits against planted ones."""
    rng = np.random.default_rng(seed)
    photos, views = real["photos"], real["views"]
    pool = np.concatenate([photos, views])
    synthetic = mixtures(pool, len(views), rng)
    q = (5, 25, 50, 75, 95)
    rows = []
    for name, v in (("dev photos (534, real)", photos),
                    ("synthetic mixtures, 534", synthetic[: len(photos)]),
                    (f"views of the dev photos ({len(views):,}, real)", views),
                    (f"synthetic mixtures, {len(views):,}", synthetic)):
        rows.append([name, *(f"{x:.3f}" for x in np.percentile(nearest_cosines(v), q))])
    real_copy = np.einsum("ij,ij->i", real["copies"], photos[real["copy_of"]])
    bases = synthetic[:2000]
    planted = np.einsum("ij,ij->i", planted_copies(bases, edit_displacements(real), rng), bases)
    rows.append(["copy to its original: real edits", *(f"{x:.3f}" for x in np.percentile(real_copy, q))])
    rows.append(["copy to its original: planted", *(f"{x:.3f}" for x in np.percentile(planted, q))])
    return rows
