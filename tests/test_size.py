"""size: count parsing, the sizing formulas (expected numbers worked out by hand), node shapes, CLI."""

import json

import pytest
from helpers import run_cli

from imgsearch import sizing
from imgsearch.cli import EXIT_FATAL

GIB = 1024**3
GB = 10**9


@pytest.mark.parametrize(
    "text, count",
    [
        ("1e9", 1_000_000_000),
        ("1E6", 1_000_000),
        ("1e+3", 1_000),
        ("1_000_000", 1_000_000),
        ("1,000", 1_000),
        ("500M", 500_000_000),
        ("500m", 500_000_000),
        ("2.5B", 2_500_000_000),
        ("2.5b", 2_500_000_000),
        ("1G", 1_000_000_000),
        ("10k", 10_000),
        ("10K", 10_000),
        (".5k", 500),
        ("1T", 10**12),
        ("1.5e3", 1_500),
        (" 42 ", 42),
        ("1", 1),
    ],
)
def test_parse_count(text, count):
    assert sizing.parse_count(text) == count


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "not a count"),
        ("banana", "not a count"),
        ("10x", "not a count"),
        ("1kk", "not a count"),
        ("k", "not a count"),
        ("-5", "not a count"),
        ("1e-3", "not a count"),
        ("nan", "not a count"),
        ("inf", "not a count"),
        ("1.5", "whole number"),
        ("1.0001k", "whole number"),
        ("0", "at least 1"),
        ("0k", "at least 1"),
        ("1e16", "beyond planning"),
        ("1e999999999", "not a count"),
    ],
)
def test_parse_count_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        sizing.parse_count(text)


@pytest.mark.parametrize("dim, m", [(512, 64), (128, 16), (100, 10), (1000, 125), (7, 1), (4096, 512)])
def test_pq_subquantizers_divide_dim(dim, m):
    assert sizing.pq_subquantizers(dim) == m and dim % m == 0


# One million 512-d vectors: 1e6 x 512 x 4 = 2,048,000,000 bytes raw (2.0 GB).
RAW_1M = 2_048_000_000
CENTROIDS = 1024 * 512 * 4  # 2,097,152


@pytest.mark.parametrize(
    "index, memory",
    [
        ("FLAT", RAW_1M),
        ("IVF_FLAT", RAW_1M + CENTROIDS),  # 2,050,097,152
        ("IVF_SQ8", 512_000_000 + CENTROIDS),  # raw / 4 + centroids
        ("IVF_PQ", CENTROIDS + 1_000_000 * 64 + 1_000_000 * 8),  # 64-byte codes + int64 ids: 74,097,152
        ("HNSW", 2_176_000_000),  # 1.0625 x raw: 1 + 2 x 16 / 512
        ("DISKANN", 512_000_000),  # raw / 4
    ],
)
def test_index_memory_one_million(index, memory):
    e = sizing.estimate(1_000_000, 512, index)
    assert e.raw_bytes == RAW_1M
    assert e.index_memory_bytes == memory


def test_loaded_memory_flat_one_million():
    e = sizing.estimate(1_000_000, 512, "FLAT")
    assert e.segment_bytes == GIB  # raw is above the 1024 MB segment cap
    # (2,048,000,000 + 2 x 1,073,741,824) x 1.15 = 4,824,806,195.2, rounded up
    assert e.loaded_memory_bytes == 4_824_806_196
    assert e.total_memory_bytes == e.loaded_memory_bytes
    assert e.local_disk_bytes == 0
    assert e.object_storage_bytes == 2 * RAW_1M  # binlogs + FLAT index file


def test_loaded_memory_hnsw_one_million():
    e = sizing.estimate(1_000_000, 512, "hnsw")  # index names are case-insensitive
    assert e.index == "HNSW"
    # (2,176,000,000 + 2,147,483,648) x 1.15 = 4,972,006,195.2, rounded up
    assert e.loaded_memory_bytes == 4_972_006_196
    assert e.loaded_memory_bytes == pytest.approx((1.0625 * RAW_1M + 2 * GIB) * 1.15, abs=1)


def test_diskann_one_million():
    e = sizing.estimate(1_000_000, 512, "DISKANN")
    assert e.loaded_memory_bytes == 588_800_000  # 512,000,000 x 1.15, no segments
    assert e.local_disk_bytes == 2_272_000_000  # (1 + 56/512) x raw = raw + 224,000,000
    assert e.object_storage_bytes == RAW_1M + 512_000_000 + 2_272_000_000


def test_small_collection_segment_is_the_raw_data():
    e = sizing.estimate(1_000, 512, "FLAT")
    assert e.raw_bytes == e.segment_bytes == 2_048_000
    assert e.loaded_memory_bytes == 7_065_600  # (2,048,000 + 2 x 2,048,000) x 1.15


def test_one_billion_reads_as_two_terabytes():
    e = sizing.estimate(10**9, 512, "FLAT")
    assert e.raw_bytes == 2_048_000_000_000
    assert sizing.human_bytes(e.raw_bytes) == "2.0 TB"
    assert sizing.human_bytes(RAW_1M) == "2.0 GB"


def test_replicas_multiply_memory_and_local_disk():
    one = sizing.estimate(10_000_000, 512, "DISKANN")
    three = sizing.estimate(10_000_000, 512, "DISKANN", replicas=3)
    assert three.loaded_memory_bytes == one.loaded_memory_bytes
    assert three.total_memory_bytes == 3 * one.loaded_memory_bytes
    assert three.local_disk_bytes == 3 * one.local_disk_bytes
    assert three.object_storage_bytes == one.object_storage_bytes  # persisted once


def test_nlist_and_dim_feed_the_centroids():
    e = sizing.estimate(1_000, 128, "IVF_FLAT", nlist=4096)
    assert e.index_memory_bytes == 1_000 * 128 * 4 + 4096 * 128 * 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown index"):
        sizing.estimate(1000, 512, "ANNOY")
    with pytest.raises(ValueError, match="at least 1"):
        sizing.estimate(0, 512, "FLAT")


@pytest.mark.parametrize(
    "loaded, replicas, mode, count, cores, memory_gb",
    [
        (1, 1, "standalone", 1, 4, 8),
        (8 * GB, 1, "standalone", 1, 4, 8),
        (8 * GB + 1, 1, "standalone", 1, 4, 16),
        (16 * GB, 1, "standalone", 1, 4, 16),
        (16 * GB + 1, 1, "standalone", 1, 8, 32),
        (33 * GB, 1, "standalone", 1, 16, 64),
        (96 * GB, 1, "standalone", 1, 24, 96),
        (96 * GB + 1, 1, "cluster", 4, 8, 32),  # ceil(96.000000001 / 32)
        (512 * GB, 1, "cluster", 16, 8, 32),
        (512 * GB + 1, 1, "cluster", 9, 16, 64),
        (2048 * GB, 1, "cluster", 32, 16, 64),
        (2048 * GB + 1, 1, "cluster", 17, 32, 128),
        (10 * GB, 2, "cluster", 2, 8, 32),  # replicas need their own query nodes
        (40 * GB, 3, "cluster", 6, 8, 32),  # 120 GB in all; 2 nodes of 32 GB per replica
    ],
)
def test_node_shape(loaded, replicas, mode, count, cores, memory_gb):
    assert sizing.node_shape(loaded, replicas) == sizing.NodeShape(mode, count, cores, memory_gb)


def test_human_units():
    assert sizing.human_bytes(999) == "999 B"
    assert sizing.human_bytes(20_480_000) == "20.5 MB"
    assert sizing.human_bytes(218_000_000_000) == "218 GB"
    assert sizing.human_bytes(2 * 10**15) == "2.0 PB"
    assert [sizing.human_count(10**k) for k in (0, 3, 6, 9)] == ["1", "1k", "1M", "1B"]
    assert sizing.human_count(2_500_000_000) == "2.5B"


# --- CLI -------------------------------------------------------------------------------------


def test_cli_vectors_json_has_every_index():
    result = run_cli("size", "--vectors", "1e9", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["index"] for r in rows] == list(sizing.INDEXES)
    assert all(r["vectors"] == 10**9 and r["raw_bytes"] == 2_048_000_000_000 for r in rows)
    flat = rows[0]
    assert flat["node"] == {"mode": "cluster", "count": 19, "cores": 32, "memory_gb": 128}


def test_cli_ladder_defaults_to_hnsw():
    rows = json.loads(run_cli("size", "--json").output)
    assert [r["vectors"] for r in rows] == [10**k for k in range(3, 10)]
    assert {r["index"] for r in rows} == {"HNSW"}


def test_cli_one_index_one_count():
    result = run_cli("size", "-n", "1_000_000", "--index", "ivf_pq", "--dim", "256", "--replicas", "2", "--json")
    (row,) = json.loads(result.output)
    assert (row["index"], row["dim"], row["replicas"]) == ("IVF_PQ", 256, 2)
    assert row["total_memory_bytes"] == 2 * row["loaded_memory_bytes"]


def test_cli_table():
    result = run_cli("size", "--vectors", "1e6")
    assert result.exit_code == 0
    out = result.output
    assert "1,000,000 x 512-d float32 vectors (raw 2.0 GB)" in out
    assert "DISKANN" in out and "Local" in out and "standalone" in out


def test_cli_ladder_table():
    out = run_cli("size").output
    assert "HNSW" in out and "1k" in out and "1B" in out and "2.0 TB" in out
    assert "Local" not in out  # no DISKANN, no SSD column


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vectors", "lots"], "not a count"),
        (["--vectors", "1.5"], "whole number"),
        (["--vectors", "0"], "at least 1"),
        (["--index", "ANNOY"], "ANNOY"),
        (["--dim", "0"], "--dim"),
        (["--replicas", "0"], "--replicas"),
    ],
)
def test_cli_bad_values(args, message):
    result = run_cli("size", *args)
    assert result.exit_code == EXIT_FATAL
    assert message in result.output
