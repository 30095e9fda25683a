"""The duplicates walk's own pieces: the neighbour graph against brute force, candidate pairs, the rule that says
a saved run can go on, and resuming an interrupted run (reading, judging) without repeating work.

No model and no Milvus: small random vectors, and a collection in memory that behaves like ``store.Collection``
where the walk uses it (count, iterate in id order with an ``id > "..."`` filter, get).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from imgsearch.duplicates import pairs as pairs_mod
from imgsearch.duplicates.checkpoint import JudgedLog, State, still_valid
from imgsearch.duplicates.neighbours import (
    VectorFile,
    build_index,
    candidate_pairs,
    candidate_recall,
    exact_neighbours,
    plan_graph,
    search_block,
)
from imgsearch.evidence import GEOMETRY, Evidence
from imgsearch.verdict import COPY, SIMILAR, Judgement


def unit_vectors(rows: int, seed: int = 0, dim: int = 32) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def vector_file(tmp_path, vectors: np.ndarray) -> VectorFile:
    vf = VectorFile(tmp_path / "v.f32", vectors.shape[1])
    vf.append(vectors[:100])
    vf.append(vectors[100:])
    return vf


def graph_of(vf: VectorFile, plan, k: int):
    index = build_index(vf, plan)
    return search_block(index, vf, 0, vf.rows, k)


# --- the neighbour graph -----------------------------------------------------------------------------------


def test_the_exact_graph_is_brute_force_without_the_row_itself(tmp_path):
    vectors = unit_vectors(300)
    vectors[7] = vectors[3]  # an identical row is another row's neighbour, at cosine 1
    vf = vector_file(tmp_path, vectors)
    graph, cosines = graph_of(vf, plan_graph(vf.rows), k=5)
    assert vf.rows == 300 and graph.shape == (300, 5)
    cos = vectors @ vectors.T
    np.fill_diagonal(cos, -np.inf)
    truth = np.argsort(-cos, axis=1, kind="stable")[:, :5]
    assert np.allclose(cosines, np.take_along_axis(cos, truth, axis=1), atol=1e-5)  # exact cosines, best first
    assert (graph != np.arange(300)[:, None]).all()
    assert graph[3, 0] == 7 and graph[7, 0] == 3 and cosines[3, 0] == pytest.approx(1.0)
    sample = np.arange(0, 300, 7)
    exact, exact_cos = exact_neighbours(vf, sample, 5)
    assert np.allclose(exact_cos, np.take_along_axis(cos, truth, axis=1)[sample], atol=1e-5)
    assert candidate_recall(cosines, sample, exact_cos, floor=-1.0) == (1.0, len(sample) * 5)


def test_the_ivf_graph_finds_close_pairs_and_reranks_with_exact_cosines(tmp_path):
    base = unit_vectors(2000, seed=1)
    near = base[:200] + 0.05 * unit_vectors(200, seed=2)  # near-copies of the first 200 rows
    vectors = np.concatenate([base, near / np.linalg.norm(near, axis=1, keepdims=True)])
    vf = vector_file(tmp_path, vectors)
    plan = plan_graph(vf.rows, exact_up_to=100, nprobe=8)
    assert plan.method == "ivf-sq8" and plan.nlist >= 16
    graph, cosines = graph_of(vf, plan, k=3)
    assert (graph[:200, 0] == np.arange(2000, 2200)).all()  # every planted pair found, both ways
    assert (graph[2000:, 0] == np.arange(200)).all()
    rows = np.arange(len(vectors))[:, None]
    assert np.allclose(cosines[graph >= 0], np.einsum("ij,ij->i", np.broadcast_to(vectors[:, None], (*graph.shape,
                       vectors.shape[1]))[graph >= 0], vectors[graph[graph >= 0]]), atol=1e-5)
    assert (graph != rows).all()
    sample = np.arange(0, 2200, 11)
    exact, exact_cos = exact_neighbours(vf, sample, 3)
    recall, wanted = candidate_recall(cosines, sample, exact_cos, floor=0.9)
    assert recall == 1.0 and wanted == sum(1 for r in sample if r < 200 or r >= 2000)  # the rows with a near-copy


def test_candidate_pairs_are_each_pair_once_above_the_floor_in_walk_order():
    graph = np.array([[2, 1], [0, -1], [0, 1]], dtype=np.int32)
    cosines = np.array([[0.9, 0.7], [0.7, 0.0], [0.9, 0.5]], dtype=np.float32)
    query, stored, cos = candidate_pairs(graph, cosines, floor=0.6)
    assert list(zip(query.tolist(), stored.tolist())) == [(0, 2), (0, 1)]  # (2, 0) repeats (0, 2); (2, 1) < floor
    assert cos.tolist() == pytest.approx([0.9, 0.7])


# --- when a saved run can go on ----------------------------------------------------------------------------


def test_a_saved_run_goes_on_only_over_the_same_unchanged_collection():
    state = State(key="k", total=10, sample={"a": 1, "b": 2})
    assert still_valid(state, "k", 10, {"a": 1, "b": 2})
    assert not still_valid(state, "other", 10, {"a": 1, "b": 2})  # another run (collection, owner, folders...)
    assert not still_valid(state, "k", 11, {"a": 1, "b": 2})  # rows added or removed
    assert not still_valid(state, "k", 10, {"a": 1})  # a sampled row gone
    assert not still_valid(state, "k", 10, {"a": 1, "b": 3})  # a sampled row indexed again


def test_the_verdicts_log_keeps_evidence_and_drops_a_line_cut_off(tmp_path):
    log = JudgedLog(tmp_path / "judged.jsonl")
    evidence = Evidence(GEOMETRY, inliers=50, matches=60, turned=0.0, scale=0.5, mirrored=False,
                        original_region=[0.0, 0.0, 1.0, 1.0], original_shown=1.0,
                        original_in_copy=[0.0, 0.0, 1.0, 1.0], copy_covered=1.0, similarity=0.93)
    log.append([(0, 1, Judgement(COPY, evidence)), (0, 2, Judgement(SIMILAR))], ["/gone.jpg"])
    with open(log.path, "a") as f:
        f.write('[3, 4, "co')  # interrupted in the middle of a line
    judged, unreadable = log.replay()
    assert [(q, s, j.match) for q, s, j in judged] == [(0, 1, COPY), (0, 2, SIMILAR)]
    assert judged[0][2].evidence == evidence and unreadable == ["/gone.jpg"]
    log.append([(5, 6, Judgement(SIMILAR))], [])
    assert [(q, s) for q, s, _ in log.replay()[0]] == [(0, 1), (0, 2), (5, 6)]


# --- resuming an interrupted run ---------------------------------------------------------------------------


class MemoryCollection:
    """What the walk asks of ``store.Collection``, over rows in memory; iterates in id order like Milvus's
    query iterator and understands the walk's ``id > "..."`` filter."""

    def __init__(self, vectors: np.ndarray, fail_after: int | None = None, max_page: int | None = None):
        self.config = {"dim": vectors.shape[1], "metric": "COSINE"}
        self.binary, self.name = False, "images"
        self.store = SimpleNamespace(uri="memory://")
        self.rows = {f"{i:04x}": {"id": f"{i:04x}", "vector": v, "path": f"/p/{i}.jpg", "size": 1, "mtime": 0.0,
                                  "width": 1, "height": 1, "owner": "", "indexed_at": 1}
                     for i, v in enumerate(vectors)}
        self.fail_after, self.iterated = fail_after, 0
        self.max_page, self.pages = max_page, []

    def count(self, filter=""):
        return len(self.rows)

    def get(self, ids, fields=()):
        return {i: self.rows[i] for i in ids if i in self.rows}

    def iterate(self, fields, filter="", batch_size=1000):
        after = re.search(r'id > "(\w+)"', filter)
        self.pages.append(batch_size)
        for n, i in enumerate(i for i in sorted(self.rows) if not after or i > after.group(1)):
            if self.max_page and batch_size > self.max_page and n == 2 * self.max_page:
                raise RuntimeError("grpc: trying to send message larger than max (170855941 vs. 67108864)")
            if self.fail_after is not None and self.iterated >= self.fail_after:
                raise KeyboardInterrupt
            self.iterated += 1
            yield dict(self.rows[i])


def planted_vectors() -> tuple[np.ndarray, set[frozenset]]:
    """60 unrelated rows and, for ten of them, a near-copy: ten true pairs."""
    base = unit_vectors(60, seed=3)
    near = base[:10] + 0.05 * unit_vectors(10, seed=4)
    vectors = np.concatenate([base, near / np.linalg.norm(near, axis=1, keepdims=True)])
    return vectors, {frozenset((f"{i:04x}", f"{60 + i:04x}")) for i in range(10)}


class CountingJudge:
    """Copies are the planted pairs; stops the run (as Ctrl-C would) after ``stop_after`` verdicts."""

    def __init__(self, truth: set[frozenset], stop_after: int | None = None):
        self.truth, self.stop_after, self.calls = truth, stop_after, []

    def __call__(self, query: dict, stored: dict, similarity: float) -> Judgement:
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt
        self.calls.append(frozenset((query["id"], stored["id"])))
        return Judgement(COPY if frozenset((query["id"], stored["id"])) in self.truth else SIMILAR)


def run(collection, judge, work_dir, **options):
    return pairs_mod.find_copy_pairs(collection, judge, floor=0.0, neighbours=3, work_dir=work_dir, **options)


def test_an_interrupted_judging_goes_on_without_judging_a_pair_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(pairs_mod, "PAIR_BATCH", 4)
    vectors, truth = planted_vectors()
    whole = CountingJudge(truth)
    expected = run(MemoryCollection(vectors), whole, tmp_path / "a")
    assert set(map(frozenset, expected.groups)) == truth and not list((tmp_path / "a").iterdir())

    first = CountingJudge(truth, stop_after=15)
    with pytest.raises(KeyboardInterrupt):
        run(MemoryCollection(vectors), first, tmp_path / "b")
    second = CountingJudge(truth)
    resumed = run(MemoryCollection(vectors), second, tmp_path / "b")
    assert not set(first.calls) & set(second.calls)  # nothing judged twice
    assert len(first.calls) + len(second.calls) == len(whole.calls) == resumed.pairs_judged
    assert resumed.groups == expected.groups and resumed.judged.keys() == expected.judged.keys()
    assert resumed.rows_walked == 70


def test_an_interrupted_read_goes_on_after_the_last_row_read(tmp_path, monkeypatch):
    monkeypatch.setattr(pairs_mod, "READ_BLOCK", 16)
    vectors, truth = planted_vectors()
    first = MemoryCollection(vectors, fail_after=40)
    with pytest.raises(KeyboardInterrupt):
        run(first, CountingJudge(truth), tmp_path)
    second = MemoryCollection(vectors)
    found = run(second, CountingJudge(truth), tmp_path)
    assert second.iterated == 70 - 40  # the rows read before the interruption are kept, not read again
    assert set(map(frozenset, found.groups)) == truth and found.rows_walked == 70


def test_a_changed_collection_starts_afresh_and_a_kept_work_dir_stays(tmp_path):
    vectors, truth = planted_vectors()
    run(MemoryCollection(vectors), CountingJudge(truth), tmp_path, keep_work=True)
    (work,) = tmp_path.iterdir()
    assert (work / "judged.jsonl").exists()
    changed = MemoryCollection(vectors)
    changed.rows["0000"]["indexed_at"] = 2  # sampled (the first row always is) and indexed again
    judge = CountingJudge(truth)
    run(changed, judge, tmp_path)
    assert changed.iterated == 70 and judge.calls  # read and judged again, not replayed
    assert not work.exists()


def test_a_page_too_large_for_the_server_is_halved_and_reading_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(pairs_mod, "MIN_PAGE", 4)
    vectors, truth = planted_vectors()
    collection = MemoryCollection(vectors, max_page=8)  # refuses pages over 8 rows, after a few rows
    found = pairs_mod.find_copy_pairs(collection, CountingJudge(truth), floor=0.0, neighbours=3, work_dir=tmp_path,
                                      batch_size=64)
    assert collection.pages == [64, 32, 16, 8] and collection.iterated == 70  # every row read once
    assert set(map(frozenset, found.groups)) == truth and found.rows_walked == 70
