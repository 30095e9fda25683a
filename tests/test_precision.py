"""--precision: fp32 and bf16 forced on real photos, `auto` over recorded CPUs, the probes, the CLI and env var.

bf16 runs emulated on a CPU without bfloat16 units (slow), so these tests use three photos; speed is a benchmark
matter (benchmarks/throughput.py), never asserted here. int8 has its own file (tests/test_int8.py); the pure rules
are in tests/unit/test_precision_rules.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Before TensorFlow: pymilvus's first import resets logging, and absl's handler then closes the stream it was made
# with (pytest's captured stderr), failing the CLI tests after it. Other modules import it through imgsearch.store.
import pymilvus  # noqa: F401
import pytest
from helpers import run_cli

from imgsearch import cpu, precision
from imgsearch.cli import EXIT_FATAL, EXIT_OK
from imgsearch.cli import options as cli_options
from imgsearch.features import VGG16Features

DATA = Path(__file__).parent / "data"
SAPPHIRE_RAPIDS = DATA / "cpuinfo_sapphire_rapids_amx.txt"  # Xeon Platinum 8488C: AMX-BF16 + AVX512-BF16
ZEN4 = DATA / "cpuinfo_epyc_avx2.txt"  # recorded AMD EPYC Zen 4 (family 25, model 17): AVX512-BF16, no AMX
MILAN = DATA / "cpuinfo_epyc_milan_avx2_only.txt"  # AMD EPYC Zen 3: AVX2, no AVX-512 (the machine this was made on)
GRAVITON2 = DATA / "cpuinfo_graviton2_arm64.txt"  # Neoverse N1: NEON, no BF16
GRAVITON3 = DATA / "cpuinfo_graviton3_arm64_bf16.txt"  # Neoverse V1: BF16 in its Features
PHOTOS = ("coffee", "astronaut", "rocket")


def flags_of(path):
    return cpu.parse_cpuinfo(path.read_text())


# --- the `auto` decision ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample, expected",
    [(SAPPHIRE_RAPIDS, "int8"), (ZEN4, "int8"), (MILAN, cpu.PROBE), (GRAVITON2, cpu.PROBE), (GRAVITON3, cpu.PROBE)],
)
def test_auto_from_recorded_cpus(sample, expected):
    chosen, reason = cpu.choose_precision(flags_of(sample))
    assert chosen == expected and reason


def test_flags_alone_never_pick_emulated_bf16():
    # Where int8 does not pay (a probe said so), no bfloat16 units means fp32.
    assert cpu.choose_precision(flags_of(MILAN), int8_speedup=1.0) == (
        "fp32", "AVX2 without VNNI (int8 through vpmaddubsw): int8 measured 1.00x the fp32 rate on this CPU, not "
        "worth it; no bfloat16 units (AMX-BF16, AVX512-BF16): bf16 would be emulated, slower"
    )
    # AMX decides without a measurement, even a bad one: the flags tell (int8 on AMX-INT8, before bf16).
    assert cpu.choose_precision(flags_of(SAPPHIRE_RAPIDS), probe_speedup=0.5, int8_speedup=0.5)[0] == "int8"
    assert cpu.choose_precision({"amx_bf16", "avx2"}, probe_speedup=0.5, int8_speedup=0.5)[0] == "bf16"
    assert cpu.choose_precision(None)[0] == cpu.PROBE  # unreadable flags: only a measurement can tell


# Zen 4 without its VNNI flag: AVX512-BF16 alone (a CPU the flags cannot settle), so the bf16 rules are reached.
ZEN4_WITHOUT_VNNI = flags_of(ZEN4) - {"avx512_vnni"}


@pytest.mark.parametrize(
    "speedup, expected", [(2.1, "bf16"), (cpu.BF16_MIN_SPEEDUP, "bf16"), (1.1, "fp32"), (0.4, "fp32")]
)
def test_probe_settles_avx512_bf16_without_amx(speedup, expected):
    for flags in (ZEN4_WITHOUT_VNNI, flags_of(GRAVITON3), None):
        chosen, reason = cpu.choose_precision(flags, probe_speedup=speedup, int8_speedup=1.0)
        assert chosen == expected and f"{speedup:.2f}x" in reason


def test_recorded_probe_is_used_for_this_machine_only(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGSEARCH_CACHE_DIR", str(tmp_path))
    assert precision.auto_precision(ZEN4_WITHOUT_VNNI, measure=False)[0] == cpu.PROBE
    (tmp_path / precision.PROBE_CACHE).write_text(
        json.dumps({"another CPU | tensorflow 0": {"speedup": 0.5}, precision.probe_key(): {"speedup": 1.9},
                    precision.int8_probe_key(): {"speedup": 1.0}})
    )
    assert precision.auto_precision(ZEN4_WITHOUT_VNNI, measure=False)[0] == "bf16"
    # A recorded cpuinfo of another machine is never judged by this machine's probe.
    assert precision.auto_precision(ZEN4_WITHOUT_VNNI, this_machine=False)[0] == cpu.PROBE
    (tmp_path / precision.PROBE_CACHE).write_text("not json")
    assert precision.auto_precision(ZEN4_WITHOUT_VNNI, measure=False)[0] == cpu.PROBE


@pytest.mark.parametrize("name, key, measure", [
    ("bf16", precision.probe_key, precision.measure_probe),
    ("int8", precision.int8_probe_key, precision.measure_int8_probe),
])
def test_probe_measures_once_and_records_it(tmp_path, monkeypatch, name, key, measure):
    """Each real probe on this CPU (bf16 about 2 s in TensorFlow, int8 about 1 s in ONNX Runtime)."""
    monkeypatch.setenv("IMGSEARCH_CACHE_DIR", str(tmp_path))
    if name == "bf16":  # int8 recorded as not paying, so that the bf16 probe is reached
        (tmp_path / precision.PROBE_CACHE).write_text(json.dumps({precision.int8_probe_key(): {"speedup": 1.0}}))
        flags = ZEN4_WITHOUT_VNNI
    else:
        flags = flags_of(MILAN)
    chosen, reason = precision.auto_precision(flags)
    recorded = json.loads((tmp_path / precision.PROBE_CACHE).read_text())[key()]
    assert recorded["fp32_ms"] > 0 and recorded[f"{name}_ms"] > 0
    assert recorded["speedup"] == pytest.approx(recorded["fp32_ms"] / recorded[f"{name}_ms"], rel=0.01)
    assert f"{recorded['speedup']:.2f}x" in reason
    # The second time costs nothing: the same answer from the record, even where measuring is not allowed.
    assert precision.auto_precision(flags, measure=False) == (chosen, reason)


def test_forced_precision_and_unknown_value():
    assert precision.resolve("fp32")[0] == "fp32"
    chosen, reason = precision.resolve("bf16")
    assert chosen == "bf16"
    if cpu.choose_precision(precision._this_cpu_flags())[0] == "fp32":
        assert "emulated" in reason
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, int8"):
        VGG16Features(precision="fp16")


def test_cli_choices_match_the_library():
    assert cli_options.PRECISIONS == precision.PRECISIONS


# --- both precisions on real photos -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_bf16(vgg_weights):
    embedder = VGG16Features(weights=str(vgg_weights), precision="bf16")
    embedder.model  # noqa: B018
    return embedder


def test_bf16_and_fp32_vectors_agree_per_photo(vgg_weights, vgg_bf16, photo_dir):
    import keras

    from imgsearch.vgg16_onnx import OnnxVGG16

    fp32 = VGG16Features(weights=str(vgg_weights), precision="fp32")
    sources = [photo_dir / f"{name}.jpg" for name in PHOTOS]
    a = np.stack([r.vector for batch in fp32.embed_sources(sources) for r in batch])
    b = np.stack([r.vector for batch in vgg_bf16.embed_sources(sources) for r in batch])
    assert fp32.precision_used == "fp32" and vgg_bf16.precision_used == "bf16"
    # The models really differ: fp32 runs in ONNX Runtime, bf16 in Keras computing in bfloat16.
    assert isinstance(fp32.model, OnnxVGG16) and fp32.model.precision == "fp32"
    assert vgg_bf16.model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert vgg_bf16.model.get_layer("block1_conv1").kernel.dtype == "float32"  # weights stay float32
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing else is built in bf16
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(PHOTOS, cosines))
    assert not np.array_equal(a, b)
    # Each photo is still nearest its own fp32 vector, by far.
    assert list((b @ a.T).argmax(axis=1)) == [0, 1, 2]


def test_policy_is_restored_when_the_build_fails():
    import keras

    with pytest.raises(RuntimeError), precision.keras_policy("bf16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        raise RuntimeError("the build failed")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_precision_is_not_part_of_the_collection_config(vgg_weights):
    configs = [VGG16Features(weights=str(vgg_weights), precision=p).config() for p in precision.PRECISIONS]
    assert all(c == configs[0] for c in configs) and "precision" not in configs[0]


# --- the CLI: option, env var, one collection for both ------------------------------------------------------


def _invoke(vgg_weights, *args, **env):
    return run_cli(*args, weights=vgg_weights, env=env)


def test_fp32_collection_searched_with_bf16_queries(vgg_weights, photo_dir, tmp_path, milvus):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        (folder / f"{name}.jpg").write_bytes((photo_dir / f"{name}.jpg").read_bytes())
    where = ["--uri", milvus.uri, "--collection", milvus.collection]
    result = _invoke(vgg_weights, "index", str(folder), *where, "--precision", "fp32", "--json")
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["new"] == 3 and summary["precision"] == "fp32"

    # bf16 from the environment: no config refusal, and every photo finds its fp32 row at rank 1.
    queries = [str(folder / f"{name}.jpg") for name in PHOTOS]
    result = _invoke(vgg_weights, "search", *queries, *where, "--json", "-k", "2", IMGSEARCH_PRECISION="bf16")
    assert result.exit_code == EXIT_OK, result.output
    for line, query in zip(result.stdout.splitlines(), queries):
        hits = json.loads(line)["results"]
        assert hits[0]["path"] == query and hits[0]["similarity"] >= 0.999

    # Indexing more in bf16 goes into the same collection; the option wins over the environment.
    (folder / "camera.jpg").write_bytes((photo_dir / "camera.jpg").read_bytes())
    result = _invoke(vgg_weights, "index", str(folder), *where, "--precision", "bf16", "--json",
                     IMGSEARCH_PRECISION="fp32")
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["new"], summary["unchanged"], summary["rows"], summary["precision"]) == (1, 3, 4, "bf16")


def test_bad_precision_is_a_one_line_usage_error(vgg_weights, photo_dir):
    result = _invoke(vgg_weights, "extract", str(photo_dir / "coffee.jpg"), IMGSEARCH_PRECISION="fp16")
    assert result.exit_code == EXIT_FATAL
    assert "Invalid value for '--precision': 'fp16' is not one of 'auto', 'fp32', 'bf16', 'int8'." in result.output
    assert "Traceback" not in result.output
    for command in ("index", "search", "extract", "demo"):
        assert "--precision [auto|fp32|bf16|int8]" in _invoke(vgg_weights, command, "--help").output


def test_extract_in_each_precision(vgg_weights, photo_dir):
    photo = str(photo_dir / "coffee.jpg")
    vectors = {}
    for p in ("fp32", "bf16", "int8"):
        result = _invoke(vgg_weights, "extract", photo, "--json", "--precision", p)
        assert result.exit_code == EXIT_OK, result.output
        vectors[p] = np.array(json.loads(result.stdout)["vector"])
    assert float(vectors["fp32"] @ vectors["bf16"]) >= 0.999
    assert float(vectors["fp32"] @ vectors["int8"]) >= 0.99  # tests/test_int8.py: INT8_MIN_COSINE


# --- check-cpu ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample, expected", [(SAPPHIRE_RAPIDS, "int8"), (ZEN4, "int8"), (MILAN, "probe"), (GRAVITON2, "probe")]
)
def test_check_cpu_shows_the_auto_precision(sample, expected, tmp_path):
    # Even with a probe recorded on this machine, another machine's cpuinfo is judged by its flags alone.
    (tmp_path / precision.PROBE_CACHE).write_text(json.dumps({precision.probe_key(): {"speedup": 3.0}}))
    env = {"IMGSEARCH_CACHE_DIR": str(tmp_path)}
    result = run_cli("check-cpu", "--cpuinfo", sample, "--json", env=env)
    report = json.loads(result.stdout)
    assert report["precision"] == expected and report["precision_reason"]
    table = run_cli("check-cpu", "--cpuinfo", sample, env=env).stdout
    assert f"Precision (--precision auto): {expected}:" in " ".join(table.split())


def test_check_cpu_on_this_machine_uses_its_recorded_probe(tmp_path):
    flags, _ = cpu.read_cpu_flags()
    env = {"IMGSEARCH_CACHE_DIR": str(tmp_path)}
    (tmp_path / precision.PROBE_CACHE).write_text(json.dumps({precision.probe_key(): {"speedup": 3.0},
                                                               precision.int8_probe_key(): {"speedup": 1.0}}))
    report = json.loads(run_cli("check-cpu", "--json", env=env).stdout)
    assert (report["precision"], report["precision_reason"]) == cpu.choose_precision(flags, 3.0, 1.0)
