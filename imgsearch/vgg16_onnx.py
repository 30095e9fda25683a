"""VGG16 in ONNX Runtime: the fp32 and int8 engines behind ``VGG16Features`` (bf16 stays on Keras/TensorFlow).

Why ONNX Runtime (benchmarks/RESULTS.md#throughput, AMD EPYC avx2 avx512f avx512_vnni avx512_bf16): int8 at
about 4x the fp32 rate through its VNNI kernels (TFLite's XNNPACK int8 was as fast, but ships inside TensorFlow,
whose import alone is 2.2 s of a one-shot search), fp32 as fast as TensorFlow's and the same vectors (cosine
1.00000), and ``import onnxruntime`` plus a session in about 0.3 s. ONNX Runtime picks its integer kernels from
the CPU itself: AMX-INT8 tiles, AVX512-VNNI / AVX-VNNI ``vpdpbusd``, else AVX2 ``vpmaddubsw``.

The model files are made once from the genuine weights and kept, checked, in the cache (``weights.onnx_cache``).
"""

from __future__ import annotations

import os

import numpy as np

from .weights.onnx_cache import Expected, ModelFile, ModelSidecar, ensure_model
from .weights.onnx_graph import INPUT_NAME, OUTPUT_NAME

ENGINE = "onnxruntime"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxVGG16:
    """One ONNX Runtime session of VGG16's conv part; called like the Keras model (``predict_on_batch``)."""

    def __init__(self, model: ModelFile):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Every core we may use: ONNX Runtime's default counts physical cores only (1 of 2 vCPUs on our VMs).
        options.intra_op_num_threads = usable_cores()
        # No busy-waiting between a batch's operators: the decoding threads of ``embed_sources`` share the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about unused initializers etc. are not the user's business
        self.model = model
        self.precision = model.precision
        self.session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        self.description = f"{ENGINE} {ort.__version__} {model.precision}"

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) caffe-preprocessed -> (n, 7, 7, 512) block5 map, as Keras's VGG16 gives it."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    def __call__(self, batch, training=False):
        return self.predict_on_batch(np.asarray(batch))


def model_file(precision: str, weights_info, progress=None) -> ModelFile:
    """The checked model file of ``precision`` ("fp32" or "int8") for these weights, made first if needed."""
    from .weights.calibration import calibration_digest
    from .weights.quantize import SETTINGS

    if precision == "int8":
        expected = Expected("int8", weights_info.sha256, calibration_digest(), SETTINGS)
        return ensure_model(expected, lambda tmp: _build_int8(tmp, weights_info, progress), progress,
                            " (int8, calibrated on 64 photos shipped with imgsearch; once, about a minute)")
    return ensure_model(Expected("fp32", weights_info.sha256), lambda tmp: _build_fp32(tmp, weights_info), progress)


def ensure_models(weights_info, progress=None) -> list[ModelFile]:
    """Both model files, checked or made (``imgsearch weights fetch`` makes them ahead of first use)."""
    return [model_file(precision, weights_info, progress) for precision in ("fp32", "int8")]


def load(precision: str, weights_info, progress=None) -> OnnxVGG16:
    return OnnxVGG16(model_file(precision, weights_info, progress))


def load_if_made(precision: str, weights_info) -> OnnxVGG16 | None:
    """The session of an already made, checked model; None where it would have to be made first."""
    from .weights.calibration import calibration_digest
    from .weights.onnx_cache import check_model, model_path
    from .weights.quantize import SETTINGS

    if precision == "int8":
        expected = Expected("int8", weights_info.sha256, calibration_digest(), SETTINGS)
    else:
        expected = Expected("fp32", weights_info.sha256)
    path = model_path(precision)
    usable, why = check_model(path, expected)
    if not usable:
        return None
    return OnnxVGG16(ModelFile(path, precision, ModelSidecar.read(path).sha256, False, why))


def _build_fp32(dest, weights_info) -> None:
    import onnx

    from .weights.onnx_graph import conv_weights_from_file, vgg16_onnx

    onnx.save(vgg16_onnx(conv_weights_from_file(weights_info.path)), str(dest))


def _build_int8(dest, weights_info, progress) -> None:
    from .weights.quantize import quantize_int8

    fp32 = model_file("fp32", weights_info, progress)
    quantize_int8(fp32.path, dest, calibration_inputs(), input_name=INPUT_NAME)


def calibration_inputs() -> np.ndarray:
    """The shipped calibration photos as the model sees them (the default ``prepare``: border cut, resized)."""
    from .features import VGG16Features, load_image
    from .weights.calibration import calibration_files

    prepare = VGG16Features().prepare
    return np.stack([prepare(load_image(path).image) for path in calibration_files()])
