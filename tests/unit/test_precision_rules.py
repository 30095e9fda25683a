"""The rules of `--precision auto` and of the cached ONNX models, directly: no model, no Milvus, no timing.

Recorded /proc/cpuinfo files of real machines (tests/data) and flag sets; the probes are stand-ins that record
that they ran, so which measurement runs when is tested without measuring anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgsearch import cpu, precision
from imgsearch.weights import onnx_cache
from imgsearch.weights.onnx_cache import Expected, ModelSidecar, check_model, ensure_model

DATA = Path(__file__).resolve().parents[1] / "data"


def flags_of(name):
    return cpu.parse_cpuinfo((DATA / name).read_text()) or None


ZEN4 = flags_of("cpuinfo_epyc_avx2.txt")  # AVX512-VNNI + AVX512-BF16, no AMX (this machine's kind)
SAPPHIRE_RAPIDS = flags_of("cpuinfo_sapphire_rapids_amx.txt")  # AMX-INT8 + AMX-BF16
MILAN = flags_of("cpuinfo_epyc_milan_avx2_only.txt")  # AVX2, no VNNI, no AVX-512
GRAVITON2 = flags_of("cpuinfo_graviton2_arm64.txt")  # NEON with dot products (asimddp), no BF16
GRAVITON3 = flags_of("cpuinfo_graviton3_arm64_bf16.txt")  # asimddp + BF16
SANDY_BRIDGE = flags_of("cpuinfo_sandybridge_no_avx2.txt")


@pytest.mark.parametrize("flags, expected", [
    (SAPPHIRE_RAPIDS, "int8"), (ZEN4, "int8"), (MILAN, cpu.PROBE), (GRAVITON2, cpu.PROBE), (GRAVITON3, cpu.PROBE),
    (SANDY_BRIDGE, "fp32"), (None, cpu.PROBE),
])
def test_flags_alone(flags, expected):
    chosen, reason = cpu.choose_precision(flags)
    assert chosen == expected and reason


def test_int8_from_the_flags_needs_no_measurement_and_ignores_a_bad_one():
    for flags in (ZEN4, SAPPHIRE_RAPIDS, {"avx2", "avx_vnni"}):  # AVX-VNNI: desktops since Alder Lake
        assert cpu.choose_precision(flags, probe_speedup=3.0, int8_speedup=0.5)[0] == "int8"
        assert not cpu.int8_needs_probe(flags)
    assert "AMX-INT8" in cpu.choose_precision(SAPPHIRE_RAPIDS)[1]
    assert "AVX512-VNNI" in cpu.choose_precision(ZEN4)[1]


@pytest.mark.parametrize("speedup, expected", [
    (1.9, "int8"), (cpu.INT8_MIN_SPEEDUP, "int8"), (cpu.INT8_MIN_SPEEDUP - 0.01, "fp32"), (0.7, "fp32"),
])
def test_avx2_without_vnni_is_settled_by_the_int8_probe(speedup, expected):
    assert cpu.int8_needs_probe(MILAN)
    chosen, reason = cpu.choose_precision(MILAN, int8_speedup=speedup)
    assert chosen == expected and f"{speedup:.2f}x" in reason
    if expected == "fp32":  # and why not bf16 either
        assert "bf16 would be emulated" in reason


def test_int8_loses_then_bf16_is_asked():
    # ARM64 with BF16: int8 first; where it does not pay, the bf16 probe decides.
    assert cpu.choose_precision(GRAVITON3, int8_speedup=1.0)[0] == cpu.PROBE
    assert cpu.choose_precision(GRAVITON3, probe_speedup=1.8, int8_speedup=1.0)[0] == "bf16"
    assert cpu.choose_precision(GRAVITON3, probe_speedup=1.8, int8_speedup=2.0)[0] == "int8"
    assert cpu.choose_precision(None, probe_speedup=1.0, int8_speedup=1.0)[0] == "fp32"


def test_no_avx2_never_int8():
    assert not cpu.int8_needs_probe(SANDY_BRIDGE)
    assert cpu.choose_precision(SANDY_BRIDGE, int8_speedup=5.0)[0] == "fp32"
    assert cpu.int8_choice(SANDY_BRIDGE, None) is None


# --- auto: which probe runs, and only once ------------------------------------------------------------------


@pytest.fixture
def probes(tmp_path, monkeypatch):
    """Stand-in probes that count their runs; the probe cache in a fresh directory."""
    monkeypatch.setenv("IMGSEARCH_CACHE_DIR", str(tmp_path))
    runs = []
    speed = {"int8": 1.0, "bf16": 1.0}

    def fake(name):
        def run():
            runs.append(name)
            return {"speedup": speed[name], "measured_at": "now"}
        return run

    monkeypatch.setattr(precision, "measure_int8_probe", fake("int8"))
    monkeypatch.setattr(precision, "measure_probe", fake("bf16"))
    return runs, speed


def test_avx2_measures_int8_once_and_never_bf16(probes):
    runs, speed = probes
    speed["int8"] = 1.9
    assert precision.auto_precision(MILAN)[0] == "int8"
    assert precision.auto_precision(MILAN)[0] == "int8"  # the second time from the record
    assert runs == ["int8"]


def test_vnni_measures_nothing(probes):
    runs, _ = probes
    assert precision.auto_precision(ZEN4)[0] == "int8" and runs == []


def test_unreadable_flags_measure_int8_then_bf16(probes):
    runs, speed = probes
    speed["int8"], speed["bf16"] = 1.1, 1.7
    assert precision.auto_precision(None)[0] == "bf16"
    assert runs == ["int8", "bf16"]


def test_without_measuring_the_answer_may_be_probe(probes):
    runs, _ = probes
    assert precision.auto_precision(MILAN, measure=False)[0] == cpu.PROBE and runs == []
    # Another machine's flags are never judged by this machine's probes.
    precision.auto_precision(MILAN)
    assert precision.auto_precision(MILAN, this_machine=False)[0] == cpu.PROBE


def test_forced_int8_says_when_it_will_not_pay(monkeypatch):
    monkeypatch.setattr(precision, "_this_cpu_flags", lambda: SANDY_BRIDGE)
    assert "no faster than fp32" in precision.resolve("int8")[1]
    monkeypatch.setattr(precision, "_this_cpu_flags", lambda: ZEN4)
    assert precision.resolve("int8") == ("int8", "--precision int8 (or IMGSEARCH_PRECISION)")
    with pytest.raises(ValueError, match="auto, fp32, bf16, int8"):
        precision.resolve("fp16")


# --- the cached ONNX model files: a changed file is never used ----------------------------------------------

EXPECTED = Expected("int8", "a" * 64, "c" * 64, {"calibration": "MinMax"})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGSEARCH_CACHE_DIR", str(tmp_path))
    builds = []

    def build(dest):
        builds.append(dest)
        Path(dest).write_bytes(b"model bytes")

    return builds, build


def test_made_once_then_checked(cache):
    builds, build = cache
    first = ensure_model(EXPECTED, build)
    assert first.built and len(builds) == 1
    again = ensure_model(EXPECTED, build)
    assert not again.built and again.sha256 == first.sha256 and len(builds) == 1
    sidecar = json.loads(onnx_cache.model_sidecar_path(first.path).read_text())
    assert sidecar["weights_sha256"] == EXPECTED.weights_sha256 and sidecar["sha256"] == first.sha256


@pytest.mark.parametrize("change, why", [
    (lambda path: path.write_bytes(b"model bytez"), "sha256 differs from its sidecar"),
    (lambda path: onnx_cache.model_sidecar_path(path).unlink(), "no readable sidecar"),
    (lambda path: onnx_cache.model_sidecar_path(path).write_text("[1]"), "no readable sidecar"),
])
def test_a_changed_model_is_refused_and_made_again(cache, change, why):
    builds, build = cache
    path = ensure_model(EXPECTED, build).path
    change(path)
    usable, reason = check_model(path, EXPECTED)
    assert not usable and why in reason
    lines = []
    remade = ensure_model(EXPECTED, build, progress=lines.append)
    assert remade.built and len(builds) == 2 and why in lines[0]
    assert check_model(path, EXPECTED)[0]


@pytest.mark.parametrize("other, why", [
    (Expected("int8", "b" * 64, "c" * 64, {"calibration": "MinMax"}), "other weights"),
    (Expected("int8", "a" * 64, "d" * 64, {"calibration": "MinMax"}), "another calibration set"),
    (Expected("int8", "a" * 64, "c" * 64, {"calibration": "Percentile"}), "other quantization settings"),
])
def test_a_model_made_from_other_inputs_is_not_used(cache, other, why):
    _, build = cache
    path = ensure_model(EXPECTED, build).path
    usable, reason = check_model(path, other)
    assert not usable and why in reason


def test_sidecar_round_trip_and_unknown_fields_ignored(tmp_path):
    path = tmp_path / "m.onnx"
    onnx_cache.model_sidecar_path(path).write_text(json.dumps({"sha256": "x", "precision": "fp32", "extra": 1}))
    side = ModelSidecar.read(path)
    assert side.sha256 == "x" and side.precision == "fp32" and side.weights_sha256 is None


def test_the_shipped_calibration_set_is_checked(tmp_path, monkeypatch):
    import shutil

    from imgsearch.errors import WeightsError
    from imgsearch.weights import calibration

    files = calibration.calibration_files()
    assert len(files) == 64 and sum(p.stat().st_size for p in files) < 1_000_000  # package data under ~1 MB
    copy = tmp_path / "calibration"
    shutil.copytree(calibration.CALIBRATION_DIR, copy)
    monkeypatch.setattr(calibration, "CALIBRATION_DIR", copy)
    assert calibration.calibration_files()[0].parent == copy
    with open(copy / files[5].name, "ab") as f:
        f.write(b"\0")  # one byte appended to one photo
    with pytest.raises(WeightsError, match="missing or changed"):
        calibration.calibration_files()
