"""Finding the pairs of copies in a collection and joining them into groups.

The rows are walked in batches (``Collection.iterate`` with their vectors); each batch is one
``Collection.search`` for the nearest few rows, and each pair above a cosine floor is judged once by the copy
verdict (``verdict.Verifier.judge_files``: SIFT keypoints of both files, a RANSAC similarity fit). Copy pairs are
joined with union-find. Look-alikes never join a group: only the copy verdict does. Memory grows with the
candidate pairs and the copies found, never with all pairs nor with all vectors at once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import ImgsearchError
from ..store import Collection, check_owner, owner_filter
from ..verdict import Judgement, Verifier
from .groups import ROW_FIELDS

# Pairs below this cosine are never judged. Edited copies of the dev photos scored >= 0.67 against their
# original for crops to 70%, >= 0.60 for watermarks and 0.54 for a 90-degree turn (benchmarks/RESULTS.md,
# accuracy): 0.60 keeps nearly all of them while unrelated pairs mostly stay under it, so few files are opened for
# nothing.
CANDIDATE_FLOOR = 0.60
NEIGHBOURS = 6  # nearest rows asked per row: itself and its 5 nearest others
BATCH = 256  # rows per search call

# (rows done, rows to look at); the CLI draws a progress bar from it.
Progress = Callable[[int, int], None]
# (query row, stored row, cosine) -> the verdict on the query row's file as a copy of the stored row's
Judge = Callable[[dict, dict, float], Judgement]


class UnionFind:
    """Disjoint sets of ids; each set's root is its smallest id, so groups come out the same on every run."""

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
class CopyPairs:
    """What the grouping step found: the groups' member ids, the copy pairs' verdicts, and the members' rows."""

    groups: list[list[str]] = field(default_factory=list)
    judged: dict = field(default_factory=dict)  # (query id, stored id) -> Judgement, for the copy pairs
    rows: dict = field(default_factory=dict)  # id -> row (id and ROW_FIELDS) for every member of a group
    rows_walked: int = 0
    pairs_judged: int = 0


class PairFinder:
    """One walk over the stored rows: a batch of rows at a time, their neighbours, each new pair judged once."""

    def __init__(self, collection: Collection, judge: Judge, pool, owner: str | None, floor: float,
                 neighbours: int, keep: Callable[[dict], bool] | None):
        self.collection, self.judge, self.pool = collection, judge, pool
        self.owner, self.floor, self.neighbours, self.keep = owner, floor, neighbours, keep
        self.links = UnionFind()
        self.seen: set[tuple[str, str]] = set()  # candidate pairs already judged (or already joined)
        self.found = CopyPairs()

    def add_batch(self, batch: list[dict]):
        """Judge the new candidate pairs of a batch of rows (each with its ``vector``) and join the copies."""
        vectors = np.asarray([r["vector"] for r in batch], dtype=np.float32)
        hits = self.collection.search(vectors, top_k=self.neighbours, owner=self.owner, fields=ROW_FIELDS)
        todo = [pair for row, row_hits in zip(batch, hits) for pair in self._new_pairs(row, row_hits)]
        # SIFT matching releases the GIL: two threads, as search's verdict uses.
        for (row, other, similarity), judgement in zip(todo, self.pool.map(lambda t: self.judge(*t), todo)):
            self.found.pairs_judged += 1
            if judgement.is_copy:
                self.links.union(row["id"], other["id"])
                self.found.judged[(row["id"], other["id"])] = judgement
                self.found.rows.setdefault(row["id"], {k: row[k] for k in ("id", *ROW_FIELDS)})
                self.found.rows.setdefault(other["id"], {k: other.get(k) for k in ("id", *ROW_FIELDS)})

    def _new_pairs(self, row: dict, row_hits: list) -> list[tuple[dict, dict, float]]:
        pairs = []
        for hit in row_hits:
            if hit.similarity < self.floor:
                break  # best first: the rest are further
            if hit.id == row["id"] or (self.keep is not None and not self.keep(hit.entity)):
                continue
            pair = (min(row["id"], hit.id), max(row["id"], hit.id))
            if pair in self.seen:
                continue
            self.seen.add(pair)
            if self.links.find(row["id"]) == self.links.find(hit.id):
                continue  # joined already through other copies; the original's choice judges it if needed
            pairs.append((row, {"id": hit.id, **hit.entity}, hit.similarity))
        return pairs

    def result(self) -> CopyPairs:
        self.found.groups = self.links.groups()
        return self.found


def find_copy_pairs(
    collection: Collection,
    judge: Judge,
    owner: str | None = None,
    floor: float = CANDIDATE_FLOOR,
    neighbours: int = NEIGHBOURS,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    keep: Callable[[dict], bool] | None = None,
) -> CopyPairs:
    """The grouping step: walk the stored vectors in batches, judge each candidate pair once, join the copies.

    ``keep`` limits the walk to some rows (e.g. a folder); hits outside it are left alone.
    """
    if collection.binary:
        raise ImgsearchError("duplicates needs a VGG16 collection; phash-legacy compares hashes only")
    if owner is not None:
        owner = check_owner(owner)
    total = collection.count(filter=owner_filter(owner))
    if progress:
        progress(0, total)
    walked, batch = 0, []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgsearch-duplicates") as pool:
        finder = PairFinder(collection, judge, pool, owner, floor, neighbours, keep)
        for row in collection.iterate(("vector", *ROW_FIELDS), filter=owner_filter(owner), batch_size=batch_size):
            walked += 1
            if keep is None or keep(row):
                batch.append(row)
            if len(batch) >= batch_size:
                finder.add_batch(batch)
                batch = []
                if progress:
                    progress(walked, total)
        if batch:
            finder.add_batch(batch)
    if progress:
        progress(walked, max(total, walked))
    pairs = finder.result()
    pairs.rows_walked = walked
    return pairs


class FileJudge:
    """Judges (query row, stored row) pairs by their files with one ``verdict.Verifier`` (its keypoint cache is
    shared); files it cannot open are noted and judged by their vectors alone, as the verdict does for them."""

    def __init__(self, verifier: Verifier | None = None):
        self.verifier = verifier or Verifier()
        self.unreadable: dict[str, None] = {}  # ordered set

    def __call__(self, query: dict, stored: dict, similarity: float) -> Judgement:
        for path in (query["path"], stored["path"]):
            if self.verifier.stored(path) is None:
                self.unreadable[path] = None
        # Where both pictures have texture, the verdict lets geometry decide (look-alikes such as star fields or
        # bursts are not copies however close their cosine); a cosine alone decides only for flat pictures.
        return self.verifier.judge_files(query["path"], stored["path"], similarity)
