"""Self-test of tests/milvus_server.py: the real Milvus server starts, answers on 127.0.0.1 and
leaves nothing behind after stop, after Ctrl-C and after the test process is killed."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

try:
    from tests.milvus_server import (MilvusServerUnavailable, _pids_running, live_servers,
                                     milvus_server_session, skip_or_fail, start_server, stop_server)
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from milvus_server import (MilvusServerUnavailable, _pids_running, live_servers,  # type: ignore
                               milvus_server_session, skip_or_fail, start_server, stop_server)

HERE = Path(__file__).resolve().parent


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.server
def test_session_generator_serves_then_leaves_nothing(tmp_path_factory):
    gen = milvus_server_session(tmp_path_factory)   # what the session fixture will run
    uri = next(gen)                                  # skips (fails on CI) if unavailable
    try:
        [handle] = [h for h in live_servers() if h.uri == uri]
        exe = str(handle.base_dir / "bin" / "milvus")
        print(f"\nMilvus server started in {handle.start_seconds:.2f} s at {uri}")
        assert uri == f"http://127.0.0.1:{handle.port}"
        assert handle.running and _pid_alive(handle.pid)
        assert _pids_running(exe) == [handle.pid]

        from pymilvus import MilvusClient
        client = MilvusClient(uri=uri, timeout=10)
        try:
            client.create_collection("fixture_probe", dimension=4, consistency_level="Strong")
            client.insert("fixture_probe", [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4]}])
            hits = client.search("fixture_probe", [[0.1, 0.2, 0.3, 0.4]], limit=1)
            assert hits[0][0]["id"] == 1
        finally:
            client.close()
    finally:
        gen.close()                                  # runs the generator's finally: stop
    print(f"Milvus server stopped in {handle.stop_seconds:.2f} s")
    assert handle not in live_servers()
    assert not handle.running
    assert not _pid_alive(handle.pid)
    assert _pids_running(exe) == []
    assert not any(_port_open(p) for p in handle.ports.values())
    assert not (handle.base_dir / "data").exists()
    stop_server(handle)  # idempotent


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_unavailable_skips_locally_fails_on_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no server here"):
        skip_or_fail("no server here")


def test_busy_port_is_reported(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(MilvusServerUnavailable) as info:
            start_server(tmp_path / "srv", port=port)
    assert time.monotonic() - t0 < 10
    assert info.value.reason  # "port N ... busy", or "not installed" where the package is missing


_CHILD = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    sys.path.insert(0, {tests_dir!r})
    from milvus_server import running_server
    with running_server({base!r}) as h:
        print("PID", h.pid, flush=True)
        for _ in range(1200):  # short sleeps: SIGINT may land on a gRPC thread, not waking a long sleep
            time.sleep(0.1)
""")


def _spawn_child(tmp_path):
    script = _CHILD.format(tests_dir=str(HERE), base=str(tmp_path / "srv"))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if not line.startswith("PID"):
        child.kill()
        err = child.communicate(timeout=30)[1]
        skip_or_fail(f"child could not start the server: {err.strip().splitlines()[-1:] or line}")
    return child, int(line.split()[1])


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            # an orphan is reaped by init a moment later: wait (briefly) for that too
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            return True
        time.sleep(0.1)
    return False


@pytest.mark.server
@pytest.mark.slow
def test_ctrl_c_in_owner_stops_server(tmp_path):
    child, server_pid = _spawn_child(tmp_path)
    try:
        child.send_signal(signal.SIGINT)     # KeyboardInterrupt in the owner
        child.wait(timeout=30)
        assert _wait_gone(server_pid, 10), "server survived Ctrl-C of its owner"
    finally:
        child.kill()
        if _pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


@pytest.mark.server
@pytest.mark.slow
def test_kill_9_of_owner_takes_server_down(tmp_path):
    child, server_pid = _spawn_child(tmp_path)
    try:
        child.kill()                          # no finally, no atexit: only PR_SET_PDEATHSIG helps
        child.wait(timeout=30)
        assert _wait_gone(server_pid, 10), "server survived kill -9 of its owner"
    finally:
        if _pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
