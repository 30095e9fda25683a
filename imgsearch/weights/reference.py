"""The values the genuine VGG16 ImageNet convolution weights hold, and the rule that compares weights with them.

The values were taken from the hash-verified ONNX file; they equal Keras's notop file and the Oxford release.
Pure: numpy arrays in, the list of differences out. Loading a model to compare is ``runtime``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import WeightsError
from .sources import CONV_LAYERS, how_to_message

REFERENCE_ATOL = 1e-6
REF_BLOCK1_CONV1_KERNEL_0004 = (0.42947056889533997, 0.11727386713027954, 0.03401295840740204, 0.3542209267616272)
"""``block1_conv1`` kernel ``[0, 0, 0, :4]`` (Keras layout h, w, in, out)."""
REF_BLOCK1_CONV1_BIAS_04 = (0.7342983484268188, 0.09340367466211319, 0.06775674223899841, 0.8862965703010559)
"""``block1_conv1`` bias ``[:4]``."""
REF_BIAS0 = {
    "block1_conv1": 0.7342983484268188,
    "block1_conv2": -0.30912211537361145,
    "block2_conv1": -0.045777659863233566,
    "block2_conv2": -0.06418541818857193,
    "block3_conv1": -0.07435886561870575,
    "block3_conv2": 0.01967501826584339,
    "block3_conv3": 0.03541524335741997,
    "block4_conv1": 0.013485669158399105,
    "block4_conv2": 0.023680461570620537,
    "block4_conv3": 0.03757768124341965,
    "block5_conv1": 0.09722325205802917,
    "block5_conv2": 0.21327872574329376,
    "block5_conv3": 0.18837857246398926,
}
"""``bias[0]`` of every convolution layer."""
# Sum of |kernel| per layer (float64). bias[0] alone would miss a change confined to the kernels (e.g. a
# fine-tuned or partly overwritten layer); this catches any change to a whole layer cheaply.
REF_KERNEL_ABS_SUM = {
    "block1_conv1": 291.40991200292774,
    "block1_conv2": 1077.5184172807292,
    "block2_conv1": 1535.1212472284487,
    "block2_conv2": 2332.885342442397,
    "block3_conv1": 3517.584330605373,
    "block3_conv2": 5236.949707445968,
    "block3_conv3": 5341.08795349349,
    "block4_conv1": 8627.952565794638,
    "block4_conv2": 13598.750083004958,
    "block4_conv3": 14115.6388292019,
    "block5_conv1": 15542.229607710851,
    "block5_conv2": 16046.12383307079,
    "block5_conv3": 15455.230054003776,
}
KERNEL_ABS_SUM_RTOL = 1e-7  # summation-order noise is ~1e-15 relative


def conv_weight_problems(conv_weights: Mapping) -> list[str]:
    """What differs from the reference values in ``{layer: (kernel, bias)}``, in layer order; empty if nothing."""
    problems = []
    for name, shape in CONV_LAYERS:
        if name not in conv_weights:
            problems.append(f"{name} missing")
            continue
        problems += _layer_problems(name, shape, *conv_weights[name])
    if "block1_conv1" in conv_weights:
        problems += _first_layer_value_problems(*conv_weights["block1_conv1"])
    return problems


def _layer_problems(name: str, shape: tuple, kernel, bias) -> list[str]:
    import numpy as np

    kernel, bias = np.asarray(kernel), np.asarray(bias)
    if kernel.shape != shape or bias.shape != (shape[3],):
        return [f"{name} shape {kernel.shape}/{bias.shape}, expected {shape}"]
    problems = []
    if not np.isclose(bias[0], REF_BIAS0[name], rtol=0, atol=REFERENCE_ATOL):
        problems.append(f"{name} bias[0]={float(bias[0]):.6g}, expected {REF_BIAS0[name]:.6g}")
    s = float(np.abs(kernel).sum(dtype=np.float64))
    if not np.isclose(s, REF_KERNEL_ABS_SUM[name], rtol=KERNEL_ABS_SUM_RTOL, atol=0):
        problems.append(f"{name} kernel |sum|={s:.6f}, expected {REF_KERNEL_ABS_SUM[name]:.6f}")
    return problems


def _first_layer_value_problems(kernel, bias) -> list[str]:
    """``block1_conv1``'s first values one by one (a wrong shape was reported already)."""
    import numpy as np

    kernel, bias = np.asarray(kernel), np.asarray(bias)
    if kernel.shape != CONV_LAYERS[0][1] or bias.shape != (64,):
        return []
    problems = []
    if not np.allclose(kernel[0, 0, 0, :4], REF_BLOCK1_CONV1_KERNEL_0004, rtol=0, atol=REFERENCE_ATOL):
        problems.append("block1_conv1 kernel[0,0,0,:4] differs")
    if not np.allclose(bias[:4], REF_BLOCK1_CONV1_BIAS_04, rtol=0, atol=REFERENCE_ATOL):
        problems.append("block1_conv1 bias[:4] differs")
    return problems


def refuse_unless_genuine(conv_weights: Mapping, what: str) -> None:
    """Raise WeightsError naming the first differences unless ``conv_weights`` hold the reference values."""
    problems = conv_weight_problems(conv_weights)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise WeightsError(
            f"{what} are not the genuine VGG16 ImageNet weights ({shown}). "
            "Random, fine-tuned or corrupted weights are refused. " + how_to_message()
        )
