"""Finding the pairs of copies in a collection and joining them into groups.

One run, in four phases, each saved as it goes under a work dir (``checkpoint``), so an interrupted run goes on
where it stopped:

1. reading vectors: every stored row (for an owner, under some folders) once, with the query iterator;
2. building the index and 3. finding neighbours: each row's nearest other rows, found in this process with faiss
   and re-ranked with exact cosines (``neighbours``), instead of one Milvus search per row;
4. checking pairs: each pair of neighbours above a cosine floor is judged once by the copy verdict
   (``verdict.Verifier.judge_files``: SIFT keypoints of both files, a RANSAC similarity fit), in walk order, and
   copies are joined with union-find. Look-alikes never join a group: only the copy verdict does.

Memory: the neighbour index (a quarter of the vectors' float32 size above ``neighbours.EXACT_UP_TO`` rows), the
graph (a few ints per row) and the copies found; the vectors and rows stay on disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImgsearchError
from ..store import Collection, check_owner, owner_filter
from ..verdict import Judgement, Verifier
from .checkpoint import (SAMPLE_IDS, JudgedLog, RowFile, State, WorkDir, default_work_root, pair_keys, still_valid,
                         work_key)
from .groups import ROW_FIELDS
from .neighbours import BLOCK, GraphPlan, VectorFile, build_index, candidate_pairs, plan_graph, search_block

# Pairs below this cosine are never judged. Edited copies of the dev photos scored >= 0.67 against their
# original for crops to 70%, >= 0.60 for watermarks and 0.54 for a 90-degree turn (benchmarks/RESULTS.md,
# accuracy): 0.60 keeps nearly all of them while unrelated pairs mostly stay under it, so few files are opened for
# nothing.
CANDIDATE_FLOOR = 0.60
NEIGHBOURS = 6  # nearest rows asked per row: itself and its 5 nearest others
# Rows per page of the query iterator. Milvus Lite sorts the remaining rows by id for every page (in Python), so
# few large pages read faster: 30k rows took 40 s in pages of 1,000, 16 s of 4,096, 11 s of 10,000 (103k-row Lite
# db, busy machine); a page of 8,192 vectors is 16 MB, well under a server's 64 MB message limit.
BATCH = 8192
MIN_PAGE = 64  # pages are halved down to this when a server refuses one as too large
READ_BLOCK = 16384  # rows read between two saves of the state
PAIR_BATCH = 64  # candidate pairs judged between two checks of what is already joined
LOG_EVERY = 2.0  # seconds between two writes of the verdicts' log (each is fsynced)

PHASES = ("reading vectors", "building the index", "finding neighbours", "checking pairs")
# (done, total, phase) within one of PHASES; the CLI draws a progress bar with an ETA per phase from it.
Progress = Callable[[int, int, str], None]
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


class Walk:
    """One run of the grouping step over a work dir: each phase picks up where the saved state says."""

    def __init__(self, collection: Collection, judge: Judge, work: WorkDir, state: State, owner: str | None,
                 floor: float, neighbours: int, keep: Callable[[dict], bool] | None, progress: Progress | None):
        self.collection, self.judge, self.work, self.state = collection, judge, work, state
        self.owner, self.floor, self.keep, self.progress = owner, floor, keep, progress
        self.others = max(1, neighbours - 1)  # neighbours counts the row itself, as a Milvus search returns it
        self.vectors = VectorFile(work.file("vectors.f32"), collection.config["dim"])
        self.rows = RowFile(work.file("rows.jsonl"))

    def _tell(self, phase: str, done: int, total: int):
        if self.progress:
            self.progress(done, total, phase)

    def read(self, batch_size: int):
        """Phase 1: every row's vector and fields to disk, a page at a time, the state saved every READ_BLOCK rows.

        A Milvus server answers a page with up to a page of rows from each segment in one gRPC message (64 MB at
        most): 8,192 rows from each of the 10 segments of a 1M-row collection were 171 MB and refused. So a page
        refused as too large is halved and reading goes on after the last row read."""
        state = self.state
        self.vectors.truncate(state.rows_read)
        self.rows.open_existing(state.rows_read)
        while state.phase == "reading":
            try:
                self._read_pages(batch_size)
            except Exception as e:  # pymilvus and grpc raise their own types
                if not _too_large(e) or batch_size <= MIN_PAGE or not state.ids_ascending:
                    raise
                batch_size //= 2

    def _read_pages(self, batch_size: int):
        state = self.state
        flt = owner_filter(self.owner)
        if state.last_id:  # go on after the last id read (hex ids: no quoting needed)
            after = f'id > "{state.last_id}"'
            flt = f"({flt}) and {after}" if flt else after
        stride = max(1, state.total // SAMPLE_IDS)
        kept: list[dict] = []
        self._tell(PHASES[0], state.rows_walked, state.total)
        try:
            for row in self.collection.iterate(("vector", "indexed_at", *ROW_FIELDS), filter=flt,
                                               batch_size=batch_size):
                if state.rows_walked % stride == 0:
                    state.sample[row["id"]] = row["indexed_at"]
                state.ids_ascending = state.ids_ascending and row["id"] > state.last_id
                state.rows_walked, state.last_id = state.rows_walked + 1, row["id"]
                if self.keep is None or self.keep(row):
                    # a page's vectors arrive as lists of Python floats (16 KB a row): 2 KB each as float32
                    kept.append({**row, "vector": np.asarray(row["vector"], dtype=np.float32)})
                if state.rows_walked % READ_BLOCK == 0:
                    self._save_rows(kept)
                    kept = []
        finally:  # the rows read before an error are whole rows: kept, so a retry goes on after them
            self._save_rows(kept)
        state.phase = "index"
        self.work.save_state(state)

    def _save_rows(self, kept: list[dict]):
        if kept:
            self.vectors.append(np.asarray([r["vector"] for r in kept], dtype=np.float32))
            self.rows.append([{k: r.get(k) for k in ("id", *ROW_FIELDS)} for r in kept])
            self.state.rows_read += len(kept)
        self.work.save_state(self.state)
        self._tell(PHASES[0], self.state.rows_walked, max(self.state.total, self.state.rows_walked))

    def graph(self) -> tuple[np.ndarray, np.ndarray]:
        """Phases 2 and 3: the neighbour index (saved once built) and each row's nearest others, block by block."""
        state, rows = self.state, self.state.rows_read
        plan = plan_graph(rows)
        state.plan = plan.as_dict()
        index_file = self.work.file("index.faiss")
        if state.phase in ("index", "graph"):
            index = self._index(plan, index_file)
            graph_file, cosines_file = self.work.file("graph.npy"), self.work.file("cosines.npy")
            shape = (rows, self.others)
            mode = "r+" if state.phase == "graph" and graph_file.exists() else "w+"
            graph = np.lib.format.open_memmap(graph_file, mode=mode, dtype=np.int32, shape=shape)
            cosines = np.lib.format.open_memmap(cosines_file, mode=mode, dtype=np.float32, shape=shape)
            if mode == "w+":
                state.graph_rows, state.phase = 0, "graph"
                self.work.save_state(state)
            for start in range(state.graph_rows, rows, BLOCK):
                stop = min(rows, start + BLOCK)
                graph[start:stop], cosines[start:stop] = search_block(index, self.vectors, start, stop, self.others)
                graph.flush()
                cosines.flush()
                state.graph_rows = stop
                self.work.save_state(state)
                self._tell(PHASES[2], stop, rows)
            del index, graph, cosines
            state.phase = "judging"
            self.work.save_state(state)
            index_file.unlink(missing_ok=True)
        return np.load(self.work.file("graph.npy")), np.load(self.work.file("cosines.npy"))

    def _index(self, plan: GraphPlan, index_file):
        import faiss

        if plan.method != "exact" and self.state.phase == "graph" and index_file.exists():
            return faiss.read_index(str(index_file))
        self._tell(PHASES[1], 0, plan.rows)
        index = build_index(self.vectors, plan, lambda done, total: self._tell(PHASES[1], done, total))
        if plan.method != "exact":  # the exact index is rebuilt in seconds; a trained one is kept
            faiss.write_index(index, str(index_file) + ".tmp")
            os.replace(str(index_file) + ".tmp", index_file)
        return index

    def judge_pairs(self, graph: np.ndarray, cosines: np.ndarray, pool) -> CopyPairs:
        """Phase 4: each candidate pair judged once in walk order, the verdicts saved as they come."""
        query, stored, similarity = candidate_pairs(graph, cosines, self.floor)
        log = JudgedLog(self.work.file("judged.jsonl"))
        judger = PairJudging(self.judge, self.rows, log, pool)
        judger.replay(*log.replay())
        todo = ~np.isin(pair_keys(query, stored, len(graph)), judger.replayed_keys(len(graph)))
        done_before = int(len(query) - todo.sum())
        left = np.flatnonzero(todo)
        self._tell(PHASES[3], done_before, len(query))
        try:
            for start in range(0, len(left), PAIR_BATCH):
                chosen = left[start : start + PAIR_BATCH]
                judger.judge_batch(query[chosen], stored[chosen], similarity[chosen])
                self._tell(PHASES[3], done_before + start + len(chosen), len(query))
        finally:  # interrupted or not, the verdicts given so far are kept
            judger.flush()
        found = judger.result()
        found.rows_walked = self.state.rows_walked
        return found


class PairJudging:
    """Candidate pairs judged by the copy verdict, joined when copies, every verdict written to the log."""

    def __init__(self, judge: Judge, rows: RowFile, log: JudgedLog, pool):
        self.judge, self.rows, self.log, self.pool = judge, rows, log, pool
        self.links = UnionFind()
        self.found = CopyPairs()
        self.replayed: list[tuple[int, int]] = []
        self.pending: list[tuple[int, int, Judgement]] = []
        self.unreadable_logged = 0
        self.last_flush = time.monotonic()

    def replay(self, judged: list[tuple[int, int, Judgement]], unreadable: list[str]):
        """The verdicts of an interrupted run, as if just given (the judge's unreadable files noted again)."""
        noted = getattr(self.judge, "unreadable", None)  # FileJudge's: files judged by their vectors alone
        if noted is not None:
            noted.update(dict.fromkeys(unreadable))
            self.unreadable_logged = len(noted)
        for query, stored, judgement in judged:
            self.replayed.append((query, stored))
            self.found.pairs_judged += 1
            if judgement.is_copy:
                self._join(*self.rows.get((query, stored)), judgement)

    def replayed_keys(self, rows: int) -> np.ndarray:
        pairs = np.asarray(self.replayed, dtype=np.int64).reshape(-1, 2)
        return np.sort(pair_keys(pairs[:, 0], pairs[:, 1], rows))

    def judge_batch(self, query: np.ndarray, stored: np.ndarray, similarity: np.ndarray):
        needed = np.unique(np.concatenate([query, stored]))
        by_index = dict(zip(needed.tolist(), self.rows.get(needed.tolist())))
        todo = []
        for q, s, sim in zip(query.tolist(), stored.tolist(), similarity.tolist()):
            if self.links.find(by_index[q]["id"]) != self.links.find(by_index[s]["id"]):
                todo.append((q, s, sim))
            # else: joined already through other copies; the original's choice judges it if needed
        # SIFT matching releases the GIL: two threads, as search's verdict uses.
        judgements = self.pool.map(lambda t: self.judge(by_index[t[0]], by_index[t[1]], t[2]), todo)
        for (q, s, _), judgement in zip(todo, judgements):
            self.found.pairs_judged += 1
            if judgement.is_copy:
                self._join(by_index[q], by_index[s], judgement)
            self.pending.append((q, s, judgement))
        if time.monotonic() - self.last_flush > LOG_EVERY:
            self.flush()

    def _join(self, query: dict, stored: dict, judgement: Judgement):
        self.links.union(query["id"], stored["id"])
        self.found.judged[(query["id"], stored["id"])] = judgement
        self.found.rows.setdefault(query["id"], query)
        self.found.rows.setdefault(stored["id"], stored)

    def flush(self):
        noted = list(getattr(self.judge, "unreadable", ()))
        self.log.append(self.pending, noted[self.unreadable_logged :])
        self.pending, self.unreadable_logged, self.last_flush = [], len(noted), time.monotonic()

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
    scope: str = "",
    work_dir: str | os.PathLike | None = None,
    keep_work: bool = False,
) -> CopyPairs:
    """The grouping step: read the stored vectors, find each row's neighbours, judge each candidate pair once,
    join the copies.

    ``keep`` limits the run to some rows (e.g. a folder), and ``scope`` says which (it names the work dir).
    The work dir (``work_dir``/key, default in the user's cache dir) is removed after a finished run unless
    ``keep_work``; an interrupted run leaves it, and the next run with the same settings goes on from it.
    """
    if collection.binary:
        raise ImgsearchError("duplicates needs a VGG16 collection; phash-legacy compares hashes only")
    if owner is not None:
        owner = check_owner(owner)
    total = collection.count(filter=owner_filter(owner))
    key = work_key(collection.store.uri, collection.name, owner, scope, floor, neighbours)
    work = WorkDir(Path(work_dir) / key if work_dir else default_work_root() / key)
    finished = False
    try:
        state = _saved_state(collection, work, key, total)
        walk = Walk(collection, judge, work, state, owner, floor, neighbours, keep, progress)
        walk.read(batch_size)
        graph, cosines = walk.graph()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgsearch-duplicates") as pool:
            found = walk.judge_pairs(graph, cosines, pool)
        finished = True
        return found
    finally:
        work.close(remove=finished and not keep_work)


def _too_large(e: BaseException) -> bool:
    """Whether Milvus refused an answer as larger than its gRPC message limit."""
    text = str(e)
    return "larger than max" in text or "RESOURCE_EXHAUSTED" in text


def _saved_state(collection: Collection, work: WorkDir, key: str, total: int) -> State:
    """The saved run's state if it can go on (same collection, unchanged), else a fresh one (files cleared)."""
    state = work.load_state()
    if state is not None:
        stored = collection.get(list(state.sample), fields=("indexed_at",)) if state.sample else {}
        now = {i: row["indexed_at"] for i, row in stored.items()}
        resumable = state.ids_ascending or state.phase != "reading"  # reading goes on after the last id only
        if still_valid(state, key, total, now) and resumable:
            return state
    work.clear()
    state = State(key=key, total=total)
    work.save_state(state)
    return state


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
