"""The OpenAPI schema tells the truth: schemathesis, every check on, against a real `imgsearch serve`.

`schemathesis run <url>/openapi.json -c all --max-examples 25` from the repository's root (whose
schemathesis.toml loads tests/schemathesis_hooks.py: real images for the image/* bodies). Local only: the
schema comes from the server, nothing from the internet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_process import indexed_gallery, served


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, photo_dir, vgg_weights):
    root = tmp_path_factory.mktemp("schema")
    uri = indexed_gallery(root, photo_dir, ("coffee", "rocket", "coins"), vgg_weights)
    with served(uri, vgg_weights, root / "serve.log") as server:
        yield server
    assert "Traceback" not in server.log_text()


def test_schemathesis_finds_no_failure(server):
    pytest.importorskip("schemathesis")
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json", "-c", "all",
               "--max-examples", "25", "--seed", "24"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "NO_COLOR": "1"})
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    assert "passed" in report and "failure" not in report.split("SUMMARY")[-1].lower(), report[-3000:]


def test_the_schema_names_every_status_and_constraint(server):
    schema = httpx.get(f"{server.url}/openapi.json").json()
    search = schema["paths"]["/api/search"]["post"]
    assert set(search["responses"]) == {"200", "400", "401", "413", "415", "422", "500", "503"}
    assert search["responses"]["503"]["headers"]["Retry-After"]
    multipart = search["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] == ["image"]
    params = {p["name"]: p["schema"] for p in search["parameters"]}
    assert (params["top_k"]["minimum"], params["top_k"]["maximum"]) == (1, 128)
    assert (params["threshold"]["minimum"], params["threshold"]["maximum"]) == (-1, 1)
    key = next(p for p in schema["paths"]["/api/images/{key}"]["put"]["parameters"] if p["name"] == "key")
    assert key["schema"]["pattern"].startswith("^") and key["schema"]["maxLength"] == 1024
    delete = schema["paths"]["/api/images/{key}"]["delete"]
    assert "404" in delete["responses"] and "422" not in delete["responses"]  # FastAPI's stock 422 is gone
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    not_allowed = httpx.patch(f"{server.url}/api/images/some-key")
    assert not_allowed.status_code == 405 and not_allowed.headers["Allow"] == "PUT, DELETE"
    assert "not allowed" in not_allowed.json()["error"]
