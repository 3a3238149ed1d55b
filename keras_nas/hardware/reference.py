"""The fixed reference model every paired latency measurement is timed against.

A paired measurement (`measure_latency(..., protocol="paired")`, the default) times the
candidate interleaved with this model and reports the candidate relative to it; the
reference's own latency on a device is calibrated once (`calibrate_reference`) and turns the
ratio into milliseconds. The reference is a small MobileNet-like network (64x64x3 input,
a 3x3 convolution, two depthwise-separable blocks, global pooling, a dense head; about
3.0 M multiply-adds, ~0.1 ms with XNNPACK on one x86 core), so it exercises the same kind
of kernels as the candidates of a search and its blocks are short.

It ships as bytes (`latency_reference_v1.tflite` beside this file) so that its identity is
fixed: the converter does not write the same bytes twice, and every result names the
reference by `REFERENCE_NAME` and `REFERENCE_SHA256`. `build_reference_model()` is the
Keras model it was converted from (deterministic weights), kept to rebuild or inspect it.
"""

import hashlib
import os

REFERENCE_NAME = "keras-nas-latency-reference-v1"
REFERENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "latency_reference_v1.tflite")
REFERENCE_SHA256 = "0c2012b8fe8e72073fc3265299a20914c5cc20147cffa6e43033ff7ce91bbcdc"
INPUT_SHAPE = (64, 64, 3)
_SEED = 17


def build_reference_model():
    """The Keras model the shipped reference was converted from (fixed weights).

    Example:

    ```python
    model = build_reference_model()
    data = keras_nas.hardware.to_tflite(model)   # same network as `reference_tflite()`
    ```
    """
    import keras
    import numpy as np

    layers = keras.layers
    inp = keras.Input(INPUT_SHAPE, name="reference_input")
    x = layers.Conv2D(16, 3, padding="same", activation="relu6", name="ref_stem")(inp)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6",
                               name="ref_dw1")(x)
    x = layers.Conv2D(32, 1, activation="relu6", name="ref_pw1")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6",
                               name="ref_dw2")(x)
    x = layers.Conv2D(64, 1, activation="relu6", name="ref_pw2")(x)
    x = layers.GlobalAveragePooling2D(name="ref_pool")(x)
    out = layers.Dense(10, name="ref_head")(x)
    model = keras.Model(inp, out, name="latency_reference_v1")
    rng = np.random.default_rng(_SEED)
    model.set_weights([(0.1 * rng.standard_normal(w.shape)).astype("float32")
                       for w in model.get_weights()])
    return model


def reference_tflite():
    """The shipped reference flatbuffer (bytes), checked against `REFERENCE_SHA256`.

    Example: `len(reference_tflite())` (about 22 KB).
    """
    with open(REFERENCE_FILE, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != REFERENCE_SHA256:
        raise RuntimeError(
            f"The latency reference {REFERENCE_FILE} has sha256 {digest}, expected "
            f"{REFERENCE_SHA256}: the file was changed; reinstall keras-nas.")
    return data


def reference_info():
    """The reference's identity as recorded with every paired result.

    Example: `reference_info()["name"] == "keras-nas-latency-reference-v1"`.
    """
    return {"name": REFERENCE_NAME, "sha256": REFERENCE_SHA256,
            "input_shape": list(INPUT_SHAPE)}
