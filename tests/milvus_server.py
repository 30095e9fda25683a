"""Run a real Milvus 2.3.5 standalone server (PyPI package ``milvus``) for a test session.

Plain helper module, not a conftest. Typical wiring in ``tests/conftest.py``::

    from tests.milvus_server import milvus_server_session

    @pytest.fixture(scope="session")
    def milvus_server_uri(tmp_path_factory):
        yield from milvus_server_session(tmp_path_factory)   # -> "http://127.0.0.1:PORT"

``milvus_server_session`` skips the requesting tests when the server cannot be started
(package missing, port busy, timeout, binary crashed), or fails them when ``CI=true``.
Lower level: ``start_server(base_dir) -> MilvusServerHandle`` (raises ``MilvusServerUnavailable``
with a ``.reason``) and ``stop_server(handle)`` (idempotent, never raises).

What it does differently from ``milvus.default_server.start()`` (same package, same binary, same
config template; the subclass below only replaces ``start``/``stop``):

* Every port is a free port picked at random below the kernel's ephemeral range, so several
  sessions (or a developer's own Milvus on 19530/2379) do not collide. The embedded etcd gets its
  own config file so that its client/peer ports are free ports on 127.0.0.1 as well (the package
  leaves etcd on localhost:2379/2380 whatever ``etcd_port`` says).
* Every component advertises 127.0.0.1 (``<role>.ip``), so all internal traffic stays on
  loopback; by default Milvus advertises the first non-loopback address of the machine.
  Milvus 2.3.5 has no setting for the *listen* address: its gRPC ports and the metrics/health port
  listen on all interfaces (``*:PORT``), the etcd ports on 127.0.0.1 only. Clients here only
  ever use 127.0.0.1.
* The decompressed binaries (about 250 MB, about 4 s to unpack) are kept in a per-user cache
  (``$IMGSEARCH_MILVUS_BIN_CACHE`` or ``~/.cache/imgsearch/milvus-server-2.3.5``; set the variable
  to ``0`` or ``off`` to unpack into each base dir instead) and symlinked into the base dir.
* Readiness = ``/healthz`` says OK *and* a pymilvus ``list_collections()`` answers (no fixed
  1 s sleep).
* The server runs in its own process group with ``PR_SET_PDEATHSIG=SIGKILL`` (when started from
  the main thread): if the test process dies (even ``kill -9``), the kernel kills the server.
  ``stop_server`` sends SIGTERM to the group, waits ``grace`` seconds (a server with a loaded
  collection ignores SIGTERM for 40 s+), then SIGKILL, then kills any process still running our
  binary path. An ``atexit`` hook stops every server not stopped yet.
* Measured here (2 cores): start 2.2-3.1 s with the binary cache warm, 6.6 s cold; stop 0.05 s
  idle, 1.0 s with a loaded collection; about 185 MB RSS idle; the data dir is about 270 MB even
  when empty (``milvus_server_session`` deletes it after the stop).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

MILVUS_SERVER_VERSION = "2.3.5"
DEFAULT_START_TIMEOUT = float(os.environ.get("IMGSEARCH_MILVUS_START_TIMEOUT", "120"))
HOST = "127.0.0.1"

# config keys of the package's template that take a port (proxy_port is the client-facing one)
_PORT_KEYS = (
    "etcd_port", "root_coord_port", "proxy_port", "proxy_internal_port", "query_coord_port",
    "query_node_port", "index_coord_port", "index_node_port", "data_coord_port", "data_node_port",
)
# Shorter internal ticks for tests: a consistency_level="Strong" read waits for the next time
# tick, about 200 ms with the default proxy.timeTickInterval=200, about 100 ms with 50; release
# 0.8 s -> 0.2 s. Semantics unchanged. (Loading a collection stays about 2.5 s whatever these are.)
FAST_TICKS = {"proxy.timeTickInterval": 50, "queryCoord.checkInterval": 200, "queryCoord.distPullInterval": 100}
# template sections that have an ``ip:`` (advertised address) line
_IP_SECTIONS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


class MilvusServerUnavailable(RuntimeError):
    """The server could not be started; ``.reason`` says why (for pytest.skip / pytest.fail)."""

    port_conflict = False  # True when a retry with other random ports may help

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class MilvusServerHandle:
    uri: str                      # "http://127.0.0.1:PORT" for MilvusClient(uri=...)
    port: int                     # proxy (client) port
    base_dir: Path                # config, data, logs (bin/ is a symlink into the cache)
    pid: int
    ports: dict                   # every port in use: name -> port
    start_seconds: float          # wall time of start_server()
    token: str = ""               # "root:Milvus" when started with authorization=True
    stop_seconds: Optional[float] = None
    server: object = field(default=None, repr=False)   # the milvus.MilvusServer instance

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "logs"

    @property
    def running(self) -> bool:
        proc = getattr(self.server, "server_proc", None)
        return proc is not None and proc.poll() is None


_LIVE: set = set()
_LIVE_LOCK = threading.Lock()


# ----------------------------------------------------------------------------------- ports

def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _port_is_free(port: int) -> bool:
    """Free on 127.0.0.1 and on the wildcard address (Milvus listens on ``*:PORT``)."""
    candidates = [(socket.AF_INET, HOST), (socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        candidates.append((socket.AF_INET6, "::"))
    for family, addr in candidates:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue            # no IPv6 here
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as Go does
            sock.bind((addr, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue
            return False
        finally:
            sock.close()
    return True


def _pick_free_ports(count: int, avoid=()) -> list[int]:
    """Random free ports below the ephemeral range (outgoing connections cannot steal them)."""
    eph_lo, eph_hi = _ephemeral_range()
    lo, hi = (20000, eph_lo - 1) if eph_lo > 21000 else (eph_hi + 1, 65535)
    if hi - lo < 1000:
        lo, hi = 10000, 65535
    chosen: list[int] = []
    rng = random.Random()
    for _ in range(count * 200):
        port = rng.randint(lo, hi)
        if port in chosen or port in avoid:
            continue
        if _port_is_free(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise MilvusServerUnavailable(f"could not find {count} free TCP ports in {lo}-{hi}")


# ------------------------------------------------------------------------------- binaries

def _default_bin_cache() -> Optional[Path]:
    env = os.environ.get("IMGSEARCH_MILVUS_BIN_CACHE")
    if env is not None:
        if env.strip().lower() in ("", "0", "off", "no", "false"):
            return None
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imgsearch" / f"milvus-server-{MILVUS_SERVER_VERSION}"


def _prepare_binaries(milvus_mod, base_dir: Path, cache_dir: Optional[Path]) -> None:
    """base_dir/bin holds the unpacked milvus binary and libs (symlink into the cache if any)."""
    bin_link = base_dir / "bin"
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            import fcntl
            with open(cache_dir / ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)           # one unpacker at a time
                milvus_mod._initialize_data_files(str(cache_dir))   # no-op when md5s match
            if bin_link.is_symlink() or bin_link.exists():
                if bin_link.is_symlink() or bin_link.is_file():
                    bin_link.unlink()
                else:
                    shutil.rmtree(bin_link)
            bin_link.symlink_to(cache_dir / "bin", target_is_directory=True)
            return
        except OSError:
            pass                                           # read-only home etc.: unpack locally
    milvus_mod._initialize_data_files(str(base_dir))


# --------------------------------------------------------------------------------- server

def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)             # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


def _make_server_classes(milvus_mod):
    class _Config(milvus_mod.MilvusServerConfig):
        """The package template plus ``etcd.config.path`` (missing from its template)."""

        def __init__(self, etcd_config_file: str, **kwargs):
            self._etcd_config_file = etcd_config_file
            super().__init__(**kwargs)

        def load_template(self):
            super().load_template()
            marker = "etcd:\n  endpoints:"
            if marker not in self.template_text:
                raise MilvusServerUnavailable("unexpected milvus config template (no 'etcd: endpoints:')")
            self.template_text = self.template_text.replace(
                marker, "etcd:\n  config:\n    path: " + json.dumps(self._etcd_config_file) + "\n  endpoints:", 1)

        def try_bind_port(self, port):  # the package binds without SO_REUSEADDR (TIME_WAIT = "busy")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((HOST, port))
                sock.listen()
                return sock
            except OSError:
                sock.close()
                return None

        def update_extra_configs(self, content):
            content = super().update_extra_configs(content)
            lines = {line.strip() for line in content.splitlines()}
            for key, val in self.extra_configs.items():
                want = f"{key.rsplit('.', 1)[-1]}: {val}"
                if not any(line == want or line.startswith(want + " #") for line in lines):
                    raise MilvusServerUnavailable(f"config key {key!r} is not in the milvus config template")
            return content

    class _Server(milvus_mod.MilvusServer):
        """milvus.MilvusServer with start/stop that are safe for tests (see module doc)."""

        die_with_parent = True

        def start(self):  # mirrors MilvusServer.start of milvus 2.3.5, minus the blocking wait
            self.config.resolve()                          # writes configs/milvus.yaml
            base = self.config.base_data_dir
            exe = self.get_milvus_executable_path()
            envs = os.environ.copy()
            envs.update({
                "DEPLOY_MODE": "STANDALONE",
                "METRICS_PORT": str(self.webservice_port),
                "MILVUS_RUN_DIR": os.path.join(base, "run"),
            })
            self.prepend_path_to_envs(envs, "LD_LIBRARY_PATH", os.path.dirname(exe))
            for name in ("stdout", "stderr"):
                self.proc_fds[name] = open(os.path.join(base, "logs", f"milvus-{name}.log"), "w",
                                           encoding="utf-8")
            self.server_proc = subprocess.Popen(
                [exe, "run", "standalone"], cwd=base, env=envs, stdin=subprocess.DEVNULL,
                stdout=self.proc_fds["stdout"], stderr=self.proc_fds["stderr"],
                start_new_session=True,                    # own group: Ctrl-C does not hit it
                preexec_fn=_set_pdeathsig if self.die_with_parent else None)

        def stop(self, grace: float = 1.0):
            proc = getattr(self, "server_proc", None)
            if proc is not None:
                _terminate_group(proc, grace)
                self.server_proc = None
            for fd in getattr(self, "proc_fds", {}).values():
                with contextlib.suppress(Exception):
                    fd.close()
            if hasattr(self, "proc_fds"):
                self.proc_fds.clear()

    return _Config, _Server


def _terminate_group(proc: subprocess.Popen, grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # SIGKILL the group even if the leader is gone (no children expected: etcd is in-process)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _pids_running(exe_path: str) -> list[int]:
    """PIDs whose argv[0] is exactly our binary path (unique per base dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if argv0 == exe_path.encode():
            found.append(int(entry))
    return found


def _kill_leftovers(exe_path: str) -> list[int]:
    pids = [p for p in _pids_running(exe_path) if p != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline and _pids_running(exe_path):
        time.sleep(0.05)
    return pids


def _log_tail(base_dir: Path, lines: int = 15) -> str:
    out = []
    for name in ("milvus-stderr.log", "milvus-stdout.log"):
        path = base_dir / "logs" / name
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").splitlines()
            interesting = [t for t in text if any(k in t for k in ("ERROR", "FATAL", "panic", "error"))]
            picked = (interesting or text)[-lines:]
            if picked:
                out.append(f"--- {path} (last lines) ---\n" + "\n".join(picked))
    return "\n".join(out)


def _wait_ready(handle: MilvusServerHandle, health_port: int, deadline: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via http_proxy
    url = f"http://{HOST}:{health_port}/healthz"
    proc = handle.server.server_proc
    healthy = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _log_tail(handle.base_dir)
            err = MilvusServerUnavailable(
                f"milvus server exited with code {proc.returncode} during start-up\n" + tail)
            err.port_conflict = "address already in use" in tail
            raise err
        if not healthy:
            try:
                with opener.open(url, timeout=1) as resp:
                    healthy = resp.status == 200 and b"OK" in resp.read()
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
        if healthy:
            try:
                from pymilvus import MilvusClient
                client = MilvusClient(uri=handle.uri, token=handle.token, timeout=5, dedicated=True)
                try:
                    client.list_collections()
                    return
                finally:
                    with contextlib.suppress(Exception):
                        client.close()
            except ImportError:
                return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
        time.sleep(0.05)
    raise MilvusServerUnavailable(
        f"milvus server not ready within the start timeout (pid {proc.pid})\n" + _log_tail(handle.base_dir))


def start_server(base_dir, *, timeout: float = DEFAULT_START_TIMEOUT, port: Optional[int] = None,
                 bin_cache: "Optional[Path] | str" = "default", authorization: bool = False,
                 die_with_parent: Optional[bool] = None, fast_ticks: bool = True,
                 extra_config: Optional[dict] = None) -> MilvusServerHandle:
    """Start a Milvus 2.3.5 standalone server with all its state under ``base_dir``.

    ``port``: client port (default: a random free one). ``authorization``: set
    ``common.security.authorizationEnabled`` (then use token "root:Milvus").
    ``die_with_parent``: PR_SET_PDEATHSIG=SIGKILL. The kernel sends it when the *thread* that
    started the server ends, so the default (None) enables it only when called from the main thread.
    ``fast_ticks``: apply FAST_TICKS (shorter waits for Strong reads, same semantics).
    ``extra_config``: {"dotted.key": value} for existing keys of the package's config template.
    Raises MilvusServerUnavailable(reason). On any failure nothing is left running.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        import milvus as milvus_mod
    except ImportError as exc:
        raise MilvusServerUnavailable(
            f"the embedded Milvus server is not installed (pip install 'milvus=={MILVUS_SERVER_VERSION}'): {exc}")
    if not sys.platform.startswith("linux"):
        raise MilvusServerUnavailable(f"the Milvus server fixture runs on Linux only, not {sys.platform}")
    version = getattr(milvus_mod, "__version__", "?")
    if version != MILVUS_SERVER_VERSION:
        raise MilvusServerUnavailable(
            f"package milvus=={version} found, this fixture is written for {MILVUS_SERVER_VERSION}")

    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    cache = _default_bin_cache() if bin_cache == "default" else (Path(bin_cache) if bin_cache else None)

    fixed = {"proxy_port": port} if port is not None else {}
    if port is not None and not _port_is_free(port):
        raise MilvusServerUnavailable(f"port {port} for the Milvus server is busy")
    attempts = 1 if port is not None else 3   # random ports can lose a race with another process
    for attempt in range(1, attempts + 1):
        try:
            handle = _start_once(milvus_mod, base_dir, cache, fixed, deadline, retry=attempt > 1,
                                 authorization=authorization,
                                 die_with_parent=die_with_parent, fast_ticks=fast_ticks,
                                 extra_config=extra_config)
        except MilvusServerUnavailable as exc:
            if exc.port_conflict and attempt < attempts and time.monotonic() < deadline:
                continue
            raise
        handle.start_seconds = time.monotonic() - t0
        return handle
    raise AssertionError("unreachable")


def _start_once(milvus_mod, base_dir: Path, cache: Optional[Path], fixed: dict, deadline: float, *,
                retry: bool, authorization: bool, die_with_parent: Optional[bool], fast_ticks: bool,
                extra_config: Optional[dict]) -> MilvusServerHandle:
    names = [n for n in list(_PORT_KEYS) + ["metrics_port", "etcd_peer_port"] if n not in fixed]
    ports = dict(zip(names, _pick_free_ports(len(names), avoid=set(fixed.values()))))
    ports.update(fixed)

    etcd_conf = base_dir / "configs" / "embed-etcd.yaml"
    etcd_conf.parent.mkdir(parents=True, exist_ok=True)
    client_url = f"http://{HOST}:{ports['etcd_port']}"
    peer_url = f"http://{HOST}:{ports['etcd_peer_port']}"
    etcd_conf.write_text(
        "name: default\n"
        f"listen-client-urls: {client_url}\nadvertise-client-urls: {client_url}\n"
        f"listen-peer-urls: {peer_url}\ninitial-advertise-peer-urls: {peer_url}\n"
        f"initial-cluster: default={peer_url}\n"
        "initial-cluster-state: new\n",
        encoding="utf-8")
    if retry:                                  # the failed attempt may have left etcd state behind
        shutil.rmtree(base_dir / "data", ignore_errors=True)

    try:
        _prepare_binaries(milvus_mod, base_dir, cache)
        config_cls, server_cls = _make_server_classes(milvus_mod)
        config = config_cls(str(etcd_conf), data_dir=str(base_dir),
                            **{k: ports[k] for k in _PORT_KEYS})
        server = server_cls(config, wait_for_started=False)
    except MilvusServerUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MilvusServerUnavailable(f"cannot prepare the Milvus server in {base_dir}: {exc!r}")
    if die_with_parent is None:
        die_with_parent = threading.current_thread() is threading.main_thread()
    server.die_with_parent = die_with_parent
    server.webservice_port = ports["metrics_port"]
    config.set("etcd.endpoints", f"{HOST}:{ports['etcd_port']}")
    for section in _IP_SECTIONS:
        config.set(f"{section}.ip", HOST)
    config.set("authorization_enabled", bool(authorization))
    for key, value in {**(FAST_TICKS if fast_ticks else {}), **(extra_config or {})}.items():
        config.set(key, value)

    handle = MilvusServerHandle(uri=f"http://{HOST}:{ports['proxy_port']}", port=ports["proxy_port"],
                                base_dir=base_dir, pid=-1, ports=ports, start_seconds=0.0, server=server,
                                token="root:Milvus" if authorization else "")
    try:
        try:
            server.start()
        except MilvusServerUnavailable:
            raise
        except RuntimeError as exc:     # config.resolve(): "set proxy_port=..., but bind failed"
            err = MilvusServerUnavailable(f"cannot start the Milvus server: {exc}")
            err.port_conflict = "bind failed" in str(exc)
            raise err
        except OSError as exc:
            raise MilvusServerUnavailable(f"cannot run the Milvus server binary: {exc}")
        handle.pid = server.server_proc.pid
        with _LIVE_LOCK:
            _LIVE.add(handle)
        _wait_ready(handle, ports["metrics_port"], deadline)
    except BaseException:               # incl. KeyboardInterrupt during the wait
        stop_server(handle, grace=0.5)
        raise
    return handle


def stop_server(handle: Optional[MilvusServerHandle], grace: float = 1.0) -> None:
    """Stop the server (SIGTERM, then SIGKILL after ``grace`` s: a server with a loaded collection
    ignores SIGTERM for 40 s+, and test data needs no graceful stop) and anything still running its
    binary. Idempotent; never raises."""
    if handle is None:
        return
    t0 = time.monotonic()
    server = handle.server
    exe = str(handle.base_dir / "bin" / "milvus")
    try:
        if server is not None:
            server.stop(grace=grace)
    except Exception:  # noqa: BLE001
        pass
    finally:
        with contextlib.suppress(Exception):
            _kill_leftovers(exe)
        with _LIVE_LOCK:
            _LIVE.discard(handle)
        if handle.stop_seconds is None:
            handle.stop_seconds = time.monotonic() - t0


def live_servers() -> list:
    """Handles of the servers started by this process and not stopped yet."""
    with _LIVE_LOCK:
        return list(_LIVE)


@atexit.register
def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for handle in live:
        stop_server(handle, grace=1.0)


def skip_or_fail(reason: str):
    """pytest.skip(reason), or pytest.fail(reason) when CI=true."""
    import pytest
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"Milvus server unavailable on CI: {reason}", pytrace=False)
    pytest.skip(f"Milvus server unavailable: {reason}")


def milvus_server_session(tmp_path_factory, *, keep_data: bool = False, **start_kwargs) -> Iterator[str]:
    """Generator for a session-scoped fixture: yields "http://127.0.0.1:PORT", stops the server
    afterwards whatever happened (finally + atexit + PDEATHSIG), removes its data unless
    ``keep_data`` (or the env IMGSEARCH_KEEP_MILVUS_DATA=1). Skips (fails on CI) when unavailable."""
    base_dir = tmp_path_factory.mktemp("milvus-server")
    try:
        handle = start_server(base_dir, **start_kwargs)
    except MilvusServerUnavailable as exc:
        skip_or_fail(exc.reason)
        return
    try:
        yield handle.uri
    finally:
        stop_server(handle)
        if not keep_data and os.environ.get("IMGSEARCH_KEEP_MILVUS_DATA", "") != "1":
            shutil.rmtree(base_dir / "data", ignore_errors=True)


@contextlib.contextmanager
def running_server(base_dir, **start_kwargs) -> Iterator[MilvusServerHandle]:
    """``with running_server(dir) as h: MilvusClient(h.uri) ...`` (raises MilvusServerUnavailable)."""
    handle = start_server(base_dir, **start_kwargs)
    try:
        yield handle
    finally:
        stop_server(handle)


if __name__ == "__main__":   # python tests/milvus_server.py [BASE_DIR]: start, time, stop
    import tempfile
    own_dir = len(sys.argv) < 2
    target = Path(tempfile.mkdtemp(prefix="milvus-server-")) if own_dir else Path(sys.argv[1])
    try:
        h = start_server(target)
        print(f"started {h.uri} pid={h.pid} in {h.start_seconds:.2f}s; ports={h.ports}", flush=True)
        stop_server(h)
        print(f"stopped in {h.stop_seconds:.2f}s; leftovers: {_pids_running(str(h.base_dir / 'bin' / 'milvus'))}")
    finally:
        if own_dir:
            shutil.rmtree(target, ignore_errors=True)
