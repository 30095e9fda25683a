"""The copy verdict on the dev photos: is the original at rank 1 *as a copy*, and do unrelated queries stay "similar"?

    python benchmarks/verdict.py [--originals 30] [--negatives 67] [--timing 3]

Gallery: the dev originals minus a fixed-seed held-out share (35%), plus the 300 distractors, indexed into a new
Milvus Lite database through ``index_paths`` (one row per image, as `imgsearch index` writes).
Queries, through ``search_images`` (the library path of `imgsearch search`, top-k 10, no threshold):
- positives: edited copies of a fixed-seed sample of gallery originals, for every edit family of issue 10 with
  several parameters each. Each family has *tuned* parameters (looked at while the verdict was designed) and
  *held-back* ones (never looked at before the final run), reported apart;
- negatives: held-out originals (not in the gallery), unedited, pasted into a page and tilted: any copy verdict
  among their hits is a false copy.
Pages and collages are filled with other held-out photos, so no gallery image but the original is in them.

Model passes are cached on disk by their preprocessed input (as in accuracy.py), so re-runs cost only the local
feature checks; the cost table is measured separately with the real, uncached model and a fresh verifier (cold
keypoint cache, as a one-off CLI query meets it), a few queries per family.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402
from accuracy import VectorCache, log, make_cached_vgg16_class, make_edit  # noqa: E402

SEED = 2610
EDITS_VERSION = 1
HOLDOUT = 0.35

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
}
NEGATIVE_EDITS = ("original", "page-50%", "tilt-7")
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


def cached_embedder(cache, model):
    cls = make_cached_vgg16_class()

    class MaxPooled(cls):
        def embed(self, batch):
            return super().embed(batch)[:, 0]  # max pooling, imgsearch's default

    return MaxPooled(cache, model)


def pct(k, n):
    return f"{100 * k / n:.1f}%" if n else "-"


def fingerprint(image) -> str:
    return hashlib.md5(image.tobytes()).hexdigest()


def recording_verifier():
    """A Verifier that records every keypoint fit it makes: (query index, stored path, similarity, inliers,
    matches, smaller spread, mirrored). Queries are numbered as the benchmark lists them (``expected``)."""
    import threading

    from imgsearch import verdict

    local = threading.local()
    fits = []
    real_fit = verdict.fit_transform

    def fit_transform(query, stored, mirrored=False):
        fit = real_fit(query, stored, mirrored)
        if getattr(local, "query", None) is None:
            return fit  # a plain Verifier's fit (the cost runs): not recorded
        spreads = (0.0, 0.0)
        if fit is not None:
            spreads = (verdict._spread(fit.query_points, query.size), verdict._spread(fit.stored_points, stored.size))
        fits.append((local.query, local.path, local.similarity, fit.inliers if fit else 0, fit.matches if fit else 0,
                     round(min(spreads), 4), mirrored, round(spreads[0], 4), round(spreads[1], 4)))
        return fit

    verdict.fit_transform = fit_transform

    class Recording(verdict.Verifier):
        def __init__(self):
            super().__init__(cache_size=4096)
            self.expected = {}  # fingerprint of a loaded query -> its index in the benchmark's list of queries

        def query(self, image, full_size):
            # Numbered by the picture itself: search computes a batch's query keypoints on two threads, so the
            # order of the calls is not the queries' order (numbering by calls mixed up the fits' queries).
            features = super().query(image, full_size)
            features.index = self.expected[fingerprint(image)]
            return features

        def judge(self, query, path, similarity):
            # A region of a query (a page's photo) is recorded as its query.
            local.query, local.path, local.similarity = query.whole.index, path, similarity
            return super().judge(query, path, similarity)

    return Recording(), fits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=30, help="gallery originals used as positive sources")
    parser.add_argument("--negatives", type=int, default=67, help="held-out photos used as negative sources")
    parser.add_argument("--negatives-from", type=int, default=0, help="first held-out photo used (to run in parts)")
    parser.add_argument("--timing", type=int, default=3, help="queries per family timed with the real model "
                        "(0: no cost section)")
    parser.add_argument("--tuned-only", action="store_true", help="skip the held-back variants")
    parser.add_argument("--only", choices=("positives", "negatives"), help="run one half (each prints its report)")
    args = parser.parse_args(argv)

    from imgsearch.features import VGG16Features
    from imgsearch.indexing import index_paths
    from imgsearch.search import SearchOptions, search_images
    from imgsearch.store import Store
    from imgsearch.verdict import COPY, QUERY_SIDE, Verifier

    originals = common.image_files(common.DEFAULT_ORIGINALS)
    distractors = common.image_files(common.DEFAULT_DISTRACTORS)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(originals))
    held = sorted(originals[i] for i in order[: round(HOLDOUT * len(originals))])
    in_gallery = sorted(originals[i] for i in order[round(HOLDOUT * len(originals)):])
    positives = sorted(rng.choice(in_gallery, size=min(args.originals, len(in_gallery)), replace=False).tolist())
    negatives = held[args.negatives_from : args.negatives_from + args.negatives]
    if args.only == "negatives":
        positives = []
    elif args.only == "positives":
        negatives = []
    fillers = held  # pages and collages are filled with photos that are not in the gallery

    work = common.WORK_DIR / f"verdict-v{EDITS_VERSION}-seed{SEED}"
    variants = [v for family in FAMILIES.values() for v, tuned in family if tuned or not args.tuned_only]
    log(f"making copies: {len(positives)} originals x {len(variants)} variants, {len(negatives)} x {NEGATIVE_EDITS}")
    queries = make_queries(positives, variants, fillers, work / "copies")
    negative_queries = make_queries(negatives, list(NEGATIVE_EDITS), fillers, work / "copies")

    plain = VGG16Features()
    model = plain.model
    cache = VectorCache(common.WORK_DIR / "vgg16-cache.npz", (3, 512))
    embedder = cached_embedder(cache, model)
    db = work / "gallery.db"
    gallery = [*in_gallery, *distractors]
    with Store(str(db)) as store:
        coll = store.collection("images", embedder.config())
        t0 = time.perf_counter()
        summary = index_paths(coll, embedder, gallery)
        cache.save()
        log(f"gallery: {coll.count()} rows ({summary.new} new) in {time.perf_counter() - t0:.0f} s")

        verifier, fits = recording_verifier()
        query_paths = []  # the i-th query the verifier saw
        outcome = {}  # (variant, photo) -> (plain rank-1, plain >= 0.80, rank-1, copy at 1, false copies,
        #                                    evidence, plain rank of the truth (0: not in the top 10))

        def run(sources, truth):
            for start in range(0, len(sources), 16):
                chunk = sources[start : start + 16]
                paths = [queries_all[s] for s in chunk]
                plain_results = list(search_images(coll, embedder, paths, SearchOptions(top_k=10, verify=False)))
                for key, path in zip(chunk, paths):  # loaded as search loads a query
                    verifier.expected[fingerprint(embedder.load(path, min_side=QUERY_SIDE).image)] = len(query_paths)
                    query_paths.append(key)
                results = list(search_images(coll, embedder, paths, SearchOptions(top_k=10), verifier=verifier))
                for key, p_res, res in zip(chunk, plain_results, results):
                    if res.error:
                        raise SystemExit(f"{res.query}: {res.error}")
                    want = truth(key)
                    first = res.results[0] if res.results else None
                    p_first = p_res.results[0] if p_res.results else None
                    plain_rank = next((m.rank for m in p_res.results if m.path == want), 0)
                    outcome[key] = (
                        bool(p_first and p_first.path == want),
                        bool(p_first and p_first.path == want and p_first.similarity >= 0.80),
                        bool(first and first.path == want),
                        bool(first and first.path == want and first.match == COPY),
                        sum(m.match == COPY for m in res.results if m.path != want),
                        first.evidence.as_dict() if first and first.match == COPY else None,
                        plain_rank,
                        [(m.path, m.evidence.as_dict()) for m in res.results if m.match == COPY and m.path != want],
                    )
                cache.save()
                log(f"  {len(outcome)} queries done")

        queries_all = {**queries, **negative_queries}
        t0 = time.perf_counter()
        run(sorted(queries), lambda key: key[1])
        run(sorted(negative_queries), lambda key: None)
        log(f"all queries in {time.perf_counter() - t0:.0f} s")

        # Cost: real model, fresh verifier (no cached keypoints), a few queries per family and negatives.
        seconds = {}
        if args.timing:
            timing = {}
            for family, members in FAMILIES.items():
                picks = [queries[(v, p)] for v, tuned in members if tuned for p in positives[: args.timing]]
                timing[family] = picks[: args.timing * 2]
            timing["unrelated (negatives)"] = [negative_queries[(e, p)] for e in NEGATIVE_EDITS
                                               for p in negatives[: args.timing]]
            list(search_images(coll, plain, [queries[(variants[0], positives[0])]]))  # warm-up
            for family, paths in timing.items():
                seconds[family] = []
                for path in paths:
                    t = time.perf_counter()
                    list(search_images(coll, plain, [path], SearchOptions(top_k=10), verifier=Verifier()))
                    seconds[family].append(time.perf_counter() - t)
            t = time.perf_counter()
            index_sample = in_gallery[:24]
            index_db = work / "index-cost.db"
            import shutil

            shutil.rmtree(index_db, ignore_errors=True)
            with Store(str(index_db)) as store2:
                coll2 = store2.collection("images", plain.config())
                index_paths(coll2, plain, index_sample)
            index_rate = len(index_sample) / (time.perf_counter() - t)
            shutil.rmtree(index_db, ignore_errors=True)
        rows = coll.count()
    db_bytes = sum(f.stat().st_size for f in db.rglob("*") if f.is_file())

    common.header("Copy verdict (issue 10): dev photos, edited copies and unrelated queries")
    print(f"Gallery: {len(in_gallery)} originals + {len(distractors)} distractors = {rows} rows (one per image). "
          f"Positives: {len(positives)} originals x {len(variants)} variants = {len(queries)} queries. "
          f"Negatives: {len(negatives)} held-out photos x {len(NEGATIVE_EDITS)} ({', '.join(NEGATIVE_EDITS)}) = "
          f"{len(negative_queries)} queries.\n")
    print("'plain' = today's ranking alone (picture view, no verdict); 'copy@1' = the original at rank 1 with a copy "
          "verdict (the acceptance line, >= 99%).\n")
    for tuned_flag, title in ((True, "Tuned variants"), (False, "Held-back variants (not looked at while tuning)")):
        rows_out = []
        for family, members in FAMILIES.items():
            for variant, tuned in members:
                if not positives or tuned != tuned_flag or (variant, positives[0]) not in queries:
                    continue
                res = [outcome[(variant, p)] for p in positives]
                n = len(res)
                rows_out.append([family, variant, n, pct(sum(r[0] for r in res), n), pct(sum(r[1] for r in res), n),
                                 pct(sum(r[2] for r in res), n), pct(sum(r[3] for r in res), n)])
        if rows_out:
            print(f"### {title}\n")
            print(common.table(["family", "variant", "queries", "plain rank-1", "plain rank-1 >= 0.80",
                                "rank-1", "copy@1"], rows_out, "llrrrrr"))
            print()
    fam_rows = []
    for family, members in FAMILIES.items():
        res = [outcome[(v, p)] for v, _ in members for p in positives if (v, p) in outcome]
        fam_rows.append([family, len(res), pct(sum(r[2] for r in res), len(res)), pct(sum(r[3] for r in res), len(res))])
    allpos = [outcome[k] for k in queries]
    fam_rows.append(["**all edits**", len(allpos), pct(sum(r[2] for r in allpos), len(allpos)),
                     pct(sum(r[3] for r in allpos), len(allpos))])
    print("### Per family (tuned and held-back together)\n")
    print(common.table(["family", "queries", "rank-1", "copy@1"], fam_rows))
    neg = [outcome[k] for k in negative_queries]
    false_by_edit = {e: sum(outcome[(e, p)][4] > 0 for p in negatives) for e in NEGATIVE_EDITS}
    print(f"\n**Unrelated queries given a copy verdict: {sum(r[4] > 0 for r in neg)} of {len(neg)}** "
          f"({', '.join(f'{e}: {k}' for e, k in false_by_edit.items())}); false copy hits in all: "
          f"{sum(r[4] for r in neg)}. Positive queries with some *other* image called a copy: "
          f"{sum(r[4] > 0 for r in allpos)} of {len(allpos)}.\n")
    misses = [(k, outcome[k]) for k in sorted(queries) if not outcome[k][3]]
    if misses:
        print("Misses (variant, photo, rank-1 ok?): " + "; ".join(
            f"{k[0]} {Path(k[1]).stem} {'r1' if o[2] else 'not r1'}" for k, o in misses[:40]))
        print()
    # The fits behind the verdicts: true pairs (a copy against its original) and unrelated pairs.
    truth_of = {}
    for key in queries:
        truth_of[key] = key[1]
    true_fits, unrelated_fits = [], []
    import json

    dump = work / f"fits-{args.only or 'all'}-{args.negatives_from}.json"
    dump.write_text(json.dumps({"fits": [[query_paths[f[0]][0], query_paths[f[0]][1], *f[1:]] for f in fits],
                                "outcome": {f"{k[0]}|{k[1]}": v for k, v in outcome.items()}}))
    print(f"(every fit and outcome: {dump})\n")
    for q_index, path, similarity, inliers, matches, spread, mirrored, *_ in fits:
        key = query_paths[q_index]
        (true_fits if truth_of.get(key) == path else unrelated_fits).append((inliers, matches, spread, similarity,
                                                                             key, path))
    worst = sorted(unrelated_fits, key=lambda f: -f[0])[:8]
    print(f"Keypoint fits made: {len(fits)} ({len(true_fits)} of a copy against its original, {len(unrelated_fits)} "
          "of unrelated pairs). Most agreeing keypoints in unrelated pairs: " + "; ".join(
              f"{f[0]} of {f[1]} (spread {f[2]:.3f}, cosine {f[3]:.2f}, {f[4][0]} {Path(f[4][1]).stem} vs "
              f"{Path(f[5]).stem})" for f in worst) + ".\n")
    weak = sorted((f for f in true_fits if f[0] < 40), key=lambda f: f[0])[:12]
    if weak:
        print("Weakest true pairs: " + "; ".join(f"{f[0]} of {f[1]} (spread {f[2]:.3f}, {f[4][0]} {Path(f[4][1]).stem})"
                                                 for f in weak) + ".\n")
    ranks = {}
    for key, o in outcome.items():
        if key in queries:
            ranks.setdefault(key[0], []).append(o[6])
    print("Plain rank of the original (picture view alone), share within the top 1 / 2 / 6 / 10: " + "; ".join(
        f"{v} {pct(sum(0 < r <= 1 for r in rs), len(rs))}/{pct(sum(0 < r <= 2 for r in rs), len(rs))}/"
        f"{pct(sum(0 < r <= 6 for r in rs), len(rs))}/{pct(sum(r > 0 for r in rs), len(rs))}"
        for v, rs in ranks.items()) + ".\n")
    if seconds:
        cost_rows = [[family, len(s), f"{common.median(s):.2f}", f"{np.percentile(s, 95):.2f}"]
                     for family, s in seconds.items() if s]
        print("### Cost: one query, warm model, cold keypoint cache (seconds)\n")
        print(common.table(["queries", "n", "median s", "p95 s"], cost_rows))
        print(f"\nIndexing: {index_rate:.2f} photos/s (24 photos, `index_paths`, real model): the verdict adds no "
              "work at index time.")
    print(f"Rows per image: 1; database on disk: {db_bytes / rows / 1024:.1f} KiB per image "
          f"({db_bytes / 1e6:.1f} MB for {rows} rows, Milvus Lite).")
    common.footer()


if __name__ == "__main__":
    main()
