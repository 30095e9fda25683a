"""How fast can this CPU run one VGG16 pass? The same network and weights in four inference engines, side by side.

    python benchmarks/engines.py [--repeats 7]

A query with the copy verdict makes one model pass per view (the picture, a frame-cut view, each picture inside
it, two turned views when no copy is found), so the pass's cost sets a floor under a query's. Engines: TensorFlow
(what imgsearch runs: ``VGG16Features.embed``), and an ONNX graph of the same network built here from the genuine
weights (13 convolutions, ReLU, 5 max-pools, a global max-pool: the 512-d vector before L2 normalisation) run by
ONNX Runtime, OpenVINO and OpenCV's DNN module. Each is timed on the same random 224x224 batches, interleaved,
batch sizes 1 and 2 (a query's views); the vectors are compared with TensorFlow's (largest error relative to the
largest value). ONNX Runtime and OpenVINO are not imgsearch dependencies: an engine that is not installed is
skipped and said so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

THREADS = 2


def onnx_graph(model, path: str) -> None:
    """The Keras VGG16 (no top) as an ONNX graph: NHWC input, global max-pool output (n, 512)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2])]
    weights = []
    current = "x0"
    for i, layer in enumerate(model.layers):
        kind = layer.__class__.__name__
        if kind == "Conv2D":
            kernel, bias = layer.get_weights()
            weights += [numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).copy(), f"w{i}"),
                        numpy_helper.from_array(bias, f"b{i}")]
            nodes.append(helper.make_node("Conv", [current, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1],
                                          kernel_shape=[3, 3]))
            nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
            current = f"r{i}"
        elif kind == "MaxPooling2D":
            nodes.append(helper.make_node("MaxPool", [current], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            current = f"p{i}"
    nodes += [helper.make_node("GlobalMaxPool", [current], ["g"]), helper.make_node("Flatten", ["g"], ["out"])]
    graph = helper.make_graph(
        nodes, "vgg16", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 224, 224, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 512])], weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def engines(model, path: str) -> dict:
    """name -> (run(batch) -> (n, 512) vectors, or the reason it is not available)."""
    # imgsearch's own call (VGG16Features.embed), max-pooled; the L2 normalisation after it costs microseconds.
    out = {"TensorFlow (imgsearch)": lambda x: np.asarray(model.predict_on_batch(x)).max(axis=(1, 2))}
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        out[f"ONNX Runtime {ort.__version__}"] = lambda x: session.run(["out"], {"input": x})[0]
    except ImportError:
        out["ONNX Runtime"] = "not installed"
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), "CPU",
                                      {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32"})
        out[f"OpenVINO {ov.__version__.split('-')[0]}"] = lambda x: compiled(x)[0]
    except ImportError:
        out["OpenVINO"] = "not installed"
    import cv2

    net = cv2.dnn.readNetFromONNX(path)

    def opencv(x):
        net.setInput(x)
        return net.forward()

    out[f"OpenCV DNN {cv2.__version__}"] = opencv
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed passes per engine and batch size")
    args = parser.parse_args(argv)

    from imgsearch.features import VGG16Features

    model = VGG16Features(precision="fp32").model
    rng = np.random.default_rng(0)
    batches = {n: (rng.random((n, 224, 224, 3), dtype=np.float32) * 255 - 120) for n in (1, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vgg16.onnx")
        onnx_graph(model, path)
        runs = engines(model, path)
        ready = {name: run for name, run in runs.items() if callable(run)}
        reference = {n: ready["TensorFlow (imgsearch)"](x) for n, x in batches.items()}
        seconds = {(name, n): [] for name in ready for n in batches}
        error = {}
        for name, run in ready.items():  # warm-up, and the vectors' agreement
            for n, x in batches.items():
                got = np.asarray(run(x)).reshape(n, -1)
                error[name] = max(error.get(name, 0.0),
                                  float(np.abs(got - reference[n]).max() / np.abs(reference[n]).max()))
        for _ in range(args.repeats):  # interleaved: a slow spell of the machine hits every engine alike
            for name, run in ready.items():
                for n, x in batches.items():
                    t = time.perf_counter()
                    run(x)
                    seconds[(name, n)].append(time.perf_counter() - t)

    common.header("One VGG16 pass in four inference engines (fp32, 224x224, 2 threads)")
    base = {n: common.median(seconds[("TensorFlow (imgsearch)", n)]) for n in batches}
    rows = []
    for name in ready:
        one, two = (common.median(seconds[(name, n)]) for n in batches)
        rows.append([name, f"{one:.3f}", f"{two:.3f}", f"{base[1] / one:.2f}x", f"{base[2] / two:.2f}x",
                     f"{error[name]:.1e}"])
    print(common.table(["engine", "batch 1: median s", "batch 2: median s", "speed vs TF (1)", "speed vs TF (2)",
                        "largest error"], rows))
    for name, run in runs.items():
        if not callable(run):
            print(f"\n{name}: {run}, skipped.")
    print(f"\n{args.repeats} timed passes each, interleaved; medians.")
    common.footer()


if __name__ == "__main__":
    main()
