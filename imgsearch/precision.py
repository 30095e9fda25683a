"""The numeric precision VGG16 runs in: fp32, or bfloat16 where the CPU has bfloat16 matrix units.

Vectors of either precision are interchangeable (cosine >= 0.999 with each other on real photos), so the precision
is not part of a collection's config. ``auto`` follows ``cpu.choose_precision``; where the CPU flags cannot tell, a
short probe (two VGG16-sized convolutions, timed in each precision) decides, once per CPU model and TensorFlow
version: its result is cached in the imgsearch cache directory.

Importing this module stays cheap (``check-cpu`` shows the choice): TensorFlow is imported by the probe only.
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

PRECISIONS = ("auto", "fp32", "bf16")
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


def probe_key() -> str:
    """A probe's result holds for one CPU model and one TensorFlow (oneDNN) version."""
    return f"{cpu.cpu_model()} | tensorflow {tensorflow_version()}"


def _cache_path():
    from .weights.sources import cache_dir

    return cache_dir() / PROBE_CACHE


def cached_probe() -> dict | None:
    """This machine's recorded probe, if any: {"speedup": ..., "fp32_ms": ..., "bf16_ms": ..., "measured_at": ...}."""
    try:
        entry = json.loads(_cache_path().read_text()).get(probe_key())
    except (OSError, ValueError, AttributeError):
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float)) else None


def _save_probe(entry: dict) -> None:
    path = _cache_path()
    try:
        recorded = json.loads(path.read_text())
        recorded = recorded if isinstance(recorded, dict) else {}
    except (OSError, ValueError):
        recorded = {}
    recorded[probe_key()] = entry
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
    times = {p: [] for p in nets}
    for model in nets.values():
        model.predict_on_batch(batch)  # warm-up: graph and kernels
    for _ in range(repeats):
        for p, model in nets.items():
            t = time.perf_counter()
            model.predict_on_batch(batch)
            times[p].append(time.perf_counter() - t)
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    return {
        "speedup": round(fp32 / bf16, 3),
        "fp32_ms": round(1000 * fp32, 1),
        "bf16_ms": round(1000 * bf16, 1),
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

    A probe already recorded for this machine is used; ``measure`` runs one (and records it) if needed, otherwise
    the answer may be ``cpu.PROBE``. Flags of another machine (``this_machine=False``) never use this one's probe.
    """
    precision, reason = cpu.choose_precision(flags)
    if precision != cpu.PROBE or not this_machine:
        return precision, reason
    probe = cached_probe()
    if probe is None and measure:
        probe = measure_probe()
        _save_probe(probe)
    return cpu.choose_precision(flags, probe["speedup"] if probe else None)


def resolve(requested: str = "auto") -> tuple[str, str]:
    """(precision the model runs in, why) for a requested "auto", "fp32" or "bf16"."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    flags = _this_cpu_flags()
    if requested == "auto":
        return auto_precision(flags)
    reason = f"--precision {requested} (or IMGSEARCH_PRECISION)"
    if requested == "bf16" and cpu.choose_precision(flags)[0] == "fp32":
        reason += "; this CPU has no bfloat16 units: emulated, no faster than fp32"
    return requested, reason
