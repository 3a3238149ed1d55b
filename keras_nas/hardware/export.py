"""Export a Keras model to a TFLite flatbuffer and check the export against the model.

Conversion uses `tf.lite.TFLiteConverter.from_keras_model`; TensorFlow is imported only
when a function here is called, so the rest of keras-nas does not need it. The converter
needs a model of Keras' TensorFlow backend: a model built on another backend (JAX)
is saved as `.keras` and converted by a TensorFlow process (`python -m
keras_nas.hardware.export MODEL.keras OUT.tflite ...`), which needs `tensorflow` installed
beside that backend.
"""

import argparse
import contextlib
import dataclasses
import io
import os
import subprocess
import sys
import tempfile

import numpy as np

QUANTIZATIONS = (None, "float16", "dynamic", "int8")

# The FlatBuffers file identifier of a TFLite model sits at bytes 4..8.
TFLITE_IDENTIFIER = b"TFL3"


def is_tflite(data):
    """True when `data` (bytes) carries the TFLite flatbuffer identifier `TFL3` at bytes 4..8."""
    return isinstance(data, (bytes, bytearray, memoryview)) and bytes(data[4:8]) == TFLITE_IDENTIFIER


def _check_quantization(quantization):
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"Unknown `quantization` {quantization!r}: expected one of "
            "None, 'float16', 'dynamic' or 'int8'."
        )


def _check_keras_model(model, name="model"):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{name}` must be a keras.Model, got an object of type {type(model).__name__}."
        )
    if not model.built:
        raise ValueError(f"`{name}` must be built (call it on data or give it an Input) first.")


def _as_float_array(x, name):
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`{name}` must be a numeric array, got {type(x).__name__}.") from e
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty batch of examples (rank >= 2), got shape {x.shape}."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return x


def to_tflite(model, quantization=None, representative_data=None, int8_io=False,
              max_representative_samples=200):
    """Converts a Keras model to a TFLite flatbuffer.

    Args:
        model: a built `keras.Model` (any keras-nas space's model, or your own).
        quantization: `None` (float32), `"float16"` (float16 weights), `"dynamic"`
            (dynamic-range: int8 weights, float activations) or `"int8"` (full-integer
            weights and activations; needs `representative_data`).
        representative_data: array of input examples used to calibrate `"int8"`
            activation ranges (at most `max_representative_samples` are used, one at a time).
        int8_io: for `"int8"` only. `False` (the default) keeps float32 model inputs and
            outputs, with quantize/dequantize ops at the edges, so the model is a drop-in
            replacement; `True` makes the inputs and outputs int8 too (what integer-only
            accelerators want; the caller then quantizes inputs with the input tensor's
            scale and zero point).
        max_representative_samples: cap on calibration examples.

    Returns:
        The `.tflite` model as `bytes`.

    Example:

    ```python
    data = keras_nas.hardware.to_tflite(model, quantization="int8", representative_data=x[:200])
    open("model.tflite", "wb").write(data)
    ```
    """
    _check_quantization(quantization)
    _check_keras_model(model)
    if int8_io and quantization != "int8":
        raise ValueError("`int8_io=True` needs `quantization='int8'`.")
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "`quantization='int8'` needs `representative_data`: a batch of input "
            "examples to calibrate activation ranges."
        )
    import keras

    if keras.backend.backend() != "tensorflow":
        return _convert_in_tensorflow_process(model, quantization, representative_data,
                                              int8_io, max_representative_samples)
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if len(getattr(model, "inputs", None) or [None]) != 1:
            raise ValueError("`quantization='int8'` supports single-input models only.")
        rep = _as_float_array(representative_data, "representative_data")
        rep = rep[: int(max_representative_samples)]

        def gen():
            for i in range(rep.shape[0]):
                yield [rep[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    # The converter prints the path of its temporary SavedModel; keep stdout clean.
    with contextlib.redirect_stdout(io.StringIO()):
        data = converter.convert()
    return bytes(data)


def _convert_in_tensorflow_process(model, quantization, representative_data, int8_io,
                                   max_representative_samples):
    """`to_tflite` of a model of another backend: saved, converted by a TensorFlow process."""
    import keras

    with tempfile.TemporaryDirectory(prefix="keras_nas_export_") as folder:
        source = os.path.join(folder, "model.keras")
        target = os.path.join(folder, "model.tflite")
        model.save(source)
        command = [sys.executable, "-m", "keras_nas.hardware.export", source, target,
                   "--max-representative-samples", str(int(max_representative_samples))]
        if quantization is not None:
            command += ["--quantization", quantization]
        if representative_data is not None:
            np.save(os.path.join(folder, "representative.npy"),
                    _as_float_array(representative_data, "representative_data"))
            command += ["--representative-data", os.path.join(folder, "representative.npy")]
        if int8_io:
            command.append("--int8-io")
        env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise RuntimeError(
                "Converting the model to TFLite in a TensorFlow process failed (TFLite "
                "conversion needs the `tensorflow` package beside Keras' "
                f"{keras.backend.backend()} backend): "
                + (lines[-1] if lines else f"exit status {done.returncode}"))
        with open(target, "rb") as f:
            return f.read()


def main(argv=None):
    """`python -m keras_nas.hardware.export MODEL.keras OUT.tflite [--quantization Q] ...`:
    converts a saved model (on the TensorFlow backend, whatever backend saved it)."""
    parser = argparse.ArgumentParser(description=main.__doc__.split(":")[0])
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("output", help="where to write the .tflite file")
    parser.add_argument("--quantization", choices=[q for q in QUANTIZATIONS if q])
    parser.add_argument("--representative-data", help="a .npy batch of input examples")
    parser.add_argument("--int8-io", action="store_true")
    parser.add_argument("--max-representative-samples", type=int, default=200)
    args = parser.parse_args(argv)
    import keras

    import keras_nas  # noqa: F401  (registers keras-nas' layers for loading)

    if keras.backend.backend() != "tensorflow":
        parser.error("run it with KERAS_BACKEND=tensorflow")
    model = keras.saving.load_model(args.model)
    representative = (None if args.representative_data is None
                      else np.load(args.representative_data))
    data = to_tflite(model, args.quantization, representative, args.int8_io,
                     args.max_representative_samples)
    with open(args.output, "wb") as f:
        f.write(data)


@dataclasses.dataclass
class ExportReport:
    """How a TFLite export compares with the Keras model it came from.

    Attributes:
        quantization: the quantization mode of the export (`None` for float32).
        size_bytes: size of the flatbuffer.
        num_samples: how many examples were compared.
        max_abs_diff: largest absolute difference between Keras and TFLite outputs
            (outputs dequantized for int8 in/out).
        top1_agreement: fraction of examples whose arg-max class agrees.
        int8_io: whether the model has int8 inputs and outputs.
        path: where the model was written, if it was.
    """

    quantization: object
    size_bytes: int
    num_samples: int
    max_abs_diff: float
    top1_agreement: float
    int8_io: bool = False
    path: object = None

    def to_dict(self):
        """The report as a JSON-ready dict."""
        return dataclasses.asdict(self)


def load_interpreter(tflite_bytes, num_threads=1, xnnpack=True):
    """A TFLite interpreter (LiteRT, else `tflite_runtime`) for a flatbuffer, tensors allocated.

    Args:
        tflite_bytes: the `.tflite` model.
        num_threads: interpreter threads.
        xnnpack: `True` applies the default XNNPACK delegate; `False` uses only the
            built-in kernels.

    Example:

    ```python
    interp = load_interpreter(data)
    ```
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - depends on the installed runtime
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(
        model_content=bytes(tflite_bytes),
        num_threads=int(num_threads),
        experimental_op_resolver_type=resolver,
    )
    interp.allocate_tensors()
    return interp


def run_tflite(tflite_bytes, x, num_threads=1):
    """Runs a single-input TFLite model on every example of `x`, one at a time.

    Inputs are quantized and outputs dequantized where the model's tensors are integer,
    so the result is always float32 and comparable with the Keras model's output.

    Args:
        tflite_bytes: the `.tflite` model.
        x: array of examples, shape `(n, ...)`.
        num_threads: interpreter threads.

    Returns:
        float32 array of the outputs, shape `(n, ...)`.

    Example:

    ```python
    probs = run_tflite(data, x_test[:100])
    ```
    """
    return _run(tflite_bytes, x, num_threads)[0]


def _run(tflite_bytes, x, num_threads=1):
    x = _as_float_array(x, "x")
    interp = load_interpreter(tflite_bytes, num_threads=num_threads)
    inp = interp.get_input_details()
    if len(inp) != 1:
        raise ValueError(f"`run_tflite` supports single-input models, this one has {len(inp)}.")
    inp = inp[0]
    out = interp.get_output_details()[0]
    if tuple(inp["shape"][1:]) != tuple(x.shape[1:]):
        raise ValueError(
            f"`x` has examples of shape {x.shape[1:]}, the model expects "
            f"{tuple(inp['shape'][1:])}."
        )
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    results = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        if np.issubdtype(inp["dtype"], np.integer):
            info = np.iinfo(inp["dtype"])
            xi = np.clip(np.round(xi / in_scale + in_zero), info.min, info.max)
        interp.set_tensor(inp["index"], xi.astype(inp["dtype"]))
        interp.invoke()
        yi = interp.get_tensor(out["index"])
        if np.issubdtype(out["dtype"], np.integer):
            yi = (yi.astype(np.float32) - out_zero) * out_scale
        results.append(np.asarray(yi, dtype=np.float32))
    return np.concatenate(results, axis=0), bool(np.issubdtype(inp["dtype"], np.integer))


def verify_tflite(tflite_bytes, model, x, quantization=None):
    """Compares a TFLite export with its Keras model on the examples `x`.

    Args:
        tflite_bytes: the `.tflite` model.
        model: the Keras model it was exported from.
        x: array of examples, shape `(n, ...)`.
        quantization: the export's quantization mode, recorded in the report.

    Returns:
        An `ExportReport` with the max absolute output difference (the check for float
        exports) and the top-1 agreement (the check for quantized ones).

    Example:

    ```python
    report = verify_tflite(data, model, x_test)
    assert report.top1_agreement >= 0.98
    ```
    """
    _check_quantization(quantization)
    _check_keras_model(model)
    if not is_tflite(tflite_bytes):
        raise ValueError("`tflite_bytes` is not a TFLite flatbuffer (no 'TFL3' identifier).")
    x = _as_float_array(x, "x")
    expected = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)
    got, int_io = _run(tflite_bytes, x)
    got = got.reshape(expected.shape)
    if expected.ndim >= 2 and expected.shape[-1] > 1:
        agree = float(np.mean(np.argmax(expected, -1) == np.argmax(got, -1)))
    else:
        agree = float(np.mean(np.round(expected) == np.round(got)))
    return ExportReport(
        quantization=quantization,
        size_bytes=len(tflite_bytes),
        num_samples=int(x.shape[0]),
        max_abs_diff=float(np.max(np.abs(expected - got))),
        top1_agreement=agree,
        int8_io=int_io,
    )


def export_tflite(model, path, quantization=None, representative_data=None, int8_io=False,
                  verify_data=None):
    """Converts `model`, writes the `.tflite` to `path` and returns an `ExportReport`.

    Args:
        model: a built `keras.Model`.
        path: output file (its directory must exist and be writable).
        quantization: `None`, `"float16"`, `"dynamic"` or `"int8"`; see `to_tflite`.
        representative_data: calibration examples, required for `"int8"`.
        int8_io: int8 model inputs/outputs for `"int8"`; see `to_tflite`.
        verify_data: examples to compare the export on; defaults to `representative_data`.
            When both are `None` the report has no comparison (`num_samples=0`, NaN diffs).

    Example:

    ```python
    report = export_tflite(model, "model.tflite", quantization="int8",
                           representative_data=x_train[:200], verify_data=x_test)
    print(report.top1_agreement)
    ```
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise ValueError(f"`path` {path!r}: directory {directory!r} does not exist or is not writable.")
    data = to_tflite(model, quantization=quantization, representative_data=representative_data,
                     int8_io=int8_io)
    if verify_data is None:
        verify_data = representative_data
    if verify_data is not None:
        report = verify_tflite(data, model, verify_data, quantization=quantization)
    else:
        report = ExportReport(quantization=quantization, size_bytes=len(data), num_samples=0,
                              max_abs_diff=float("nan"), top1_agreement=float("nan"),
                              int8_io=bool(int8_io))
    with open(path, "wb") as f:
        f.write(data)
    report.path = path
    return report


if __name__ == "__main__":
    main()
