"""One-shot start-up: `imgsearch search PHOTO` on a 563-row Milvus Lite collection, and `imgsearch index` of one
photo, per precision, with where the time goes.

    python benchmarks/startup.py [--repeats 5] [--precisions auto,fp32,int8,bf16]

The collection: the 534 dev photos and 29 mirrored copies of the first originals (563 rows), indexed once into
$IMGSEARCH_BENCH_DIR/startup/gallery-563.db (reused when complete). The query is a dev original (its own row is
rank 1; the copy verdict runs, as a default search does).

- whole commands, hyperfine-style: one warm-up run (OS cache warm), then --repeats runs interleaved across the
  precisions: median, min, max; `imgsearch index PHOTO` into a fresh database is the time to the first photo
  (and past it: the process has also exited);
- the breakdown: a fresh Python process doing what `imgsearch search` does, with time.perf_counter around each
  step (imports, Store open, collection load, weights resolve, model load, the query with its verdict, close);
  the last column says whether TensorFlow was imported.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402

ROWS = 563
MIRRORED = ROWS - 534  # the dev set has 234 originals and 300 distractors

CHILD = r"""
import json, sys, time
T = {}
t = t0 = time.perf_counter()
def mark(name):
    global t
    now = time.perf_counter(); T[name] = now - t; t = now
import imgsearch.cli
mark("import imgsearch.cli (click)")
from imgsearch.cli.base import connect
from imgsearch.features import VGG16Features
from imgsearch.search import SearchOptions, search_images
mark("import imgsearch.features, search")
store = connect(sys.argv[1])
mark("import pymilvus + Store open (Milvus Lite start)")
stored = store.stored_config("images")
embedder = VGG16Features.for_collection(stored, precision=sys.argv[3])
coll = store.collection("images", embedder.config(), create=False)
mark("collection config + load")
from imgsearch import weights as W
embedder.weights = str(W.resolve_weights(None).path)
mark("weights resolve (find + sha256 check)")
embedder.model
mark("model load (sidecar sha256 check + session/build)")
(result,) = search_images(coll, embedder, [sys.argv[2]], SearchOptions())
assert result.results and result.results[0].path.endswith(sys.argv[2].rsplit("/", 1)[-1]), result
mark("first query: decode, model, search, copy verdict")
store.close()
mark("store close")
T["total in process"] = time.perf_counter() - t0
T["precision"] = embedder.precision_used
T["tensorflow imported"] = "tensorflow" in sys.modules
print(json.dumps(T))
"""


def gallery_db(work) -> str:
    """The 563-row Lite database (made once, reused when complete)."""
    from PIL import Image, ImageOps

    uri = str(work / f"gallery-{ROWS}.db")
    marker = work / f"gallery-{ROWS}.done"
    if marker.exists():
        return uri
    folder = work / "gallery"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(uri, ignore_errors=True)
    folder.mkdir(parents=True)
    originals = common.image_files(common.DEFAULT_ORIGINALS)
    for path in originals + common.image_files(common.DEFAULT_DISTRACTORS):
        os.symlink(path, folder / os.path.basename(path))
    for path in originals[:MIRRORED]:
        with Image.open(path) as img:
            ImageOps.mirror(img.convert("RGB")).save(folder / f"mirrored-{os.path.basename(path)}.jpg", quality=90)
    common.log(f"indexing {ROWS} photos into {uri} (once)")
    subprocess.run([imgsearch(), "index", str(folder), "--uri", uri, "--json"], check=True, capture_output=True)
    marker.write_text("ok\n")
    return uri


def imgsearch() -> str:
    return shutil.which("imgsearch", path=os.path.dirname(sys.executable)) or shutil.which("imgsearch")


def timed(cmd, env) -> float:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)}: {out.stderr[-2000:]}")
    return time.perf_counter() - t


def whole_commands(uri, query, work, precisions, repeats, env) -> dict:
    runs: dict[str, list[float]] = {}
    for r in range(repeats + 1):  # the first round warms the OS cache and is not kept
        for p in precisions:
            flag = [] if p == "auto" else ["--precision", p]
            search = timed([imgsearch(), "search", query, "--uri", uri, "--json", *flag], env)
            fresh = str(work / f"index-{p}-{r}.db")
            index = timed([imgsearch(), "index", query, "--uri", fresh, "--json", *flag], env)
            shutil.rmtree(fresh, ignore_errors=True)
            if r:
                runs.setdefault(f"`imgsearch search PHOTO` ({p})", []).append(search)
                runs.setdefault(f"`imgsearch index PHOTO` into a new db ({p})", []).append(index)
    return runs


def breakdown(uri, query, precisions, repeats, env) -> dict:
    steps: dict[str, dict[str, list]] = {p: {} for p in precisions}
    for r in range(repeats + 1):
        for p in precisions:
            out = subprocess.run([sys.executable, "-c", CHILD, uri, query, p], capture_output=True, text=True,
                                 env=env)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            if r:
                for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
                    steps[p].setdefault(k, []).append(v)
    return steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", default="auto,fp32,int8,bf16")
    parser.add_argument("--no-breakdown", action="store_true")
    args = parser.parse_args(argv)
    precisions = args.precisions.split(",")
    work = common.WORK_DIR / "startup"
    work.mkdir(parents=True, exist_ok=True)
    load_start = common.load_average()
    uri = gallery_db(work)
    query = common.image_files(common.DEFAULT_ORIGINALS)[0]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    common.log("whole commands")
    whole = whole_commands(uri, query, work, precisions, args.repeats, env)
    steps = None if args.no_breakdown else breakdown(uri, query, precisions, args.repeats, env)

    print(f"## startup\n\nDate: {time.strftime('%Y-%m-%d %H:%M')}; load average at start: {load_start}, "
          f"at the end: {common.load_average()} (1, 5, 15 min; 2 cores = fully busy at 2.0)")
    print(f"Machine: {common.machine_line()}")
    print(f"Command: `{common.command_line()}`\n")
    print(f"Whole commands on a {ROWS}-row Milvus Lite collection: 1 warm-up round, then {args.repeats} rounds "
          "interleaved across precisions; seconds.\n")
    rows = [[k, f"{statistics.median(v):.2f}", f"{min(v):.2f}", f"{max(v):.2f}"] for k, v in whole.items()]
    print(common.table(["command", "median (s)", "min", "max"], rows))
    if steps:
        names = [k for k in next(iter(steps.values())) if k not in ("precision", "tensorflow imported")]
        print(f"\nIn a fresh process, step by step (median of {args.repeats}, seconds):\n")
        header = ["step"] + [f"{p} ({steps[p]['precision'][0]})" for p in precisions]
        rows = [[k] + [f"{statistics.median(steps[p][k]):.2f}" for p in precisions] for k in names]
        rows.append(["TensorFlow imported"] + [str(steps[p]["tensorflow imported"][0]).lower() for p in precisions])
        print(common.table(header, rows))
    common.footer()


if __name__ == "__main__":
    main()
