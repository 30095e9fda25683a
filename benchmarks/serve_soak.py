"""`imgsearch serve` soaked: 16 clients on loopback mixing searches, PUTs, DELETEs and bad uploads for --minutes,
then `kill -9` of the server (and its Milvus Lite) mid-load, a restart, and every acknowledged write checked.

    python benchmarks/serve_soak.py [--minutes 10] [--clients 16] [--max-queue 32] [--dir DIR]

The server starts on an empty Milvus Lite database under --dir (a temporary folder by default) and is seeded with
the 15 bundled sample photos through PUT. Each client owns its keys (soak/c<i>/k<j>), so its own writes are
ordered: the last acknowledged answer for a key says whether it must be there after the restart (PUT 200 ->
present; DELETE 200 or 404 -> absent). A request without an answer (the kill) makes its key unknown: not checked.
Allowed answers: 2xx, the 4xx the request deserves (400 a bad key, 415 bytes that are no image, 404 deleting
a key not there) and 503 (the queue full). Anything else is counted as unexpected and fails the run.
Bounded in time (--minutes, then the kill) and in count (--max-requests per client). Exit 0 when every check held.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_TIMEOUT = 300
KEYS_PER_CLIENT = 8
# What each kind of request may be answered; anything else is unexpected.
ALLOWED = {"search": {200, 503}, "put": {200, 503}, "delete": {200, 404, 503}, "bad image": {415, 503},
           "bad key": {400}}
MIX = (("search", 0.6), ("put", 0.2), ("delete", 0.12), ("bad image", 0.05), ("bad key", 0.03))


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class ClientLog:
    answers: Counter = field(default_factory=Counter)  # (kind, status) -> n; status 0: no answer
    latencies: dict = field(default_factory=dict)  # kind -> [seconds] of answered requests
    state: dict = field(default_factory=dict)  # key -> "present" | "absent" | "unknown"
    unexpected: list = field(default_factory=list)


def photos() -> list[bytes]:
    from imgsearch.demo import SAMPLE_PHOTOS, sample_image

    out = []
    for name in SAMPLE_PHOTOS:
        buffer = io.BytesIO()
        sample_image(name).convert("RGB").save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def edited(data: bytes, rng: random.Random) -> bytes:
    """A recompressed, possibly shrunk copy: a search that should find its original."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    if rng.random() < 0.5:
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.choice((40, 60, 85)))
    return buffer.getvalue()


def client(index: int, url: str, images: list[bytes], stop: threading.Event, limit: int, out: ClientLog):
    rng = random.Random(index)
    kinds, weights = zip(*MIX)
    with httpx.Client(base_url=url, timeout=300) as http:
        for _ in range(limit):
            if stop.is_set():
                return
            kind = rng.choices(kinds, weights)[0]
            key = f"soak/c{index}/k{rng.randrange(KEYS_PER_CLIENT)}"
            started = time.perf_counter()
            try:
                response = send(http, kind, key, images, rng)
            except httpx.HTTPError:
                out.answers[(kind, 0)] += 1
                if kind in ("put", "delete"):
                    out.state[key] = "unknown"  # sent, never answered: it may or may not have happened
                continue
            out.answers[(kind, response.status_code)] += 1
            out.latencies.setdefault(kind, []).append(time.perf_counter() - started)
            if response.status_code not in ALLOWED[kind]:
                out.unexpected.append((kind, key, response.status_code, response.text[:200]))
            elif kind == "put" and response.status_code == 200:
                out.state[key] = "present"
            elif kind == "delete" and response.status_code in (200, 404):
                out.state[key] = "absent"


def send(http: httpx.Client, kind: str, key: str, images: list[bytes], rng: random.Random) -> httpx.Response:
    if kind == "search":
        params = {"top_k": rng.choice((5, 10)), "verdict": "true" if rng.random() < 0.8 else "false"}
        return http.post("/api/search", params=params, content=edited(rng.choice(images), rng))
    if kind == "put":
        return http.put(f"/api/images/{key}", params={"owner": key.split("/")[1]},
                        content=edited(rng.choice(images), rng))
    if kind == "delete":
        return http.delete(f"/api/images/{key}")
    if kind == "bad image":
        return http.post("/api/search", content=os.urandom(rng.randrange(100, 5000)))
    return http.put(f"/api/images/~{key}", content=images[0])  # "bad key": one that could pass for a path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(uri: str, log_path: Path, max_queue: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "imgsearch", "serve", "--uri", uri, "--port", str(port),
               "--max-queue", str(max_queue)]
    with open(log_path, "ab") as out:  # its own session: kill -9 takes its Milvus Lite down with it
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"imgsearch serve exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    sys.exit(f"imgsearch serve did not answer within {START_TIMEOUT} s; see {log_path}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(url: str, pid: int, images: list[bytes], args) -> tuple[list[ClientLog], list[float], str]:
    """The clients for --minutes; then kill -9 with requests still in flight. Returns logs, RSS samples, metrics."""
    stop = threading.Event()
    logs = [ClientLog() for _ in range(args.clients)]
    threads = [threading.Thread(target=client, args=(i, url, images, stop, args.max_requests, logs[i]), daemon=True)
               for i in range(args.clients)]
    for thread in threads:
        thread.start()
    deadline, rss = time.monotonic() + args.minutes * 60, []
    while time.monotonic() < deadline and any(thread.is_alive() for thread in threads):
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        rss.append(rss_mb(pid))
        done = sum(sum(c.answers.values()) for c in logs)
        log(f"{done:,} requests, server RSS {rss[-1]:.0f} MB")
    metrics = httpx.get(url + "/metrics", timeout=60).text
    os.killpg(pid, signal.SIGKILL)  # mid-load: whatever was not acknowledged may or may not be there
    stop.set()
    for thread in threads:
        thread.join(330)
    return logs, rss, metrics


def verify(url: str, logs: list[ClientLog]) -> dict:
    """After the restart: every acknowledged PUT's key is there, every acknowledged DELETE's is not."""
    found = {"puts_acknowledged": 0, "puts_found": 0, "deletes_acknowledged": 0, "deletes_gone": 0, "unknown": 0}
    with httpx.Client(base_url=url, timeout=300) as http:
        for client_log in logs:
            for key, state in client_log.state.items():
                if state == "unknown":
                    found["unknown"] += 1
                    continue
                status = http.delete(f"/api/images/{key}").status_code  # 200: it was there; 404: it was not
                if state == "present":
                    found["puts_acknowledged"] += 1
                    found["puts_found"] += status == 200
                else:
                    found["deletes_acknowledged"] += 1
                    found["deletes_gone"] += status == 404
    return found


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else 0.0)


def report(logs: list[ClientLog], rss: list[float], metrics: str, found: dict, args) -> bool:
    answers = sum((c.answers for c in logs), Counter())
    by_status = Counter()
    for (kind, status), n in answers.items():
        by_status[status] += n
    unexpected = [u for c in logs for u in c.unexpected]
    latencies = {}
    for kind, _ in MIX:
        values = [v for c in logs for v in c.latencies.get(kind, [])]
        if values:
            latencies[kind] = {"n": len(values), "p50_s": round(percentile(values, 50), 3),
                               "p95_s": round(percentile(values, 95), 3)}
    batches = [line for line in metrics.splitlines() if line.startswith("imgsearch_search_batch_size_")]
    summary = {
        "minutes": args.minutes, "clients": args.clients, "max_queue": args.max_queue,
        "requests": sum(answers.values()), "by_status": {str(k): v for k, v in sorted(by_status.items())},
        "by_kind_and_status": {f"{k} {s}": n for (k, s), n in sorted(answers.items())},
        "latency_of_answered": latencies, "unexpected": len(unexpected),
        "server_rss_mb": {"first": round(rss[0]) if rss else None, "max": round(max(rss)) if rss else None},
        "batch_size_metrics": batches[-2:], "after_kill_and_restart": found,
    }
    print(json.dumps(summary, indent=2))
    for kind, key, status, text in unexpected[:20]:
        log(f"unexpected: {kind} {key}: {status} {text}")
    return not unexpected and found["puts_found"] == found["puts_acknowledged"] \
        and found["deletes_gone"] == found["deletes_acknowledged"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=100_000, help="Per client: the bound in count.")
    parser.add_argument("--max-queue", type=int, default=32)
    parser.add_argument("--dir", help="Where the database and the server's log go (default: a temporary folder).")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="imgsearch-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    uri, server_log = str(folder / "soak.db"), folder / "serve.log"
    images = photos()
    process, url = start_server(uri, server_log, args.max_queue)
    with httpx.Client(base_url=url, timeout=300) as http:
        for i, data in enumerate(images):
            assert http.put(f"/api/images/seed/{i}", content=data).status_code == 200
    log(f"serving at {url}, seeded {len(images)} photos; {args.clients} clients for {args.minutes:g} min")
    logs, rss, metrics = soak(url, process.pid, images, args)
    process.wait()
    log(f"killed -9 (exit {process.returncode}); restarting on {uri}")
    process, url = start_server(uri, server_log, args.max_queue)
    try:
        found = verify(url, logs)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    ok = report(logs, rss, metrics, found, args)
    log(("every check held" if ok else "CHECKS FAILED") + f"; server log: {server_log}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
