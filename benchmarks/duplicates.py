"""`imgsearch duplicates` on the dev photos, beside imagededup; and the grouping step at 100k-1M stored vectors.

    python benchmarks/duplicates.py [--originals 40] [--others 40] [--seed 13]
    python benchmarks/duplicates.py --synthetic 100k[,1M] [--server]

Dev run. Gallery: a fixed-seed sample of ``--originals`` dev originals, each with 1-4 edited copies (kinds drawn
without repeats from EDITS), plus ``--others`` further dev originals left unedited (real photos that look alike
without being copies) and the 300 distractors, indexed into a Milvus Lite database under the work dir (kept:
indexing is incremental, so a re-run only groups). Copies are written after their originals, at JPEG quality
<= 90 (the dev originals are quality 92). Scored:
- pairs: every two members of a planted group is a true pair; every two members of a found group a found pair;
- groups exactly right: planted groups found as a group with exactly their members;
- original right: among the planted groups found exactly, the unedited file chosen as the original; "with a
  right answer" counts the groups whose copies are all downscaled, cropped, recompressed, bordered or framed;
- imagededup 0.3.3 ``find_duplicates`` (PHash and DHash, default max distance 10, recursive) on the same files,
  its duplicate lists joined into groups the same way. Its CNN method needs torch, torchvision and MobileNetV3
  weights downloaded at run time: not run here (no torch on this machine, no downloads).

Synthetic run: N random unit vectors (512-d) plus planted near-copies (1% of them get 1-3 copies at cosine ~0.95)
upserted into a new Milvus Lite collection (or, with ``--server``, written as Parquet shards and bulk-imported into
a Milvus 2.3.5 server started for the run, as tests/milvus_server.py starts it; HNSW index); then, in a fresh
process, the grouping step alone (``duplicates.find_copy_pairs``) with the verification skipped (a pair above
the floor counts as a copy: there are no files behind synthetic rows). Reported: time, groups and grouped rows
found against planted, the process's peak resident memory (milvus-lite 3 runs inside the Python process, so it
is included) and, with ``--server``, the server's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common
from accuracy import _jpeg, log, make_edit

RIGHT_ANSWER = ("jpeg-q20", "downscale-30%", "border-10%", "crop-70%", "frame-white")
OTHER_EDITS = ("hflip", "rotate-90", "colour", "watermark")
EDITS = RIGHT_ANSWER + OTHER_EDITS
DESCRIPTIONS = {"frame-white": "white frame, 8% of each side"}


def edit_bytes(kind: str, img: Image.Image, rng) -> bytes:
    if kind == "frame-white":
        bx, by = round(0.08 * img.width), round(0.08 * img.height)
        canvas = Image.new("RGB", (img.width + 2 * bx, img.height + 2 * by), (250, 250, 250))
        canvas.paste(img, (bx, by))
        return _jpeg(canvas, 90)
    data, ext = make_edit(kind, img, rng)
    assert ext == ".jpg", kind
    return data


def build_gallery(args, work: Path) -> tuple[list[dict], Path]:
    """Planted groups ([{original, copies: {kind: path}}]) and the gallery folder; files made once per seed."""
    rng = np.random.default_rng(args.seed)
    originals = common.image_files(common.DEFAULT_ORIGINALS)
    chosen = rng.choice(len(originals), args.originals + args.others, replace=False)
    planted_src = [originals[i] for i in chosen[: args.originals]]
    others_src = [originals[i] for i in chosen[args.originals :]]
    gallery = work / "gallery"
    plan = []
    for sub, sources in (("originals", planted_src), ("others", others_src)):
        (gallery / sub).mkdir(parents=True, exist_ok=True)
        for src in sources:
            dest = gallery / sub / os.path.basename(src)
            if not dest.exists():
                shutil.copy2(src, dest)
    distractors = gallery / "distractors"
    if not distractors.exists():
        distractors.symlink_to(common.DEFAULT_DISTRACTORS, target_is_directory=True)
    for src in planted_src:
        original = gallery / "originals" / os.path.basename(src)
        kinds = list(rng.choice(EDITS, int(rng.integers(1, 5)), replace=False))
        copies = {}
        for kind in kinds:
            path = gallery / "copies" / f"{Path(src).stem}__{kind}.jpg"
            # Made every time, written once: the edits draw from the same generator, so the plan stays the same.
            with Image.open(original) as img:
                data = edit_bytes(kind, img.convert("RGB"), rng)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            copies[kind] = str(path)
        plan.append({"original": str(original), "copies": copies})
    planned = {c for p in plan for c in p["copies"].values()}
    for stale in (gallery / "copies").iterdir():  # from another plan: not in this gallery (pruned from the db)
        if str(stale) not in planned:
            stale.unlink()
    return plan, gallery


def pairs_of(groups: list[set[str]]) -> set[frozenset]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(g), 2)}


def components(pairs: set[frozenset]) -> list[set[str]]:
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in (tuple(p) for p in pairs):
        parent[find(a)] = find(b)
    out: dict[str, set[str]] = {}
    for x in parent:
        out.setdefault(find(x), set()).add(x)
    return list(out.values())


def score(planted: list[dict], found: list[set[str]], originals: dict | None) -> dict:
    truth_groups = [{p["original"], *p["copies"].values()} for p in planted]
    truth, got = pairs_of(truth_groups), pairs_of(found)
    exact = [t for t in truth_groups if t in found]
    out = {
        "precision": len(truth & got) / len(got) if got else 1.0,
        "recall": len(truth & got) / len(truth),
        "exact": f"{len(exact)}/{len(truth_groups)}",
        "false groups": sum(1 for g in found if not any(g <= t for t in truth_groups)),
    }
    kinds = {}
    for p in planted:
        for kind, path in p["copies"].items():
            hit = frozenset((p["original"], path)) in got
            kinds.setdefault(kind, []).append(hit)
    out["per kind"] = {k: f"{sum(v)}/{len(v)}" for k, v in kinds.items()}
    if originals is not None:
        right = with_answer = right_with_answer = 0
        for p, t in zip(planted, truth_groups):
            if t not in found:
                continue
            ok = originals.get(frozenset(t)) == p["original"]
            right += ok
            if all(k in RIGHT_ANSWER for k in p["copies"]):
                with_answer += 1
                right_with_answer += ok
        out["original right"] = f"{right}/{len(exact)}"
        out["original right (right answer)"] = f"{right_with_answer}/{with_answer}"
    return out


def run_imgsearch(gallery: Path, work: Path):
    from imgsearch.duplicates import find_duplicates
    from imgsearch.features import VGG16Features
    from imgsearch.indexing import index_paths
    from imgsearch.store import Store

    uri = str(work / "dups.db")
    with Store(uri) as store:
        embedder = VGG16Features()
        coll = store.collection("images", embedder.config())
        t0 = time.perf_counter()
        summary = index_paths(coll, embedder, [gallery], prune=True)
        log(f"indexed {summary.new} new, {summary.unchanged} unchanged, {summary.pruned} pruned in "
            f"{time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        report = find_duplicates(coll)
        seconds = time.perf_counter() - t0
    found = [{g.original.path, *(c.member.path for c in g.copies)} for g in report.groups]
    originals = {frozenset(g): r.original.path for g, r in zip(found, report.groups)}
    return found, originals, seconds, report


def load_imagededup_hashing():
    """imagededup's hashing module without its package __init__s, which import torch for the CNN method."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("imagededup")
    if spec is None:
        return None
    root = os.path.dirname(spec.origin)
    for name, sub in (("imagededup", ""), ("imagededup.methods", "methods"), ("imagededup.utils", "utils")):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, sub)]
        sys.modules.setdefault(name, module)
    from imagededup.methods import hashing

    return hashing


def dev(args):
    work = common.WORK_DIR / f"duplicates-seed{args.seed}-{args.originals}-{args.others}"
    plan, gallery = build_gallery(args, work)
    n_copies = sum(len(p["copies"]) for p in plan)
    common.header(f"Duplicates on the dev photos: {len(plan)} planted groups among {args.others} other photos and "
                  "300 distractors")
    found, originals, seconds, report = run_imgsearch(gallery, work)
    rows_total = report.rows
    results = [("imgsearch duplicates", score(plan, found, originals), seconds)]
    hashing = load_imagededup_hashing()
    if hashing is not None:
        # imagededup reads one folder (its recursive walk skips the symlinked distractors): a flat one of links.
        flat = work / "flat"
        if not flat.exists():
            flat.mkdir()
            for sub in ("originals", "others", "copies", "distractors"):
                for path in sorted((gallery / sub).iterdir()):
                    os.symlink(path.resolve(), flat / f"{sub}__{path.name}")
        back = {name: str(gallery.joinpath(*name.split("__", 1))) for name in os.listdir(flat)}
        for method in ("PHash", "DHash"):
            hasher = getattr(hashing, method)(verbose=False)
            t0 = time.perf_counter()
            result = hasher.find_duplicates(image_dir=str(flat), num_enc_workers=2, num_dist_workers=2)
            secs = time.perf_counter() - t0
            pairs = {frozenset((back[k], back[v])) for k, vs in result.items() for v in vs}
            results.append((f"imagededup {method} (max distance 10)", score(plan, components(pairs), None), secs))
    print(f"Gallery: {rows_total} images = {len(plan)} planted originals + {n_copies} edited copies + "
          f"{args.others} other dev originals + 300 distractors. Seed {args.seed}. Copies per original: 1-4, kinds "
          f"drawn without repeats from {', '.join(EDITS)} (as `benchmarks/accuracy.py` makes them; frame-white: "
          f"{DESCRIPTIONS['frame-white']}). Indexing is not in the times.\n")
    rows = []
    for name, s, secs in results:
        rows.append([name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", s["exact"], s["false groups"],
                     s.get("original right", "n/a"), s.get("original right (right answer)", "n/a"), f"{secs:.1f}"])
    print(common.table(["method", "pair precision", "pair recall", "groups exactly right", "false groups",
                        "original right", "original right (right answer)", "time (s)"], rows))
    print("\nPairs (original, copy) found, per edit kind:\n")
    kinds = list(EDITS)
    print(common.table(["method", *kinds], [[name, *(s["per kind"].get(k, "-") for k in kinds)]
                                            for name, s, _ in results]))
    print(f"\nimgsearch: {report.pairs_judged} pairs judged by the verdict (candidate floor cosine "
          f"{_floor()}, {_neighbours()} neighbours per image); rules that chose the originals: "
          + ", ".join(f"{r}: {sum(g.rule == r for g in report.groups)}" for r in _rules()))
    wrong = [(g.original.path, g.rule) for g in report.groups
             if g.original.path not in {p["original"] for p in plan}]
    if wrong:
        print("Groups whose chosen original is not the planted one: "
              + "; ".join(f"{os.path.basename(p)} ({r})" for p, r in wrong))
    common.footer()


def _floor():
    from imgsearch.duplicates import CANDIDATE_FLOOR

    return CANDIDATE_FLOOR


def _neighbours():
    from imgsearch.duplicates import NEIGHBOURS

    return NEIGHBOURS


def _rules():
    from imgsearch.duplicates import RULES

    return RULES


# --- synthetic: the grouping step at scale ---------------------------------------------------------------


def synthetic_batches(n: int, seed: int):
    """n random unit vectors, 1% of them followed by 1-3 near-copies (cosine ~0.95), as stored rows in batches;
    yields (rows, planted groups in them). The same seed gives the same rows on every target."""
    from imgsearch.store import now, row_id

    rng = np.random.default_rng(seed)
    i = 0
    while i < n:
        base = rng.standard_normal((5000, 512)).astype(np.float32)
        vectors, planted = [base], 0
        for p in np.flatnonzero(rng.random(len(base)) < 0.01):
            k = int(rng.integers(1, 4))
            noisy = base[p] / np.linalg.norm(base[p]) + rng.standard_normal((k, 512)).astype(np.float32) * 0.014
            vectors.append(noisy)
            planted += 1  # a group: the original and its k copies
        batch = np.concatenate(vectors)
        batch /= np.linalg.norm(batch, axis=1, keepdims=True)
        yield [{"id": row_id(f"/synthetic/{i + j}.jpg"), "vector": v, "path": f"/synthetic/{i + j}.jpg",
                "size": 1, "mtime": 0.0, "content_hash": "", "width": 1, "height": 1, "owner": "",
                "indexed_at": now()} for j, v in enumerate(batch)], planted
        i += len(batch)


def synthetic_lite(n: int, work: Path, seed: int) -> tuple[str, int]:
    """A Lite db of the synthetic rows, made once per size (upserts)."""
    from imgsearch.features import VGG16Features
    from imgsearch.store import Store

    uri = str(work / f"synthetic-{n}.db")
    done = work / f"synthetic-{n}.groups"
    if done.exists():
        return uri, int(done.read_text())
    shutil.rmtree(uri, ignore_errors=True)
    planted = rows = 0
    t0 = time.perf_counter()
    with Store(uri) as store:
        coll = store.collection("images", VGG16Features().config())
        for batch, pairs in synthetic_batches(n, seed):
            coll.upsert(batch)
            planted, rows = planted + pairs, rows + len(batch)
    log(f"synthetic {n}: {rows} rows upserted into Milvus Lite in {time.perf_counter() - t0:.0f} s")
    done.write_text(str(planted))
    return uri, planted


def synthetic_server(n: int, work: Path, seed: int, uri: str) -> tuple[str, int]:
    """The synthetic rows on a Milvus server: written as Parquet shards of IMPORT_FILE_ROWS (100k) rows and loaded with
    `imgsearch bulk import`'s library call (the server's bulk insert), as a large gallery would be."""
    from imgsearch.bulk import Shard, write_manifest, write_shard
    from imgsearch.bulk_import import IMPORT_FILE_ROWS, import_shards
    from imgsearch.features import VGG16Features
    from imgsearch.store import Store

    config = VGG16Features().config()
    shards_dir = work / f"synthetic-{n}-shards"
    shutil.rmtree(shards_dir, ignore_errors=True)
    shards_dir.mkdir(parents=True)
    shards, pending, planted = [], [], 0

    def flush():
        shard = Shard(f"part-{len(shards):06d}-synthetic.parquet", [])
        meta = {"inputs": len(pending), "rows": len(pending), "not_images": 0, "failures": [], "config": config,
                "owner": "", "worker": {}}
        write_shard(shards_dir / shard.name, pending, config, meta)
        shards.append(shard)
        pending.clear()

    for batch, pairs in synthetic_batches(n, seed):
        pending += batch
        planted += pairs
        if len(pending) >= IMPORT_FILE_ROWS:
            flush()
    if pending:
        flush()
    write_manifest(shards_dir, shards, config, "", [], None)
    t0 = time.perf_counter()
    with Store(uri) as store:
        summary = import_shards(store, "images", shards_dir)
        log(f"synthetic {n}: {summary.rows_after} rows bulk-imported ({summary.method}) in "
            f"{time.perf_counter() - t0:.0f} s")
        # The server counts imported rows before it has indexed them; a gallery's index is built long before
        # anyone looks for duplicates, so the grouping waits for it.
        common.wait_indexed(store, "images", summary.rows_after, poll=2)
        log(f"synthetic {n}: HNSW index built {time.perf_counter() - t0:.0f} s after the import began")
    shutil.rmtree(shards_dir, ignore_errors=True)
    return uri, planted


def grouping_child(uri: str):
    """Run in a fresh process: the grouping step alone, verification skipped; prints one JSON line."""
    from imgsearch.duplicates import find_copy_pairs
    from imgsearch.features import VGG16Features
    from imgsearch.store import Store

    with Store(uri) as store:
        coll = store.collection("images", VGG16Features().config(), create=False)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        pairs = find_copy_pairs(coll, judge=lambda q, s, sim: ("copy", None))
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows": pairs.rows_walked, "pairs": pairs.pairs_judged,
                      "groups": len(pairs.groups), "grouped_rows": sum(len(g) for g in pairs.groups),
                      "rss_before_mib": rss0 / 1024,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (a Milvus server is a few processes), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 2**20


def run_grouping(uri: str, server_pid: int | None) -> dict:
    """The grouping child, with the server's resident memory sampled while it runs (its peak reported)."""
    child = subprocess.Popen([sys.executable, __file__, "--grouping-child", uri], stdout=subprocess.PIPE, text=True)
    server_peak = _tree_rss_mib(server_pid) if server_pid else 0.0
    while child.poll() is None:
        if server_pid:
            server_peak = max(server_peak, _tree_rss_mib(server_pid))
        time.sleep(2)
    out = child.stdout.read()
    if child.returncode:
        sys.exit(f"the grouping step failed (exit {child.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "server_peak_mib": server_peak}


def synthetic(args):
    sizes = [int(float(s.lower().replace("k", "e3").replace("m", "e6"))) for s in args.synthetic.split(",")]
    work = common.WORK_DIR / "duplicates-synthetic"
    work.mkdir(parents=True, exist_ok=True)
    target = "Milvus 2.3.5 server, HNSW" if args.server else "Milvus Lite"
    common.header(f"Duplicates: the grouping step over synthetic stored vectors ({target}, verification skipped)")
    rows = []
    for n in sizes:
        if args.server:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from milvus_server import running_server

            with running_server(work / f"server-{n}") as handle:
                uri, planted = synthetic_server(n, work, args.seed, handle.uri)
                r = run_grouping(uri, handle.pid)
        else:
            uri, planted = synthetic_lite(n, work, args.seed)
            r = run_grouping(uri, None)
        server = f"{r['server_peak_mib']:,.0f}" if args.server else "(in the process)"
        rows.append([f"{n:,} + copies", f"{r['rows']:,}", f"{r['seconds']:.0f}", f"{r['rows'] / r['seconds']:,.0f}",
                     f"{r['pairs']:,}", f"{r['groups']:,} / {planted:,}",
                     f"{r['grouped_rows']:,} / {planted + r['rows'] - n:,}",
                     f"{r['rss_before_mib']:.0f} -> {r['peak_rss_mib']:.0f}", server])
        log(f"synthetic {n}: {r}")
    print(common.table(["stored vectors", "rows walked", "grouping (s)", "rows/s", "pairs judged",
                        "groups found / planted", "rows in groups / planted (originals + copies)",
                        "peak RSS (MiB) of the grouping process: collection opened -> end",
                        "Milvus server's peak RSS (MiB)"], rows))
    print("\nRandom 512-d unit vectors are near-orthogonal (cosine ~0 +- 0.05), so every pair above the floor is a "
          "planted one and the judge (the SIFT verdict on real files) is replaced by 'copy'. Loading the rows is not "
          "included.")
    common.footer()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=40, help="dev originals given edited copies")
    parser.add_argument("--others", type=int, default=40, help="further dev originals, unedited, no copies")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--synthetic", help="sizes, e.g. 100k,1M: the grouping step over synthetic vectors")
    parser.add_argument("--server", action="store_true",
                        help="synthetic run on a Milvus 2.3.5 server started for it (HNSW) instead of Milvus Lite")
    parser.add_argument("--grouping-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.grouping_child:
        grouping_child(args.grouping_child)
    elif args.synthetic:
        synthetic(args)
    else:
        dev(args)


if __name__ == "__main__":
    main()
