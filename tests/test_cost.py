import numpy as np
import pytest

import keras

from keras_nas import hardware
from keras_nas.hardware import count_flops, count_macs, count_params, param_counts, profile


def test_conv2d_and_dense_macs_match_the_formula():
    h, w, c_in, c_out, k = 12, 10, 3, 8, 3
    model = keras.Sequential([
        keras.Input((h, w, c_in)),
        keras.layers.Conv2D(c_out, k, strides=2, padding="valid"),
        keras.layers.Flatten(),
        keras.layers.Dense(7),
    ])
    h_out, w_out = (h - k) // 2 + 1, (w - k) // 2 + 1
    conv_macs = h_out * w_out * c_out * k * k * c_in
    dense_in = h_out * w_out * c_out
    report = profile(model)
    rows = {r["class"]: r for r in report.layers}
    assert rows["Conv2D"]["macs"] == conv_macs
    assert rows["Dense"]["macs"] == dense_in * 7
    assert report.macs == conv_macs + dense_in * 7
    # FLOPs: 2 per MAC plus one bias add per output.
    assert rows["Dense"]["flops"] == 2 * dense_in * 7 + 7
    assert rows["Conv2D"]["flops"] == 2 * conv_macs + h_out * w_out * c_out
    assert count_macs(model) == report.macs and count_flops(model) == report.flops


def test_grouped_depthwise_and_separable_convs():
    model = keras.Sequential([
        keras.Input((8, 8, 4)),
        keras.layers.Conv2D(8, 3, padding="same", groups=2, use_bias=False),
        keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False),
        keras.layers.SeparableConv2D(6, 3, padding="same", use_bias=False),
    ])
    macs = [r["macs"] for r in profile(model).layers]
    assert macs[0] == 64 * 8 * 9 * (4 // 2)
    assert macs[1] == 64 * 16 * 9
    assert macs[2] == 64 * 16 * 9 + 64 * 16 * 6


def test_params_include_non_trainable_and_nested_models_are_recursed():
    inner = keras.Sequential([keras.Input((None, None, 2)), keras.layers.Conv2D(4, 3, use_bias=False),
                              keras.layers.BatchNormalization()], name="inner")
    inp = keras.Input((6, 6, 2))
    x = inner(inp)
    x = inner(x[..., :2])  # a shared (twice-called) nested model counts twice
    out = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, out)
    counts = param_counts(model)
    assert counts["non_trainable"] == 8  # BN moving mean and variance
    assert counts["trainable"] == 3 * 3 * 2 * 4 + 8
    assert count_params(model) == model.count_params() == counts["total"]
    report = profile(model)
    conv_rows = [r for r in report.layers if r["class"] == "Conv2D"]
    assert [r["macs"] for r in conv_rows] == [4 * 4 * 4 * 18, 2 * 2 * 4 * 18]
    assert report.uncounted == []


def test_keras_nas_layers_are_recursed():
    from keras_nas.layers import MBConv

    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, MBConv(4, kernel_size=3, expansion=2, strides=1)(inp))
    rows = profile(model).layers
    classes = [r["class"] for r in rows]
    assert "MBConv" not in classes and classes.count("Conv2D") == 2
    assert count_macs(model) == 64 * 8 * 4 + 64 * 8 * 9 + 64 * 4 * 8


def test_unknown_leaf_layers_are_reported():
    class Square(keras.layers.Layer):
        def call(self, x):
            return x * x

    model = keras.Sequential([keras.Input((4,)), Square(), keras.layers.Dense(2)])
    report = profile(model)
    assert report.uncounted == ["Square"]
    assert report.macs == 8


def test_size_and_report(tmp_path):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    data = hardware.to_tflite(model)
    assert hardware.model_size_bytes(model) == len(data)
    assert hardware.model_size_bytes(data) == len(data)
    d = hardware.cost_report(model, size=True).to_dict()
    assert d["params"] == 18 and d["macs"] == 15 and d["size_bytes"] == len(data)
    assert "layers" not in d


def test_bad_input():
    with pytest.raises(TypeError, match="model"):
        count_macs("model")

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(sub)
    assert count_macs(sub, input_shape=(3,)) == 6
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(sub, input_shape=(0,))


def test_hardware_metrics_for_a_trial():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    m = hardware.hardware_metrics(model, runs=5, warmup=1)
    assert m["params"] == count_params(model) and m["macs"] == count_macs(model)
    assert m["size_bytes"] == len(hardware.to_tflite(model))
    assert m["latency_ms"] > 0 and m["latency_source"] == "measure"
    none = hardware.hardware_metrics(model, latency=None)
    assert none["latency_ms"] is None and none["flops"] == m["flops"]
    with pytest.raises(ValueError, match="latency"):
        hardware.hardware_metrics(model, latency="guess")
    with pytest.raises(ValueError, match="predictor"):
        hardware.hardware_metrics(model, latency="predict")
