"""int8 VGG16: ONNX Runtime static quantization of the fp32 ONNX graph, calibrated on the shipped photo set.

QDQ format (ONNX Runtime fuses each QuantizeLinear/DequantizeLinear pair around a Conv into one integer
convolution), per-channel int8 weights, uint8 activations, MinMax ranges. Cosine to fp32, min / median (AMD EPYC,
avx2 avx512f avx512_vnni avx512_bf16; benchmarks/RESULTS.md#throughput):

| settings | photos | min | median | model alone, photos/s |
|---|---:|---:|---:|---:|
| 8-bit weights, every conv | 64 dev photos (fixed-seed sample) | 0.99669 | 0.99887 | |
| 7-bit weights (reduce_range), every conv | the same 64 | 0.99511 | 0.99814 | |
| 8-bit weights, block1_conv1 kept fp32 | the same 64 | 0.99739 | 0.99910 | |
| 7-bit weights, block1_conv1 kept fp32 (the settings until 2026-12-07) | all 534 dev photos | 0.99466 | 0.99851 | 25.9 |
| **7-bit weights, every conv (these settings)** | all 534 dev photos | 0.99060 | 0.99817 | **27.3** |

- **Every convolution in int8**, block1_conv1 too. It is 0.6% of the model's multiply-adds, but kept in fp32 it
  cost 5-7% of the model's time (batch 16, 12 runs alternating, quiet machine): ONNX Runtime runs an fp32 conv in
  its NCHWc layout and reorders its 224x224x64 output back (ReorderOutput, 40 ms of a 690 ms batch), then
  quantizes it. Quantizing it costs the worst dev photo 0.004 of cosine, still above the 0.99 guard; the
  difference decides whether `imgsearch index` reaches 3.5x fp32 (benchmarks/RESULTS.md#throughput).
- **7-bit weights (reduce_range)**: without VNNI (plain AVX2 and AVX-512 without VNNI) ONNX Runtime multiplies
  uint8 by int8 with ``vpmaddubsw``, whose int16 pair sums saturate past 32767 (255 x 127 x 2 = 64770). With
  weights in [-64, 64] no sum can (255 x 64 x 2 = 32640), so the same model file computes the same integers
  on AVX2, VNNI and AMX, and vectors do not depend on the machine that made them. It costs 0.002 of the worst
  cosine (above) and no speed.
- **MinMax**, not Percentile: the same speed, the better worst case (/work/shared/notes/int8.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

# Recorded in each int8 model's sidecar: a model made with other settings is rebuilt (onnx_cache.check_model).
SETTINGS = {
    "format": "QDQ",
    "weights": "int8 per-channel, 7-bit range (reduce_range)",
    "activations": "uint8",
    "calibration": "MinMax",
    "fp32_nodes": [],
}
CALIBRATION_BATCH = 8


def quantize_int8(fp32_model: Path, dest: Path, inputs, *, input_name: str = "input",
                  fp32_nodes=tuple(SETTINGS["fp32_nodes"])) -> None:
    """Write the int8 model of ``fp32_model`` to ``dest``, calibrated on ``inputs`` (n, 224, 224, 3) float32."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                [{input_name: inputs[i : i + CALIBRATION_BATCH]} for i in range(0, len(inputs), CALIBRATION_BATCH)]
            )

        def get_next(self):
            return next(self.batches, None)

    # ONNX Runtime keeps its augmented calibration model in a temporary directory of its own. It advises
    # pre-processing (shape inference, constant folding) on the root logger: our graph has nothing to fold.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(
            str(fp32_model), str(dest), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(fp32_nodes),
        )
    finally:
        root.setLevel(level)
