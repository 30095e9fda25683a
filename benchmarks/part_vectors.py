"""Would vectors of parts of each stored picture bring tight crops' originals among the candidates?

    python benchmarks/part_vectors.py [--scale 10] [--sizes 320,448] [--timing-images 32]

The question behind issue 21's shortfall at 10x: a copy cropped to 40-45% of each side is checked against the
picture view's nearest stored images, and its original is often not among them, so no check can find it. A crop
is a part of the original seen larger; the stored vector is the whole original at 224 px. This measures, without
touching the index, what part vectors of each stored picture would add, and what they would cost:

- ``whole``: today, the picture view's FIRST nearest stored images (one row per image);
- ``224 map, 3x3 cells``: 9 more rows per image pooled from the same 224 px model pass (R-MAC-style windows);
- ``S px, half windows nN``: one more model pass at S px, whose block5 map (S/32 cells a side) is pooled over
  N x N windows half its side: N*N more rows per image, each a part seen at about the scale a crop's query is.

For each, a query counts as found when its original is among the picture view's FIRST nearest images or among
the PARTS nearest part rows' images (only the picture view: the real search has more views, so the absolute
shares are lower than the verdict's, the differences are what this is for). "extra checks": the mean number of
stored images the part rows add for unrelated queries, each a keypoint check. The gallery, queries and
distractors are benchmarks/verdict.py's (its photo sets, edits and look-alike distractors, at ``--scale``).

Cost: model pass time per image at 224 px and at each S (ONNX Runtime, the precision ``auto`` resolves to, with
the spatial size left free), medians over 3 rounds of ``--timing-images`` images; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402
import verdict as bench  # noqa: E402
from accuracy import log  # noqa: E402
from verdict_edits import FAMILIES  # noqa: E402

SHOWN = ("cropped tight", "cropped", "low-texture set", "photographed at an angle", "turned any angle",
         "inside a page", "uniform frame")


def free_size_session(embedder):
    """An ONNX Runtime session of the embedder's own model file with the input's height and width left free."""
    import onnx
    import onnxruntime as ort

    from imgsearch import vgg16_onnx
    from imgsearch.weights.onnx_graph import INPUT_NAME, OUTPUT_NAME

    embedder.model  # resolves weights and precision, makes the model file if needed
    model = onnx.load(str(vgg16_onnx.model_file(embedder.precision_used, embedder.weights_info).path))
    for tensor in [*model.graph.input, *model.graph.output]:
        dims = tensor.type.tensor_type.shape.dim
        for axis, name in ((1, "height"), (2, "width")):
            dims[axis].ClearField("dim_value")
            dims[axis].dim_param = name
    del model.graph.value_info[:]  # shapes inferred for 224 px
    options = ort.SessionOptions()
    options.intra_op_num_threads = vgg16_onnx.usable_cores()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def prepared(embedder, path: str, size: int) -> np.ndarray:
    """``VGG16Features.prepare`` at ``size`` px: the same black-border cut, filter and preprocessing."""
    from imgsearch.features import RESIZE_FILTERS, crop_black_border, vgg16_preprocess

    image = crop_black_border(embedder.load(path).image, embedder.border_tolerance)
    return vgg16_preprocess(np.asarray(image.resize((size, size), RESIZE_FILTERS[embedder.resize])))


def block5_maps(run, embedder, paths: list[str], size: int, label: str) -> np.ndarray:
    """(n, size/32, size/32, 512) float16 maps, cached on disk by the paths, size and precision."""
    key = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:12]
    cached = common.WORK_DIR / f"part-maps-{embedder.precision_used}-{size}-{key}.npy"
    if cached.exists():
        return np.load(cached)
    cells = size // 32
    out = np.zeros((len(paths), cells, cells, 512), np.float16)
    started = time.time()
    for start in range(0, len(paths), 8):
        chunk = paths[start : start + 8]
        out[start : start + len(chunk)] = run(np.stack([prepared(embedder, p, size) for p in chunk]))
        if start % 800 == 0:
            log(f"{label} at {size} px: {start}/{len(paths)} ({time.time() - started:.0f} s)")
    np.save(cached, out)
    return out


def normalised(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def windows(cells: int, side: int, per_axis: int) -> list[tuple[int, int, int]]:
    offsets = sorted({int(round(x)) for x in np.linspace(0, cells - side, per_axis)})
    return [(top, left, side) for top in offsets for left in offsets]


def part_vectors(maps: np.ndarray, boxes) -> np.ndarray:
    """(n, parts, 512): each window of each map max-pooled, as the whole map is for the stored vector."""
    return normalised(np.stack([maps[:, t : t + s, l : l + s].astype(np.float32).max(axis=(1, 2))
                                for t, l, s in boxes], 1))


def found_shares(query_vectors, kinds, truths, whole, parts, gallery_index, first: int, per_part: int):
    """{family: share of its queries whose original is a candidate}, and the mean extra checks of unrelated ones."""
    top_whole = np.argsort(-(query_vectors @ whole.T), 1)[:, :first]
    top_parts = None
    if parts is not None:
        best_part = np.einsum("qd,gpd->qgp", query_vectors, parts, optimize=True).max(-1)
        top_parts = np.argsort(-best_part, 1)[:, :per_part]
    found: dict = {}
    extra = []
    for n, (family, truth) in enumerate(zip(kinds, truths)):
        added = set() if top_parts is None else set(top_parts[n]) - set(top_whole[n])
        if truth is None:
            extra.append(len(added))
            continue
        target = gallery_index[truth]
        found.setdefault(family, []).append(target in top_whole[n] or target in added)
    return found, (float(np.mean(extra)) if extra else 0.0)


def pass_time(run, embedder, paths: list[str], size: int) -> float:
    """Median seconds per image of one model pass at ``size`` px over 3 rounds (decoding not counted)."""
    batch = np.stack([prepared(embedder, p, size) for p in paths])
    run(batch[:8])  # warm-up
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        for start in range(0, len(batch), 8):
            run(batch[start : start + 8])
        rounds.append((time.perf_counter() - started) / len(batch))
    return common.median(rounds)


def queries_of(made: bench.QuerySets) -> tuple[list[str], list[str], list]:
    """Query paths, their family (the low-texture set as one) and their original (None: unrelated)."""
    family_of = {variant: family for family, variants in FAMILIES.items() for variant, _ in variants}
    paths, kinds, truths = [], [], []
    for queries, kind in ((made.copies, None), (made.low, "low-texture set"), (made.unrelated, "unrelated"),
                          (made.low_unrelated, "unrelated")):
        for (variant, photo), path in sorted(queries.items()):
            paths.append(path)
            kinds.append(kind or family_of[variant])
            truths.append(None if kind == "unrelated" else photo)
    return paths, kinds, truths


def layouts(sizes: list[int]) -> list[tuple[str, int, list]]:
    """(name, model pass size, windows): today, the 224 map's own windows, and half windows of larger passes."""
    out = [("whole (today)", 224, []), ("224 map, 3x3 cells", 224, windows(7, 3, 3))]
    for size in sizes:
        cells = size // 32
        for per_axis in (2, 3):
            out.append((f"{size} px, half windows n{per_axis}", size, windows(cells, cells // 2, per_axis)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10, help="gallery size as a multiple of the dev gallery")
    parser.add_argument("--sizes", default="320,448", help="model pass sizes for part vectors (px, multiples of 32)")
    parser.add_argument("--first", type=int, default=6, help="the picture view's nearest images checked today")
    parser.add_argument("--parts", type=int, default=3, help="nearest part rows' images added to the candidates")
    parser.add_argument("--timing-images", type=int, default=32, help="images timed per size (0: no timing)")
    args = parser.parse_args(argv)
    from imgsearch.features import VGG16Features

    sizes = [int(s) for s in args.sizes.split(",") if s]
    common.header("part_vectors")
    sets = bench.choose_photos(bench.parse_args(["--timing", "0"]))
    base = len(sets.gallery)
    gallery = bench.grown_gallery(sets, args.scale, bench.work_dir())
    variants = [variant for family in FAMILIES.values() for variant, _ in family]
    query_paths, kinds, truths = queries_of(bench.make_query_sets(sets, variants, bench.work_dir()))
    embedder = VGG16Features(precision="auto")
    embedder.model
    if embedder.precision_used not in ("fp32", "int8"):
        embedder = VGG16Features(precision="fp32")
    run = free_size_session(embedder)
    query_vectors = normalised(block5_maps(run, embedder, query_paths, 224, "queries").astype(np.float32)
                               .max(axis=(1, 2)))
    maps = {size: block5_maps(run, embedder, gallery, size, "gallery") for size in {224, *sizes}}
    whole = normalised(maps[224].astype(np.float32).max(axis=(1, 2)))
    gallery_index = {path: n for n, path in enumerate(gallery)}
    print(f"Gallery: {base} dev photos (x1) and {len(gallery)} with look-alike distractors (x{args.scale}); "
          f"{len(query_paths)} queries ({sum(t is None for t in truths)} unrelated); model passes in "
          f"{embedder.precision_used}. A query is found when its original is among the picture view's "
          f"{args.first} nearest images or the {args.parts} nearest part rows' images.\n")
    families = list(dict.fromkeys(k for k, t in zip(kinds, truths) if t is not None))
    shown = [f for f in SHOWN if f in families]
    rows = []
    for name, size, boxes in layouts(sizes):
        parts = part_vectors(maps[size], boxes) if boxes else None
        for label, count in (("x1", base), (f"x{args.scale}", len(gallery))):
            found, extra = found_shares(query_vectors, kinds, truths, whole[:count],
                                        None if parts is None else parts[:count], gallery_index, args.first,
                                        args.parts)
            every = [x for family in families for x in found[family]]
            rows.append([name, len(boxes), label, bench.pct(sum(every), len(every))]
                        + [bench.pct(sum(found[f]), len(found[f])) for f in shown] + [f"{extra:.2f}"])
    print(common.table(["candidates", "rows more per image", "gallery", "all copies", *shown,
                        "extra checks (unrelated)"], rows))
    if args.timing_images:
        timed = gallery[: args.timing_images]
        per_image = {size: pass_time(run, embedder, timed, size) for size in [224, *sizes]}
        print("\nModel pass per image (decoding not counted), median of 3 rounds of "
              f"{args.timing_images} images: " + "; ".join(
                  f"{size} px {per_image[size] * 1000:.1f} ms ({per_image[size] / per_image[224]:.2f}x)"
                  for size in per_image) + ".")
    common.footer()


if __name__ == "__main__":
    main()
