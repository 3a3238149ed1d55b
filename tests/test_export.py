import numpy as np
import pytest

import keras
from sklearn.datasets import load_digits

from keras_nas import hardware


@pytest.fixture(scope="module")
def digits_model():
    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    y = d.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], epochs=6, batch_size=32, verbose=0)
    return model, x[:1400], x[1400:], y[1400:]


def test_is_tflite_checks_identifier():
    assert hardware.is_tflite(b"\x1c\x00\x00\x00TFL3" + bytes(8))
    assert not hardware.is_tflite(b"\x1c\x00\x00\x00ABCD" + bytes(8))
    assert not hardware.is_tflite(b"TF")
    assert not hardware.is_tflite("not bytes")


def test_float_export_matches_keras(digits_model):
    model, _, x_test, _ = digits_model
    data = hardware.to_tflite(model)
    assert hardware.is_tflite(data)
    report = hardware.verify_tflite(data, model, x_test)
    assert report.num_samples == len(x_test)
    assert report.max_abs_diff < 1e-4
    assert report.top1_agreement == 1.0
    assert report.size_bytes == len(data)
    assert not report.int8_io


@pytest.mark.parametrize("quantization", ["float16", "dynamic"])
def test_weight_quantized_exports_are_smaller_and_agree(digits_model, quantization):
    model, _, x_test, _ = digits_model
    float_size = len(hardware.to_tflite(model))
    data = hardware.to_tflite(model, quantization=quantization)
    report = hardware.verify_tflite(data, model, x_test, quantization=quantization)
    assert report.size_bytes < float_size
    assert report.top1_agreement >= 0.98
    assert report.quantization == quantization


def test_int8_on_digits_agrees_on_98_percent(digits_model, tmp_path):
    model, x_train, x_test, y_test = digits_model
    path = tmp_path / "digits_int8.tflite"
    report = hardware.export_tflite(model, path, quantization="int8",
                                    representative_data=x_train[:200], verify_data=x_test)
    assert path.read_bytes()[4:8] == b"TFL3"
    assert report.path == str(path)
    assert report.top1_agreement >= 0.98
    assert not report.int8_io
    # The int8 model really is integer inside: its float output is quantized.
    probs = hardware.run_tflite(path.read_bytes(), x_test[:20])
    assert probs.shape == (20, 10)
    assert np.all(np.isfinite(probs))


def test_int8_io_model_has_integer_tensors(digits_model):
    model, x_train, x_test, _ = digits_model
    data = hardware.to_tflite(model, "int8", representative_data=x_train[:100], int8_io=True)
    interp = hardware.load_interpreter(data)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    report = hardware.verify_tflite(data, model, x_test, quantization="int8")
    assert report.int8_io
    assert report.top1_agreement >= 0.98


def test_bad_arguments(digits_model, tmp_path):
    model, x_train, _, _ = digits_model
    with pytest.raises(ValueError, match="quantization"):
        hardware.to_tflite(model, quantization="int4")
    with pytest.raises(ValueError, match="representative_data"):
        hardware.to_tflite(model, quantization="int8")
    with pytest.raises(ValueError, match="int8_io"):
        hardware.to_tflite(model, int8_io=True)
    with pytest.raises(TypeError, match="model"):
        hardware.to_tflite("model.keras")
    with pytest.raises(ValueError, match="NaN"):
        hardware.to_tflite(model, "int8", representative_data=np.full((4, 8, 8, 1), np.nan))
    with pytest.raises(ValueError, match="TFLite"):
        hardware.verify_tflite(b"garbage-bytes", model, x_train[:4])
    with pytest.raises(ValueError, match="path"):
        hardware.export_tflite(model, tmp_path / "missing" / "m.tflite")
