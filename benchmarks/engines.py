"""How fast can this CPU run one VGG16 pass? The same network and weights in four inference engines, side by side.

    python benchmarks/engines.py [--repeats 7]

A query with the copy verdict makes one model pass per view (the picture, a frame-cut view, each picture inside
it, two turned views when no copy is found), so the pass's cost sets a floor under a query's. Engines: TensorFlow
(what imgsearch runs: ``VGG16Features.embed``), and an ONNX graph of the same network built here from the genuine
weights (13 convolutions, ReLU, 5 max-pools, a global max-pool: the 512-d vector before L2 normalisation) run by
ONNX Runtime (fp32 and imgsearch's int8 model), OpenVINO and OpenCV's DNN module. Each is timed on the same random 224x224 batches, interleaved,
batch sizes 1 and 2 (a query's views); the vectors are compared with TensorFlow's (largest error relative to the
largest value; int8's error is quantization's). OpenVINO is not an imgsearch dependency: skipped when not
installed, and said so.
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


def onnx_graph(weights_path, path: str) -> None:
    """The VGG16 graph imgsearch runs in ONNX Runtime (``imgsearch.weights.onnx_graph``): NHWC in, block5 map out."""
    import onnx

    from imgsearch.weights.onnx_graph import conv_weights_from_file, vgg16_onnx

    onnx.save(vgg16_onnx(conv_weights_from_file(weights_path)), path)


def engines(model, path: str) -> dict:
    """name -> (run(batch) -> (n, 512) vectors, or the reason it is not available)."""
    # imgsearch's own call (VGG16Features.embed), max-pooled; the L2 normalisation after it costs microseconds.
    out = {"TensorFlow fp32 (Keras)": lambda x: np.asarray(model.predict_on_batch(x)).max(axis=(1, 2))}
    import onnxruntime as ort

    from imgsearch.features import VGG16Features

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    out[f"ONNX Runtime {ort.__version__}"] = lambda x: session.run(None, {"input": x})[0].max(axis=(1, 2))
    int8 = VGG16Features(precision="int8").model  # imgsearch's int8 engine: its cached, checked model
    out[f"ONNX Runtime {ort.__version__} int8 (imgsearch)"] = lambda x: int8.predict_on_batch(x).max(axis=(1, 2))
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), "CPU",
                                      {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32"})
        out[f"OpenVINO {ov.__version__.split('-')[0]}"] = lambda x: compiled(x)[0].max(axis=(1, 2))
    except ImportError:
        out["OpenVINO"] = "not installed"
    import cv2

    net = cv2.dnn.readNetFromONNX(path)

    def opencv(x):
        net.setInput(x)
        return net.forward().max(axis=(1, 2))

    out[f"OpenCV DNN {cv2.__version__}"] = opencv
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed passes per engine and batch size")
    args = parser.parse_args(argv)

    from imgsearch.weights import build_vgg16, resolve_weights

    weights_path = resolve_weights().path
    model = build_vgg16(weights_path)  # the Keras reference (imgsearch's bf16 engine; fp32 before issue 22)
    rng = np.random.default_rng(0)
    batches = {n: (rng.random((n, 224, 224, 3), dtype=np.float32) * 255 - 120) for n in (1, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vgg16.onnx")
        onnx_graph(weights_path, path)
        runs = engines(model, path)
        ready = {name: run for name, run in runs.items() if callable(run)}
        reference = {n: ready["TensorFlow fp32 (Keras)"](x) for n, x in batches.items()}
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
    base = {n: common.median(seconds[("TensorFlow fp32 (Keras)", n)]) for n in batches}
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
