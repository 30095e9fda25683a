"""Shared helpers of the hand-run benchmarks: machine and versions, load average, markdown tables, the command.

Not a test and not part of the package; the scripts in this folder import it from their own directory.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

DEV_PHOTOS = "/work/shared/photos/dev"
DEFAULT_ORIGINALS = f"{DEV_PHOTOS}/originals"
DEFAULT_DISTRACTORS = f"{DEV_PHOTOS}/distractors"
WORK_DIR = Path(os.environ.get("IMGSEARCH_BENCH_DIR", "/tmp/imgsearch-bench"))  # caches, edits, databases
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}

PACKAGES = ("tensorflow-cpu", "keras", "onnxruntime", "pymilvus", "milvus-lite", "pillow", "numpy", "imagehash", "faiss-cpu")
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def image_files(folder) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        sys.exit(f"no such folder: {folder}")
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)


def wait_indexed(store, collection: str, rows: int, poll: float = 0.2):
    """Until a Milvus server's HNSW index covers ``rows`` rows: a server counts imported or inserted rows, and
    searches them, before it has indexed them."""
    name = store.client.list_indexes(collection)[0]
    while store.client.describe_index(collection, name).get("indexed_rows", 0) < rows:
        time.sleep(poll)


def log(msg: str):
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def linked_folder(paths: list[str], name: str) -> Path:
    """A folder of symlinks to ``paths`` (recreated each run), so `imgsearch index FOLDER` sees exactly them."""
    folder = WORK_DIR / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in paths:
        os.symlink(p, folder / os.path.basename(p))
    return folder


def cpu_model() -> str:
    from imgsearch.cpu import cpu_model as model_name

    return model_name()


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS if flag in have]
    except OSError:
        pass
    return []


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_line() -> str:
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    versions = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    return (
        f"{cpu_model()}, {cores} cores ({usable} usable), flags: {' '.join(cpu_flags()) or 'none of interest'}; "
        f"Python {platform.python_version()}; {versions}"
    )


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def header(title: str):
    print(f"## {title}\n")
    print(f"Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; load average at start: {load_average()}")
    print(f"Machine: {machine_line()}")
    print(f"Command: `{command_line()}`\n")


def footer():
    print(f"\nLoad average at the end: {load_average()} (1, 5, 15 min; 2 cores = fully busy at 2.0).")
    print(f"Command: `{command_line()}`")


def table(columns: list[str], rows: list[list], align: str | None = None) -> str:
    """A markdown table; ``align`` is one letter per column (l or r), numbers right-aligned by default."""
    if align is None:
        align = "l" + "r" * (len(columns) - 1)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def median(values):
    return statistics.median(values)


def spread(values, fmt="{:.1f}") -> str:
    """'median (min-max)'."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


class PhaseClock:
    """The walk's progress callback: when each phase began, and a log line with an ETA every 30 s."""

    def __init__(self):
        self.started: dict[str, float] = {}
        self.last_log = 0.0

    def __call__(self, done: int, total: int, phase: str):
        now = time.perf_counter()
        if phase not in self.started:
            self.started[phase] = now
            self.first_done = done
        if now - self.last_log > 30 or (done == total and phase != "reading vectors"):
            elapsed = now - self.started[phase]
            rate = (done - self.first_done) / elapsed if elapsed > 0 else 0
            eta = f", ETA {(total - done) / rate:,.0f} s" if rate and done < total else ""
            log(f"  {phase}: {done:,}/{total:,} ({elapsed:,.0f} s{eta})")
            self.last_log = now

    def seconds(self, end: float) -> dict[str, float]:
        marks = sorted(self.started.items(), key=lambda kv: kv[1]) + [("end", end)]
        return {phase: marks[i + 1][1] - t for i, (phase, t) in enumerate(marks[:-1])}


# --- process memory (Linux /proc) ---------------------------------------------------------------------------


def status_kib(field: str, pid: int | str = "self") -> int:
    """A field of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: its peak); 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> int:
    """Reset this process's peak resident memory (Linux: 5 to clear_refs), so that a peak measured afterwards is
    what follows and not the imports'; returns the resident memory now (KiB)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return status_kib("VmRSS")


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (a Milvus server is a few processes), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 2**20
