"""Does bf16 or int8 change what search finds? Rank-1 of edited copies, fp32 vectors against each, side by side.

    python benchmarks/precision_rank1.py [--originals 6] [--precisions bf16,int8]

The gallery and queries of benchmarks/verdict.py (452 images; every edited copy of a fixed-seed sample of gallery
originals, 35 variants each). Both precisions embed everything through ``VGG16Features.embed_sources`` (the fp32
vectors come from verdict.py's on-disk cache, made by the same code); rank-1 by exact dot products over the
gallery, the similarity ranking alone (no verdict), so a change of precision shows as a change of rank-1. Each
precision's queries are searched in its own gallery vectors and, as a collection of mixed precisions would be, in
the fp32 gallery ("queries vs fp32 gallery").
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402
import verdict as bench  # noqa: E402
from accuracy import VectorCache, log  # noqa: E402


def vectors(embedder, paths):
    out = {}
    for batch in embedder.embed_sources(paths, batch_size=16):
        for r in batch:
            if r.error:
                raise SystemExit(f"{r.source}: {r.error}")
            out[r.source] = r.vector
    return np.stack([out[p] for p in paths])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=6)
    parser.add_argument("--precisions", default="bf16,int8", help="compared with fp32 [bf16,int8]")
    args = parser.parse_args(argv)
    from imgsearch.features import VGG16Features

    originals = common.image_files(common.DEFAULT_ORIGINALS)
    distractors = common.image_files(common.DEFAULT_DISTRACTORS)
    rng = np.random.default_rng(bench.SEED)
    order = rng.permutation(len(originals))
    in_gallery = sorted(originals[i] for i in order[round(bench.HOLDOUT * len(originals)):])
    positives = sorted(rng.choice(in_gallery, size=args.originals, replace=False).tolist())
    held = sorted(originals[i] for i in order[: round(bench.HOLDOUT * len(originals))])
    variants = [v for family in bench.FAMILIES.values() for v, _ in family]
    work = common.WORK_DIR / f"verdict-v{bench.EDITS_VERSION}-seed{bench.SEED}"
    queries = bench.make_queries(positives, variants, held, work / "copies")
    gallery = [*in_gallery, *distractors]
    keys = sorted(queries)
    query_paths = [queries[k] for k in keys]

    fp32_model = VGG16Features(precision="fp32")
    cache = VectorCache(common.WORK_DIR / "vgg16-cache.npz", (3, 512))
    fp32 = bench.cached_embedder(cache, fp32_model.model)
    others = {p: VGG16Features(precision=p) for p in args.precisions.split(",")}
    embedders = {"fp32": fp32}
    caches = [cache]
    for name, model in others.items():  # each precision's vectors cached by input, per model file
        caches.append(VectorCache(common.WORK_DIR / f"vgg16-cache-{name}-{bench.model_id(model)}.npz", (3, 512)))
        embedders[name] = bench.cached_embedder(caches[-1], model.model)
    results = {}
    for name, embedder in embedders.items():
        t = time.perf_counter()
        g = vectors(embedder, gallery)
        q = vectors(embedder, query_paths)
        for c in caches:
            c.save()
        best = np.asarray(gallery)[(q @ g.T).argmax(axis=1)]
        results[name] = (best, g, q)
        log(f"{name}: {len(gallery)} + {len(query_paths)} images in {time.perf_counter() - t:.0f} s")
    truth = np.array([k[1] for k in keys])
    fp32_gallery = results["fp32"][1]
    for name in others:  # a mixed collection: this precision's queries against fp32 rows
        best = np.asarray(gallery)[(results[name][2] @ fp32_gallery.T).argmax(axis=1)]
        results[f"{name} queries vs fp32 gallery"] = (best, None, results[name][2])
    hit = {name: best == truth for name, (best, _, _) in results.items()}
    common.header(f"{', '.join(others)} against fp32: rank-1 of the verdict benchmark's edited copies "
                  "(similarity ranking alone)")
    print("; ".join(f"{p} used: {e.precision_used} ({e.precision_reason})" for p, e in others.items())
          + f". Gallery {len(gallery)} images, {len(keys)} edited copies of {len(positives)} originals.\n")
    print(common.table(["precision", "rank-1", "differs from fp32"], [
        [name, f"{100 * h.mean():.2f}% ({h.sum()} of {len(h)})", int((results[name][0] != results["fp32"][0]).sum())]
        for name, h in hit.items()]))
    for name in others:
        cos_g = (results["fp32"][1] * results[name][1]).sum(axis=1)
        cos_q = (results["fp32"][2] * results[name][2]).sum(axis=1)
        changed = np.flatnonzero(results[name][0] != results["fp32"][0])
        if len(changed):
            print(f"\nQueries whose rank-1 differs, {name} against fp32 (similarities by fp32 vectors; the margin is "
                  "fp32's rank-1 over rank-2):\n")
            rows = []
            for i in changed:
                sims = results["fp32"][2][i] @ fp32_gallery.T
                top = np.sort(sims)[::-1]
                rows.append(["/".join(query_paths[i].split("/")[-2:]), os.path.basename(truth[i]),
                             os.path.basename(results["fp32"][0][i]), os.path.basename(results[name][0][i]),
                             f"{top[0] - top[1]:.4f}"])
            print(common.table(["query", "its original", "fp32 rank-1", f"{name} rank-1", "fp32 margin"], rows,
                               align="llllr"))
        print(f"\nCosine fp32 vs {name}, every image: gallery min {cos_g.min():.6f} (median {np.median(cos_g):.6f}), "
              f"queries min {cos_q.min():.6f} (median {np.median(cos_q):.6f}; edited copies included).")
    common.footer()


if __name__ == "__main__":
    main()
