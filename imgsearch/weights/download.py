"""Keras's standard download of its notop file (md5-checked), after a quick check that its host answers."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import WeightsError
from .cache import file_hashes
from .results import WeightsInfo, one_line, say
from .runtime import import_keras
from .sources import DOWNLOAD_SOCKET_TIMEOUT, KERAS_NOTOP_FILENAME, KERAS_NOTOP_MD5, KERAS_NOTOP_ORIGIN, keras_home


def probe(url: str, timeout: float) -> None:
    """Raise OSError unless a TCP connection to the URL's host (or its proxy) opens within ``timeout``.

    Without this, an unreachable network can hang urllib for minutes. DNS lookups ignore socket timeouts, so the
    probe runs in a daemon thread that we stop waiting for.
    """
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(u.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        host, port = p.hostname, p.port or 8080
    result = {}

    def run():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = e

    th = threading.Thread(target=run, name="imgsearch-probe", daemon=True)
    th.start()
    th.join(timeout + 0.5)
    if "ok" in result:
        return
    if "error" in result:
        raise OSError(f"cannot reach {host}:{port}: {one_line(result['error'])}")
    raise OSError(f"cannot reach {host}:{port}: no answer within {timeout:g} s")


def keras_download(force, progress, probe_timeout) -> WeightsInfo:
    probe(KERAS_NOTOP_ORIGIN, probe_timeout)
    say(progress, "  host reachable; downloading (md5-checked) ...")
    keras = import_keras()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT)
    try:
        # Keras prints its progress bar on stdout; keep stdout clean for --json.
        with contextlib.redirect_stdout(sys.stderr):
            path = keras.utils.get_file(
                KERAS_NOTOP_FILENAME,
                KERAS_NOTOP_ORIGIN,
                cache_subdir="models",
                file_hash=KERAS_NOTOP_MD5,
                hash_algorithm="md5",
                cache_dir=str(keras_home()),
                force_download=force,
            )
    finally:
        socket.setdefaulttimeout(old)
    p = Path(path)
    hs = file_hashes(p, ("md5", "sha256"))
    if hs["md5"] != KERAS_NOTOP_MD5:  # get_file checks too; this keeps our guarantee independent of it
        raise WeightsError(f"downloaded {p} has md5 {hs['md5']}, expected {KERAS_NOTOP_MD5}")
    return WeightsInfo(p, "keras-download", True, hs["sha256"], "md5 matches Keras's published hash", p.stat().st_size)
