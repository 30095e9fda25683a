"""Indexing throughput: `imgsearch index` end to end against the model alone and against the seed's loop.

    python benchmarks/throughput.py [PHOTOS...] [--count 200] [--repeats 3] [--precisions fp32,int8,bf16] [--no-cli]
                                    [--cli-base N] [--no-seed] [--profile]
    python benchmarks/throughput.py --quick          # 48 photos, 2 repeats: a smoke run
    python benchmarks/throughput.py DEV/originals DEV/distractors --precisions fp32,auto --count 400 \
        --cli-base 100 --no-seed       # issue 22's acceptance: default `imgsearch index` against fp32, the
                                       # marginal rate between 100 and 400 photos
    python benchmarks/throughput.py --cosine [--sample N]   # fp32 vs int8 and bf16 vectors of every dev photo

Each of model alone, pipeline, index_paths and CLI runs in every precision of --precisions (issues 11 and 22;
"auto" is the default `imgsearch index`, shown with what it picked here), with the CPU flags and the kernels each
precision ran (bf16: oneDNN's, from ONEDNN_VERBOSE=1; fp32 and int8: ONNX Runtime's MLAS).

Measured in one process, interleaved (each repeat runs every method once, in turn, so drift of a shared
machine hits all alike), on the first COUNT photos of the folder (by name; linked, not copied, into a work folder):

- model alone: the VGG16 model (``VGG16Features.embed``: ``predict_on_batch`` + max pooling) on batches
  that were decoded and preprocessed beforehand - this machine's ceiling, per precision;
- pipeline: ``VGG16Features.embed_sources`` (threaded decode, border crop, resize, preprocess, model), no store;
- index_paths: the library's indexing on a fresh Milvus Lite database (walk, lookup, embed, upsert), model
  already loaded; opening the store and creating the collection are timed separately;
- CLI: ``imgsearch index FOLDER --uri NEW.db --json`` in a subprocess, on COUNT photos and on 1 photo, in each
  precision; the difference is the per-image (marginal) rate without start-up (imports, weights, model, store).
  With --cli-base N it is taken between N and COUNT photos instead, so that both runs pay the same one-off costs
  (the model's first full batch among them) and a few tenths of a second of start-up noise weigh less;
- seed loop: the 2020 code, one image at a time: ``keras.utils.load_img(path, target_size=(224, 224))``,
  ``preprocess_input``, ``model.predict`` (verbose=0) on a batch of one, divided by the L2 norm.

Rates are images/s (median of the repeats, range in brackets); "CPU s/img" is process CPU time per image (all
threads), steadier than wall time when other work shares the cores. --profile adds where the time goes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402


class Timer:
    def __init__(self):
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.n: dict[str, int] = {}

    def run(self, name: str, n: int, fn):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.wall.setdefault(name, []).append(wall)
        self.cpu.setdefault(name, []).append(cpu)
        self.n[name] = n
        return out

    def add(self, name: str, n: int, wall: float, cpu: float | None = None):
        self.wall.setdefault(name, []).append(wall)
        if cpu is not None:
            self.cpu.setdefault(name, []).append(cpu)
        self.n[name] = n

    def rate(self, name: str) -> float:
        return self.n[name] / statistics.median(self.wall[name])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=[common.DEFAULT_ORIGINALS],
                        help="folders of photos; the first COUNT by name are used")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="batch size of index/embed_sources [16]")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI subprocess runs")
    parser.add_argument("--cli-base", type=int, default=1,
                        help="the CLI's marginal rate is taken between this many photos and COUNT [1]")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed's one-by-one loop")
    parser.add_argument("--profile", action="store_true", help="also break the end-to-end time down")
    parser.add_argument("--quick", action="store_true", help="48 photos, 2 repeats")
    parser.add_argument("--call-styles", action="store_true",
                        help="only compare ways of calling the model (interleaved, --repeats times, all photos)")
    parser.add_argument("--tf-threads", help="INTRA,INTER: set TensorFlow's thread pools before the model loads")
    parser.add_argument("--precisions", default="fp32,int8,bf16",
                        help="model precisions to measure, fp32 first; auto = the default [fp32,int8,bf16]")
    parser.add_argument("--cosine", action="store_true", help="only: fp32 vs the other precisions' vectors")
    parser.add_argument("--sample", type=int, help="with --cosine: a fixed-seed sample of this many photos")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.repeats = min(args.count, 48), 2
    return args


def main(argv=None):
    args = parse_args(argv)
    precisions = args.precisions.split(",")
    if args.cosine:
        others = [p for p in precisions if p != "fp32"]
        photos = args.photos[0] if args.photos != [common.DEFAULT_ORIGINALS] else None
        return cosine_check(photos, args.sample, args.batch_size, others)

    load_start = common.load_average()
    paths = sorted((p for folder in args.photos for p in common.image_files(folder)), key=os.path.basename)
    paths = paths[: args.count]
    n = len(paths)
    folder = common.linked_folder(paths, f"throughput-{n}")
    one = common.linked_folder(paths[:1], "throughput-1")
    cli_base = min(args.cli_base, n - 1)
    base_folder = common.linked_folder(paths[:cli_base], f"throughput-{cli_base}") if cli_base > 1 else None
    bs = args.batch_size

    from imgsearch.features import load_image
    from imgsearch.weights import import_keras

    if args.tf_threads:
        set_tf_threads(args.tf_threads)
    embedders, model_load = load_embedders(precisions)
    embedder = embedders[precisions[0]]
    keras = import_keras()
    import tensorflow as tf

    # Pre-decoded, preprocessed batches for "model alone" (the same arrays the pipeline makes).
    prepared = np.stack([embedder.prepare(load_image(p).image) for p in paths])
    batches = [prepared[i : i + bs] for i in range(0, n, bs)]
    # Paths in the order index_paths visits them (sorted by name, like walk_files).
    linked = sorted(str(folder / os.path.basename(p)) for p in paths)
    seed_loop = None if args.no_seed else seed_loop_of(keras, str(embedder.weights_info.path), paths)

    if args.call_styles:
        call_styles(embedder, batches, n, args.repeats, load_start, tf)
        return

    store_open: list[float] = []

    def cli(target: Path, tmp: str, label: str, count: int, precision: str):
        uri = os.path.join(tmp, f"cli-{label}-{len(timer.wall.get(label, []))}.db".replace(" ", "_"))
        timer.add(label, count, *index_cli(target, uri, count, precision, bs, embedders[precision].precision_used))

    timer = Timer()
    loads = []
    with tempfile.TemporaryDirectory(dir=str(common.WORK_DIR)) as tmp:
        common.log(f"{n} photos, batch size {bs}, precisions {', '.join(precisions)}; warm-up")
        for emb in embedders.values():
            emb.embed(batches[0])  # warm-up: graph, allocator, page cache
        for r in range(args.repeats):
            for precision, emb in embedders.items():
                timer.run(f"model alone {precision}", n, lambda: [emb.embed(b) for b in batches])  # noqa: B023
                timer.run(f"pipeline {precision}", n,
                          lambda: collections.deque(emb.embed_sources(paths, batch_size=bs), 0))  # noqa: B023
                summary = index_into_new_db(timer, f"index_paths {precision}", emb, folder, n, bs,
                                            os.path.join(tmp, f"idx-{len(store_open)}.db"), store_open)
                assert summary.new == n and not summary.failed, summary
                if not args.no_cli:
                    cli(folder, tmp, f"CLI {precision}", n, precision)
                    cli(one, tmp, f"CLI, 1 photo {precision}", 1, precision)
                    if base_folder is not None:
                        cli(base_folder, tmp, f"CLI, {cli_base} photos {precision}", cli_base, precision)
            if seed_loop is not None:
                timer.run("seed loop", n, seed_loop)
            loads.append(common.load_average())
            common.log(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
                f"{p}: model alone {timer.rate(f'model alone {p}'):.2f}/s, index_paths "
                f"{timer.rate(f'index_paths {p}'):.2f}/s" for p in precisions) + f"; load {loads[-1]}")

        profile_rows = profile(embedder, paths, linked, batches, prepared, tmp, bs, keras, tf) if args.profile else None

    report(Measured(n, bs, args.repeats, load_start, loads, precisions, embedders, timer, model_load, store_open,
                    profile_rows, max(cli_base, 1)), tf)


def set_tf_threads(spec: str):
    """INTRA,INTER: TensorFlow's thread pools, set before any model loads."""
    from imgsearch.weights import import_keras

    import_keras()
    import tensorflow as tf

    intra, inter = (int(x) for x in spec.split(","))
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)


def load_embedders(precisions: list[str]) -> tuple[dict, dict]:
    """One loaded VGG16Features per precision, and each one's load time (excluded from every in-process rate)."""
    from imgsearch.features import VGG16Features

    embedders, model_load = {}, {}
    for precision in precisions:
        t0 = time.perf_counter()
        embedders[precision] = VGG16Features(precision=precision)
        embedders[precision].model  # noqa: B018
        model_load[precision] = time.perf_counter() - t0
    return embedders, model_load


def seed_loop_of(keras, weights_path: str, paths: list[str]):
    """The 2020 code's loop over ``paths``, one image per ``predict``, with its model loaded now."""
    from keras.applications.vgg16 import preprocess_input

    model = keras.applications.VGG16(weights=weights_path, input_shape=(224, 224, 3), pooling="max",
                                     include_top=False)

    def seed_loop():
        for p in paths:
            img = keras.utils.load_img(p, target_size=(224, 224))
            x = np.expand_dims(keras.utils.img_to_array(img), axis=0)
            feat = model.predict(preprocess_input(x), verbose=0)
            feat = feat[0] / np.linalg.norm(feat[0])

    return seed_loop


def index_into_new_db(timer, label: str, emb, folder: Path, n: int, bs: int, uri: str, store_open: list):
    """``index_paths`` of ``folder`` into a new Milvus Lite database, timed under ``label``; opening the store and
    creating the collection are timed apart (appended to ``store_open``)."""
    from imgsearch.indexing import index_paths
    from imgsearch.store import Store

    t = time.perf_counter()
    store = Store(uri)
    coll = store.collection("images", emb.config())
    store_open.append(time.perf_counter() - t)
    try:
        return timer.run(label, n, lambda: index_paths(coll, emb, [str(folder)], batch_size=bs))
    finally:
        store.close()


def index_cli(target: Path, uri: str, count: int, precision: str, bs: int, expected: str) -> tuple[float, float]:
    """``imgsearch index TARGET`` in a subprocess: (wall, CPU) seconds; exits if it failed, indexed other than
    ``count`` photos, or ran in another precision than ``expected``."""
    exe = shutil.which("imgsearch", path=os.path.dirname(sys.executable)) or shutil.which("imgsearch")
    cmd = [exe, "index", str(target), "--uri", uri, "--json", "--batch-size", str(bs), "--precision", precision]
    t = time.perf_counter()
    usage0 = os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "IMGSEARCH_URI": uri})
    wall = time.perf_counter() - t
    usage1 = os.times()
    cpu = (usage1.children_user - usage0.children_user) + (usage1.children_system - usage0.children_system)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if summary["new"] != count or summary["precision"] != expected:
        raise SystemExit(f"CLI indexed {summary['new']} images in {summary['precision']}, expected {count} "
                         f"in {precision}")
    return wall, cpu


@dataclass
class Measured:
    """What one run measured, for its report."""

    n: int  # photos
    bs: int  # batch size
    repeats: int
    load_start: str
    loads: list  # the load average after each repeat
    precisions: list
    embedders: dict
    timer: object  # the run's Timer: wall and CPU seconds, and images, per method
    model_load: dict  # precision -> seconds
    store_open: list  # seconds per repeat
    profile_rows: list | None
    cli_base: int  # the CLI's marginal rate is taken between this many photos and n


def report(m: Measured, tf):
    """The run's markdown: every method's rate against the model alone, the precisions side by side."""
    n, bs, load_start, loads, precisions, embedders, timer = (m.n, m.bs, m.load_start, m.loads, m.precisions,
                                                               m.embedders, m.timer)
    print(f"## Indexing throughput: {n} photos, batch size {bs}, {m.repeats} repeats\n")
    print(f"Date: {time.strftime('%Y-%m-%d')}; load average at start: {load_start}; after each repeat: "
          f"{'; '.join(loads)}")
    print(f"Machine: {common.machine_line()}")
    print(f"TensorFlow threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, inter-op "
          f"{tf.config.threading.get_inter_op_parallelism_threads()} (0 = TensorFlow's choice)")
    print(f"Command: `{common.command_line()}`\n")
    from imgsearch import precision as precision_mod

    auto = precision_mod.resolve("auto")
    print(f"`--precision auto` here: {auto[0]} ({auto[1]})")
    print("Kernels: " + "; ".join(f"{p}: {kernels(p, embedders[p])}" for p in precisions) + "\n")
    rows = []
    marginal = {}

    def label(key: str) -> str:  # "auto" says what it picked
        return key.replace("auto", f"auto ({embedders['auto'].precision_used})") if "auto" in embedders else key

    described = {
        "model alone": "VGG16 on pre-decoded, preprocessed batches (the ceiling)",
        "pipeline": "embed_sources: threaded decode + prepare, overlapped with the model",
        "index_paths": "library indexing into a fresh Milvus Lite db (model loaded)",
        "CLI": "`imgsearch index --precision P` subprocess, everything included",
        "CLI, 1 photo": "`imgsearch index` on 1 photo: start-up cost",
        f"CLI, {m.cli_base} photos": f"`imgsearch index` on the first {m.cli_base} photos: the marginal rate's base",
        "seed loop": "seed (fp32): load_img + model.predict per image",
    }
    for name in described:
        for precision in (precisions if name != "seed loop" else [""]):
            key = f"{name} {precision}".strip()
            if key not in timer.wall:
                continue
            base_key = f"model alone {precision or 'fp32'}"
            base = timer.rate(base_key) if base_key in timer.wall else float("nan")
            base_cpu = statistics.median(timer.cpu[base_key]) / n if base_key in timer.cpu else float("nan")
            walls = timer.wall[key]
            rates = [timer.n[key] / w for w in walls]
            cpu = statistics.median(timer.cpu[key]) / timer.n[key] if key in timer.cpu else float("nan")
            if name == "CLI, 1 photo":
                rows.append([label(key), described[name], f"{statistics.median(walls):.1f} s "
                             f"({min(walls):.1f}-{max(walls):.1f})", "-", f"{cpu:.2f}", "-"])
                continue
            rows.append([label(key), described[name],
                         f"{statistics.median(rates):.2f} ({min(rates):.2f}-{max(rates):.2f})",
                         f"{statistics.median(rates) / base:.1%}", f"{cpu:.3f}", f"{cpu / base_cpu:.2f}x"])
    for precision in precisions:
        k = m.cli_base
        base_key = f"CLI, {k} photos {precision}" if k > 1 else f"CLI, 1 photo {precision}"
        if f"CLI {precision}" in timer.wall and base_key in timer.wall:
            # Per-repeat differences: the CLI's rate once its start-up is paid.
            diffs = [(n - k) / (a - b) for a, b in zip(timer.wall[f"CLI {precision}"], timer.wall[base_key])]
            rate = statistics.median(diffs)
            marginal[precision] = rate
            rows.append([label(f"CLI {precision} without start-up"),
                         f"({n} - {k}) / (CLI - CLI on {k} photo{'s' if k > 1 else ''}), per repeat",
                         f"{rate:.2f} ({min(diffs):.2f}-{max(diffs):.2f})",
                         f"{rate / timer.rate(f'model alone {precision}'):.1%}", "-", "-"])
    print(common.table(["method", "what", "images/s", "vs model alone (same precision)", "CPU s/img",
                        "CPU vs model"], rows, align="llrrrr"))
    base = precisions[0]
    for other in precisions[1:]:
        ratios = [f"{name} {timer.rate(f'{name} {other}') / timer.rate(f'{name} {base}'):.2f}x"
                  for name in ("model alone", "pipeline", "index_paths", "CLI") if f"{name} {other}" in timer.wall]
        if other in marginal and base in marginal:
            ratios.append(f"**CLI marginal {marginal[other] / marginal[base]:.2f}x**")
        print(f"\n{label(other)} / {base} rate, same run: " + ", ".join(ratios))
    print("\nOne-time costs (in this process): model load (weights resolve + build + check) "
          + ", ".join(f"{p} {t:.1f} s" for p, t in m.model_load.items())
          + f"; Store open + collection create {statistics.median(m.store_open):.2f} s (median).")
    if m.profile_rows:
        print("\n### Where the time goes\n")
        print(common.table(["step", "measure", "value"], m.profile_rows, align="llr"))
    common.footer()


ONEDNN_PROBE = """
import sys, numpy as np
from imgsearch.features import VGG16Features
VGG16Features(precision=sys.argv[1]).embed(np.zeros((2, 224, 224, 3), np.float32))
"""


def onednn_kernels(precision: str) -> str:
    """The oneDNN primitives (kind, implementation, source type) one batch runs, from ONEDNN_VERBOSE=1."""
    from collections import Counter

    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", ONEDNN_PROBE, precision], capture_output=True, text=True, env=env,
                         check=False).stdout
    seen = Counter()
    for line in out.splitlines():
        parts = line.split(",")
        if line.startswith("onednn_verbose") and "exec" in parts and "cpu" in parts:
            i = parts.index("cpu")
            kind, impl = parts[i + 1], parts[i + 2] or "-"
            src = next((t for t in parts[i + 4].split() if t.startswith("src")), "").split("::")[0]
            seen[f"{kind} {impl} {src}".strip()] += 1
    return ", ".join(f"{k} x{v}" for k, v in seen.most_common(4)) or "none (TensorFlow's own Eigen kernels)"


def kernels(precision: str, embedder) -> str:
    """What runs the convolutions: oneDNN's primitives for Keras (bf16), ONNX Runtime's MLAS for fp32 and int8."""
    if embedder.precision_used in ("fp32", "int8"):
        return f"{embedder.model.description} (MLAS: int8 picks AMX, VNNI or AVX2 kernels from the CPU)"
    return onednn_kernels(embedder.precision_used)


def cosine_check(photos: str | None, sample: int | None, bs: int, others: list[str]):
    """fp32 vs each other precision, vectors of the same photos: cosine per photo (issue 11 asks >= 0.999 for bf16,
    issue 22 >= 0.99 for int8, on every dev photo). Without PHOTOS: every dev original and distractor."""
    import random

    from imgsearch.features import VGG16Features

    paths = common.image_files(photos) if photos else (
        common.image_files(common.DEFAULT_ORIGINALS) + common.image_files(common.DEFAULT_DISTRACTORS))
    if sample and sample < len(paths):
        paths = sorted(random.Random(0).sample(paths, sample))
    where = f"`{photos}`" if photos else "the dev set (originals and distractors)"
    common.header(f"fp32 vs {', '.join(others)} vectors: {len(paths)} photos from {where}"
                  + (f" (fixed-seed sample of {sample})" if sample else " (all)"))
    vectors, times = {}, {}
    for precision in ("fp32", *others):
        emb = VGG16Features(precision=precision)
        emb.model  # noqa: B018  (loaded, and made if needed, outside the timing)
        t = time.perf_counter()
        results = [r for batch in emb.embed_sources(paths, batch_size=bs) for r in batch]
        times[precision] = time.perf_counter() - t
        vectors[precision] = np.stack([r.vector for r in results])
        common.log(f"{precision}: {len(paths)} photos in {times[precision]:.0f} s ({emb.precision_reason})")
    rows = []
    for other in others:
        cos = (vectors["fp32"] * vectors[other]).sum(axis=1)
        worst = int(cos.argmin())
        nearest = (vectors[other] @ vectors["fp32"].T).argmax(axis=1)
        rows += [
            [f"{other}: minimum cosine", f"{cos.min():.6f} ({os.path.basename(paths[worst])})"],
            [f"{other}: 1st percentile / median", f"{np.percentile(cos, 1):.6f} / {np.median(cos):.6f}"],
            [f"{other}: photos below 0.99 / 0.999 / 0.9999",
             f"{int((cos < 0.99).sum())} / {int((cos < 0.999).sum())} / {int((cos < 0.9999).sum())}"],
            [f"{other}: vector's nearest fp32 vector is its own photo",
             f"{int((nearest == np.arange(len(paths))).sum())} of {len(paths)}"],
        ]
    rows.append(["extraction time (s, embed_sources): " + " / ".join(times),
                 " / ".join(f"{t:.0f}" for t in times.values())])
    print(common.table(["measure", "value"], rows, align="lr"))
    common.footer()


def call_styles(embedder, batches, n, repeats, load_start, tf):
    """model(x, training=False) (what VGG16Features.embed does) against the other ways Keras offers."""
    model = embedder.model
    graph = tf.function(model, reduce_retracing=True)
    xla = tf.function(model, jit_compile=True, reduce_retracing=True)
    styles = {
        "model(x, training=False) (current embed)": lambda b: model(b, training=False),
        "model.predict_on_batch(x)": lambda b: model.predict_on_batch(b),
        "model.predict(x, verbose=0)": lambda b: model.predict(b, verbose=0),
        "tf.function(model)(x)": lambda b: graph(b, training=False),
        "tf.function(model, jit_compile=True)(x) (XLA)": lambda b: xla(b, training=False),
    }
    reference = np.asarray(model(batches[0], training=False))
    worst = {}
    for name, fn in styles.items():  # warm-up (tracing, XLA compile) and agreement check
        for b in batches[:1] + batches[-1:]:
            fn(b)
        worst[name] = float(np.abs(np.asarray(fn(batches[0])) - reference).max() / np.abs(reference).max())
    timer = Timer()
    loads = []
    for _ in range(repeats):
        for name, fn in styles.items():
            timer.run(name, n, lambda: [np.asarray(fn(b)) for b in batches])
        loads.append(common.load_average())
    print(f"## Ways of calling the model: {n} photos in batches of {len(batches[0])}, {repeats} repeats interleaved\n")
    print(f"Date: {time.strftime('%Y-%m-%d')}; load average at start: {load_start}; after each repeat: "
          f"{'; '.join(loads)}")
    print(f"Machine: {common.machine_line()}")
    print(f"Command: `{common.command_line()}`\n")
    base = timer.rate(next(iter(styles)))
    rows = []
    for name in styles:
        rates = [n / w for w in timer.wall[name]]
        rows.append([name, f"{statistics.median(rates):.2f} ({min(rates):.2f}-{max(rates):.2f})",
                     f"{statistics.median(rates) / base:.1%}", f"{statistics.median(timer.cpu[name]) / n:.3f}",
                     f"{worst[name]:.1e}"])
    print(common.table(["call", "images/s", "vs model(x)", "CPU s/img", "max rel. difference of block5 map"], rows))
    common.footer()


def profile(embedder, paths, linked, batches, prepared, tmp, bs, keras, tf):
    """Single-threaded costs of each step, and the pipeline's rate for other batch sizes and thread counts."""
    from imgsearch.features import IMAGE_SIZE, RESIZE_FILTERS, crop_black_border, load_image, vgg16_preprocess
    from imgsearch.files import walk_files
    from imgsearch.store import Store, row_id

    n = len(paths)
    rows = []

    def timed(fn, repeats=3):
        out = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return statistics.median(out)

    loaded = []
    t_decode = timed(lambda: loaded.__setitem__(slice(None), [load_image(p) for p in paths]))
    images = [li.image for li in loaded]
    cropped = []
    t_crop = timed(lambda: cropped.__setitem__(slice(None), [crop_black_border(im) for im in images]))
    resized = []
    t_resize = timed(lambda: resized.__setitem__(
        slice(None), [im.resize((IMAGE_SIZE, IMAGE_SIZE), RESIZE_FILTERS[embedder.resize]) for im in cropped]))
    t_pre = timed(lambda: [vgg16_preprocess(np.asarray(im)) for im in resized])
    per = lambda t: f"{1000 * t / n:.1f} ms/img"  # noqa: E731
    rows += [
        ["decode", "load_image (read, JPEG draft decode to >= 320 px, EXIF, RGB), one thread", per(t_decode)],
        ["border crop", "crop_black_border, one thread", per(t_crop)],
        ["resize", f"{embedder.resize} to 224x224, one thread", per(t_resize)],
        ["preprocess", "vgg16_preprocess (BGR, minus means), one thread", per(t_pre)],
    ]
    t_model = timed(lambda: [embedder.embed(b) for b in batches])
    rows.append(["model", f"embed(batch of {bs}): model(x, training=False) + max pooling", per(t_model)])
    t_walk = timed(lambda: list(walk_files([os.path.dirname(linked[0])])))
    rows.append(["walk", "walk_files over the folder", per(t_walk)])
    vectors = np.random.default_rng(0).standard_normal((n, 512)).astype(np.float32)
    with Store(os.path.join(tmp, "profile.db")) as store:
        coll = store.collection("images", embedder.config())
        ids = [row_id(p) for p in linked]
        t_get = timed(lambda: coll.get(ids, fields=("size", "mtime", "owner")), repeats=1)
        rows_data = [{"id": row_id(p), "vector": v, "path": p, "size": 1, "mtime": 0.0, "content_hash": "x" * 32,
                      "width": 1, "height": 1, "owner": "", "indexed_at": 0} for p, v in zip(linked, vectors)]
        t_upsert = timed(lambda: [coll.upsert(rows_data[i : i + bs]) for i in range(0, n, bs)])
    rows.append(["lookup", "Collection.get of every id (unchanged-file check), empty collection", per(t_get)])
    rows.append(["upsert", f"Collection.upsert in batches of {bs} (Milvus Lite)", per(t_upsert)])

    # The model through other call styles and batch sizes, and the pipeline with other settings: on the first
    # 64 photos, to keep the profile short.
    sub = min(n, 64)
    model = embedder.model
    batches = [prepared[i : i + bs] for i in range(0, sub, bs)]
    for label, fn in (
        ("predict_on_batch", lambda b: model.predict_on_batch(b)),
        ("predict", lambda b: model.predict(b, verbose=0)),
    ):
        t = timed(lambda: [fn(b) for b in batches], repeats=2)
        rows.append(["model call", f"{label} on batches of {bs} ({sub} photos)", f"{sub / t:.2f} img/s"])
    for size in (1, 4, 8, 16, 32, 64):
        other = [prepared[i : i + size] for i in range(0, sub, size)]
        t = timed(lambda: [model(b, training=False) for b in other], repeats=2)
        rows.append(["model batch size", f"model(x, training=False), batches of {size} ({sub} photos)",
                     f"{sub / t:.2f} img/s"])
    # The pipeline (no store) with other batch sizes and decode-thread counts.
    for size, workers in ((16, 1), (16, 2), (16, 3), (8, 2), (32, 2)):
        t = timed(lambda: [None for _ in embedder.embed_sources(paths[:sub], batch_size=size, workers=workers)],
                  repeats=2)
        rows.append(["pipeline", f"embed_sources batch {size}, {workers} decode threads ({sub} photos)",
                     f"{sub / t:.2f} img/s"])
    return rows


if __name__ == "__main__":
    main()
