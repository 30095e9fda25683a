"""Every group of copies in a collection, and the original of each, chosen with evidence.

Grouping works from what is stored: the rows are walked in batches (``Collection.iterate`` with their vectors),
each batch is one ``Collection.search`` for the nearest few rows, and each pair above a cosine floor is judged
once by the copy verdict (``verdict.Verifier``: SIFT keypoints of both files, a RANSAC similarity fit). Copy
pairs are joined with union-find. Look-alikes never join a group: only the copy verdict does. Memory grows with
the candidate pairs and the copies found, never with all pairs nor with all vectors at once.

The original of a group is chosen by rules in order; the first that singles one member out decides and is named:

1. ``edited-from``: the member the others are crops, downscales or framed versions of (the verdict's evidence
   between each two members: ``original_shown``, ``copy_covered``, ``scale``);
2. ``most-pixels``: the most pixels once a uniform frame is cut away;
3. ``least-recompressed``: the finest JPEG quantisation (a lossless file counts as not recompressed);
4. ``earliest-mtime``: the oldest file, as a tie-break (then the path, so the choice is stable).

Moving copies (``move_copies``) keeps their folders relative to a common root, never overwrites, writes a
manifest that ``undo_moves`` reverses, and gives each moved row its new path in the collection. Nothing is deleted.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .errors import ImgsearchError
from .store import Collection, check_owner, owner_filter, row_id
from .views import WHOLE

# Pairs below this cosine are never judged. Edited copies of the dev photos scored >= 0.67 against their
# original (crops to 70%, watermarks) and 0.54 for a 90-degree turn (benchmarks/RESULTS.md): 0.60 keeps nearly
# all of them while unrelated pairs mostly stay under it, so few files are opened for nothing.
CANDIDATE_FLOOR = 0.60
NEIGHBOURS = 6  # nearest rows asked per row: itself and its 5 nearest others
BATCH = 256  # rows per search call
# Groups up to this size have every pair of members judged, so rule 1 sees all relations; larger groups (bursts,
# memes) rely on the pairs that joined them.
FULL_CHECK = 8
# Evidence shares and scales this far from 1 count as an edit (cropped, framed, resized); nearer is noise.
EDIT_MARGIN = 0.10
# Pixel counts and quantisation within this share count as equal, so the next rule decides.
PIXEL_TIE = 0.02
QUANT_TIE = 0.05

RULES = ("edited-from", "most-pixels", "least-recompressed", "earliest-mtime")
ROW_FIELDS = ("path", "size", "mtime", "width", "height", "owner")

# (rows done, rows to look at); the CLI draws a progress bar from it.
Progress = Callable[[int, int], None]
# (query row, stored row, cosine) -> ("copy" | "similar", evidence or None)
Judge = Callable[[dict, dict, float], tuple]


@dataclass
class Member:
    id: str
    path: str
    size: int
    mtime: float
    width: int
    height: int
    owner: str

    @classmethod
    def from_row(cls, row: dict) -> Member:
        return cls(row["id"], row["path"], int(row["size"]), float(row["mtime"]), int(row["width"]),
                   int(row["height"]), row.get("owner", ""))

    def as_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "size": self.size, "mtime": self.mtime, "width": self.width,
                "height": self.height, "owner": self.owner}


@dataclass
class Copy:
    member: Member
    similarity: float  # cosine to the original
    evidence: dict | None  # the verdict's evidence with this copy as the copy and the group's original as original

    def as_dict(self) -> dict:
        return {**self.member.as_dict(), "similarity": round(self.similarity, 4), "evidence": self.evidence}


@dataclass
class Group:
    original: Member
    copies: list[Copy]
    rule: str  # which of RULES decided
    reason: str  # the rule's finding, in words

    def as_dict(self) -> dict:
        return {"original": self.original.as_dict(), "copies": [c.as_dict() for c in self.copies],
                "rule": self.rule, "reason": self.reason}


@dataclass
class Report:
    groups: list[Group] = field(default_factory=list)
    rows: int = 0  # rows walked
    pairs_judged: int = 0  # candidate pairs the verdict checked while grouping
    unreadable: list[str] = field(default_factory=list)  # files the verdict could not open (judged by features)


# --- grouping ------------------------------------------------------------------------------------------------


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent.get(x, x)
        return root

    def union(self, a: str, b: str):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent.setdefault(ra, ra)
            self.parent.setdefault(rb, rb)
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return [sorted(v) for v in out.values()]


@dataclass
class Pairs:
    """What the grouping step found: the groups' member ids, the copy pairs' verdicts, and the members' rows."""

    groups: list[list[str]]
    judged: dict  # (query id, stored id) -> (verdict, evidence, cosine) for the copy pairs
    rows: dict  # id -> row (ROW_FIELDS) for every member of a group
    rows_walked: int
    pairs_judged: int


def find_copy_pairs(
    collection: Collection,
    judge: Judge,
    owner: str | None = None,
    floor: float = CANDIDATE_FLOOR,
    neighbours: int = NEIGHBOURS,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    keep: Callable[[dict], bool] | None = None,
) -> Pairs:
    """The grouping step: walk the stored vectors in batches, judge each candidate pair once, join the copies.

    ``keep`` limits the walk to some rows (e.g. a folder); hits outside it are left alone.
    """
    from .verdict import COPY

    if collection.binary:
        raise ImgsearchError("duplicates needs a VGG16 collection; phash-legacy compares hashes only")
    if owner is not None:
        owner = check_owner(owner)
    total = collection.count(filter=owner_filter(owner))
    links = _UnionFind()
    seen: set[tuple[str, str]] = set()  # candidate pairs already judged (or already joined)
    judged: dict = {}
    rows: dict[str, dict] = {}
    walked = pairs_judged = 0
    if progress:
        progress(0, total)
    batch: list[dict] = []

    def flush():
        nonlocal pairs_judged
        vectors = np.asarray([r["vector"] for r in batch], dtype=np.float32)
        hits = collection.search(vectors, top_k=neighbours, owner=owner, fields=ROW_FIELDS)
        todo = []
        for row, row_hits in zip(batch, hits):
            for hit in row_hits:
                if hit.distance < floor:
                    break  # best first: the rest are further
                if hit.id == row["id"] or (keep is not None and not keep(hit.entity)):
                    continue
                pair = (min(row["id"], hit.id), max(row["id"], hit.id))
                if pair in seen:
                    continue
                seen.add(pair)
                if links.find(row["id"]) == links.find(hit.id):
                    continue  # joined already through other copies; the original's choice judges it if needed
                todo.append((row, {"id": hit.id, **hit.entity}, float(hit.distance)))
        # SIFT matching releases the GIL: two threads, as search's verdict uses.
        for (row, other, similarity), (verdict, evidence) in zip(todo, pool.map(lambda t: judge(*t), todo)):
            pairs_judged += 1
            if verdict == COPY:
                links.union(row["id"], other["id"])
                judged[(row["id"], other["id"])] = (verdict, evidence, similarity)
                rows.setdefault(row["id"], {k: row[k] for k in ("id", *ROW_FIELDS)})
                rows.setdefault(other["id"], {k: other.get(k) for k in ("id", *ROW_FIELDS)})
        batch.clear()

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgsearch-duplicates") as pool:
        for row in collection.iterate(("vector", *ROW_FIELDS), filter=owner_filter(owner), batch_size=batch_size):
            walked += 1
            if keep is None or keep(row):
                batch.append(row)
            if len(batch) >= batch_size:
                flush()
                if progress:
                    progress(walked, total)
        if batch:
            flush()
    if progress:
        progress(walked, max(total, walked))
    return Pairs(links.groups(), judged, rows, walked, pairs_judged)


# --- the verdict on two stored files -----------------------------------------------------------------------


class _FileQuery:
    """A stored file in the query's place (``verdict.QueryFeatures``'s ``plain``, ``mirrored`` and ``box``): its
    cached keypoints, and its mirror image's, reflected from them only when the verdict tries a mirrored copy."""

    box = WHOLE  # the whole picture: no part of a larger query

    def __init__(self, plain):
        self.plain = plain
        self._mirrored = None

    @property
    def mirrored(self):
        if self._mirrored is None:
            from .verdict import mirrored_features

            self._mirrored = mirrored_features(self.plain)
        return self._mirrored


class FileJudge:
    """Judges (query file, stored file) pairs with one ``verdict.Verifier`` (its keypoint cache is shared);
    files it cannot open are noted and judged by their vectors alone, as the verdict does for them."""

    def __init__(self, verifier=None):
        from .verdict import Verifier

        self.verifier = verifier or Verifier()
        self.unreadable: dict[str, None] = {}  # ordered set

    def __call__(self, query: dict, stored: dict, similarity: float) -> tuple:
        from .verdict import LocalFeatures

        features = self.verifier.stored(query["path"])
        if features is None:
            self.unreadable[query["path"]] = None
            features = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (1, 1), (1, 1))
        if self.verifier.stored(stored["path"]) is None:
            self.unreadable[stored["path"]] = None
        # Where both pictures have texture, the verdict lets geometry decide (look-alikes such as star fields or
        # bursts are not copies however close their cosine); a cosine alone decides only for flat pictures.
        return self.verifier.judge(_FileQuery(features), stored["path"], similarity)


# --- the original -----------------------------------------------------------------------------------------


@dataclass
class _Facts:
    """What the rules weigh about one member's file."""

    pixels: int  # after a uniform frame is cut away
    frame: tuple | None  # the picture inside a uniform frame, as fractions (left, top, right, bottom)
    quantisation: float  # mean of the JPEG luminance table; 0 for lossless files


def file_facts(path: str, width: int, height: int) -> _Facts:
    from PIL import Image

    from .errors import ImageError
    from .features import load_image
    from .views import uniform_frame_box

    quantisation = 0.0
    try:
        with Image.open(path) as img:
            tables = getattr(img, "quantization", None) or {}
            if tables:
                quantisation = float(np.mean(tables[min(tables)]))
    except OSError:
        pass
    pixels, frame = width * height, None
    try:
        loaded = load_image(path)
    except ImageError:
        return _Facts(pixels, frame, quantisation)
    box = uniform_frame_box(loaded.image)
    if box is not None:
        w, h = loaded.image.size
        share = (box[2] - box[0]) * (box[3] - box[1]) / float(w * h)
        pixels, frame = round(width * height * share), (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
    return _Facts(pixels, frame, quantisation)


def edit_direction(evidence: dict | None, query_frame: tuple | None, stored_frame: tuple | None) -> int:
    """From the verdict on (query as copy of stored): +1 when the stored file is the source of the query (the
    query is a crop, a downscale or a framed version of it), -1 the other way round, 0 when it does not say.

    "One shows part of the other" reads two ways (a crop of it, or it framed): the larger one is the framed copy
    when it has a uniform frame around just the part the smaller one shows; otherwise the smaller one is the crop.
    """
    if not evidence or evidence.get("method") != "geometry":
        return 0
    shown, covered, scale = evidence["original_shown"], evidence["copy_covered"], evidence["scale"]
    low = 1 - EDIT_MARGIN
    if shown < low <= covered:  # the query shows part of the stored picture
        return -1 if _same_box(stored_frame, evidence["original_region"]) else 1
    if covered < low <= shown:  # the stored picture sits inside the query
        return 1 if _same_box(query_frame, evidence["original_in_copy"]) else -1
    if shown >= low and covered >= low:
        if scale < low:
            return 1  # the query is the stored picture made smaller
        if scale > 1 / low:
            return -1
    return 0


def _same_box(frame: tuple | None, region, tolerance: float = 0.05) -> bool:
    """Whether a uniform frame surrounds just this region (fractions of the same picture)."""
    return frame is not None and all(abs(a - b) <= tolerance for a, b in zip(frame, region))


def choose_original(members: list[Member], relations: dict, facts: dict[str, _Facts]) -> tuple[Member, str, str]:
    """(original, rule, reason). ``relations``: (query id, stored id) -> evidence of query as a copy of stored."""
    candidates = list(members)
    beaten: dict[str, str] = {}
    for (query, stored), evidence in relations.items():
        direction = edit_direction(evidence, facts[query].frame, facts[stored].frame)
        if direction:
            loser, winner = (query, stored) if direction > 0 else (stored, query)
            beaten.setdefault(loser, winner)
    unbeaten = [m for m in candidates if m.id not in beaten]
    if beaten and len(unbeaten) == 1:
        return unbeaten[0], RULES[0], "the others are crops, downscales or framed versions of it"
    if unbeaten:
        candidates = unbeaten

    most = max(facts[m.id].pixels for m in candidates)
    top = [m for m in candidates if facts[m.id].pixels >= most * (1 - PIXEL_TIE)]
    if len(top) == 1:
        return top[0], RULES[1], f"{most:,} pixels without frames, the most in the group"
    candidates = top

    finest = min(facts[m.id].quantisation for m in candidates)
    top = [m for m in candidates if facts[m.id].quantisation <= finest * (1 + QUANT_TIE) + 1e-9]
    if len(top) == 1:
        found = "lossless" if finest == 0 else f"JPEG quantisation {finest:.1f} (mean luminance step)"
        return top[0], RULES[2], f"least recompressed: {found}"
    earliest = min(top, key=lambda m: (m.mtime, m.path))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(earliest.mtime))
    return earliest, RULES[3], f"no edit or quality sets them apart; modified first ({when})"


def describe_group(pairs: Pairs, group_ids: list[str], judge: Judge, vectors: dict[str, np.ndarray]) -> Group:
    """The original of one group and each copy's evidence relative to it."""
    from .verdict import COPY

    members = [Member.from_row(pairs.rows[i]) for i in group_ids]
    by_id = {m.id: m for m in members}
    verdicts = {key: (verdict, evidence) for key, (verdict, evidence, _) in pairs.judged.items()}

    def verdict_of(query: str, stored: str) -> tuple:
        if (query, stored) not in verdicts:
            similarity = float(np.dot(vectors[query], vectors[stored]))
            verdicts[(query, stored)] = judge(pairs.rows[query], pairs.rows[stored], similarity)
        return verdicts[(query, stored)]

    if len(members) <= FULL_CHECK:
        for i, a in enumerate(group_ids):
            for b in group_ids[i + 1 :]:
                if (a, b) not in verdicts and (b, a) not in verdicts:
                    verdict_of(a, b)
    relations = {key: evidence for key, (verdict, evidence) in verdicts.items()
                 if verdict == COPY and key[0] in by_id and key[1] in by_id}
    facts = {m.id: file_facts(m.path, m.width, m.height) for m in members}
    original, rule, reason = choose_original(members, relations, facts)
    copies = []
    for m in members:
        if m.id == original.id:
            continue
        verdict, evidence = verdict_of(m.id, original.id)
        if verdict != COPY:
            evidence = {"method": "through-copies", "summary": "a copy of another copy in this group; "
                        "too little of it overlaps the original to measure directly"}
        copies.append(Copy(m, float(np.dot(vectors[m.id], vectors[original.id])), evidence))
    copies.sort(key=lambda c: -c.similarity)
    return Group(original, copies, rule, reason)


def find_duplicates(
    collection: Collection,
    owner: str | None = None,
    under: Iterable[str] = (),
    verifier=None,
    progress: Progress | None = None,
    floor: float = CANDIDATE_FLOOR,
    neighbours: int = NEIGHBOURS,
) -> Report:
    """Every group of copies (optionally only among files under the folders ``under``), each with its original."""
    judge = FileJudge(verifier)
    roots = tuple(os.path.abspath(p).rstrip(os.sep) + os.sep for p in under)
    keep = (lambda row: row.get("path", "").startswith(roots)) if roots else None
    pairs = find_copy_pairs(collection, judge, owner=owner, floor=floor, neighbours=neighbours,
                            progress=progress, keep=keep)
    report = Report(rows=pairs.rows_walked)
    for group_ids in pairs.groups:
        stored = collection.get(group_ids, fields=("vector",))
        vectors = {i: np.asarray(stored[i]["vector"], dtype=np.float32) for i in group_ids}
        report.groups.append(describe_group(pairs, group_ids, judge, vectors))
    report.groups.sort(key=lambda g: g.original.path)
    report.pairs_judged = pairs.pairs_judged
    report.unreadable = list(judge.unreadable)
    return report


# --- safe moves -----------------------------------------------------------------------------------------------

MANIFEST_VERSION = 1


@dataclass
class Move:
    source: str
    target: str
    id: str  # the row's id before the move


def plan_moves(groups: list[Group], destination: str) -> list[Move]:
    """Where each copy would go: DESTINATION/<its path relative to the copies' common folder>, never onto a file
    that exists (nor onto another planned move): a taken name gets " (2)", " (3)"... before its extension."""
    copies = [c.member for g in groups for c in g.copies]
    if not copies:
        return []
    destination = os.path.abspath(destination)
    root = os.path.commonpath([os.path.dirname(os.path.abspath(m.path)) for m in copies])
    taken: set[str] = set()
    moves = []
    for m in copies:
        target = os.path.join(destination, os.path.relpath(os.path.abspath(m.path), root))
        stem, ext = os.path.splitext(target)
        n = 1
        while target in taken or os.path.lexists(target):
            n += 1
            target = f"{stem} ({n}){ext}"
        taken.add(target)
        moves.append(Move(m.path, target, m.id))
    return moves


def _move_file(source: str, target: str):
    """Move without ever replacing a file at ``target``: a hard link (fails if target exists) then unlink; across
    file systems, an exclusive-create copy then unlink."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        with open(source, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.copystat(source, target)
    os.unlink(source)


def _repath_row(collection: Collection, old_id: str, new_path: str) -> bool:
    """Give a row a new path (its id follows the path): the new row is written before the old one goes."""
    from .store import FIELDS

    found = collection.get([old_id], fields=("vector", *FIELDS)).get(old_id)
    if found is None:
        return False
    row = {k: found[k] for k in ("vector", *FIELDS)}
    row.update(id=row_id(new_path), path=new_path)
    collection.upsert([row])
    collection.delete([old_id])
    return True


def move_copies(collection: Collection, moves: list[Move], manifest_path: str, store_uri: str) -> dict:
    """Move each planned copy and re-path its row; the manifest is written before the first move and after
    each one, so even an interrupted run can be undone."""
    manifest = {"version": MANIFEST_VERSION, "uri": store_uri, "collection": collection.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "moves": [{"from": m.source, "to": m.target, "id": m.id, "done": False} for m in moves]}
    _write_manifest(manifest_path, manifest)
    failed = []
    for entry in manifest["moves"]:
        try:
            _move_file(entry["from"], entry["to"])
        except OSError as e:
            failed.append((entry["from"], e.strerror or str(e)))
            continue
        entry["done"] = True
        entry["row"] = _repath_row(collection, entry["id"], entry["to"])
        _write_manifest(manifest_path, manifest)
    return {"moved": sum(e["done"] for e in manifest["moves"]), "failed": failed, "manifest": manifest_path}


def _write_manifest(path: str, manifest: dict):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def read_manifest(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise ImgsearchError(f"{path}: not a readable duplicates manifest ({e})") from None
    if manifest.get("version") != MANIFEST_VERSION or "moves" not in manifest:
        raise ImgsearchError(f"{path}: not a duplicates manifest of this imgsearch")
    return manifest


def undo_moves(collection: Collection, manifest: dict) -> dict:
    """Move every moved copy back to where it was and give its row the old path again; nothing is overwritten
    (a file back in the old place is left alone and reported)."""
    restored, skipped = 0, []
    for entry in manifest["moves"]:
        if not entry.get("done"):
            continue
        if os.path.lexists(entry["from"]):
            skipped.append((entry["to"], f"{entry['from']} exists already"))
            continue
        try:
            _move_file(entry["to"], entry["from"])
        except OSError as e:
            skipped.append((entry["to"], e.strerror or str(e)))
            continue
        _repath_row(collection, row_id(entry["to"]), entry["from"])
        restored += 1
    return {"restored": restored, "skipped": skipped}
