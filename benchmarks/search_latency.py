"""Search latency: Milvus Lite at 10k/100k/1M vectors against faiss flat, and the cold start of `imgsearch search`.

    python benchmarks/search_latency.py [--sizes 10k,100k] [--queries 20] [--batch 100] [--cold-repeats 5]
    python benchmarks/search_latency.py --sizes 1M --no-cold          # the 1M case: ~10 min insert, ~5 GB RAM
    python benchmarks/search_latency.py --quick                       # 10k only, fewer repeats

Per size, with synthetic L2-normalised 512-d float32 vectors (seeded) written through ``Collection.upsert`` in
batches of 10,000 into a fresh Milvus Lite database made by ``Store.collection`` (AUTOINDEX, COSINE, as
`imgsearch index` makes it), then closed and reopened as `imgsearch search` does:
- insert rate, and reopen + load time;
- ``Collection.search`` top-10: one query at a time (median of --queries) and a batch of --batch queries;
- ``search_images`` with one real query image and the model already loaded (extraction + search);
- faiss ``IndexFlatIP`` (exact) on the same vectors, one query and a batch; Milvus's top-1/top-10 agreement with it.
Queries are near-duplicates of stored vectors (a stored vector plus noise, cosine about 0.9 to it), as a
near-duplicate search sees them. Databases are kept under $IMGSEARCH_BENCH_DIR/latency (reused when complete,
--fresh rebuilds them).

Cold start: a fresh Python process doing what `imgsearch search PHOTO --uri DB` does, with time.perf_counter
around each library call (imports, store open, collection load, weights resolve, TensorFlow import, model build,
extraction, search), repeated; and the whole CLI run, repeated like hyperfine (one warm-up run, then
--cold-repeats runs: median, min, max).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402

DIM = 512
INSERT_BATCH = 10_000
COLLECTION = "images"
NOISE_SIGMA = 0.021  # per-dimension noise: |noise| ~ 0.021 * sqrt(512) = 0.48 -> cosine ~0.9 with the original


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k" if n >= 1000 else str(n)


def synthetic(n: int, seed: int = 7) -> np.ndarray:
    """n normalised random vectors, generated in chunks so any prefix is the same whatever n is."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        chunk = np.random.default_rng([seed, start]).standard_normal((stop - start, DIM), dtype=np.float32)
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def vgg_config() -> dict:
    from imgsearch.features import VGG16Features

    return VGG16Features().config()


def build_db(uri: str, vectors: np.ndarray, fresh: bool) -> dict:
    """Fill a Lite db through Collection.upsert (reused when it already holds exactly these rows)."""
    from imgsearch.store import Store, row_id

    n = len(vectors)
    if fresh:
        shutil.rmtree(uri, ignore_errors=True)
    if os.path.isdir(uri):
        with Store(uri) as store:
            if store.stored_config(COLLECTION) is not None:
                count = store.collection(COLLECTION, vgg_config(), create=False).count()
                if count == n:
                    return {"reused": True}
        shutil.rmtree(uri, ignore_errors=True)
    t0 = time.perf_counter()
    with Store(uri) as store:
        coll = store.collection(COLLECTION, vgg_config())
        for start in range(0, n, INSERT_BATCH):
            stop = min(n, start + INSERT_BATCH)
            rows = [
                {"id": row_id(f"/synthetic/{i:07d}.jpg"), "vector": vectors[i], "path": f"/synthetic/{i:07d}.jpg",
                 "size": 100_000, "mtime": 0.0, "content_hash": "0" * 32, "width": 1024, "height": 768,
                 "owner": "", "indexed_at": 0}
                for i in range(start, stop)
            ]
            coll.upsert(rows)
            if stop % 100_000 == 0:
                log(f"  inserted {stop:,}/{n:,} ({stop / (time.perf_counter() - t0):,.0f}/s)")
        insert = time.perf_counter() - t0
        count = coll.count()
    assert count == n, (count, n)
    return {"reused": False, "insert_s": insert, "insert_rate": n / insert, "close_s": time.perf_counter() - t0 - insert}


def median_ms(values) -> str:
    return f"{1000 * statistics.median(values):.1f}"


def run_size(n: int, args, query_image: str, embedder) -> dict:
    from imgsearch.search import SearchOptions, search_images
    from imgsearch.store import Store, row_id

    uri = str(common.WORK_DIR / "latency" / f"synthetic-{human(n)}.db")
    log(f"{human(n)}: generating vectors")
    vectors = synthetic(n)
    info = build_db(uri, vectors, args.fresh)
    built = "reused" if info["reused"] else f"built at {info['insert_rate']:,.0f} vectors/s"
    log(f"{human(n)}: db {built}")
    rng = np.random.default_rng(11)
    picks = rng.choice(n, size=max(args.queries, args.batch), replace=False)
    queries = vectors[picks] + rng.standard_normal((len(picks), DIM), dtype=np.float32) * NOISE_SIGMA
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    res = {"n": n, **info}
    t0 = time.perf_counter()
    store = Store(uri)
    res["open_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    coll = store.collection(COLLECTION, vgg_config(), create=False)
    res["load_s"] = time.perf_counter() - t1
    try:
        coll.search(queries[:1], top_k=10)  # first search: warm-up, reported separately
        res["first_query_s"] = time.perf_counter() - t1 - res["load_s"]
        singles, milvus_top = [], []
        for rep in range(args.repeats):
            for i in range(args.queries):
                t = time.perf_counter()
                hits = coll.search(queries[i : i + 1], top_k=10)
                singles.append(time.perf_counter() - t)
                if rep == 0:
                    milvus_top.append(hits[0])
        batch_times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            batch_hits = coll.search(queries[: args.batch], top_k=10)
            batch_times.append(time.perf_counter() - t)
        res["single_ms"] = [1000 * s for s in singles]
        res["batch_ms"] = [1000 * b for b in batch_times]
        # search_images with a real photo, model loaded: extraction + search, per query image.
        image_times = []
        for _ in range(max(3, args.repeats)):
            t = time.perf_counter()
            list(search_images(coll, embedder, [query_image], SearchOptions(top_k=10)))
            image_times.append(time.perf_counter() - t)
        res["image_query_ms"] = [1000 * s for s in image_times]
        if args.ef_sweep:
            # HNSW search breadth: Collection.search uses ef = max(64, offset + top_k); what do others give?
            res["ef"] = {}
            sources = {row_id(f"/synthetic/{i:07d}.jpg"): i for i in picks}
            for ef in (64, 128, 256, 512):
                times, found = [], 0
                for i in range(args.batch):
                    t = time.perf_counter()
                    hits = coll.client.search(COLLECTION, data=[queries[i].tolist()], limit=10,
                                              search_params={"metric_type": "COSINE", "params": {"ef": ef}})
                    times.append(time.perf_counter() - t)
                    found += bool(hits[0]) and sources.get(hits[0][0]["id"]) == picks[i]
                res["ef"][ef] = (found / args.batch, 1000 * statistics.median(times))
    finally:
        store.close()

    import faiss

    t = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    res["faiss_build_s"] = time.perf_counter() - t
    index.search(queries[:1], 10)
    f_single = []
    for _ in range(args.repeats):
        for i in range(args.queries):
            t = time.perf_counter()
            index.search(queries[i : i + 1], 10)
            f_single.append(time.perf_counter() - t)
    f_batch = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        _, f_ids = index.search(queries[: args.batch], 10)
        f_batch.append(time.perf_counter() - t)
    res["faiss_single_ms"] = [1000 * s for s in f_single]
    res["faiss_batch_ms"] = [1000 * b for b in f_batch]
    ids = [row_id(f"/synthetic/{i:07d}.jpg") for i in range(n)]
    top1 = sum(hits[0].id == ids[f_ids[i][0]] for i, hits in enumerate(batch_hits) if hits)
    overlap = [len({h.id for h in hits} & {ids[j] for j in f_ids[i]}) / 10 for i, hits in enumerate(batch_hits)]
    res["top1_agree"] = top1 / len(batch_hits)
    res["recall10"] = float(np.mean(overlap))
    res["true_top1"] = float(np.mean([f_ids[i][0] == picks[i] for i in range(len(batch_hits))]))
    log(f"{human(n)}: Milvus single {median_ms(singles)} ms, batch {median_ms(batch_times)} ms; faiss single "
        f"{median_ms(f_single)} ms; load {common.load_average()}")
    res["load_avg"] = common.load_average()
    del vectors, index
    return res


# --- cold start -----------------------------------------------------------------------------------------------

CHILD = r"""
import json, sys, time
T = {}
t = time.perf_counter()
def mark(name):
    global t
    now = time.perf_counter(); T[name] = now - t; t = now
t0 = t
import imgsearch.cli as cli
mark("import imgsearch.cli (click)")
import pymilvus
mark("import pymilvus")
from imgsearch.features import VGG16Features
from imgsearch.search import SearchOptions, search_images
from imgsearch.store import Store
mark("import imgsearch modules")
store = Store(sys.argv[1])
mark("Store open (Milvus Lite server start + connect)")
stored = store.stored_config("images")
embedder = VGG16Features.for_collection(stored)
coll = store.collection("images", embedder.config(), create=False)
mark("collection config + load")
from imgsearch import weights as W
info = W.resolve_weights(None)
mark("weights resolve (find + verify cache)")
keras = W.import_keras()
mark("import keras + tensorflow")
model = keras.applications.VGG16(weights=str(info.path), include_top=False, input_shape=(224, 224, 3))
mark("VGG16 build + load weights")
W.check_reference_values(model)
embedder._model, embedder.weights_info = model, info
mark("weights reference check")
(result,) = next(embedder.embed_sources([sys.argv[2]], batch_size=1, workers=1))
mark("extraction of the query (first call)")
hits = coll.search([result.vector], top_k=10)
mark("search (top-10)")
store.close()
mark("store close")
T["total in process"] = time.perf_counter() - t0
print(json.dumps(T))
"""


def cold_start(uri: str, query_image: str, repeats: int) -> tuple[list, list, dict]:
    exe = shutil.which("imgsearch", path=os.path.dirname(sys.executable)) or shutil.which("imgsearch")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    steps: dict[str, list[float]] = {}
    process_wall = []
    for r in range(repeats + 1):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, uri, query_image], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        if r == 0:
            continue  # warm-up (page cache)
        process_wall.append(wall)
        for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
            steps.setdefault(k, []).append(v)
    cmds = {
        "imgsearch --version": [exe, "--version"],
        "python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
        "imgsearch search PHOTO --uri DB --json": [exe, "search", query_image, "--uri", uri, "--json"],
    }
    whole = {}
    for label, cmd in cmds.items():
        times = []
        for r in range(repeats + 1):
            t = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                raise SystemExit(f"{cmd}: {out.stderr[-2000:]}")
            if r:
                times.append(time.perf_counter() - t)
        whole[label] = times
    return steps, process_wall, whole


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma-separated vector counts: 10k,100k,1M [10k,100k]")
    parser.add_argument("--queries", type=int, default=20, help="single queries per repeat [20]")
    parser.add_argument("--batch", type=int, default=100, help="queries in one batched search [100]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-repeats", type=int, default=5)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start measurements")
    parser.add_argument("--ef-sweep", action="store_true",
                        help="also time single queries at HNSW ef 64/128/256/512 and count how often top-1 is the source")
    parser.add_argument("--fresh", action="store_true", help="rebuild the databases even if complete")
    parser.add_argument("--query-image", default=None, help="photo for search_images and the CLI [first dev photo]")
    parser.add_argument("--quick", action="store_true", help="10k only, 1 repeat, 2 cold repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.cold_repeats = "10k", 1, 2
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    query_image = args.query_image or common.image_files(common.DEFAULT_ORIGINALS)[0]
    load_start = common.load_average()

    from imgsearch.features import VGG16Features

    embedder = VGG16Features()
    embedder.model  # noqa: B018  (loaded: "inside search with the model already loaded")
    (common.WORK_DIR / "latency").mkdir(parents=True, exist_ok=True)
    results = [run_size(n, args, query_image, embedder) for n in sizes]

    cold = None
    if not args.no_cold:
        uri = str(common.WORK_DIR / "latency" / f"synthetic-{human(min(sizes))}.db")
        log(f"cold start against {uri}")
        cold = cold_start(uri, query_image, args.cold_repeats)

    print(f"## Search latency (Milvus Lite vs faiss flat), top-10, {DIM}-d synthetic normalised vectors\n")
    loads = "; ".join(f"{human(r['n'])}: {r['load_avg']}" for r in results)
    print(f"Date: {time.strftime('%Y-%m-%d')}; load average at start: {load_start}; at the end of each size: {loads}")
    print(f"Machine: {common.machine_line()}")
    print(f"Command: `{common.command_line()}`\n")
    rows = []
    for r in results:
        single, batch = r["single_ms"], r["batch_ms"]
        fs, fb = r["faiss_single_ms"], r["faiss_batch_ms"]
        insert = "reused" if r["reused"] else f"{r['insert_rate']:,.0f}/s, close {r['close_s']:.0f} s"
        rows.append([
            human(r["n"]), insert, f"{r['open_s']:.1f} + {r['load_s']:.1f}",
            f"{statistics.median(single):.1f} ({min(single):.0f}-{max(single):.0f})",
            f"{statistics.median(batch):.0f} ({statistics.median(batch) / args.batch:.1f}/query)",
            f"{statistics.median(r['image_query_ms']):.0f}",
            f"{statistics.median(fs):.1f}", f"{statistics.median(fb):.0f} ({statistics.median(fb) / args.batch:.2f}/query)",
            f"{statistics.median(single) / statistics.median(fs):.0f}x",
            f"{r['top1_agree']:.0%} / {r['recall10']:.0%}",
        ])
    print(common.table(
        ["vectors", "insert (Collection.upsert), then Store.close (flush)", "reopen: Store + load (s)", "Milvus 1 query (ms)",
         f"Milvus batch of {args.batch} (ms)", "search_images 1 photo, model loaded (ms)", "faiss flat 1 query (ms)",
         f"faiss batch of {args.batch} (ms)", "Milvus / faiss, 1 query", "top-1 / recall@10 vs exact"], rows))
    firsts = ", ".join(f"{human(r['n'])}: {r['first_query_s'] * 1000:.0f} ms" for r in results)
    print(f"\nMedians over {args.repeats} x {args.queries} single queries and {args.repeats} batches; range in "
          f"brackets. The first search after load is not included ({firsts}). "
          "Queries are stored vectors plus noise (cosine ~0.9 to their source); exact search finds the source "
          f"for {min(r['true_top1'] for r in results):.0%} of them.")

    swept = [r for r in results if "ef" in r]
    if swept:
        print(f"\n### HNSW search breadth (ef) on Milvus Lite: {args.batch} single queries each\n")
        rows = [[human(r["n"]), str(ef), f"{found:.0%}", f"{ms:.1f}"] for r in swept for ef, (found, ms) in r["ef"].items()]
        print(common.table(["vectors", "ef", "top-1 is the query's source", "1 query (ms, median)"], rows))

    if cold:
        steps, process_wall, whole = cold
        print(f"\n### Cold start of one search (fresh process each time; {args.cold_repeats} runs after a warm-up)\n")
        total = statistics.median(steps["total in process"])
        rows = [[k, f"{statistics.median(v):.2f}", f"{min(v):.2f}-{max(v):.2f}",
                 f"{statistics.median(v) / total:.0%}" if k != "total in process" else "100%"]
                for k, v in steps.items()]
        rows.append(["process wall time (interpreter start to exit)", f"{statistics.median(process_wall):.2f}",
                     f"{min(process_wall):.2f}-{max(process_wall):.2f}", "-"])
        print(common.table(["step", "median (s)", "range", "share"], rows))
        print("\nWhole commands (hyperfine-style: 1 warm-up, then median of the runs):\n")
        rows = [[f"`{k}`", f"{statistics.median(v):.2f}", f"{min(v):.2f}", f"{max(v):.2f}"] for k, v in whole.items()]
        print(common.table(["command", "median (s)", "min", "max"], rows))
    common.footer()


if __name__ == "__main__":
    main()
