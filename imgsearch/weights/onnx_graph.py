"""VGG16's convolutional part as an ONNX graph, written from the genuine weights file, without TensorFlow.

The graph is exactly ``keras.applications.VGG16(include_top=False)``: 13 3x3 convolutions with ReLU and 5 2x2
max-pools, NHWC in (n, 224, 224, 3) and block5's map out (n, 7, 7, 512), NHWC, so ``features.pool_feature_map``
pools it as it pools Keras's. ONNX Runtime on it matches TensorFlow fp32 (cosine 1.00000, /work/shared/notes/int8.md;
tests/test_int8.py checks it on real photos).

The weights are read from the ``.h5`` with h5py (cheap; TensorFlow is not imported) and checked against the
reference values before anything is written: a random, fine-tuned or corrupted file is refused here as it is when
Keras loads it. A layout h5py reading does not know is read through Keras instead.
"""

from __future__ import annotations

import re

from ..errors import WeightsError
from .reference import refuse_unless_genuine
from .results import one_line
from .sources import CONV_LAYERS

OPSET = 17
INPUT_NAME = "input"  # (n, 224, 224, 3) float32, caffe-preprocessed (features.vgg16_preprocess)
OUTPUT_NAME = "block5_pool"  # (n, 7, 7, 512) float32
# Layers after which VGG16 max-pools (Keras's block<k>_pool).
POOL_AFTER = {"block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"}


def conv_weights_from_file(path) -> dict:
    """``{layer: (kernel (h, w, in, out), bias)}`` of the 13 convolutions, checked against the reference values."""
    try:
        weights = _read_h5(path)
    except OSError as e:
        raise WeightsError(f"cannot read weights from {path}: {one_line(e)}") from None
    if weights is None:  # a layout this reader does not know: Keras knows every layout it wrote
        from .runtime import _conv_weights_of

        weights = _conv_weights_of(str(path))
    refuse_unless_genuine(weights, f"the weights in {path}")
    return weights


def _read_h5(path) -> dict | None:
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        if "layers" in f:  # Keras 3 ``.weights.h5``: layers named by class and creation order (conv2d, conv2d_1...)
            convs = sorted((k for k in f["layers"] if re.fullmatch(r"conv2d(_\d+)?", k)), key=_creation_order)
            if len(convs) != len(CONV_LAYERS):
                return None
            return {name: (np.asarray(f["layers"][k]["vars"]["0"]), np.asarray(f["layers"][k]["vars"]["1"]))
                    for (name, _), k in zip(CONV_LAYERS, convs)}
        root = f["model_weights"] if "model_weights" in f else f
        if all(name in root for name, _ in CONV_LAYERS):  # Keras 2 / legacy ``.h5``: groups by layer name
            out = {}
            for name, _ in CONV_LAYERS:
                group = root[name]
                kernel, bias = (np.asarray(group[n]) for n in group.attrs["weight_names"])
                out[name] = (kernel, bias)
            return out
    return None


def _creation_order(key: str) -> int:
    return int(key.rsplit("_", 1)[1]) if "_" in key[len("conv2d"):] else 0


def vgg16_onnx(conv_weights: dict):
    """The ONNX model (opset 17) of VGG16's conv part holding ``conv_weights``; NHWC in, block5 map NHWC out."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Transpose", [INPUT_NAME], ["x_nchw"], perm=[0, 3, 1, 2])]
    initializers = []
    current = "x_nchw"
    for name, _ in CONV_LAYERS:
        kernel, bias = conv_weights[name]
        initializers += [numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).astype("float32"), f"{name}_W"),
                         numpy_helper.from_array(bias.astype("float32"), f"{name}_b")]
        nodes.append(helper.make_node("Conv", [current, f"{name}_W", f"{name}_b"], [f"{name}_conv"], name=name,
                                      pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
        nodes.append(helper.make_node("Relu", [f"{name}_conv"], [f"{name}_relu"], name=f"{name}_relu"))
        current = f"{name}_relu"
        if name in POOL_AFTER:
            pool = name.split("_")[0] + "_pool"
            nodes.append(helper.make_node("MaxPool", [current], [pool + "_nchw"], name=pool, kernel_shape=[2, 2],
                                          strides=[2, 2]))
            current = pool + "_nchw"
    nodes.append(helper.make_node("Transpose", [current], [OUTPUT_NAME], perm=[0, 2, 3, 1]))
    graph = helper.make_graph(
        nodes, "vgg16_notop",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", 224, 224, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", 7, 7, 512])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="imgsearch")
