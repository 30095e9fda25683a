"""`imgsearch duplicates` on the dev photos, beside imagededup; and the grouping step at 100k-1M stored vectors.

    python benchmarks/duplicates.py [--originals 40] [--others 40] [--seed 13]
    python benchmarks/duplicates.py --synthetic 100k[,1M] [--server] [--vectors realistic|uniform] [--nprobe 16]

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

Scale run (``--synthetic``): N stored vectors with planted copy groups, realistic by default
(``realistic_vectors.py``: mixtures of real VGG16 vectors of the dev photos, their edits and views; the real photos
and their real edited copies among them) or uniform random (``--vectors uniform``). Stored once per size in a
Milvus Lite db (upserts) or, with ``--server``, written as Parquet shards and bulk-imported into a Milvus 2.3.5
server started for the run (tests/milvus_server.py; FLAT vector index, the walk never searches it), both kept for
re-runs. Then, in a fresh process, the grouping step alone (``duplicates.find_copy_pairs``) with the copy verdict
replaced by the planted truth (the files behind synthetic rows do not exist). Reported: each phase's time, the
candidate step's recall against brute force on 1,000 sampled rows, the pairs the verdict would be asked, planted
groups found whole, the process's resident memory when the collection is open and its peak during the walk
(Milvus Lite runs in the process, so it is included) and, with ``--server``, the server's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
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

# Issue 23: frames of several colours (black is border-10%) and a same-size recompressed copy (jpeg-q20) among them.
RIGHT_ANSWER = ("jpeg-q20", "downscale-30%", "border-10%", "crop-70%", "frame-white", "frame-grey", "frame-red")
OTHER_EDITS = ("hflip", "rotate-90", "colour", "watermark")
EDITS = RIGHT_ANSWER + OTHER_EDITS
FRAME_COLOURS = {"frame-white": (250, 250, 250), "frame-grey": (128, 128, 128), "frame-red": (190, 30, 40)}
DESCRIPTIONS = {kind: f"{kind.split('-')[1]} frame, 8% of each side" for kind in FRAME_COLOURS}


def edit_bytes(kind: str, img: Image.Image, rng) -> bytes:
    if kind in FRAME_COLOURS:
        bx, by = round(0.08 * img.width), round(0.08 * img.height)
        canvas = Image.new("RGB", (img.width + 2 * bx, img.height + 2 * by), FRAME_COLOURS[kind])
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


def uniform_batches(n: int, seed: int):
    """n random unit vectors, 1% of them followed by 1-3 near-copies (cosine ~0.95), as (vectors, group) batches
    (group -1: in no planted group). The worst case for an index: no structure at all."""
    rng = np.random.default_rng(seed)
    made, next_group = 0, 0
    while made < n:
        base = rng.standard_normal((min(5000, n - made), 512)).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        vectors, groups = [base], [np.full(len(base), -1, dtype=np.int64)]
        for p in np.flatnonzero(rng.random(len(base)) < 0.01):
            k = int(rng.integers(1, 4))
            noisy = base[p] + rng.standard_normal((k, 512)).astype(np.float32) * 0.014
            vectors.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
            groups[0][p] = next_group
            groups.append(np.full(k, next_group, dtype=np.int64))
            next_group += 1
        yield np.concatenate(vectors), np.concatenate(groups)
        made += len(base)


def vector_batches(kind: str, n: int, seed: int):
    if kind == "uniform":
        return uniform_batches(n, seed)
    from realistic_vectors import real_vectors, synthetic_batches

    return synthetic_batches(n, seed, real_vectors())


def row_batches(kind: str, n: int, seed: int, sizes: dict):
    """The stored rows, in batches; a planted group's rows have paths /synthetic/g<group>/<row>.jpg, the others
    /synthetic/<row>.jpg (the stand-in judge reads the truth from them). ``sizes`` gets each group's size."""
    from imgsearch.store import now, row_id

    i = 0
    for vectors, groups in vector_batches(kind, n, seed):
        rows = []
        for v, g in zip(vectors, groups.tolist()):
            path = f"/synthetic/g{g}/{i}.jpg" if g >= 0 else f"/synthetic/{i}.jpg"
            if g >= 0:
                sizes[g] = sizes.get(g, 0) + 1
            rows.append({"id": row_id(path), "vector": v, "path": path, "size": 1, "mtime": 0.0,
                         "content_hash": "", "width": 1, "height": 1, "owner": "", "indexed_at": now()})
            i += 1
        yield rows


def _truth(sizes: dict, rows: int) -> dict:
    """What the benchmark checks against: the rows stored and each planted group's size."""
    return {"rows": rows, "groups": {str(g): k for g, k in sizes.items() if k > 1}}


def synthetic_lite(kind: str, n: int, work: Path, seed: int) -> tuple[str, dict]:
    """A Lite db of the rows, made once per (kind, size, seed) and kept (upserts); the planted groups' sizes."""
    from imgsearch.features import VGG16Features
    from imgsearch.store import Store

    uri = str(work / f"{kind}-{n}-seed{seed}.db")
    done = work / f"{kind}-{n}-seed{seed}.truth.json"
    if done.exists():
        return uri, json.loads(done.read_text())
    shutil.rmtree(uri, ignore_errors=True)
    sizes, rows = {}, 0
    t0 = time.perf_counter()
    with Store(uri) as store:
        coll = store.collection("images", VGG16Features().config())
        for batch in row_batches(kind, n, seed, sizes):
            coll.upsert(batch)
            rows += len(batch)
    log(f"{kind} {n}: {rows:,} rows upserted into Milvus Lite in {time.perf_counter() - t0:.0f} s")
    done.write_text(json.dumps(_truth(sizes, rows)))
    return uri, _truth(sizes, rows)


def synthetic_server(kind: str, n: int, work: Path, seed: int, store) -> dict:
    """The rows on a Milvus server, written as Parquet shards of IMPORT_FILE_ROWS (100k) rows and loaded with
    `imgsearch bulk import`'s library call (the server's bulk insert), as a large gallery would be; kept in the
    server's data dir for re-runs. The collection's vector index is FLAT: the walk reads rows with the query
    iterator and never searches the server, and an HNSW index took 46 min to build at 1M here (RESULTS.md)."""
    from imgsearch.bulk import Shard, write_manifest, write_shard
    from imgsearch.bulk_import import IMPORT_FILE_ROWS, import_shards
    from imgsearch.features import VGG16Features

    config = VGG16Features().config()
    shards_dir = work / f"{kind}-{n}-shards"
    shutil.rmtree(shards_dir, ignore_errors=True)
    shards_dir.mkdir(parents=True)
    shards, pending, sizes = [], [], {}

    def flush():
        shard = Shard(f"part-{len(shards):06d}-synthetic.parquet", [])
        meta = {"inputs": len(pending), "rows": len(pending), "not_images": 0, "failures": [], "config": config,
                "owner": "", "worker": {}}
        write_shard(shards_dir / shard.name, pending, config, meta)
        shards.append(shard)
        pending.clear()

    for batch in row_batches(kind, n, seed, sizes):
        pending += batch
        if len(pending) >= IMPORT_FILE_ROWS:
            flush()
    if pending:
        flush()
    write_manifest(shards_dir, shards, config, "", [], None)
    if "images" in store.collection_names():
        store.drop("images")
    store._index_spec = lambda binary: {"index_type": "FLAT", "metric_type": "COSINE"}
    t0 = time.perf_counter()
    summary = import_shards(store, "images", shards_dir)
    common.wait_indexed(store, "images", summary.rows_after, poll=2)
    log(f"{kind} {n}: {summary.rows_after:,} rows bulk-imported ({summary.method}) and indexed (FLAT) in "
        f"{time.perf_counter() - t0:.0f} s")
    shutil.rmtree(shards_dir, ignore_errors=True)
    return _truth(sizes, summary.rows_after)


class PlantedTruthJudge:
    """The stand-in for the copy verdict (the files behind synthetic rows do not exist): a pair is a copy when
    both rows belong to the same planted group, which their paths name. Labelled as such in every table."""

    @staticmethod
    def group(row: dict) -> str | None:
        parts = row["path"].split("/")
        return parts[2][1:] if len(parts) == 4 else None

    def __call__(self, query: dict, stored: dict, similarity: float):
        from imgsearch.evidence import FEATURES, Evidence
        from imgsearch.verdict import COPY, NOT_A_COPY, Judgement

        g = self.group(query)
        if g is not None and g == self.group(stored):
            return Judgement(COPY, Evidence(FEATURES, similarity=round(similarity, 4), file_checked=False))
        return NOT_A_COPY


REAL_GROUPS = 534  # realistic runs: groups numbered below this are a real dev original and its real copies


def groups_found(pairs, truth: dict) -> tuple[int, int, int]:
    """(planted groups found whole, of them real ones, found groups that are not exactly a planted group)."""
    whole = real = other = 0
    for members in pairs.groups:
        names = {PlantedTruthJudge.group(pairs.rows[i]) for i in members}
        (g,) = names if len(names) == 1 else (None,)
        if g is not None and truth.get(g) == len(members):
            whole += 1
            real += int(g) < REAL_GROUPS
        else:
            other += 1
    return whole, real, other


def measured_recall(work: Path, floor: float, others: int, sample_rows: int = 1000) -> dict:
    """The candidate step's recall against brute force on a sample of rows, from the kept work dir."""
    from imgsearch.duplicates.neighbours import VectorFile, candidate_recall, exact_neighbours

    (run_dir,) = [p for p in work.iterdir() if p.is_dir()]
    vectors = VectorFile(run_dir / "vectors.f32", 512)
    cosines = np.load(run_dir / "cosines.npy")
    sample = np.sort(np.random.default_rng(7).choice(vectors.rows, min(sample_rows, vectors.rows), replace=False))
    t0 = time.perf_counter()
    _, exact_cos = exact_neighbours(vectors, sample, others)
    at_floor, wanted = candidate_recall(cosines, sample, exact_cos, floor)
    every, _ = candidate_recall(cosines, sample, exact_cos, -1.0)
    state = json.loads((run_dir / "state.json").read_text())
    return {"recall": at_floor, "recall_pairs": wanted, "recall_all": every, "recall_rows": len(sample),
            "recall_seconds": time.perf_counter() - t0, "plan": state["plan"]}


def grouping_child(args):
    """Run in a fresh process: the grouping step with the stand-in judge; prints one JSON line."""
    from imgsearch.duplicates import CANDIDATE_FLOOR, NEIGHBOURS, find_copy_pairs
    from imgsearch.duplicates import neighbours as neighbours_mod
    from imgsearch.features import VGG16Features
    from imgsearch.store import Store

    if args.nprobe:
        neighbours_mod.NPROBE = args.nprobe
    truth = json.loads(Path(args.truth).read_text())["groups"]
    work = Path(args.truth).with_suffix(".work")
    shutil.rmtree(work, ignore_errors=True)
    with Store(args.grouping_child) as store:
        coll = store.collection("images", VGG16Features().config(), create=False)
        rss0 = common.reset_peak_rss()  # the walk's peak, not the imports' or Lite's loading
        clock = common.PhaseClock()
        t0 = time.perf_counter()
        pairs = find_copy_pairs(coll, PlantedTruthJudge(), progress=clock, work_dir=work, keep_work=True)
        end = time.perf_counter()
    peak = common.status_kib("VmHWM")
    whole, real, other = groups_found(pairs, truth)
    out = {"seconds": end - t0, "phases": clock.seconds(end), "rows": pairs.rows_walked,
           "pairs": pairs.pairs_judged, "groups": len(pairs.groups), "planted": len(truth), "whole": whole,
           "real_whole": real, "real_planted": sum(int(g) < REAL_GROUPS for g in truth),
           "other_groups": other, "rss_before_mib": rss0 / 1024, "peak_rss_mib": peak / 1024,
           **measured_recall(work, CANDIDATE_FLOOR, NEIGHBOURS - 1)}
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


def run_grouping(uri: str, truth_file: Path, nprobe: int | None, server_pid: int | None) -> dict:
    """The grouping child, with the server's resident memory sampled while it runs (its peak reported)."""
    command = [sys.executable, __file__, "--grouping-child", uri, "--truth", str(truth_file)]
    if nprobe:
        command += ["--nprobe", str(nprobe)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    server_peak = common.tree_rss_mib(server_pid) if server_pid else 0.0
    while child.poll() is None:
        if server_pid:
            server_peak = max(server_peak, common.tree_rss_mib(server_pid))
        time.sleep(2)
    out = child.stdout.read()
    if child.returncode:
        sys.exit(f"the grouping step failed (exit {child.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "server_peak_mib": server_peak}


def _size(text: str) -> int:
    return int(float(text.lower().replace("k", "e3").replace("m", "e6")))


def synthetic_one(args, kind: str, n: int, work: Path) -> dict:
    """Load (once) and group one size on the chosen target."""
    truth_file = work / f"{'server' if args.server else 'lite'}-{kind}-{n}-seed{args.seed}.truth.json"
    if args.server:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from milvus_server import running_server

        from imgsearch.store import Store

        with running_server(work / f"server-{kind}-{n}-seed{args.seed}") as handle:
            with Store(handle.uri) as store:
                if not _loaded(store, truth_file):
                    truth_file.write_text(json.dumps(synthetic_server(kind, n, work, args.seed, store)))
            return run_grouping(handle.uri, truth_file, args.nprobe, handle.pid)
    uri, truth = synthetic_lite(kind, n, work, args.seed)
    truth_file.write_text(json.dumps(truth))
    return run_grouping(uri, truth_file, args.nprobe, None)


def _loaded(store, truth_file: Path) -> bool:
    """Whether the server still holds the rows a truth file describes (its data dir is kept between runs)."""
    if not truth_file.exists() or "images" not in store.collection_names():
        return False
    from imgsearch.features import VGG16Features

    coll = store.collection("images", VGG16Features().config(), create=False)
    return coll.count() == json.loads(truth_file.read_text())["rows"]


def synthetic(args):
    sizes = [_size(s) for s in args.synthetic.split(",")]
    kind = args.vectors
    work = common.WORK_DIR / "duplicates-synthetic"
    work.mkdir(parents=True, exist_ok=True)
    target = "Milvus 2.3.5 server" if args.server else "Milvus Lite"
    common.header(f"Duplicates at scale: {kind} vectors on {target}, the copy verdict replaced by the planted "
                  "truth")
    if kind == "realistic":
        from realistic_vectors import nn_check, real_vectors

        print("How near the synthetic vectors are, against the real ones (percentiles 5/25/50/75/95):\n")
        print(common.table(["vectors", "p5", "p25", "p50", "p75", "p95"], nn_check(real_vectors())) + "\n")
    rows = []
    for n in sizes:
        r = synthetic_one(args, kind, n, work)
        log(f"{kind} {n}: {json.dumps(r)}")
        p = r["phases"]
        neighbour_step = p.get("building the index", 0) + p.get("finding neighbours", 0)
        plan = r["plan"]["method"] + (f", nprobe {r['plan']['nprobe']}" if r["plan"]["nprobe"] else "")
        real = f" (real: {r['real_whole']} / {r['real_planted']})" if kind == "realistic" else ""
        rows.append([f"{r['rows']:,}", plan,
                     f"{p.get('reading vectors', 0):,.0f}", f"{neighbour_step:,.0f}",
                     f"{p.get('checking pairs', 0):,.0f}", f"**{r['seconds']:,.0f}**",
                     f"{r['recall']:.4f} ({r['recall_pairs']:,})", f"{r['recall_all']:.4f}", f"{r['pairs']:,}",
                     f"{r['whole']:,} / {r['planted']:,}" + real,
                     f"{r['other_groups']:,}",
                     f"{r['rss_before_mib']:,.0f} -> {r['peak_rss_mib']:,.0f}",
                     f"{r['server_peak_mib']:,.0f}" if args.server else "(in the process)"])
    print(common.table(["rows", "graph", "reading (s)", "neighbour step (s)", "checking pairs (s)", "total (s)",
                        "recall above the floor (exact pairs)", "recall of the 5 nearest", "pairs judged",
                        "planted groups found whole", "other groups", "client RSS (MiB): opened -> peak",
                        "server peak RSS (MiB)"], rows))
    print("\nTimes are the walk's own (`find_copy_pairs`), in a fresh process, the rows already stored; the copy "
          "verdict is replaced by the planted truth (a pair is a copy when both rows are in one planted group: "
          "the files behind synthetic rows do not exist), so 'pairs judged' is what the real verdict would be "
          "asked. Recall: brute force over all rows for 1,000 sampled rows, their 5 nearest others (and those "
          "at or above the 0.60 floor) against the graph.")
    common.footer()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=40, help="dev originals given edited copies")
    parser.add_argument("--others", type=int, default=40, help="further dev originals, unedited, no copies")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--synthetic", help="sizes, e.g. 100k,1M: the grouping step over synthetic vectors")
    parser.add_argument("--vectors", choices=("realistic", "uniform"), default="realistic",
                        help="synthetic vectors made from real VGG16 vectors of the dev photos (default), or "
                        "uniform random ones")
    parser.add_argument("--server", action="store_true",
                        help="synthetic run on a Milvus 2.3.5 server started for it instead of Milvus Lite")
    parser.add_argument("--nprobe", type=int, help="IVF lists searched per row (default: the library's)")
    parser.add_argument("--grouping-child", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.grouping_child:
        grouping_child(args)
    elif args.synthetic:
        synthetic(args)
    else:
        dev(args)


if __name__ == "__main__":
    main()
