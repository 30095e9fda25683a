"""The numeric precision VGG16 runs in: int8 where the CPU has int8 dot products, bfloat16 where it has bfloat16
matrix units and that is faster, else fp32.

fp32 and int8 run in ONNX Runtime (``vgg16_onnx``), bf16 in Keras/TensorFlow. Vectors of every precision are
interchangeable (cosine to fp32 >= 0.999 for bf16, >= 0.99 for int8 on every dev photo, the same rank-1 in search),
so the precision is not part of a collection's config. ``auto`` follows ``cpu.choose_precision``; where the CPU
flags cannot tell, a short probe decides, once per CPU model and engine version, and its result is cached in the
imgsearch cache directory: for int8 one VGG16-sized convolution in ONNX Runtime, fp32 against int8; for bf16 two
in TensorFlow, fp32 against bf16 (only where int8 did not win).

Importing this module stays cheap (``check-cpu`` shows the choice): the engines are imported by the probes only.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from datetime import datetime, timezone
from importlib import metadata

from . import cpu
from .errors import ImgsearchError

PRECISIONS = ("auto", "fp32", "bf16", "int8")
ONNX_PRECISIONS = ("fp32", "int8")  # run by ONNX Runtime; bf16 by Keras
# Keras dtype policy per precision: "mixed_bfloat16" computes in bf16 and keeps the weights in float32.
KERAS_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}
PROBE_CACHE = "precision-probe.json"


def tensorflow_version() -> str:
    for package in ("tensorflow-cpu", "tensorflow", "tf-nightly"):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def onnxruntime_version() -> str:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return "unknown"


def probe_key() -> str:
    """A bf16 probe's result holds for one CPU model and one TensorFlow (oneDNN) version."""
    return f"{cpu.cpu_model()} | tensorflow {tensorflow_version()}"


def int8_probe_key() -> str:
    """An int8 probe's result holds for one CPU model and one ONNX Runtime (MLAS) version."""
    return f"{cpu.cpu_model()} | onnxruntime {onnxruntime_version()} | int8"


def _cache_path():
    from .weights.sources import cache_dir

    return cache_dir() / PROBE_CACHE


def cached_probe(key: str | None = None) -> dict | None:
    """This machine's recorded probe, if any: {"speedup": ..., "fp32_ms": ..., "bf16_ms" or "int8_ms": ...,
    "measured_at": ...}; the bf16 probe unless ``key`` names another."""
    try:
        entry = json.loads(_cache_path().read_text()).get(key or probe_key())
    except (OSError, ValueError, AttributeError):
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float)) else None


def _save_probe(entry: dict, key: str | None = None) -> None:
    path = _cache_path()
    try:
        recorded = json.loads(path.read_text())
        recorded = recorded if isinstance(recorded, dict) else {}
    except (OSError, ValueError):
        recorded = {}
    recorded[key or probe_key()] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(recorded, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache costs a probe per run, nothing worse


@contextlib.contextmanager
def keras_policy(precision: str):
    """Build Keras layers in ``precision``; the global dtype policy is restored afterwards, whatever happens."""
    from .weights.runtime import import_keras

    keras = import_keras()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def measure_probe(repeats: int = 5) -> dict:
    """Time two 3x3 convolutions of VGG16's block3 shape (56x56x256) in fp32 and bf16, interleaved; medians.

    About 2 s on 2 AVX2 cores. VGG16 is almost all 3x3 convolutions, so this layer's speed-up stands for the model's.
    """
    import numpy as np

    from .weights.runtime import import_keras

    keras = import_keras()

    def net(precision):
        with keras_policy(precision):
            inputs = keras.Input((56, 56, 256))
            x = keras.layers.Conv2D(256, 3, padding="same", activation="relu")(inputs)
            x = keras.layers.Conv2D(256, 3, padding="same", activation="relu")(x)
            return keras.Model(inputs, x)

    batch = np.random.default_rng(0).uniform(0, 1, (2, 56, 56, 256)).astype(np.float32)
    nets = {p: net(p) for p in ("fp32", "bf16")}
    return _timed_against_fp32({p: (lambda model=model: model.predict_on_batch(batch)) for p, model in nets.items()},
                               repeats)


def measure_int8_probe(repeats: int = 5) -> dict:
    """Time one 3x3 convolution of VGG16's block3 shape (256 -> 256 channels, 56x56) in ONNX Runtime, fp32 against
    int8 quantized as the real model is (``weights.quantize``), interleaved; medians. About 1 s on 2 cores."""
    import tempfile
    from pathlib import Path

    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from .weights.quantize import quantize_int8

    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 0.02, (256, 256, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["c"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 256, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 256, 56, 56])],
        [numpy_helper.from_array(kernel, "w"), numpy_helper.from_array(np.zeros(256, np.float32), "b")])
    batch = rng.uniform(0, 4, (2, 256, 56, 56)).astype(np.float32)  # post-ReLU activations: non-negative
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    with tempfile.TemporaryDirectory(prefix="imgsearch-int8-probe-") as work:
        fp32_path, int8_path = Path(work, "fp32.onnx"), Path(work, "int8.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32_path))
        quantize_int8(fp32_path, int8_path, batch, input_name="x", fp32_nodes=())
        sessions = {p: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                    for p, path in (("fp32", fp32_path), ("int8", int8_path))}
    runs = {p: (lambda session=session: session.run(None, {"x": batch})) for p, session in sessions.items()}
    return _timed_against_fp32(runs, repeats)


def _timed_against_fp32(runs: dict, repeats: int) -> dict:
    """Time each of ``runs`` ("fp32" and one other precision: a call each) after one warm-up call (graph, kernels,
    packed weights), interleaved ``repeats`` times; the other's speed-up over fp32 from the medians."""
    times = {p: [] for p in runs}
    for run in runs.values():
        run()
    for _ in range(repeats):
        for p, run in runs.items():
            t = time.perf_counter()
            run()
            times[p].append(time.perf_counter() - t)
    (other,) = [p for p in runs if p != "fp32"]
    fp32, fast = statistics.median(times["fp32"]), statistics.median(times[other])
    return {
        "speedup": round(fp32 / fast, 3),
        "fp32_ms": round(1000 * fp32, 1),
        f"{other}_ms": round(1000 * fast, 1),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _this_cpu_flags():
    try:
        flags, _ = cpu.read_cpu_flags()
        return flags
    except ImgsearchError:
        return None


def auto_precision(flags, *, this_machine: bool = True, measure: bool = True) -> tuple[str, str]:
    """(precision, reason) of ``auto`` for these flags (None: unreadable).

    Probes already recorded for this machine are used; ``measure`` runs a missing one (and records it): the int8
    probe first, the bf16 probe (which imports TensorFlow) only where int8 did not win. Without ``measure`` the
    answer may be ``cpu.PROBE``. Flags of another machine (``this_machine=False``) never use this one's probes.
    """
    chosen = cpu.choose_precision(flags)
    if chosen[0] != cpu.PROBE or not this_machine:
        return chosen
    int8, bf16 = _speedup(int8_probe_key()), _speedup(probe_key())
    if int8 is None and measure and cpu.int8_needs_probe(flags):
        int8 = _measured(int8_probe_key(), measure_int8_probe)
    chosen = cpu.choose_precision(flags, bf16, int8)
    if chosen[0] == cpu.PROBE and bf16 is None and measure:
        chosen = cpu.choose_precision(flags, _measured(probe_key(), measure_probe), int8)
    return chosen


def _speedup(key: str) -> float | None:
    probe = cached_probe(key)
    return probe["speedup"] if probe else None


def _measured(key: str, probe) -> float:
    entry = probe()
    _save_probe(entry, key)
    return entry["speedup"]


def resolve(requested: str = "auto", measure: bool = True) -> tuple[str, str]:
    """(precision the model runs in, why) for a requested "auto", "fp32", "bf16" or "int8"; with ``measure``
    False, ``auto`` may answer ``cpu.PROBE`` instead of running a missing probe."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    flags = _this_cpu_flags()
    if requested == "auto":
        return auto_precision(flags, measure=measure)
    reason = f"--precision {requested} (or IMGSEARCH_PRECISION)"
    if requested == "bf16" and cpu.bf16_choice(flags, None)[0] == "fp32":
        reason += "; this CPU has no bfloat16 units: emulated, no faster than fp32"
    if requested == "int8" and flags is not None and cpu.int8_choice(flags, None) is None:
        reason += "; this CPU has no int8 dot products (VNNI, AMX-INT8) nor AVX2: no faster than fp32"
    return requested, reason
