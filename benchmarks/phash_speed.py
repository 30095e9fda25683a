"""Hashes per second: imgsearch's PHash against imagehash.phash, side by side on the same photos.

    python benchmarks/phash_speed.py [PHOTOS_DIR] [--count 200] [--repeats 5]

Every repeat times each method once, in turn, on the same files (already in the page cache after a warm-up
pass), so slow drift of the machine hits all of them alike; the table shows the median and the range.
Wall-clock hashes/s is what a user sees on an idle machine; hashes per CPU-second (process time, all threads)
is the cost, and is steadier when other work shares the cores. Prints a markdown table, the machine, and the
command that produced it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

DEFAULT_PHOTOS = "/work/shared/photos/dev/originals"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="?", default=DEFAULT_PHOTOS, help=f"folder of photos [{DEFAULT_PHOTOS}]")
    parser.add_argument("--count", type=int, default=200, help="photos to hash (the first N by name) [200]")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per method [5]")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of embed_sources [64]")
    args = parser.parse_args(argv)

    import imagehash
    import numpy as np
    import PIL
    from PIL import Image

    from imgsearch.phash import PHash, bits_to_hex, hash_image

    folder = Path(args.photos)
    paths = common.image_files(folder)[: args.count]
    if len(paths) < args.count:
        print(f"note: only {len(paths)} photos in {folder}", file=sys.stderr)
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores

    def imagehash_loop():
        out = []
        for p in paths:
            with Image.open(p) as img:
                out.append(str(imagehash.phash(img)))
        return out

    def pipeline(workers, decode_min_side=None):
        def run():
            hasher = PHash()
            if decode_min_side:
                hasher.decode_min_side = decode_min_side
            return [
                bits_to_hex(r.vector)
                for batch in hasher.embed_sources(paths, batch_size=args.batch_size, workers=workers)
                for r in batch
            ]

        return run

    def one_by_one():
        return [hash_image(p) for p in paths]

    methods = {
        "imagehash.phash (PIL open + phash, one thread)": imagehash_loop,
        "PHash.embed_sources, 2 decode threads (default)": pipeline(2),
        f"PHash.embed_sources, {usable} decode threads": pipeline(usable),
        "hash_image one by one (one thread)": one_by_one,
        "PHash.embed_sources, 2 threads, decode_min_side=128 (fast, not bit-exact)": pipeline(2, 128),
    }
    if usable == 2:
        del methods[f"PHash.embed_sources, {usable} decode threads"]

    # Warm-up: page cache, imports, and the agreement check of what is being timed.
    results = {name: fn() for name, fn in methods.items()}
    reference = results["imagehash.phash (PIL open + phash, one thread)"]
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu_times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)

    n = len(paths)
    base = n / statistics.median(times["imagehash.phash (PIL open + phash, one thread)"])
    print(f"### pHash speed: {n} photos from `{folder}`, {args.repeats} repeats (median; range)\n")
    base_cpu = n / statistics.median(cpu_times["imagehash.phash (PIL open + phash, one thread)"])
    print("| method | hashes/s (wall) | range | vs imagehash | hashes per CPU-second | vs imagehash "
          "| identical to imagehash |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in methods:
        rates = [n / t for t in times[name]]
        median = statistics.median(rates)
        per_cpu = n / statistics.median(cpu_times[name])
        same = sum(a == b for a, b in zip(results[name], reference))
        print(
            f"| {name} | {median:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | {median / base:.2f}x "
            f"| {per_cpu:,.0f} | {per_cpu / base_cpu:.2f}x | {same}/{n} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nMachine: {common.cpu_model()}, {cores} cores ({usable} usable); Python {platform.python_version()}, "
        f"Pillow {PIL.__version__}, numpy {np.__version__}, imagehash {imagehash.__version__}; "
        f"load average {load:.1f} at the end (wall-clock rates need idle cores; CPU-second rates much less so)."
    )
    print(f"Command: `{' '.join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])}`")


if __name__ == "__main__":
    main()
