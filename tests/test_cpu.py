"""check-cpu: flag parsing, the verdict, exit codes, and no heavy imports on the planning path."""

import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import run_cli

from imgsearch import cpu
from imgsearch.cli import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL
from imgsearch.errors import ImgsearchError

DATA = Path(__file__).parent / "data"
EPYC = DATA / "cpuinfo_epyc_avx2.txt"  # recorded: AMD EPYC (Zen 4), AVX2 and AVX-512, no AMX
SANDY_BRIDGE = DATA / "cpuinfo_sandybridge_no_avx2.txt"  # Xeon E5-2620: AVX, no AVX2
WESTMERE = DATA / "cpuinfo_westmere_no_avx.txt"  # Xeon X5650: SSE4.2, no AVX at all
GRAVITON = DATA / "cpuinfo_graviton2_arm64.txt"  # Linux arm64: "Features" line, NEON
UNPARSEABLE = DATA / "cpuinfo_unparseable.txt"


def flags_of(path):
    return cpu.parse_cpuinfo(path.read_text())


def test_parse_recorded_samples():
    epyc = flags_of(EPYC)
    assert {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"} <= epyc
    assert not {"amx_tile", "amx_bf16", "amx_int8"} & epyc
    sandy = flags_of(SANDY_BRIDGE)
    assert {"sse4_2", "avx"} <= sandy and "avx2" not in sandy and "fma" not in sandy
    westmere = flags_of(WESTMERE)
    assert "sse4_2" in westmere and "avx" not in westmere
    assert "asimd" in flags_of(GRAVITON)


def test_parse_without_flags_line_is_empty():
    assert cpu.parse_cpuinfo("") == set()
    assert flags_of(UNPARSEABLE) == set()
    # "vmx flags" (newer kernels) is not the flags line.
    assert cpu.parse_cpuinfo("vmx flags\t: avx2 ept\n") == set()


def test_parse_reads_first_processor_only():
    text = "processor : 0\nflags : sse4_2 avx2\n\nprocessor : 1\nflags : sse4_2\n"
    assert cpu.parse_cpuinfo(text) == {"sse4_2", "avx2"}


def test_assess_with_avx2():
    report = cpu.assess(flags_of(EPYC), "epyc")
    assert report.avx2 and report.ok and not report.arm64
    assert set(report.flags) == set(cpu.FLAGS)
    assert report.flags["avx512_vnni"] is True and report.flags["amx_tile"] is False
    assert "AVX2 present" in report.verdict
    assert report.source == "epyc"


def test_assess_without_avx2():
    report = cpu.assess(flags_of(SANDY_BRIDGE))
    assert not report.avx2 and not report.ok
    assert report.verdict.startswith("No AVX2") and "TensorFlow" not in report.verdict
    # Without even AVX, TensorFlow's wheels cannot run either: say so.
    assert "TensorFlow" in cpu.assess(flags_of(WESTMERE)).verdict


def test_assess_arm64_needs_no_avx2():
    report = cpu.assess(flags_of(GRAVITON))
    assert report.arm64 and report.ok and not report.avx2
    assert not any(report.flags.values())
    assert "arm64" in report.verdict


def test_read_cpu_flags_from_file():
    flags, source = cpu.read_cpu_flags(EPYC)
    assert "avx2" in flags and source == str(EPYC)


@pytest.mark.parametrize("path", [UNPARSEABLE, DATA / "no-such-cpuinfo.txt"])
def test_read_cpu_flags_cannot_tell(path):
    with pytest.raises(ImgsearchError, match="cannot tell") as caught:
        cpu.read_cpu_flags(path)
    assert caught.value.exit_code == EXIT_FATAL


def test_read_cpu_flags_empty_file(tmp_path):
    empty = tmp_path / "cpuinfo"
    empty.write_text("")
    with pytest.raises(ImgsearchError, match="no CPU flags"):
        cpu.read_cpu_flags(empty)


@pytest.mark.skipif(platform.system() != "Linux", reason="reads this machine's /proc/cpuinfo")
def test_read_this_machine():
    flags, source = cpu.read_cpu_flags()
    assert flags and source == "/proc/cpuinfo"


def fake_sysctl(answers):
    return lambda *names: answers.get(names)


def test_macos_intel(monkeypatch):
    monkeypatch.setattr(cpu.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(
        cpu,
        "_sysctl",
        fake_sysctl(
            {
                ("machdep.cpu.features", "machdep.cpu.leaf7_features"): (
                    "FPU VME SSE3 SSSE3 FMA SSE4.1 SSE4.2 POPCNT AES AVX1.0 F16C\n"
                    "RDWRFSGS BMI1 AVX2 SMEP BMI2 ERMS AVX512F AVX512VNNI\n"
                )
            }
        ),
    )
    flags, source = cpu.read_cpu_flags()
    report = cpu.assess(flags, source)
    assert {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"} <= flags
    assert report.ok and source == "sysctl machdep.cpu.features"


def test_macos_older_intel_without_leaf7(monkeypatch):
    monkeypatch.setattr(cpu.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(cpu, "_sysctl", fake_sysctl({("machdep.cpu.features",): "SSE4.2 AVX1.0\n"}))
    flags, _ = cpu.read_cpu_flags()
    assert flags == {"sse4_2", "avx"} and not cpu.assess(flags).ok


def test_macos_apple_silicon(monkeypatch):
    monkeypatch.setattr(cpu.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(cpu, "_sysctl", fake_sysctl({("hw.optional.arm64",): "1\n"}))
    flags, source = cpu.read_cpu_flags()
    report = cpu.assess(flags, source)
    assert not report.avx2 and report.arm64 and report.ok
    assert "Apple silicon" in source


def test_other_os_cannot_tell(monkeypatch):
    monkeypatch.setattr(cpu.platform, "system", lambda: "Windows")
    with pytest.raises(ImgsearchError, match="cannot tell"):
        cpu.read_cpu_flags()


# --- CLI -------------------------------------------------------------------------------------


def test_cli_table_with_avx2():
    result = run_cli("check-cpu", "--cpuinfo", str(EPYC))
    assert result.exit_code == EXIT_OK, result.output
    for label in ("SSE4.2", "AVX2", "AVX-512 VNNI", "AMX-INT8", "Why it matters", "AVX2 present"):
        assert label in result.output


def test_cli_without_avx2_exits_partial():
    result = run_cli("check-cpu", "--cpuinfo", str(SANDY_BRIDGE))
    assert result.exit_code == EXIT_PARTIAL
    assert "No AVX2" in result.output


def test_cli_arm64_exits_ok():
    assert run_cli("check-cpu", "--cpuinfo", str(GRAVITON)).exit_code == EXIT_OK


def test_cli_json():
    result = run_cli("check-cpu", "--cpuinfo", str(SANDY_BRIDGE), "--json")
    assert result.exit_code == EXIT_PARTIAL
    report = json.loads(result.output)
    assert report["avx2"] is False and report["ok"] is False
    assert report["flags"]["avx"] is True and report["flags"]["avx2"] is False
    assert set(report["flags"]) == set(cpu.FLAGS)
    assert report["source"] == str(SANDY_BRIDGE) and report["verdict"].startswith("No AVX2")


def test_cli_cannot_tell_is_one_line_exit_fatal():
    result = run_cli("check-cpu", "--cpuinfo", str(UNPARSEABLE))
    assert result.exit_code == EXIT_FATAL
    assert result.output.strip().splitlines() == [f"Error: cannot tell: found no CPU flags in {UNPARSEABLE}"]


def test_cli_missing_file_is_usage_error():
    assert run_cli("check-cpu", "--cpuinfo", str(DATA / "missing.txt")).exit_code == EXIT_FATAL


def test_planning_commands_import_nothing_heavy():
    # A fresh interpreter: other tests in this session may have imported TensorFlow already.
    script = textwrap.dedent(
        f"""
        import sys
        from click.testing import CliRunner
        from imgsearch.cli import cli

        for args in (["--help"], ["check-cpu"], ["check-cpu", "--cpuinfo", {str(EPYC)!r}, "--json"],
                     ["size"], ["size", "--vectors", "1e9", "--json"], ["size", "--help"]):
            result = CliRunner().invoke(cli, args)
            assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.output)
        heavy = ("tensorflow", "keras", "pymilvus", "numpy", "PIL")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
