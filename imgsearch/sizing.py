"""Capacity planning for Milvus: memory, disk and node shape for N float32 vectors.

The formulas follow Milvus's sizing tool. Sizes are whole bytes; machine sizes are decimal GB
(10^9 bytes), which errs on the safe side of the GiB that machines are actually sold in.
Stdlib only, so ``imgsearch size`` stays instant.
"""

import math
import re
from dataclasses import dataclass
from decimal import Decimal, DecimalException

INDEXES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "DISKANN")

FLOAT_BYTES = 4
DEFAULT_NLIST = 1024  # IVF clusters, a common default; Milvus's docs suggest about 4 x sqrt(N)
HNSW_M = 16  # graph degree; layer 0 keeps 2M neighbour ids of 4 bytes per vector
DISKANN_MAX_DEGREE = 56  # Milvus's default; the on-disk graph keeps that many 4-byte ids per vector
ID_BYTES = 8  # int64 primary keys kept beside IVF_PQ codes
PQ_CODE_BITS = 8  # one byte per sub-quantizer code
MAX_SEGMENT_BYTES = 1024 * 2**20  # dataCoord.segment.maxSize default: 1024 MB (MiB)
LOAD_OVERHEAD_PERCENT = 115  # loaded memory = 1.15 x what the data needs

GB = 10**9
STANDALONE_MAX_GB = 96  # above this, or with replicas, plan a cluster of query nodes
# (largest total loaded memory in GB, cores and GB of each query node); the last row has no limit.
QUERY_NODE_SHAPES = ((512, 8, 32), (2048, 16, 64), (None, 32, 128))

MAX_VECTORS = 10**15  # far beyond any single Milvus deployment; keeps nonsense like 1e999999 out
_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_COUNT = re.compile(r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:e\+?\d+)?)(?P<suffix>[kmbgt]?)")


def parse_count(text):
    """A vector count from '1e9', '1_000_000', '500M', '2.5B', '10k' (k, M, B or G, T; any case).

    Raises ValueError with a message fit for the user.
    """
    cleaned = str(text).strip().replace("_", "").replace(",", "").lower()
    match = _COUNT.fullmatch(cleaned)
    if not match:
        raise ValueError(f"{text!r} is not a count; try 1000000, 1_000_000, 1e6, 10k, 500M or 2.5B")
    try:
        value = Decimal(match["number"]) * _SUFFIXES[match["suffix"]]
    except DecimalException:
        raise ValueError(f"{text!r} is not a count") from None
    if value > MAX_VECTORS:
        raise ValueError(f"{text!r} is more than 10^15 vectors; that is beyond planning")
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of vectors")
    if value < 1:
        raise ValueError(f"{text!r}: need at least 1 vector")
    return int(value)


def pq_subquantizers(dim):
    """m for IVF_PQ: the largest divisor of dim up to dim/8 (64 for 512-d: 64-byte codes, 32x smaller)."""
    return next(m for m in range(max(1, dim // 8), 0, -1) if dim % m == 0)


@dataclass(frozen=True)
class NodeShape:
    mode: str  # "standalone" or "cluster"
    count: int  # nodes (query nodes for a cluster)
    cores: int  # per node
    memory_gb: int  # per node


@dataclass(frozen=True)
class SizeEstimate:
    vectors: int
    dim: int
    index: str
    replicas: int
    nlist: int
    raw_bytes: int  # the vectors themselves: N x dim x 4
    index_memory_bytes: int  # the index held in memory (DISKANN: its PQ codes only)
    segment_bytes: int  # one sealed segment: min(raw, 1024 MB)
    loaded_memory_bytes: int  # one replica loaded, with headroom
    total_memory_bytes: int  # all replicas
    local_disk_bytes: int  # DISKANN graph on query nodes' SSDs, all replicas; 0 for the others
    object_storage_bytes: int  # persisted: raw binlogs + index files
    node: NodeShape


def index_memory(index, n, dim, nlist=DEFAULT_NLIST):
    """Bytes the index takes in memory for n vectors of dim floats."""
    raw = n * dim * FLOAT_BYTES
    centroids = nlist * dim * FLOAT_BYTES
    if index == "FLAT":
        return raw
    if index == "IVF_FLAT":
        return raw + centroids
    if index == "IVF_SQ8":
        return raw // 4 + centroids  # one byte per dimension instead of four
    if index == "IVF_PQ":
        # PQ codebooks (256 x dim x 4 bytes: 0.5 MB at 512-d) are left out as noise.
        return centroids + n * pq_subquantizers(dim) * PQ_CODE_BITS // 8 + n * ID_BYTES
    if index == "HNSW":
        return raw + n * 2 * HNSW_M * 4  # = (1 + 2M/dim) x raw
    if index == "DISKANN":
        return raw // 4  # PQ codes stay in memory; the graph and full vectors live on SSD
    raise ValueError(f"unknown index {index!r}; choose from {', '.join(INDEXES)}")


def diskann_disk(n, dim):
    """Bytes of the DISKANN graph + full vectors on local SSD: (1 + maxDegree/dim) x raw."""
    return n * dim * FLOAT_BYTES + n * DISKANN_MAX_DEGREE * 4


def node_shape(loaded_memory_bytes, replicas=1):
    """Suggested machines for `replicas` copies of this much loaded memory.

    Up to 96 GB in all with one replica: one standalone node of 8, 16 or the next multiple of
    32 GB, with 1 core per 4 GB (the query nodes' ratio) and at least 4 (Milvus's minimum).
    Beyond that, or with replicas (each replica needs its own query nodes), a cluster whose node
    size follows the total: 8 cores/32 GB up to 512 GB, 16/64 up to 2048 GB, 32/128 above; each
    replica gets ceil(loaded / node memory) of them. Coordinators, data and index nodes, etcd,
    object storage and the message queue come on top.
    """
    replica_gb = loaded_memory_bytes / GB
    total_gb = replica_gb * replicas
    if total_gb <= STANDALONE_MAX_GB and replicas == 1:
        memory_gb = 8 if total_gb <= 8 else 16 if total_gb <= 16 else 32 * math.ceil(total_gb / 32)
        return NodeShape("standalone", 1, max(4, memory_gb // 4), memory_gb)
    for limit_gb, cores, memory_gb in QUERY_NODE_SHAPES:
        if limit_gb is None or total_gb <= limit_gb:
            return NodeShape("cluster", replicas * math.ceil(replica_gb / memory_gb), cores, memory_gb)


def estimate(n, dim=512, index="HNSW", replicas=1, nlist=DEFAULT_NLIST):
    """A SizeEstimate for n vectors of dim float32s under one index type, loaded `replicas` times."""
    index = index.upper()
    if n < 1 or dim < 1 or replicas < 1 or nlist < 1:
        raise ValueError("vectors, dim, replicas and nlist must all be at least 1")
    raw = n * dim * FLOAT_BYTES
    in_memory = index_memory(index, n, dim, nlist)
    # Milvus seals segments at 1024 MB of raw data, so a small collection is one smaller segment.
    # Loading needs room for about two segments in flight (growing + sealing/compacting).
    segment = min(raw, MAX_SEGMENT_BYTES)
    if index == "DISKANN":
        loaded = _with_overhead(in_memory)  # raw vectors stay on SSD, not in memory
        disk_index = diskann_disk(n, dim)
        local_disk = disk_index * replicas
        index_files = in_memory + disk_index
    else:
        loaded = _with_overhead(in_memory + 2 * segment)
        local_disk = 0
        index_files = in_memory  # the serialized index is about as big as in memory
    total = loaded * replicas
    return SizeEstimate(
        vectors=n,
        dim=dim,
        index=index,
        replicas=replicas,
        nlist=nlist,
        raw_bytes=raw,
        index_memory_bytes=in_memory,
        segment_bytes=segment,
        loaded_memory_bytes=loaded,
        total_memory_bytes=total,
        local_disk_bytes=local_disk,
        object_storage_bytes=raw + index_files,
        node=node_shape(loaded, replicas),
    )


def _with_overhead(size):
    return -(-size * LOAD_OVERHEAD_PERCENT // 100)  # x 1.15, rounded up, in integers


def human_count(n):
    """Short counts for table rows: 1000 -> '1k', 2_500_000_000 -> '2.5B'."""
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def human_bytes(size):
    """Decimal units, so 2,048,000,000 bytes reads '2.0 GB' and 2.048e12 reads '2.0 TB'."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            break
        size /= 1000
    if unit == "B":
        return f"{size} B"
    return f"{size:.1f} {unit}" if size < 100 else f"{size:.0f} {unit}"
