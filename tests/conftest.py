"""Shared fixtures: real photos (scikit-image's bundled CC0 samples), genuine VGG16 weights, real Milvus Lite."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from helpers import jpeg_bytes  # noqa: F401  (test modules that import it from here)

from imgsearch.demo import SAMPLE_PHOTOS, add_black_border, sample_image, write_sample_photos  # noqa: F401

DEV_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "dev"


@pytest.fixture(scope="session")
def sample_images() -> dict[str, Image.Image]:
    return {name: sample_image(name) for name in SAMPLE_PHOTOS}


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory, sample_images) -> Path:
    """The sample photos as JPEG files (quality 95), one per name."""
    folder = tmp_path_factory.mktemp("photos")
    write_sample_photos(folder)
    return folder


@pytest.fixture
def small_photo_dir(tmp_path, photo_dir) -> Path:
    """A fresh, writable copy of six photos, for tests that change files."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins"):
        shutil.copy2(photo_dir / f"{name}.jpg", folder / f"{name}.jpg")
    return folder


@pytest.fixture(scope="session")
def vgg_weights():
    """Genuine ImageNet weights: from the user's cache, or fetched once through the offline pinned artifact."""
    from imgsearch.weights import resolve_weights

    return resolve_weights(os.environ.get("IMGSEARCH_WEIGHTS"), auto_fetch=True).path


@pytest.fixture(scope="session")
def vgg(vgg_weights):
    from imgsearch.features import VGG16Features

    # The precision the CLI would pick (its --precision reads IMGSEARCH_PRECISION), so that a suite run under
    # IMGSEARCH_PRECISION=fp32, int8 or bf16 compares the CLI's vectors with the library's in that precision.
    embedder = VGG16Features(weights=str(vgg_weights), precision=os.environ.get("IMGSEARCH_PRECISION", "auto"))
    embedder.model  # load once for the whole session
    return embedder


@pytest.fixture
def lite_uri(tmp_path) -> str:
    return str(tmp_path / "imgsearch.db")


# --- Milvus targets: every store/index/search test runs on Milvus Lite and on a real server ------------


@dataclass
class MilvusTarget:
    kind: str  # "lite" or "server"
    uri: str
    collection: str


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory):
    """A real Milvus 2.3.5 standalone server for the whole session (skipped if it cannot start, failed under CI)."""
    from milvus_server import milvus_server_session

    yield from milvus_server_session(tmp_path_factory)


def _collection_name(nodeid: str) -> str:
    return "t_" + hashlib.blake2b(nodeid.encode(), digest_size=8).hexdigest()


BACKENDS = ["lite", pytest.param("server", marks=pytest.mark.server)]


def _target(request, folder: Path):
    """A fresh place to store vectors: a new Milvus Lite database, or a new collection on the shared server."""
    if request.param == "lite":
        yield MilvusTarget("lite", str(folder / "imgsearch.db"), "images")
        return
    uri = request.getfixturevalue("milvus_server_uri")
    target = MilvusTarget("server", uri, _collection_name(request.node.nodeid))
    yield target
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    if client.has_collection(target.collection):
        client.drop_collection(target.collection)
    client.close()


@pytest.fixture(params=BACKENDS)
def milvus(request, tmp_path):
    yield from _target(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def milvus_module(request, tmp_path_factory):
    """The same, shared by a module's tests (for read-only tests over one indexed gallery)."""
    yield from _target(request, tmp_path_factory.mktemp("milvus"))


@pytest.fixture
def coll(milvus, vgg, gallery):
    """The collection a module's own ``gallery`` fixture indexed (read-only tests over one indexed gallery)."""
    from imgsearch.store import Store

    store = Store(milvus.uri)
    yield store.collection(milvus.collection, vgg.config(), create=False)
    store.close()
