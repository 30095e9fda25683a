"""Run `imgsearch serve` as a real process on a free 127.0.0.1 port, for tests/test_serve*.py.

Plain helper module, not a conftest. ``served(uri, weights)`` is a context manager giving a ``Served`` (its base
URL and its log); the process is stopped with SIGINT (a clean stop) unless the test stopped it, and killed if it
lingers. ``Served.stop`` sends a signal and returns the exit code; ``rss_bytes`` reads its memory from /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 240  # seconds: TensorFlow's import and the weights on a busy 2-core machine


@dataclass
class Served:
    url: str
    log: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit code (a generous bound: a busy 2-core machine, not a timing test)."""
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def rss_bytes(self, peak: bool = False) -> int:
        """Resident memory now, or its peak (VmHWM) since ``reset_peak``."""
        field = "VmHWM:" if peak else "VmRSS:"
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc/{self.process.pid}/status")

    def reset_peak(self) -> bool:
        """Make VmHWM start again from the current RSS (Linux's clear_refs 5); False where that is not allowed."""
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(uri: str, weights, log: Path, *args: str, env: dict | None = None):
    port = free_port()
    command = [sys.executable, "-m", "imgsearch", "serve", "--uri", uri, "--port", str(port), *args]
    environment = {**os.environ, "IMGSEARCH_WEIGHTS": str(weights), **(env or {})}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    server = Served(f"http://127.0.0.1:{port}", log, process)
    try:
        _wait_ready(server, (env or {}).get("IMGSEARCH_SERVE_TOKEN"))
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Served, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"imgsearch serve exited with {server.process.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(server.url + "/api/health", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"imgsearch serve did not answer within {START_TIMEOUT} s:\n{server.log_text()}")


def indexed_gallery(root: Path, photo_dir: Path, names, weights) -> str:
    """Copies of the sample photos ``names`` under ``root/photos``, indexed with `imgsearch index` into a new Milvus
    Lite database; its URI."""
    import shutil

    from helpers import run_cli

    (root / "photos").mkdir()
    for name in names:
        shutil.copy2(photo_dir / f"{name}.jpg", root / "photos" / f"{name}.jpg")
    uri = str(root / "gallery.db")
    result = run_cli("index", root / "photos", "--uri", uri, weights=weights)
    assert result.exit_code == 0, result.output
    return uri
