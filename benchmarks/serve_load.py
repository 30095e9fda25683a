"""`imgsearch serve` under load: queries/s and latency at 1, 4 and 16 concurrent clients, against one-shot CLI calls.

    python benchmarks/serve_load.py [--levels 1:30,4:30,16:100] [--cli-runs 5] [--rows 10000]

The collection (under $IMGSEARCH_BENCH_DIR/serve, reused when complete): the dev originals indexed with
`imgsearch index`, plus seeded unit vectors up to --rows written through the library (``indexing.make_row``,
``Collection.upsert``) so that it holds at least 10k rows. Queries: edited copies (8% black border, JPEG quality
40) of the first --queries originals, cycled.

1. One-shot CLI: `imgsearch search QUERY --uri DB --json` as a fresh process per query (what a script calling the
   CLI pays), --cli-runs times: the median wall time gives its queries/s.
2. The server: `imgsearch serve --uri DB` in its own process on a free 127.0.0.1 port; this process is the load:
   per level, C client threads each sending R requests back to back (raw image body, top_k 10), every answer
   checked (status 200, the original at rank 1, and with the verdict on: called a copy). Each level is bounded by --level-timeout seconds.
   Queries/s, p50/p95 latency, and the server's own batching counters (/api/stats) per level.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402

PYTHON = sys.executable
COLLECTION = "images"


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def imgsearch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "imgsearch", *args], capture_output=True, text=True, **kwargs)


def build_collection(uri: str, originals: str, rows: int):
    """Real photos through `imgsearch index` (incremental), then synthetic unit vectors up to ``rows``."""
    import numpy as np

    from imgsearch.features import Embedded, VGG16Features
    from imgsearch.indexing import make_row
    from imgsearch.store import Store

    done = imgsearch("index", originals, "--uri", uri, "--json")
    if done.returncode != 0:
        sys.exit(f"imgsearch index failed:\n{done.stderr}")
    with Store(uri) as store:
        coll = store.collection(COLLECTION, VGG16Features().config(), create=False)
        have = coll.count()
        missing = max(rows - have, 0)
        rng = np.random.default_rng(7)
        for start in range(0, missing, 5000):
            count = min(5000, missing - start)
            vectors = rng.standard_normal((count, 512), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            batch = []
            for i, vector in enumerate(vectors, start=have + start):
                key = f"synthetic/{i:07d}"
                batch.append(make_row(key, Embedded(source=key, vector=vector), 0, 0.0, ""))
            coll.upsert(batch)
        total = coll.count()
    log(f"collection: {total:,} rows at {uri}")
    return total


def make_queries(originals: list[str], folder: Path) -> list[tuple[Path, str]]:
    """(query file, the original's path) for edited copies of the originals."""
    from PIL import Image

    from imgsearch.demo import add_black_border

    folder.mkdir(parents=True, exist_ok=True)
    queries = []
    for original in originals:
        query = folder / (Path(original).stem + "-edited.jpg")
        if not query.exists():
            with Image.open(original) as img:
                add_black_border(img.convert("RGB"), 0.08).save(query, "JPEG", quality=40)
        queries.append((query, original))
    return queries


def cli_one_shots(uri: str, queries, runs: int, verdict: bool) -> list[float]:
    seconds = []
    for query, original in (queries * runs)[:runs]:
        t0 = time.perf_counter()
        done = imgsearch("search", str(query), "--uri", uri, "--json", "--verdict" if verdict else "--no-verdict")
        seconds.append(time.perf_counter() - t0)
        if done.returncode != 0 or original not in done.stdout:
            sys.exit(f"CLI search of {query} failed or missed {original}:\n{done.stdout}\n{done.stderr}")
        log(f"  CLI one-shot {len(seconds)}/{runs}: {seconds[-1]:.2f} s")
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(uri: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log_path, "wb") as out:
        process = subprocess.Popen([PYTHON, "-m", "imgsearch", "serve", "--uri", uri, "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"imgsearch serve exited:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    sys.exit("imgsearch serve did not start within 300 s")


def load(url: str, queries, clients: int, per_client: int, timeout: float, verdict: bool) -> dict:
    """``clients`` threads, each sending ``per_client`` searches back to back; every answer checked."""
    payloads = [(query.read_bytes(), original) for query, original in queries]
    latencies, errors, wrong, copies = [], [], 0, 0
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def client(n: int):
        nonlocal wrong, copies
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in range(per_client):
                if time.monotonic() > deadline:
                    return
                data, original = payloads[(n * per_client + i) % len(payloads)]
                t0 = time.perf_counter()
                try:
                    response = http.post("/api/search", params={"top_k": 10, "verdict": verdict}, content=data)
                    ok = response.status_code == 200
                    hits = response.json()["results"] if ok else []
                    first = hits[0] if hits else {}
                except httpx.HTTPError as e:
                    ok, first, response = False, {}, e
                elapsed = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(elapsed)
                        wrong += first.get("path") != original
                        copies += first.get("match") == "copy"
                    else:
                        errors.append(str(getattr(response, "text", response))[:200])

    before = httpx.get(url + "/api/stats", timeout=60).json()["batching"]
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = httpx.get(url + "/api/stats", timeout=60).json()["batching"]
    searches = after["searches"] - before["searches"]
    calls = after["search_calls"] - before["search_calls"]
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else latencies * 19
    return {
        "clients": clients, "planned": clients * per_client, "sent": len(latencies) + len(errors),
        "answered": len(latencies), "errors": len(errors),
        "wrong": wrong, "copies": copies, "wall": wall, "qps": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p95": quantiles[18], "mean_batch": searches / calls if calls else 0, "error_samples": errors[:3],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1:30,4:30,16:100", help="clients:requests each,... [1:30,4:30,16:100]")
    parser.add_argument("--cli-runs", type=int, default=5, help="one-shot CLI searches [5]")
    parser.add_argument("--rows", type=int, default=10_000, help="at least this many rows in the collection [10000]")
    parser.add_argument("--queries", type=int, default=32, help="distinct query images [32]")
    parser.add_argument("--level-timeout", type=float, default=900, help="seconds per level at most [900]")
    parser.add_argument("--originals", default=common.DEFAULT_ORIGINALS)
    parser.add_argument("--verdict", action=argparse.BooleanOptionalAction, default=True,
                        help="the copy verdict on both sides (the default of `search` and of the API) [on]")
    args = parser.parse_args(argv)
    levels = [tuple(int(x) for x in level.split(":")) for level in args.levels.split(",")]

    work = common.WORK_DIR / "serve"
    work.mkdir(parents=True, exist_ok=True)
    uri = str(work / "serve-load.db")
    originals = common.image_files(args.originals)
    rows = build_collection(uri, args.originals, args.rows)
    queries = make_queries(originals[: args.queries], work / "queries")

    common.header("`imgsearch serve` under load (`benchmarks/serve_load.py`)")
    log("one-shot CLI searches")
    cli_seconds = cli_one_shots(uri, queries, args.cli_runs, args.verdict)
    cli_qps = 1 / statistics.median(cli_seconds)

    log("starting imgsearch serve")
    process, url = start_server(uri, work / "serve.log")
    results = []
    try:
        for clients, per_client in levels:
            log(f"load: {clients} client(s) x {per_client} requests")
            results.append(load(url, queries, clients, per_client, args.level_timeout, args.verdict))
            log(f"  {results[-1]['qps']:.2f} queries/s, {results[-1]['errors']} errors")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    tracebacks = (work / "serve.log").read_text(errors="replace").count("Traceback")

    print(f"Collection: {rows:,} rows ({len(originals)} dev originals, the rest synthetic unit vectors), Milvus Lite; "
          f"{len(queries)} distinct queries (edited copies of originals), top_k 10, default threshold; "
          f"{'with' if args.verdict else 'without (--no-verdict; `verdict=false`)'} the copy verdict, on both sides.\n")
    runs = args.cli_runs
    table_rows = [["one-shot `imgsearch search` (a process per query)", runs, runs, runs, 0, 0, "-", f"{cli_qps:.2f}",
                   f"{statistics.median(cli_seconds):.2f}", f"{max(cli_seconds):.2f}", "-", "1.0x"]]
    for r in results:
        table_rows.append([
            f"`imgsearch serve`, {r['clients']} client(s)", r["planned"], r["sent"], r["answered"], r["errors"],
            r["wrong"], r["copies"] if args.verdict else "-", f"{r['qps']:.2f}", f"{r['p50']:.2f}",
            f"{r['p95']:.2f}", f"{r['mean_batch']:.1f}",
            f"{r['qps'] / cli_qps:.1f}x",
        ])
    columns = ["how", "planned", "sent (within --level-timeout)", "answered", "errors", "original not at rank 1",
               "rank 1 called copy", "queries/s", "p50 s", "p95 s (CLI: max)", "queries per model call", "vs CLI"]
    print(common.table(columns, table_rows))
    for r in results:
        for sample in r["error_samples"]:
            print(f"\nerror at {r['clients']} clients: {sample}")
    print(f"\nTracebacks in the server's log: {tracebacks}.")
    common.footer()


if __name__ == "__main__":
    main()
