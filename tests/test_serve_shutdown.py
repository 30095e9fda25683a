"""Clean stops: `imgsearch serve` on SIGTERM finishes the request in flight, closes the store and exits 0;
`imgsearch index` on SIGTERM writes the batch it is on and exits 130. Nothing acknowledged is lost, and a
restart carries on."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
from conftest import jpeg_bytes
from serve_process import served

from imgsearch.cli.base import EXIT_INTERRUPTED


def test_sigterm_finishes_the_request_in_flight_closes_the_store_and_exits_0(tmp_path, vgg_weights, sample_images):
    uri = str(tmp_path / "stop.db")
    with served(uri, vgg_weights, tmp_path / "serve.log") as server:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            put = http.put("/api/images/before-the-stop", content=jpeg_bytes(sample_images["coffee"]))
            assert put.status_code == 200, put.text
            body = jpeg_bytes(sample_images["rocket"])
            headers_sent = threading.Event()

            def slow_body():  # the request is in flight (its headers read) when the signal comes
                yield body[:1000]
                headers_sent.set()
                time.sleep(1.0)
                yield body[1000:]

            answer = {}
            asking = threading.Thread(target=lambda: answer.update(
                response=http.put("/api/images/during-the-stop", content=slow_body())))
            asking.start()
            headers_sent.wait(30)
            time.sleep(0.3)
            started = time.monotonic()
            code = server.stop(signal.SIGTERM)
            stopped_in = time.monotonic() - started
            asking.join(60)
        log = server.log_text()
    assert code == 0, log
    assert "Traceback" not in log and "stopped: store closed" in log
    assert answer["response"].status_code == 200, answer["response"].text  # finished, not cut off
    print(f"SIGTERM to exit: {stopped_in:.1f} s")

    with served(uri, vgg_weights, tmp_path / "again.log") as server:  # both acknowledged writes are there
        with httpx.Client(base_url=server.url, timeout=120) as http:
            assert http.get("/api/health").json()["rows"] == 2
            for key in ("before-the-stop", "during-the-stop"):
                assert http.delete(f"/api/images/{key}").status_code == 200


def test_sigint_is_a_clean_stop_too(tmp_path, vgg_weights):
    with served(str(tmp_path / "int.db"), vgg_weights, tmp_path / "serve.log") as server:
        code = server.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in server.log_text() and "Interrupted" not in server.log_text()


def _run_until_progress(command: list[str], env: dict, done_at_least: int) -> tuple[int, str]:
    """Run ``command`` on a terminal (so `index` draws its progress), SIGTERM it once the bar shows
    ``done_at_least`` files done, and return its exit code and everything it printed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    output, signalled = b"", False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            output += chunk
        done = [int(n) for n in re.findall(rb"(\d+)/\d+", output)]
        if not signalled and done and max(done) >= done_at_least:
            process.send_signal(signal.SIGTERM)
            signalled = True
        if process.poll() is not None and not ready:
            break
    os.close(leader)
    return process.wait(60), output.decode(errors="replace")


def test_index_on_sigterm_writes_its_batch_exits_130_and_a_rerun_resumes(tmp_path, photo_dir, vgg_weights):
    photos = tmp_path / "photos"
    photos.mkdir()
    originals = sorted(photo_dir.glob("*.jpg"))
    for i in range(160):  # enough batches of 16 that the stop comes well before the end
        shutil.copy2(originals[i % len(originals)], photos / f"p{i:03d}.jpg")
    uri = str(tmp_path / "index.db")
    env = {**os.environ, "IMGSEARCH_WEIGHTS": str(vgg_weights), "TERM": "xterm", "COLUMNS": "120"}
    command = [sys.executable, "-m", "imgsearch", "index", str(photos), "--uri", uri]
    code, output = _run_until_progress(command, env, done_at_least=16)
    assert code == EXIT_INTERRUPTED, output
    assert "SIGTERM: stopping after the current batch" in output and "Traceback" not in output
    again = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["unchanged"] >= 16 and summary["unchanged"] % 16 == 0  # whole batches were written
    assert summary["unchanged"] + summary["new"] == 160 and summary["rows"] == 160  # nothing twice, none lost
