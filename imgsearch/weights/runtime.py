"""The Keras runtime: importing Keras quietly, building VGG16 with a weights file loaded, and refusing weights
that are not the genuine ones once they are in a model.

Keras and TensorFlow are imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import WeightsError
from .reference import refuse_unless_genuine
from .results import one_line
from .sources import CONV_LAYERS


def import_keras():
    """Import keras on the TensorFlow backend, quietly. Everyone who needs keras should come through here."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:
        return sys.modules["keras"]
    # TensorFlow 2.21 writes absl/oneDNN banners straight to file descriptor 2 on import, whatever
    # TF_CPP_MIN_LOG_LEVEL says; hide them so the user sees our output only. Errors still raise.
    with _stderr_fd_silenced():
        import keras
        import tensorflow  # noqa: F401  (its C++ start-up banners happen here)

    return keras


@contextlib.contextmanager
def _stderr_fd_silenced():
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (an embedded interpreter): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def build_vgg16(weights_path=None, *, pooling=None, input_shape=(224, 224, 3), check=True):
    """``keras.applications.VGG16(include_top=False)`` with the given weights file loaded (and checked)."""
    keras = import_keras()
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=input_shape, pooling=pooling)
    if weights_path is not None:
        try:
            model.load_weights(str(weights_path))
        except Exception as e:  # keras raises many kinds for a wrong or corrupt file
            raise WeightsError(f"cannot load weights from {weights_path}: {one_line(e)}") from None
        if check:
            check_reference_values(model, label=str(weights_path))
    return model


def check_reference_values(model_or_weights, label=None) -> None:
    """Raise WeightsError unless the 13 conv layers hold the genuine VGG16 ImageNet weights.

    Accepts a Keras model (any VGG16 variant with Keras's layer names), a ``{layer: (kernel, bias)}`` mapping, or
    a weights file path. Compares the recorded reference values (atol 1e-6) and per-layer kernel |sum|.
    """
    refuse_unless_genuine(_conv_weights_of(model_or_weights), label or "weights")


def _conv_weights_of(model_or_weights) -> dict:
    if isinstance(model_or_weights, (str, os.PathLike)):
        model_or_weights = build_vgg16(model_or_weights, check=False)
    if hasattr(model_or_weights, "get_layer"):
        out = {}
        for name, _ in CONV_LAYERS:
            try:
                layer = model_or_weights.get_layer(name)
            except ValueError:
                raise WeightsError(f"model has no layer {name}: not a Keras VGG16") from None
            w = layer.get_weights()
            if len(w) != 2:
                raise WeightsError(f"layer {name} has {len(w)} weight arrays, expected kernel and bias")
            out[name] = (w[0], w[1])
        return out
    return {name: tuple(model_or_weights[name]) for name, _ in CONV_LAYERS if name in model_or_weights}
