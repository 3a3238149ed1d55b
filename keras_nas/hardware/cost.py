"""Cost models of a Keras model: parameters, multiply-accumulates (MACs), FLOPs, size.

MACs and FLOPs are counted per layer call by running the model once on a zero batch of
one example while recording the input and output shape of every layer call, nested
layers included (the sub-layers of a keras-nas `Cell`, `MBConv` or a nested model are
counted where they are called). Conventions, per example (batch 1):

- MACs: multiply-accumulates of `Conv1D/2D/3D` (grouped too), `DepthwiseConv1D/2D`,
  `SeparableConv1D/2D`, `Conv1D/2D/3DTranspose` and `Dense`.
- FLOPs: `2 * MACs`, plus one per output element for a bias and for a fused non-linear
  activation; `BatchNormalization` 2 per element (scale and shift at inference);
  `LayerNormalization` 5 per element; pooling `pool_size` per output element (global
  pooling one per input element); activation layers one per element; merge layers
  (`Add`, `Multiply`, ...) `inputs - 1` per element.
- Reshaping, padding, dropout, concatenation and the `keras.ops` arithmetic written
  directly in a custom layer's `call` (e.g. the sum of a cell's edges) count as zero;
  leaf layer types that are not known are listed in `CostReport.uncounted`.
"""

import dataclasses

import numpy as np

from keras_nas import compat

_ZERO_COST = (
    "InputLayer", "Flatten", "Reshape", "Permute", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise",
    "AlphaDropout", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
    "Cropping2D", "Cropping3D", "Concatenate", "Identity", "RepeatVector", "Zero",
    "ActivityRegularization", "Masking",
)


@dataclasses.dataclass
class CostReport:
    """Costs of a model for one example.

    Attributes:
        params: all parameters (trainable and non-trainable).
        trainable_params, non_trainable_params: the split.
        macs: multiply-accumulates; flops: floating-point operations (see module doc).
        layers: per-call rows `{"name", "class", "macs", "flops", "output_shape"}`.
        uncounted: class names of leaf layers whose cost is not modelled.
        size_bytes: size of the TFLite flatbuffer, when it was asked for.
    """

    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    flops: int
    layers: list = dataclasses.field(default_factory=list, repr=False)
    uncounted: list = dataclasses.field(default_factory=list)
    size_bytes: object = None

    def to_dict(self, include_layers=False):
        """The report as a JSON-ready dict (per-layer rows only with `include_layers=True`)."""
        d = dataclasses.asdict(self)
        if not include_layers:
            d.pop("layers")
        return d


def _check_model(model):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    if not model.built:
        raise ValueError("`model` must be built (give it an Input or call it on data) first.")


def param_counts(model):
    """Trainable, non-trainable and total parameter counts of a built Keras model.

    Shared weights are counted once.

    Example:

    ```python
    param_counts(model)  # {"trainable": 1234, "non_trainable": 64, "total": 1298}
    ```
    """
    _check_model(model)
    seen = set()
    counts = {"trainable": 0, "non_trainable": 0}
    for w in model.weights:
        if id(w) in seen:
            continue
        seen.add(id(w))
        n = int(np.prod(w.shape)) if len(w.shape) else 1
        counts["trainable" if w.trainable else "non_trainable"] += n
    counts["total"] = counts["trainable"] + counts["non_trainable"]
    return counts


def count_params(model):
    """Number of parameters of a built Keras model, trainable and non-trainable.

    Example: `count_params(model)` equals `model.count_params()` for a plain model.
    """
    return param_counts(model)["total"]


def _shapes(structure):
    import keras

    out = []
    for t in keras.tree.flatten(structure):
        if hasattr(t, "shape") and hasattr(t, "dtype"):
            out.append(tuple(int(d) if d is not None else 1 for d in t.shape))
    return out


def _input_shapes(model, input_shape):
    if input_shape is not None:
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        shapes = [tuple(int(d) for d in s) for s in shapes]
        if any(len(s) == 0 or min(s) < 1 for s in shapes):
            raise ValueError(
                f"`input_shape` must be the shape of one example, e.g. (32, 32, 3), got {input_shape!r}."
            )
        return shapes
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "`input_shape` is needed: the model has no Input to read the example shape from."
        )
    shapes = [tuple(s.shape[1:]) for s in inputs]
    if any(d is None for s in shapes for d in s):
        raise ValueError(
            f"The model's inputs have unknown dimensions {shapes}; pass `input_shape`."
        )
    return shapes


def _trace(model, input_shape=None):
    """Runs `model` on zeros and returns [(layer, input_shapes, output_shapes)] per call."""
    from keras import ops

    shapes = _input_shapes(model, input_shape)
    records = []
    layers = [l for l in compat.all_layers(model, include_self=False, recursive=True)]
    patched = []
    for layer in layers:
        if "call" in layer.__dict__:
            continue
        original = layer.call

        def wrapper(*args, __layer=layer, __call=original, **kwargs):
            out = __call(*args, **kwargs)
            records.append((__layer, _shapes(args[0] if args else kwargs), _shapes(out)))
            return out

        object.__setattr__(layer, "call", wrapper)
        patched.append(layer)
    try:
        x = [ops.zeros((1,) + s) for s in shapes]
        model(x[0] if len(x) == 1 else x, training=False)
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")
    return records


def _elements(shape):
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def _activation_flops(layer, out_elems):
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", "linear")
    return 0 if act is None or name == "linear" else out_elems


def _layer_cost(layer, ins, outs):
    """(macs, flops, counted) of one call of a leaf layer."""
    from keras import layers as L

    out_elems = sum(_elements(s) for s in outs)
    in_elems = sum(_elements(s) for s in ins)
    bias = out_elems if getattr(layer, "use_bias", False) else 0
    macs = None
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        dk = layer.depthwise_kernel.shape  # (*k, c_in, multiplier)
        k = int(np.prod(dk[:-2]))
        mid_channels = int(dk[-2] * dk[-1])
        positions = out_elems // int(layer.filters)
        macs = positions * mid_channels * (k + int(layer.filters))
    elif isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        k = int(np.prod(layer.kernel.shape[:-2]))
        macs = out_elems * k
    elif isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        kernel = layer.kernel.shape  # (*k, filters, c_in)
        macs = in_elems * int(np.prod(kernel[:-2])) * int(kernel[-2])
    elif isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        macs = out_elems * int(np.prod(layer.kernel.shape[:-1]))
    elif isinstance(layer, L.Dense):
        macs = out_elems * int(layer.kernel.shape[0])
    if macs is not None:
        return macs, 2 * macs + bias + _activation_flops(layer, out_elems), True
    if isinstance(layer, L.BatchNormalization):
        return 0, 2 * out_elems, True
    if isinstance(layer, L.LayerNormalization):
        return 0, 5 * out_elems, True
    name = type(layer).__name__
    if name.startswith("Global") and "Pooling" in name:
        return 0, in_elems, True
    if "Pooling" in name and hasattr(layer, "pool_size"):
        return 0, out_elems * int(np.prod(layer.pool_size)), True
    if isinstance(layer, (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)):
        return 0, max(len(ins) - 1, 0) * out_elems, True
    if isinstance(layer, (L.Activation, L.ReLU, L.LeakyReLU, L.PReLU, L.ELU, L.Softmax)):
        return 0, out_elems, True
    if name in _ZERO_COST:
        return 0, 0, True
    return 0, 0, False


def profile(model, input_shape=None):
    """Per-layer-call costs of a built Keras model for one example.

    Args:
        model: a built `keras.Model` (functional, sequential or subclassed).
        input_shape: shape of one example; read from the model's Input when omitted.
            A list of shapes for a multi-input model.

    Returns:
        `CostReport` (without `size_bytes`).

    Example:

    ```python
    report = profile(model)
    report.macs, report.flops, report.params
    ```
    """
    _check_model(model)
    macs = flops = 0
    rows, uncounted = [], set()
    for layer, ins, outs in _trace(model, input_shape):
        has_children = bool(compat.all_layers(layer, include_self=False, recursive=False))
        if has_children:
            continue  # its sub-layers were recorded where they were called
        m, f, counted = _layer_cost(layer, ins, outs)
        if not counted:
            uncounted.add(type(layer).__name__)
        macs += m
        flops += f
        rows.append({"name": layer.name, "class": type(layer).__name__, "macs": int(m),
                     "flops": int(f), "output_shape": list(outs[0][1:]) if outs else []})
    counts = param_counts(model)
    return CostReport(
        params=counts["total"], trainable_params=counts["trainable"],
        non_trainable_params=counts["non_trainable"], macs=int(macs), flops=int(flops),
        layers=rows, uncounted=sorted(uncounted),
    )


def count_macs(model, input_shape=None):
    """Multiply-accumulates of one forward pass of one example (see `profile`).

    Example: `count_macs(model)` for `Dense(10)` on 64 inputs is 640.
    """
    return profile(model, input_shape).macs


def count_flops(model, input_shape=None):
    """Floating-point operations of one forward pass of one example (see module doc).

    Example: `count_flops(model)` for `Dense(10)` (with bias) on 64 inputs is 1290.
    """
    return profile(model, input_shape).flops


def model_size_bytes(model_or_tflite, quantization=None, representative_data=None):
    """Size in bytes of the model's TFLite flatbuffer (converted first for a Keras model).

    Args:
        model_or_tflite: a `keras.Model` or `.tflite` bytes.
        quantization, representative_data: as for `to_tflite`.

    Example: `model_size_bytes(model, quantization="dynamic")`.
    """
    from keras_nas.hardware.latency import _as_tflite_bytes

    return len(_as_tflite_bytes(model_or_tflite, quantization, representative_data))


def cost_report(model, input_shape=None, size=False, quantization=None, representative_data=None):
    """Parameters, MACs, FLOPs and (with `size=True`) TFLite size of a Keras model.

    Args:
        model: a built `keras.Model`.
        input_shape: shape of one example if the model has no Input.
        size: also convert to TFLite and record the flatbuffer size (takes a second or two).
        quantization, representative_data: used for the size conversion.

    Returns:
        `CostReport`.

    Example:

    ```python
    cost_report(model, size=True).to_dict()
    # {"params": ..., "macs": ..., "flops": ..., "size_bytes": ..., ...}
    ```
    """
    report = profile(model, input_shape)
    if size:
        report.size_bytes = model_size_bytes(model, quantization, representative_data)
    return report
