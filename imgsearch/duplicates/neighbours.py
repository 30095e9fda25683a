"""The neighbour graph of the stored vectors: each row's nearest other rows, with exact cosines.

Instead of one Milvus search per row (18 rows/s at 1M on the 2.3.5 server, about 15 hours), the vectors are read
once and kept on disk (``VectorFile``), and the graph is built in this process with faiss:

- up to ``EXACT_UP_TO`` rows, exactly: all vectors against all, in blocks (``IndexFlatIP``, BLAS);
- above, an inverted-file index with 8-bit scalar quantisation (``IndexIVFScalarQuantizer``, inner product on
  the L2-normalised vectors, i.e. cosine): a quarter of the float32 memory, ``NLIST_PER_SQRT_ROWS * sqrt(N)``
  lists trained on a sample, ``nprobe`` lists searched per row.

Either way each row's candidates are re-ranked with exact float32 cosines from the stored vectors, so the
similarities handed on are the vectors' own, not the quantised index's. How many true neighbours the candidate
step finds is measured with ``exact_neighbours`` and ``candidate_recall`` (brute force on a sample of rows).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Up to this many rows the graph is exact. Measured on 2 busy cores with realistic vectors (benchmarks/RESULTS.md,
# duplicates): exact all-against-all costs ROWS^2 (251 s at 103k rows, so about 10 s at 20k), IVF-SQ8 with
# nprobe 16 took 39 s at 103k with recall 0.988; below 20k exact costs seconds and loses nothing.
EXACT_UP_TO = 20_000
NLIST_PER_SQRT_ROWS = 2  # lists = 2 * sqrt(rows): 2,000 at 1M (training k-means on 39 rows per list stays short)
# Lists searched per row. At 103k realistic rows (642 lists), recall of the 5 nearest against brute force:
# nprobe 8: 0.969 (17 s), 16: 0.988 (35 s), 32: 0.993 (52 s).
NPROBE = 16
TRAIN_PER_LIST = 39  # faiss's own minimum of training rows per list
EXTRA_CANDIDATES = 4  # asked beyond the neighbours wanted, so re-ranking with exact cosines can reorder them
BLOCK = 8192  # rows per search call (and per block read from disk)

# (rows done, rows to do) within one phase
StepProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class GraphPlan:
    """How the graph is built for a number of rows."""

    method: str  # "exact" or "ivf-sq8"
    rows: int
    nlist: int = 0
    nprobe: int = 0
    train_rows: int = 0

    def as_dict(self) -> dict:
        return {"method": self.method, "rows": self.rows, "nlist": self.nlist, "nprobe": self.nprobe,
                "train_rows": self.train_rows}


def plan_graph(rows: int, exact_up_to: int | None = None, nprobe: int | None = None) -> GraphPlan:
    """Exact up to ``exact_up_to`` rows (default ``EXACT_UP_TO``), else IVF-SQ8 searching ``nprobe`` lists."""
    exact_up_to = EXACT_UP_TO if exact_up_to is None else exact_up_to
    nprobe = NPROBE if nprobe is None else nprobe
    if rows <= exact_up_to:
        return GraphPlan("exact", rows)
    nlist = max(16, round(NLIST_PER_SQRT_ROWS * math.sqrt(rows)))
    return GraphPlan("ivf-sq8", rows, nlist, min(nprobe, nlist), min(rows, TRAIN_PER_LIST * nlist))


class VectorFile:
    """Rows' vectors as raw float32 on disk, appended in blocks and read back in blocks.

    Float32, not float16: the cosines handed to the verdict (and shown in its evidence, to 4 places) stay exactly
    those of the stored vectors. Reads copy just what they need, so the process's memory does not grow with the
    file.
    """

    def __init__(self, path: str | os.PathLike, dim: int):
        self.path, self.dim = Path(path), dim
        self.row_bytes = 4 * dim

    @property
    def rows(self) -> int:
        return self.path.stat().st_size // self.row_bytes if self.path.exists() else 0

    def append(self, block: np.ndarray):
        with open(self.path, "ab") as f:
            f.write(np.ascontiguousarray(block, dtype=np.float32).tobytes())

    def truncate(self, rows: int):
        """Keep the first ``rows`` (a write cut off by an interruption leaves a partial block behind)."""
        with open(self.path, "ab") as f:
            f.truncate(rows * self.row_bytes)

    def block(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start) * self.dim
        with open(self.path, "rb") as f:
            out = np.fromfile(f, dtype=np.float32, count=count, offset=start * self.row_bytes)
        return out.reshape(-1, self.dim)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The rows at ``indices`` (any order), each read with its own positioned read.

        Not through a memory map: the kernel maps the pages around each one touched (fault-around), so 82k
        random rows of a 1M-row file mapped nearly all of its 2 GB into the process (peak 3.1 GB resident while
        searching, against 0.9 GB with positioned reads)."""
        out = np.empty((len(indices), self.dim), dtype=np.float32)
        if len(indices) == 0:
            return out
        fd = os.open(self.path, os.O_RDONLY)
        try:
            order = np.argsort(indices, kind="stable")  # in file order: the disk reads forward
            for position, row in zip(order.tolist(), np.asarray(indices)[order].tolist()):
                if os.preadv(fd, [out[position]], row * self.row_bytes) != self.row_bytes:
                    raise OSError(f"{self.path}: row {row} is beyond the end of the file")
        finally:
            os.close(fd)
        return out


def _faiss():
    import faiss

    return faiss


def build_index(vectors: VectorFile, plan: GraphPlan, progress: StepProgress | None = None, seed: int = 1):
    """The faiss index the rows are searched in: exact (all vectors in memory) or trained IVF-SQ8."""
    faiss = _faiss()
    if plan.method == "exact":
        index = faiss.IndexFlatIP(vectors.dim)
    else:
        quantizer = faiss.IndexFlatIP(vectors.dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, vectors.dim, plan.nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(seed).choice(plan.rows, plan.train_rows, replace=False))
        index.train(vectors.take(sample))
        index.nprobe = plan.nprobe
    for start in range(0, plan.rows, 4 * BLOCK):
        index.add(vectors.block(start, min(plan.rows, start + 4 * BLOCK)))
        if progress:
            progress(min(plan.rows, start + 4 * BLOCK), plan.rows)
    return index


def search_block(index, vectors: VectorFile, start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows start..stop-1: each row's ``k`` nearest other rows (indices, -1 where fewer) and their exact cosines,
    best first."""
    queries = vectors.block(start, stop)
    _, found = index.search(queries, k + 1 + EXTRA_CANDIDATES)
    rows = np.arange(start, stop)[:, None]
    found = np.where(found == rows, -1, found)  # a row is not its own neighbour (identical rows are others)
    unique, inverse = np.unique(found, return_inverse=True)  # read each neighbour's vector once
    others = vectors.take(np.maximum(unique, 0))
    inverse = inverse.reshape(found.shape)
    cosines = np.empty(found.shape, dtype=np.float32)
    for column in range(found.shape[1]):  # one column at a time: a block's rows x 512 floats, not x k
        cosines[:, column] = np.einsum("ij,ij->i", queries, others[inverse[:, column]])
    cosines[found < 0] = -np.inf
    order = np.argsort(-cosines, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(found, order, axis=1)
    best_cos = np.take_along_axis(cosines, order, axis=1)
    best[~np.isfinite(best_cos)] = -1
    return best.astype(np.int32), np.where(best >= 0, best_cos, 0.0).astype(np.float32)


def exact_neighbours(vectors: VectorFile, sample: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: for the rows ``sample``, their ``k`` nearest other rows among all (indices, cosines)."""
    queries = vectors.take(sample)
    best = np.full((len(sample), k), -1, dtype=np.int64)
    best_cos = np.full((len(sample), k), -np.inf, dtype=np.float32)
    for start in range(0, vectors.rows, 4 * BLOCK):
        block = vectors.block(start, min(vectors.rows, start + 4 * BLOCK))
        cos = queries @ block.T
        cos[sample[:, None] == np.arange(start, start + len(block))[None, :]] = -np.inf
        if cos.shape[1] > k:  # this block's best k of each row first: a partial sort, not a full one
            part = np.argpartition(-cos, k, axis=1)[:, :k]
            cos, ids = np.take_along_axis(cos, part, axis=1), part + start
        else:
            ids = np.broadcast_to(np.arange(start, start + len(block)), cos.shape)
        all_cos, all_ids = np.concatenate([best_cos, cos], axis=1), np.concatenate([best, ids], axis=1)
        top = np.argsort(-all_cos, axis=1, kind="stable")[:, :k]
        best, best_cos = np.take_along_axis(all_ids, top, axis=1), np.take_along_axis(all_cos, top, axis=1)
    return best, best_cos


def candidate_recall(cosines: np.ndarray, sample: np.ndarray, exact_cos: np.ndarray,
                     floor: float) -> tuple[float, int]:
    """Of the exact nearest neighbours at or above ``floor`` of the sampled rows (``exact_cos``, best first), the
    share the graph holds, and how many there were. Counted by cosine: the graph's exact cosines are the true
    ones, so a row holding m neighbours at or above its m-th true cosine holds its m true neighbours (or, for tied
    rows such as identical files, others exactly as near)."""
    wanted = found = 0
    for row, true in zip(sample, exact_cos):
        true = true[true >= floor]
        if len(true):
            wanted += len(true)
            found += min(len(true), int((cosines[row] >= true[-1] - 1e-6).sum()))
    return (found / wanted if wanted else 1.0), wanted


def candidate_pairs(graph: np.ndarray, cosines: np.ndarray,
                    floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of rows the graph links at or above ``floor``, once, in walk order (row by row, each row's
    neighbours best first), as (query rows, stored rows, cosines); a pair keeps the orientation it first had."""
    rows, k = graph.shape
    query = np.repeat(np.arange(rows, dtype=np.int64), k)
    stored, cos = graph.ravel().astype(np.int64), cosines.ravel()
    keep = (stored >= 0) & (cos >= floor)
    query, stored, cos = query[keep], stored[keep], cos[keep]
    key = np.minimum(query, stored) * rows + np.maximum(query, stored)
    _, first = np.unique(key, return_index=True)
    first.sort()
    return query[first], stored[first], cos[first]
