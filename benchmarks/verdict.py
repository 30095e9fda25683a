"""The copy verdict on the dev photos: is the original at rank 1 *as a copy*, and do unrelated queries stay "similar"?

    python benchmarks/verdict.py [--originals 30] [--negatives 67] [--low-texture 24] [--scale 1] [--timing 3]

Gallery: the dev originals minus a fixed-seed held-out share (35%), plus the 300 distractors (telescope pictures),
indexed into a new Milvus Lite database through ``index_paths`` (one row per image, as `imgsearch index` writes).
``--scale N`` grows it N-fold with look-alike distractors: crops, mirror images, recolourings and mixes of gallery
photos that no query is made of (``verdict_edits.make_distractors``).
Queries, through ``search_images`` (the library path of `imgsearch search`, top-k 10, no threshold):
- positives: edited copies of a fixed-seed sample of gallery originals, for every edit family
  (``verdict_edits.FAMILIES``: issue 10's and issue 21's: photographed at an angle, turned by any angle, cropped
  tight, filtered, mirrored + tilted + cropped) with several parameters each. Each family has *tuned* parameters
  (looked at while the verdict was designed) and *held-back* ones (not looked at before the final run), reported
  apart;
- the low-texture set: the dev photos with fewer than 100 SIFT keypoints (fog, sea, moon, night; then telescope
  pictures), in the gallery, each under one variant of every family (``LOW_TEXTURE_VARIANTS``), reported as a
  family of its own;
- negatives: held-out originals (not in the gallery), unedited, pasted into a page, tilted, photographed at an
  angle and turned 45 degrees; and held-out low-texture pictures (unedited, photographed, recompressed): any copy
  verdict among their hits is a false copy.
Pages and collages are filled with other held-out photos, so no gallery image but the original is in them.

Model passes are cached on disk by their preprocessed input (as in accuracy.py), so re-runs cost only the local
feature checks; the cost table is measured separately with the real, uncached model and a fresh verifier (cold
keypoint cache, as a one-off CLI query meets it), a few queries per family.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402
from accuracy import VectorCache, log, make_cached_vgg16_class  # noqa: E402
from verdict_edits import (FAMILIES, LOW_TEXTURE_NEGATIVE_EDITS, LOW_TEXTURE_VARIANTS, NEGATIVE_EDITS,  # noqa: E402
                           SEED, low_texture, make_distractors, make_queries)

EDITS_VERSION = 1
HOLDOUT = 0.35


def model_id(embedder) -> str:
    """What names a precision's vector cache: the model file's sha256 (12 hex digits), or "keras" for bf16."""
    return getattr(getattr(embedder.model, "model", None), "sha256", "keras")[:12]


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
    from imgsearch.verdict import geometry

    local = threading.local()
    fits = []
    real_fit = geometry.fit_transform

    def fit_transform(query, stored, mirrored=False):
        fit = real_fit(query, stored, mirrored)
        if getattr(local, "query", None) is None:
            return fit  # a plain Verifier's fit (the cost runs): not recorded
        spreads = (0.0, 0.0)
        if fit is not None:
            spreads = (geometry._spread(fit.query_points, query.size), geometry._spread(fit.stored_points, stored.size))
        fits.append((local.query, local.path, local.similarity, fit.inliers if fit else 0, fit.matches if fit else 0,
                     round(min(spreads), 4), mirrored, round(spreads[0], 4), round(spreads[1], 4)))
        return fit

    geometry.fit_transform = fit_transform  # verdict.verify looks it up there

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


@dataclass
class PhotoSets:
    gallery: list[str]  # indexed (before look-alike distractors)
    positives: list[str]  # gallery originals whose copies are queried
    low: list[str]  # low-texture gallery photos whose copies are queried
    negatives: list[str]  # held-out photos (not in the gallery) queried as unrelated
    low_negatives: list[str]  # held-out low-texture photos queried as unrelated
    fillers: list[str]  # other held-out photos that fill pages and collages
    derive_from: list[str]  # the gallery photos look-alike distractors are made of (no query's original)


def choose_photos(args) -> PhotoSets:
    originals = common.image_files(common.DEFAULT_ORIGINALS)
    distractors = common.image_files(common.DEFAULT_DISTRACTORS)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(originals))
    held = sorted(originals[i] for i in order[: round(HOLDOUT * len(originals))])
    in_gallery = sorted(originals[i] for i in order[round(HOLDOUT * len(originals)):])
    flat = low_texture(originals + distractors)
    # Low-texture positives: flat photos first (fog, sea, moon, night streets), then telescope pictures; they join
    # the gallery if they were held out. Low-texture negatives: other flat pictures, held out of the gallery.
    flat_photos = [p for p in flat if p in originals]
    flat_sky = [p for p in flat if p in distractors]
    low = sorted(flat_photos[::2] + flat_sky[: max(0, args.low_texture - len(flat_photos[::2]))])[: args.low_texture]
    low_negatives = sorted((flat_photos[1::2] + [p for p in flat_sky if p not in low])[: args.low_texture_negatives])
    in_gallery = sorted(set(in_gallery) - set(low_negatives) | {p for p in low if p in originals})
    held = [p for p in held if p not in low and p not in low_negatives]
    positives = sorted(rng.choice([p for p in in_gallery if p not in low], size=min(args.originals, len(in_gallery)),
                                  replace=False).tolist())
    negatives = held[args.negatives_from : args.negatives_from + args.negatives]
    gallery = in_gallery + [d for d in distractors if d not in low_negatives]  # the same whatever half runs
    if args.only == "negatives":
        positives, low = [], []
    elif args.only == "positives":
        negatives, low_negatives = [], []
    queried = set(positives) | set(low)
    return PhotoSets(gallery, positives, low, negatives, low_negatives, held,
                     [p for p in gallery if p not in queried])


@dataclass
class QuerySets:
    """The benchmark's queries by kind, each (variant, photo) -> the edited copy's path."""

    copies: dict  # edited copies of gallery originals
    low: dict  # the low-texture set's copies
    unrelated: dict  # held-out photos, edited
    low_unrelated: dict  # held-out low-texture photos, edited


def work_dir() -> Path:
    return common.WORK_DIR / f"verdict-v{EDITS_VERSION}-seed{SEED}"


def make_query_sets(sets: PhotoSets, variants: list[str], work: Path) -> QuerySets:
    """The copies queried, made once (the low-texture set under those of ``variants`` it takes)."""
    low_variants = [v for v in LOW_TEXTURE_VARIANTS if v in variants]
    folder = work / "copies"
    return QuerySets(make_queries(sets.positives, variants, sets.fillers, folder),
                     make_queries(sets.low, low_variants, sets.fillers, folder),
                     make_queries(sets.negatives, list(NEGATIVE_EDITS), sets.fillers, folder),
                     make_queries(sets.low_negatives, list(LOW_TEXTURE_NEGATIVE_EDITS), sets.fillers, folder))


def grown_gallery(sets: PhotoSets, scale: int, work: Path) -> list[str]:
    """The gallery, grown ``scale``-fold with look-alike distractors made of photos no query comes from."""
    gallery = list(sets.gallery)
    if scale > 1:
        gallery += make_distractors(sets.derive_from, (scale - 1) * len(gallery), work / "derived")
    return gallery


def main(argv=None):
    args = parse_args(argv)
    from imgsearch.features import VGG16Features
    from imgsearch.indexing import index_paths
    from imgsearch.store import Store

    sets = choose_photos(args)
    work = work_dir()
    families = {f: m for f, m in FAMILIES.items() if not args.families or f in args.families.split(",")}
    variants = [v for family in families.values() for v, tuned in family if tuned or not args.tuned_only]
    low_variants = [v for v in LOW_TEXTURE_VARIANTS if v in variants]
    log(f"making copies: {len(sets.positives)} originals x {len(variants)} variants, {len(sets.low)} low-texture "
        f"x {len(low_variants)}, {len(sets.negatives)} x {NEGATIVE_EDITS}, {len(sets.low_negatives)} x "
        f"{LOW_TEXTURE_NEGATIVE_EDITS}")
    made = make_query_sets(sets, variants, work)
    queries, low_queries, negative_queries, low_negative_queries = (made.copies, made.low, made.unrelated,
                                                                    made.low_unrelated)
    gallery = grown_gallery(sets, args.scale, work)
    if args.scale > 1:
        log(f"gallery x{args.scale}: {len(gallery) - len(sets.gallery)} look-alike distractors")
    # Pinned, not auto: the vector cache holds one precision's vectors (fp32's is the historical one).
    plain = VGG16Features(precision=args.precision)
    # Another precision's vectors are cached (and indexed) per model file: new quantization settings make new ones.
    suffix = "" if args.precision == "fp32" else f"-{args.precision}-{model_id(plain)}"
    cache = VectorCache(common.WORK_DIR / f"vgg16-cache{suffix}.npz", (3, 512))
    embedder = cached_embedder(cache, plain.model)
    # One database per gallery: a run of one half (--only) holds other photos than a whole run, and rows of the
    # other half's gallery left in a shared database would be found as the queries' own originals.
    digest = hashlib.md5("\n".join(sorted(gallery)).encode()).hexdigest()[:8]
    db = work / f"gallery-x{args.scale}{suffix}-{digest}.db"
    with Store(str(db)) as store:
        coll = store.collection("images", embedder.config())
        t0 = time.perf_counter()
        summary = index_paths(coll, embedder, gallery)
        cache.save()
        log(f"gallery: {coll.count()} rows ({summary.new} new) in {time.perf_counter() - t0:.0f} s")
        runner = QueryRunner(coll, embedder, cache)
        t0 = time.perf_counter()
        for group, truth in ((queries, True), (low_queries, True), (negative_queries, False),
                             (low_negative_queries, False)):
            runner.run(group, truth)
        log(f"all queries in {time.perf_counter() - t0:.0f} s")
        seconds = cost(args, coll, plain, families, queries, sets, negative_queries) if args.timing else {}
        rows = coll.count()
    db_bytes = sum(f.stat().st_size for f in db.rglob("*") if f.is_file())
    common.header(f"Copy verdict: dev photos, edited copies and unrelated queries (gallery x{args.scale})")
    print(f"Gallery: {rows} rows, one per image ({len(sets.gallery)} dev photos"
          + (f" and {rows - len(sets.gallery)} look-alike distractors" if args.scale > 1 else "") + "). "
          f"Positives: {len(sets.positives)} originals x {len(variants)} variants = {len(queries)} queries; "
          f"low-texture set: {len(sets.low)} photos x {len(low_variants)} variants = {len(low_queries)} queries. "
          f"Unrelated: {len(negative_queries)} queries ({len(sets.negatives)} held-out photos x "
          f"{', '.join(NEGATIVE_EDITS)}) and {len(low_negative_queries)} low-texture ({len(sets.low_negatives)} x "
          f"{', '.join(LOW_TEXTURE_NEGATIVE_EDITS)}).\n")
    report(runner, families, queries, low_queries, negative_queries, low_negative_queries, work, args)
    if seconds:
        cost_rows = [[family, len(s), f"{common.median(s):.2f}", f"{np.percentile(s, 95):.2f}"]
                     for family, s in seconds.items() if s]
        print("### Cost: one query, warm model, cold keypoint cache (seconds)\n")
        print(common.table(["queries", "n", "median s", "p95 s"], cost_rows))
    print(f"\nRows per image: 1; database on disk: {db_bytes / rows / 1024:.1f} KiB per image "
          f"({db_bytes / 1e6:.1f} MB for {rows} rows, Milvus Lite).")
    common.footer()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=30, help="gallery originals used as positive sources")
    parser.add_argument("--negatives", type=int, default=67, help="held-out photos used as negative sources")
    parser.add_argument("--negatives-from", type=int, default=0, help="first held-out photo used (to run in parts)")
    parser.add_argument("--low-texture", type=int, default=24, help="low-texture gallery photos used as positives")
    parser.add_argument("--low-texture-negatives", type=int, default=40,
                        help="low-texture photos held out of the gallery as negative sources")
    parser.add_argument("--scale", type=int, default=1, help="gallery size as a multiple of the dev gallery: "
                        "look-alike distractors (crops, flips, recolourings, mixes of non-query photos) fill it")
    parser.add_argument("--timing", type=int, default=3, help="queries per family timed with the real model "
                        "(0: no cost section)")
    parser.add_argument("--tuned-only", action="store_true", help="skip the held-back variants")
    parser.add_argument("--only", choices=("positives", "negatives"), help="run one half (each prints its report)")
    parser.add_argument("--families", default="", help="comma-separated families to run (default: all)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"),
                        help="the model's precision [fp32]; each has its own vector cache and database")
    return parser.parse_args(argv)


class QueryRunner:
    """Runs queries through ``search_images`` (with and without the verdict) and keeps each one's outcome."""

    def __init__(self, coll, embedder, cache):
        self.coll, self.embedder, self.cache = coll, embedder, cache
        self.verifier, self.fits = recording_verifier()
        self.query_paths = []  # the i-th query the verifier saw
        # (variant, photo) -> Outcome
        self.outcome: dict = {}

    def run(self, queries: dict, truth: bool):
        from imgsearch.search import SearchOptions, search_images
        from imgsearch.verdict import QUERY_SIDE

        keys = sorted(queries)
        for start in range(0, len(keys), 16):
            chunk = keys[start : start + 16]
            paths = [queries[k] for k in chunk]
            plain = list(search_images(self.coll, self.embedder, paths, SearchOptions(top_k=10, verify=False)))
            for key, path in zip(chunk, paths):  # loaded as search loads a query
                loaded = self.embedder.load(path, min_side=QUERY_SIDE).image
                self.verifier.expected[fingerprint(loaded)] = len(self.query_paths)
                self.query_paths.append(key)
            results = list(search_images(self.coll, self.embedder, paths, SearchOptions(top_k=10),
                                         verifier=self.verifier))
            for key, p_res, res in zip(chunk, plain, results):
                if res.error:
                    raise SystemExit(f"{res.query}: {res.error}")
                self.outcome[key] = Outcome.of(res, p_res, key[1] if truth else None)
            self.cache.save()
            log(f"  {len(self.outcome)} queries done")


@dataclass
class Outcome:
    plain_first: bool  # the original at rank 1 by similarity alone
    plain_first_above: bool  # ... with similarity >= 0.80
    first: bool  # the original at rank 1 with the verdict
    copy_first: bool  # ... as a copy (the acceptance line)
    false_copies: int  # other images called copies
    evidence: dict | None
    plain_rank: int  # rank of the original by similarity alone (0: not in the top 10)
    others: list  # (path, evidence) of the other images called copies

    @classmethod
    def of(cls, res, p_res, want: str | None) -> Outcome:
        from imgsearch.verdict import COPY

        first = res.results[0] if res.results else None
        p_first = p_res.results[0] if p_res.results else None
        return cls(
            bool(p_first and p_first.path == want),
            bool(p_first and p_first.path == want and p_first.similarity >= 0.80),
            bool(first and first.path == want),
            bool(first and first.path == want and first.match == COPY),
            sum(m.match == COPY for m in res.results if m.path != want),
            first.evidence.as_dict() if first and first.match == COPY else None,
            next((m.rank for m in p_res.results if m.path == want), 0),
            [(m.path, m.evidence.as_dict()) for m in res.results if m.match == COPY and m.path != want],
        )


def cost(args, coll, plain, families, queries, sets, negative_queries) -> dict:
    """Seconds per query with the real model and a fresh verifier (no cached keypoints), a few per family."""
    from imgsearch.search import SearchOptions, search_images
    from imgsearch.verdict import Verifier

    timing = {}
    for family, members in families.items():
        picks = [queries[(v, p)] for v, tuned in members if tuned for p in sets.positives[: args.timing]
                 if (v, p) in queries]
        timing[family] = picks[: args.timing * 2]
    timing["unrelated (negatives)"] = [negative_queries[(e, p)] for e in NEGATIVE_EDITS
                                       for p in sets.negatives[: args.timing] if (e, p) in negative_queries]
    list(search_images(coll, plain, [next(iter(queries.values()))]))  # warm-up
    seconds = {}
    for family, paths in timing.items():
        seconds[family] = []
        for path in paths:
            t = time.perf_counter()
            list(search_images(coll, plain, [path], SearchOptions(top_k=10), verifier=Verifier()))
            seconds[family].append(time.perf_counter() - t)
    return seconds


def report(runner, families, queries, low_queries, negative_queries, low_negative_queries, work, args):
    outcome = runner.outcome
    print("'plain' = the ranking alone (picture view, no verdict); 'copy@1' = the original at rank 1 with a copy "
          "verdict (the acceptance line, >= 99%).\n")
    for tuned_flag, title in ((True, "Tuned variants"), (False, "Held-back variants (not looked at while tuning)")):
        rows = []
        for family, members in families.items():
            for variant, tuned in members:
                res = [o for (v, _), o in outcome.items() if v == variant and (v, _) in queries]
                if tuned != tuned_flag or not res:
                    continue
                n = len(res)
                rows.append([family, variant, n, pct(sum(r.plain_first for r in res), n),
                             pct(sum(r.plain_first_above for r in res), n), pct(sum(r.first for r in res), n),
                             pct(sum(r.copy_first for r in res), n)])
        if rows:
            print(f"### {title}\n")
            print(common.table(["family", "variant", "queries", "plain rank-1", "plain rank-1 >= 0.80", "rank-1",
                                "copy@1"], rows, "llrrrrr"))
            print()
    fam_rows = []
    for family, members in families.items():
        names = {v for v, _ in members}
        res = [outcome[k] for k in queries if k[0] in names]
        fam_rows.append([family, len(res), pct(sum(r.first for r in res), len(res)),
                         pct(sum(r.copy_first for r in res), len(res))])
    low = [outcome[k] for k in low_queries]
    fam_rows.append(["**low-texture set** (every family)", len(low), pct(sum(r.first for r in low), len(low)),
                     pct(sum(r.copy_first for r in low), len(low))])
    allpos = [outcome[k] for k in (*queries, *low_queries)]
    fam_rows.append(["**all edits**", len(allpos), pct(sum(r.first for r in allpos), len(allpos)),
                     pct(sum(r.copy_first for r in allpos), len(allpos))])
    print("### Per family (tuned and held-back together)\n")
    print(common.table(["family", "queries", "rank-1", "copy@1"], fam_rows))
    report_low_texture(outcome, low_queries)
    report_negatives(outcome, negative_queries, low_negative_queries, allpos)
    report_misses_and_fits(runner, queries, low_queries, work, args)


def report_low_texture(outcome, low_queries):
    by_variant: dict = {}
    for key in low_queries:
        by_variant.setdefault(key[0], []).append(outcome[key].copy_first)
    print("\nLow-texture set, copy@1 by variant: " + "; ".join(
        f"{v} {pct(sum(r), len(r))}" for v, r in by_variant.items()) + ".")


def report_negatives(outcome, negative_queries, low_negative_queries, allpos):
    for title, group in (("Unrelated queries", negative_queries), ("Low-texture unrelated queries",
                                                                    low_negative_queries)):
        res = [outcome[k] for k in group]
        by_edit: dict = {}
        for key in group:
            by_edit[key[0]] = by_edit.get(key[0], 0) + (outcome[key].false_copies > 0)
        print(f"\n**{title} given a copy verdict: {sum(r.false_copies > 0 for r in res)} of {len(res)}** "
              f"({', '.join(f'{e}: {k}' for e, k in by_edit.items())}); false copy hits in all: "
              f"{sum(r.false_copies for r in res)}.")
        for key in group:
            for path, evidence in outcome[key].others:
                print(f"  false copy: {key[0]} {Path(key[1]).stem} -> {Path(path).stem}: {evidence['summary']}")
    print(f"\nPositive queries with some *other* image called a copy: {sum(r.false_copies > 0 for r in allpos)} "
          f"of {len(allpos)}.\n")


def report_misses_and_fits(runner, queries, low_queries, work, args):
    import json

    outcome, fits = runner.outcome, runner.fits
    positives = {**queries, **low_queries}
    misses = [(k, outcome[k]) for k in sorted(positives) if not outcome[k].copy_first]
    if misses:
        print("Misses (variant, photo, rank-1 ok?, plain rank): " + "; ".join(
            f"{k[0]} {Path(k[1]).stem} {'r1' if o.first else 'not r1'} {o.plain_rank}" for k, o in misses[:80]))
        print()
    dump = work / f"fits-x{args.scale}-{args.only or 'all'}-{args.negatives_from}.json"
    dump.write_text(json.dumps({"fits": [[*runner.query_paths[f[0]], *f[1:]] for f in fits],
                                "outcome": {f"{k[0]}|{k[1]}": o.__dict__ for k, o in outcome.items()}}))
    print(f"(every fit and outcome: {dump})\n")
    true_fits, unrelated_fits = [], []
    for q_index, path, similarity, inliers, matches, spread, mirrored, *_ in fits:
        key = runner.query_paths[q_index]
        truth = key[1] if key in positives else None
        (true_fits if truth == path else unrelated_fits).append((inliers, matches, spread, similarity, key, path))
    worst = sorted(unrelated_fits, key=lambda f: -f[0])[:8]
    print(f"Keypoint fits made: {len(fits)} ({len(true_fits)} of a copy against its original, {len(unrelated_fits)} "
          "of unrelated pairs). Most agreeing keypoints in unrelated pairs: " + "; ".join(
              f"{f[0]} of {f[1]} (spread {f[2]:.3f}, cosine {f[3]:.2f}, {f[4][0]} {Path(f[4][1]).stem} vs "
              f"{Path(f[5]).stem})" for f in worst) + ".\n")
    ranks: dict = {}
    for key in positives:
        ranks.setdefault(key[0], []).append(outcome[key].plain_rank)
    print("Plain rank of the original (picture view alone), share within the top 1 / 6 / 10: " + "; ".join(
        f"{v} {pct(sum(0 < r <= 1 for r in rs), len(rs))}/{pct(sum(0 < r <= 6 for r in rs), len(rs))}/"
        f"{pct(sum(r > 0 for r in rs), len(rs))}" for v, rs in ranks.items()) + ".\n")


if __name__ == "__main__":
    main()
