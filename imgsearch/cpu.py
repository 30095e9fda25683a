"""Which SIMD instruction sets this CPU has, and whether Milvus will run on it.

Stdlib only: ``imgsearch check-cpu`` must work (and be quick) on a machine where TensorFlow or
Milvus would crash on import.
"""

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import ImgsearchError

# The flags worth knowing about, in Linux /proc/cpuinfo spelling, with why each matters here.
FLAGS = {
    "sse4_2": ("SSE4.2", "oldest SIMD level Milvus lists; not enough alone"),
    "avx": ("AVX", "TensorFlow's wheels need it (VGG16 features)"),
    "avx2": ("AVX2", "Milvus / Milvus Lite need it (knowhere, faiss)"),
    "fma": ("FMA", "fused multiply-add: faster distances, inference"),
    "avx512f": ("AVX-512F", "Milvus uses its AVX-512 kernels: faster search"),
    "avx512_vnni": ("AVX-512 VNNI", "int8 dot products in one instruction: the int8 model at ~4x fp32"),
    "avx_vnni": ("AVX-VNNI", "the same int8 dot products on AVX2 (desktops since 2021)"),
    "avx512_bf16": ("AVX-512 BF16", "bfloat16 maths: faster TensorFlow inference"),
    "amx_tile": ("AMX-TILE", "Intel AMX tiles (Sapphire Rapids+)"),
    "amx_bf16": ("AMX-BF16", "oneDNN bf16 matrix maths on AMX: faster inference"),
    "amx_int8": ("AMX-INT8", "int8 matrix maths on AMX: the int8 model's fastest path"),
}

# Marker flag for ARM64 (NEON, Linux "Features: ... asimd"). Milvus ships native arm64 builds that
# use NEON instead of AVX2, so on ARM the AVX2 question does not apply.
ARM_SIMD = "asimd"

# macOS (Intel) sysctl spells some flags differently from Linux.
_MACOS_NAMES = {
    "sse4.2": "sse4_2",
    "avx1.0": "avx",
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "amxtile": "amx_tile",
    "amxbf16": "amx_bf16",
    "amxint8": "amx_int8",
}


@dataclass(frozen=True)
class CpuReport:
    flags: dict  # Linux flag name -> present, for every name in FLAGS
    avx2: bool
    arm64: bool
    ok: bool  # Milvus will run: AVX2 on x86, or a native arm64 build
    verdict: str
    source: str


def parse_cpuinfo(text):
    """The flags of the first processor in /proc/cpuinfo text; empty if there is no flags line.

    x86 calls the line "flags", ARM calls it "Features". All processors list the same flags.
    """
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.lower().split())
    return set()


def _sysctl(*names):
    try:
        out = subprocess.run(["sysctl", "-n", *names], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _macos_flags():
    if (_sysctl("hw.optional.arm64") or "").strip() == "1":
        # Apple silicon has NEON and no x86 SIMD at all (Rosetta only emulates some of it).
        return {ARM_SIMD}, "sysctl hw.optional.arm64 (Apple silicon)"
    out = _sysctl("machdep.cpu.features", "machdep.cpu.leaf7_features")
    if out is None:
        # Older Intel Macs have no leaf7_features key; ask for the basic features alone.
        out = _sysctl("machdep.cpu.features")
    flags = {_MACOS_NAMES.get(word, word) for word in (out or "").lower().split()}
    return flags, "sysctl machdep.cpu.features"


def read_cpu_flags(cpuinfo_path=None):
    """(flags, source) for this machine, or for a recorded /proc/cpuinfo file if one is given.

    Raises ImgsearchError (exit 2) when the flags cannot be read: we cannot tell.
    """
    if cpuinfo_path is not None or platform.system() == "Linux":
        path = Path(cpuinfo_path or "/proc/cpuinfo")
        try:
            text = path.read_text(errors="replace")
        except OSError as e:
            raise ImgsearchError(f"cannot tell: cannot read {path}: {e.strerror or e}") from None
        flags, source = parse_cpuinfo(text), str(path)
    elif platform.system() == "Darwin":
        flags, source = _macos_flags()
    else:
        raise ImgsearchError(
            f"cannot tell which instruction sets this CPU has on {platform.system() or 'this OS'}; "
            "run check-cpu under Linux/WSL, or pass --cpuinfo with a copy of /proc/cpuinfo"
        )
    if not flags:
        raise ImgsearchError(f"cannot tell: found no CPU flags in {source}")
    return flags, source


def assess(flags, source=""):
    """A CpuReport for a set of flags: which matter, and whether Milvus will run."""
    flags = set(flags)
    avx2 = "avx2" in flags
    arm64 = ARM_SIMD in flags and "sse2" not in flags
    if arm64:
        verdict = "ARM64 CPU: no AVX2, and none needed; use the arm64 builds of Milvus / Milvus Lite."
    elif avx2:
        verdict = "AVX2 present: Milvus, Milvus Lite and their faiss builds will run here."
    else:
        # Milvus's docs still list SSE4.2 as enough, but 2.3+ builds die with SIGILL
        # ("Illegal instruction", exit 132) without AVX2: milvus-io/milvus#27552, #29217.
        verdict = (
            "No AVX2: Milvus and Milvus Lite will crash with 'Illegal instruction' here. "
            "Run Milvus on a machine with AVX2 (Intel Haswell / AMD Excavator or newer)"
        )
        verdict += "." if "avx" in flags else "; without AVX TensorFlow will not run here either."
    return CpuReport(
        flags={name: name in flags for name in FLAGS},
        avx2=avx2,
        arm64=arm64,
        ok=avx2 or arm64,
        verdict=verdict,
        source=source,
    )


def cpu_model(cpuinfo_text=None):
    """The CPU's model name ("Intel(R) Xeon(R) Platinum 8480+"), or the machine type where none is recorded."""
    if cpuinfo_text is None and platform.system() == "Linux":
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo_text = ""
    for line in (cpuinfo_text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("model name", "cpu model") and value.strip():
            return value.strip()
    if platform.system() == "Darwin":
        brand = (_sysctl("machdep.cpu.brand_string") or "").strip()
        if brand:
            return brand
    return platform.processor() or platform.machine() or "unknown CPU"


# --- which precision `--precision auto` runs the model in ------------------------------------------------------

# Not decided yet: only a measurement on this CPU can tell (precision.auto_precision runs it once and caches it).
PROBE = "probe"
# bf16 must beat fp32 by this much in the probe to be chosen, so that timing noise never picks an emulated bf16.
BF16_MIN_SPEEDUP = 1.15
# int8 must beat fp32 by this much in its probe (one VGG16-sized convolution in ONNX Runtime, both precisions) to
# be chosen where the flags cannot tell. int8 costs a little accuracy (cosine to fp32 >= 0.99 instead of 1.0), so
# it must buy clearly more than noise: the floor on AVX2 is 1.6x end to end; published AVX2 int8 runs at
# 1.8-2x fp32 (OpenVINO), and a 1.3x probe leaves room for the probe reading the conv alone.
INT8_MIN_SPEEDUP = 1.3
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def choose_precision(flags, probe_speedup=None, int8_speedup=None):
    """(precision, reason) for ``--precision auto`` on a CPU with these flags (None: they could not be read).

    int8 first, where it pays: from the flags on AMX-INT8 and VNNI (int8 dot products in one instruction; 4.0x
    fp32 measured on AVX512-VNNI), by ``int8_speedup`` (int8 over fp32, measured on this CPU) on plain AVX2, ARM64
    with dot products (asimddp) and unreadable flags. Then bf16 where it is faster (``probe_speedup``: bf16 over
    fp32), else fp32. precision is PROBE while a measurement these flags need is missing.
    """
    int8 = int8_choice(flags, int8_speedup)
    if int8 is not None and int8[0] in ("int8", PROBE):
        return int8
    precision, reason = bf16_choice(flags, probe_speedup)
    return (precision, f"{int8[1]}; {reason}") if int8 is not None else (precision, reason)


def int8_choice(flags, int8_speedup):
    """("int8" | PROBE, why), or (None, why int8 does not pay) after a probe, or None where int8 never pays."""
    def measured(what):
        if int8_speedup is None:
            return PROBE, f"{what}: a short int8 measurement on first use decides"
        if int8_speedup >= INT8_MIN_SPEEDUP:
            return "int8", f"{what}: int8 measured {int8_speedup:.2f}x the fp32 rate on this CPU"
        return None, f"{what}: int8 measured {int8_speedup:.2f}x the fp32 rate on this CPU, not worth it"

    if flags is None:
        return measured("CPU flags unreadable")
    flags = set(flags)
    if "amx_int8" in flags:
        return "int8", "AMX-INT8: ONNX Runtime runs the int8 convolutions on the AMX tiles, its fastest path"
    vnni = [f for f in VNNI_FLAGS if f in flags]
    if vnni:
        name = "AVX512-VNNI" if vnni[0] == "avx512_vnni" else "AVX-VNNI"
        return "int8", f"{name}: int8 dot products in one instruction (measured 4.0x fp32 on AVX512-VNNI)"
    if ARM_SIMD in flags and "sse2" not in flags:
        return measured("ARM64 with int8 dot products (asimddp)") if "asimddp" in flags else None
    if "avx2" in flags:
        return measured("AVX2 without VNNI (int8 through vpmaddubsw)")
    return None  # no AVX2: ONNX Runtime's SSE int8 kernels do not beat fp32


def int8_needs_probe(flags) -> bool:
    """Whether only the int8 probe can tell if int8 pays on a CPU with these flags."""
    choice = int8_choice(flags, None)
    return choice is not None and choice[0] == PROBE


def bf16_choice(flags, probe_speedup):
    def measured(what):
        if probe_speedup is None:
            return PROBE, f"{what}: a short measurement on first use decides"
        if probe_speedup >= BF16_MIN_SPEEDUP:
            return "bf16", f"{what}: bf16 measured {probe_speedup:.2f}x the fp32 rate on this CPU"
        return "fp32", f"{what}: bf16 measured {probe_speedup:.2f}x the fp32 rate on this CPU, not worth it"

    if flags is None:
        return measured("CPU flags unreadable")
    flags = set(flags)
    if "amx_bf16" in flags:
        return "bf16", "AMX-BF16: oneDNN runs bf16 on the AMX tiles, several times the fp32 rate"
    if "avx512_bf16" in flags:
        return measured("AVX512-BF16 without AMX")
    if ARM_SIMD in flags and "sse2" not in flags:
        if "bf16" in flags:
            return measured("ARM64 with BF16")
        return "fp32", "ARM64 without BF16: bf16 would be emulated, slower"
    return "fp32", "no bfloat16 units (AMX-BF16, AVX512-BF16): bf16 would be emulated, slower"
