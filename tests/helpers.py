"""Helpers the test modules share (fixtures live in conftest.py): running the CLI, reading its JSON lines, and
the edited copies most tests search with."""

from __future__ import annotations

import io
import json

from click.testing import CliRunner, Result
from PIL import Image

from imgsearch.cli import cli
from imgsearch.demo import add_black_border


def run_cli(*args, input=None, weights=None, env: dict | None = None) -> Result:
    """``imgsearch ARGS...`` in-process (arguments may be paths); ``weights``: the VGG16 file to use."""
    env = dict(env or {})
    if weights is not None:
        env["IMGSEARCH_WEIGHTS"] = str(weights)
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)


def json_lines(output: str) -> list[dict]:
    """The JSON objects a --json command printed, one per line."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def bordered_copy(img: Image.Image, share: float = 0.08, quality: int = 40) -> bytes:
    """The kind of copy users hold: a black border added, then recompressed as a low-quality JPEG."""
    return jpeg_bytes(add_black_border(img, share), quality=quality)
