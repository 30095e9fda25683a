"""What the copy verdict costs a query, side by side with an earlier version of the code on the same machine.

    python benchmarks/verdict_cost.py [--per-family 2] [--precision bf16] [--rounds 3] [--before REV]

The queries are `benchmarks/verdict.py`'s (run it first: it makes the copies and the gallery database): a few
copies per family, the low-texture set's and unrelated ones. Each version runs in a fresh process (the library
imported from a git worktree of REV, or from this checkout), the model loaded and warmed first, then:

- batch: the whole list in one ``search_images`` call (as `imgsearch search FOLDER` does), seconds per query;
- cold: one query at a time with a fresh ``Verifier`` (no stored keypoints cached: a one-off CLI query);
- warm: one query at a time with one ``Verifier`` whose cache a first pass filled (`imgsearch serve`: stored
  keypoints cached), p50 and p95.

The versions alternate, --rounds times; medians over the rounds. bf16 by default: it runs on the same engine
(Keras) in code from before the ONNX Runtime engine, so the difference is the verdict's own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from imgsearch.features import VGG16Features
from imgsearch.search import SearchOptions, search_images
from imgsearch.store import Store
from imgsearch.verdict import Verifier
db, precision, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
with Store(db) as store:
    embedder = VGG16Features.for_collection(store.stored_config("images"), precision=precision)
    coll = store.collection("images", embedder.config(), create=False)
    list(search_images(coll, embedder, paths[:2]))  # model loaded and warm
    t = time.perf_counter()
    list(search_images(coll, embedder, paths, SearchOptions(top_k=10)))
    out["batch"] = (time.perf_counter() - t) / len(paths)
    out["cold"], out["warm"] = [], []
    for path in paths:
        t = time.perf_counter()
        list(search_images(coll, embedder, [path], SearchOptions(top_k=10), verifier=Verifier()))
        out["cold"].append(time.perf_counter() - t)
    shared = Verifier()
    list(search_images(coll, embedder, paths, SearchOptions(top_k=10), verifier=shared))
    for path in paths:
        t = time.perf_counter()
        list(search_images(coll, embedder, [path], SearchOptions(top_k=10), verifier=shared))
        out["warm"].append(time.perf_counter() - t)
    out["precision"] = getattr(embedder, "precision_used", precision)
print(json.dumps(out))
"""


def queries(per_family: int) -> tuple[list[str], str]:
    """The timed queries (tuned variants of the first originals, low-texture and unrelated ones) and the
    gallery database verdict.py made for them."""
    import verdict

    args = verdict.parse_args([])
    sets = verdict.choose_photos(args)
    work = common.WORK_DIR / f"verdict-v{verdict.EDITS_VERSION}-seed{verdict.SEED}"
    copies = work / "copies"
    paths = []
    for members in verdict.FAMILIES.values():
        tuned = [v for v, is_tuned in members if is_tuned]
        for n, photo in enumerate(sets.positives[:per_family]):
            paths.append(copies / tuned[n % len(tuned)] / Path(photo).name)
    paths += [copies / variant / Path(photo).name for variant in ("shot-25", "scale-30%", "crop-45%")
              for photo in sets.low[:per_family]]
    paths += [copies / edit / Path(photo).name for edit in verdict.NEGATIVE_EDITS
              for photo in sets.negatives[:per_family]]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"{missing[0]}: no such copy; run benchmarks/verdict.py first")
    databases = sorted(work.glob("gallery-x1-*.db"), key=lambda d: d.stat().st_mtime)
    if not databases:
        raise SystemExit(f"no gallery database in {work}; run benchmarks/verdict.py first")
    return [str(p) for p in paths], str(databases[-1])


def worktree(rev: str) -> Path:
    folder = common.WORK_DIR / f"worktree-{rev}"
    if not folder.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), rev], check=True,
                       capture_output=True)
    return folder


def run(code_dir: Path, db: str, precision: str, paths: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    out = subprocess.run([sys.executable, "-c", CHILD, db, precision, json.dumps(paths)], capture_output=True,
                         text=True, env=env, cwd=str(code_dir))
    if out.returncode:
        raise SystemExit(f"{code_dir}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-family", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "int8", "auto"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default="3679650", help="the earlier version (default: before issue 21)")
    args = parser.parse_args(argv)
    paths, db = queries(args.per_family)
    versions = {f"before ({args.before})": worktree(args.before), "now": REPO}
    results: dict[str, list[dict]] = {name: [] for name in versions}
    for r in range(args.rounds):
        for name, folder in versions.items():
            common.log(f"round {r + 1}: {name}")
            results[name].append(run(folder, db, args.precision, paths))
    common.header("Copy verdict: cost per query, side by side")
    print(f"{len(paths)} queries ({args.per_family} per family, low-texture and unrelated), gallery {db}; "
          f"precision {results['now'][0]['precision']}; medians over {args.rounds} rounds, versions alternating.\n")
    rows = []
    for name, runs in results.items():
        def over_rounds(key, q):
            return f"{statistics.median(float(np.percentile(r[key], q)) for r in runs):.3f}"

        rows.append([name, f"{statistics.median(r['batch'] for r in runs):.3f}", over_rounds("cold", 50),
                     over_rounds("cold", 95), over_rounds("warm", 50), over_rounds("warm", 95)])
    print(common.table(["version", "batch s/query", "cold p50", "cold p95", "warm p50", "warm p95"], rows))
    common.footer()


if __name__ == "__main__":
    main()
