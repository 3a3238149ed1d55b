"""Candidate operations of cell search spaces, and the registry of their names.

Every op is a Keras layer that maps `(batch, H, W, C_in)` to `(batch, ceil(H/stride),
ceil(W/stride), channels)`, so any op can sit on any edge of a cell. The set is the one
NAS-Bench-201 and DARTS use:

| name | layer | what it computes |
|---|---|---|
| `none` (`zero`) | `Zero` | zeros of the output shape |
| `skip_connect` (`identity`) | `SkipConnect` | identity; `FactorizedReduce` at stride 2, ReLU-Conv1x1-BN when channels change |
| `nor_conv_1x1`, `nor_conv_3x3` | `ReLUConvBN` | ReLU, conv kxk, batch norm |
| `sep_conv_3x3`, `sep_conv_5x5` | `SepConv` | twice (ReLU, depthwise kxk, pointwise 1x1, batch norm) |
| `dil_conv_3x3`, `dil_conv_5x5` | `DilConv` | ReLU, depthwise kxk with dilation 2, pointwise 1x1, batch norm |
| `avg_pool_3x3`, `max_pool_3x3` | `Pool` | 3x3 pooling, `same` padding; ReLU-Conv1x1-BN first when channels change |

Example:

```python
from keras_nas.layers import get_op
op = get_op("sep_conv_3x3", channels=32, stride=2)
y = op(keras.random.normal((2, 16, 16, 16)))   # (2, 8, 8, 32)
```
"""

import keras
from keras import ops

from keras_nas.layers._utils import (
    batch_norm,
    build_sequence,
    call_sequence,
    check_4d,
    check_kernel,
    check_stride,
    out_shape,
    strided,
)
from keras_nas.validation import check_positive_int

register = keras.saving.register_keras_serializable(package="keras_nas")


def _check_channels(channels, allow_none=False):
    if channels is None and allow_none:
        return None
    return check_positive_int(channels, "channels")


@register
class Zero(keras.layers.Layer):
    """The `none` op: zeros of the output shape (no weights).

    Args:
        channels: output channels; `None` keeps the input's.
        stride: 1 or 2; at 2 the output has `ceil(H/2) x ceil(W/2)` positions.

    Example: `Zero(16, stride=2)(x)` with `x` of shape `(2, 8, 8, 4)` gives zeros `(2, 4, 4, 16)`.
    """

    def __init__(self, channels=None, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.channels = _check_channels(channels, allow_none=True)
        self.stride = check_stride(stride)

    def build(self, input_shape):
        check_4d(input_shape, self)

    def call(self, inputs):
        if self.channels is None:
            return ops.zeros_like(inputs[:, :: self.stride, :: self.stride, :])
        x = inputs[:, :: self.stride, :: self.stride, :1]
        # (B, H', W', 1) zeros broadcast against (channels,) zeros: the output shape.
        return ops.zeros_like(x) + ops.zeros((self.channels,), dtype=x.dtype)

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels or input_shape[-1], self.stride)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "stride": self.stride})
        return config


@register
class Identity(keras.layers.Layer):
    """Returns its input unchanged (the `skip_connect` op at stride 1, same channels).

    Example: `Identity()(x) is x`-valued.
    """

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@register
class ReLUConvBN(keras.layers.Layer):
    """ReLU, `kernel_size` convolution (no bias, `same` padding), batch norm.

    The `nor_conv_kxk` ops of NAS-Bench-201 and the preprocessing of DARTS cells.

    Args:
        channels: output channels.
        kernel_size: odd kernel size.
        stride: 1 or 2.
        dilation_rate: dilation of the convolution (with stride 2 the output is the
            stride-1 result subsampled, since dilated strided convolution is unsupported).

    Example: `ReLUConvBN(32, kernel_size=3, stride=2)`.
    """

    def __init__(self, channels, kernel_size=1, stride=1, dilation_rate=1, **kwargs):
        super().__init__(**kwargs)
        self.channels = _check_channels(channels)
        self.kernel_size = check_kernel(kernel_size)
        self.stride = check_stride(stride)
        self.dilation_rate = check_positive_int(dilation_rate, "dilation_rate")
        conv_stride = self.stride if self.dilation_rate == 1 else 1
        self.relu = keras.layers.ReLU()
        self.conv = keras.layers.Conv2D(
            self.channels,
            self.kernel_size,
            strides=conv_stride,
            dilation_rate=self.dilation_rate,
            padding="same",
            use_bias=False,
        )
        self.bn = batch_norm()

    def build(self, input_shape):
        check_4d(input_shape, self)
        shape = build_sequence([self.relu, self.conv], input_shape)
        self.bn.build(shape)

    def call(self, inputs):
        x = self.conv(self.relu(inputs))
        if self.dilation_rate > 1 and self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        return self.bn(x)

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels, self.stride)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "kernel_size": self.kernel_size,
                "stride": self.stride,
                "dilation_rate": self.dilation_rate,
            }
        )
        return config


@register
class FactorizedReduce(keras.layers.Layer):
    """Halves the spatial size with two offset 1x1 stride-2 convolutions (DARTS, NAS-Bench-201).

    ReLU, then `channels // 2` filters on the input and `channels - channels // 2` on the
    input shifted by one pixel, concatenated, batch norm. Odd sizes give `ceil(H/2)`.

    Args:
        channels: output channels (>= 2).

    Example: `FactorizedReduce(32)(x)` with `x` of shape `(2, 8, 8, 16)` gives `(2, 4, 4, 32)`.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = check_positive_int(channels, "channels", minimum=2)
        half = self.channels // 2
        self.relu = keras.layers.ReLU()
        self.conv_a = keras.layers.Conv2D(half, 1, strides=2, padding="valid", use_bias=False)
        self.conv_b = keras.layers.Conv2D(
            self.channels - half, 1, strides=2, padding="valid", use_bias=False
        )
        self.bn = batch_norm()

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        self.conv_a.build(input_shape)
        self.conv_b.build(input_shape)
        self.bn.build(out_shape(input_shape, self.channels, 2))

    def call(self, inputs):
        x = self.relu(inputs)
        shifted = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        y = ops.concatenate([self.conv_a(x), self.conv_b(shifted)], axis=-1)
        return self.bn(y)

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels, 2)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config


@register
class SkipConnect(keras.layers.Layer):
    """The `skip_connect` op: identity where shapes allow, else the NAS-Bench-201 reduction.

    At stride 2 it is a `FactorizedReduce`; at stride 1 with a channel change, a
    ReLU-Conv1x1-BN; otherwise the identity (no weights). Which one is decided in
    `build()` from the input's channels.

    Args:
        channels: output channels; `None` keeps the input's.
        stride: 1 or 2.

    Example: `SkipConnect(16)(x)` is `x` when `x` has 16 channels.
    """

    def __init__(self, channels=None, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.channels = _check_channels(channels, allow_none=True)
        self.stride = check_stride(stride)
        self.reduce = None

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        channels = self.channels or input_shape[-1]
        if self.stride == 2:
            self.reduce = FactorizedReduce(channels)
        elif channels != input_shape[-1]:
            self.reduce = ReLUConvBN(channels, 1, 1)
        if self.reduce is not None:
            self.reduce.build(input_shape)

    def call(self, inputs):
        if self.reduce is None:
            return inputs
        return self.reduce(inputs)

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels or input_shape[-1], self.stride)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "stride": self.stride})
        return config


@register
class SepConv(keras.layers.Layer):
    """DARTS separable convolution: twice (ReLU, depthwise kxk, pointwise 1x1, batch norm).

    The first depthwise step carries the stride and the first pointwise step keeps the
    input's channels; the second maps to `channels`.

    Args:
        channels: output channels.
        kernel_size: odd depthwise kernel size (3 or 5 in DARTS).
        stride: 1 or 2.

    Example: `SepConv(32, kernel_size=5, stride=2)`.
    """

    def __init__(self, channels, kernel_size=3, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.channels = _check_channels(channels)
        self.kernel_size = check_kernel(kernel_size)
        self.stride = check_stride(stride)
        self.first = []
        self.second = []

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        c_in = input_shape[-1]
        k = self.kernel_size
        self.first = [
            keras.layers.ReLU(),
            keras.layers.DepthwiseConv2D(k, strides=self.stride, padding="same", use_bias=False),
            keras.layers.Conv2D(c_in, 1, use_bias=False),
            batch_norm(),
        ]
        self.second = [
            keras.layers.ReLU(),
            keras.layers.DepthwiseConv2D(k, strides=1, padding="same", use_bias=False),
            keras.layers.Conv2D(self.channels, 1, use_bias=False),
            batch_norm(),
        ]
        build_sequence(self.first + self.second, input_shape)

    def call(self, inputs):
        return call_sequence(self.second, call_sequence(self.first, inputs))

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels, self.stride)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"channels": self.channels, "kernel_size": self.kernel_size, "stride": self.stride}
        )
        return config


@register
class DilConv(keras.layers.Layer):
    """DARTS dilated convolution: ReLU, dilated depthwise kxk, pointwise 1x1, batch norm.

    With stride 2 the depthwise result at stride 1 is subsampled by 2 (backends do not
    combine strides and dilation), which gives the same `ceil(H/2)` output size.

    Args:
        channels: output channels.
        kernel_size: odd depthwise kernel size (3 or 5 in DARTS).
        stride: 1 or 2.
        dilation_rate: dilation of the depthwise convolution (2 in DARTS).

    Example: `DilConv(32, kernel_size=3, stride=1)`.
    """

    def __init__(self, channels, kernel_size=3, stride=1, dilation_rate=2, **kwargs):
        super().__init__(**kwargs)
        self.channels = _check_channels(channels)
        self.kernel_size = check_kernel(kernel_size)
        self.stride = check_stride(stride)
        self.dilation_rate = check_positive_int(dilation_rate, "dilation_rate")
        self.relu = keras.layers.ReLU()
        dw_stride = self.stride if self.dilation_rate == 1 else 1
        self.depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            strides=dw_stride,
            dilation_rate=self.dilation_rate,
            padding="same",
            use_bias=False,
        )
        self.pointwise = keras.layers.Conv2D(self.channels, 1, use_bias=False)
        self.bn = batch_norm()

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        self.depthwise.build(input_shape)
        reduced = out_shape(input_shape, input_shape[-1], self.stride)
        self.pointwise.build(reduced)
        self.bn.build(out_shape(input_shape, self.channels, self.stride))

    def call(self, inputs):
        x = self.depthwise(self.relu(inputs))
        if self.stride > 1 and self.dilation_rate > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        return self.bn(self.pointwise(x))

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels, self.stride)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "kernel_size": self.kernel_size,
                "stride": self.stride,
                "dilation_rate": self.dilation_rate,
            }
        )
        return config


@register
class Pool(keras.layers.Layer):
    """Average or max pooling (`same` padding), after a ReLU-Conv1x1-BN if channels change.

    Average pooling ignores the padded positions (as PyTorch's `count_include_pad=False`
    in NAS-Bench-201).

    Args:
        channels: output channels; `None` keeps the input's.
        pool_type: `"avg"` or `"max"`.
        stride: 1 or 2.
        pool_size: odd window size.

    Example: `Pool(16, "max", stride=2)`.
    """

    def __init__(self, channels=None, pool_type="avg", stride=1, pool_size=3, **kwargs):
        super().__init__(**kwargs)
        self.channels = _check_channels(channels, allow_none=True)
        if pool_type not in ("avg", "max"):
            raise ValueError(f"`pool_type` must be 'avg' or 'max', got {pool_type!r}.")
        self.pool_type = pool_type
        self.stride = check_stride(stride)
        self.pool_size = check_kernel(pool_size, "pool_size")
        pool_cls = (
            keras.layers.AveragePooling2D if pool_type == "avg" else keras.layers.MaxPooling2D
        )
        self.pool = pool_cls(self.pool_size, strides=self.stride, padding="same")
        self.project = None

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        if self.channels is not None and self.channels != input_shape[-1]:
            self.project = ReLUConvBN(self.channels, 1, 1)
            self.project.build(input_shape)

    def call(self, inputs):
        x = inputs if self.project is None else self.project(inputs)
        return self.pool(x)

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels or input_shape[-1], self.stride)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "pool_type": self.pool_type,
                "stride": self.stride,
                "pool_size": self.pool_size,
            }
        )
        return config


# -- registry --------------------------------------------------------------------------------

OPS = {
    "none": lambda channels, stride=1, **kw: Zero(channels, stride, **kw),
    "skip_connect": lambda channels, stride=1, **kw: SkipConnect(channels, stride, **kw),
    "nor_conv_1x1": lambda channels, stride=1, **kw: ReLUConvBN(channels, 1, stride, **kw),
    "nor_conv_3x3": lambda channels, stride=1, **kw: ReLUConvBN(channels, 3, stride, **kw),
    "sep_conv_3x3": lambda channels, stride=1, **kw: SepConv(channels, 3, stride, **kw),
    "sep_conv_5x5": lambda channels, stride=1, **kw: SepConv(channels, 5, stride, **kw),
    "dil_conv_3x3": lambda channels, stride=1, **kw: DilConv(channels, 3, stride, **kw),
    "dil_conv_5x5": lambda channels, stride=1, **kw: DilConv(channels, 5, stride, **kw),
    "avg_pool_3x3": lambda channels, stride=1, **kw: Pool(channels, "avg", stride, **kw),
    "max_pool_3x3": lambda channels, stride=1, **kw: Pool(channels, "max", stride, **kw),
}

OP_ABBREVIATIONS = {
    "none": "-", "skip_connect": "sk", "nor_conv_1x1": "c1", "nor_conv_3x3": "c3",
    "sep_conv_3x3": "s3", "sep_conv_5x5": "s5", "dil_conv_3x3": "d3", "dil_conv_5x5": "d5",
    "avg_pool_3x3": "ap", "max_pool_3x3": "mp",
}
"""Short names of the candidate ops, for architecture strings shown in narrow places."""


def abbreviate_ops(text):
    """`text` with every op name replaced by its `OP_ABBREVIATIONS` entry.

    Example: `abbreviate_ops("|nor_conv_3x3~0|+|none~0|skip_connect~1|") == "|c3~0|+|-~0|sk~1|"`.
    """
    for name in sorted(OP_ABBREVIATIONS, key=len, reverse=True):
        text = text.replace(name, OP_ABBREVIATIONS[name])
    return text
"""Candidate op name -> factory `f(channels, stride=1, **layer_kwargs) -> keras.layers.Layer`."""

ALIASES = {"zero": "none", "identity": "skip_connect"}
"""Other accepted names of ops."""


def canonical_op_name(name):
    """The registered name of op `name` (resolving aliases); ValueError for unknown names."""
    if not isinstance(name, str):
        raise TypeError(f"`name` must be an op name (str), got {name!r}.")
    name = ALIASES.get(name, name)
    if name not in OPS:
        raise ValueError(
            f"Unknown op `name`={name!r}. Choose one of {sorted(OPS)} "
            f"(aliases: {sorted(ALIASES)}), or add one with `register_op()`."
        )
    return name


def get_op(name, channels, stride=1, **kwargs):
    """Makes the candidate op `name` as a Keras layer.

    Args:
        name: a key of `OPS` or `ALIASES`, e.g. `"sep_conv_3x3"`.
        channels: output channels (the input's may differ; ops adapt).
        stride: 1 or 2.
        **kwargs: passed to the layer constructor (e.g. `name=`).

    Returns:
        A `keras.layers.Layer` mapping `(B, H, W, C_in)` to
        `(B, ceil(H/stride), ceil(W/stride), channels)`.

    Example:

    ```python
    op = get_op("dil_conv_5x5", channels=16, stride=2)
    ```
    """
    name = canonical_op_name(name)
    channels = check_positive_int(channels, "channels")
    stride = check_stride(stride)
    layer = OPS[name](channels, stride, **kwargs)
    layer.op_name = name  # so a `Cell` given this layer keeps its name (see `Cell`)
    return layer


def register_op(name, factory, overwrite=False):
    """Adds a candidate op to `OPS` so cells and spaces can use it by name.

    Args:
        name: the new op's name.
        factory: callable `(channels, stride=1, **kwargs) -> keras.layers.Layer`; the layer
            should be serializable (registered with `keras.saving.register_keras_serializable`).
        overwrite: replace an existing op of that name.

    Example: `register_op("conv_5x5", lambda c, stride=1, **kw: ReLUConvBN(c, 5, stride, **kw))`.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty string, got {name!r}.")
    if not callable(factory):
        raise TypeError(f"`factory` must be callable, got {factory!r}.")
    if (name in OPS or name in ALIASES) and not overwrite:
        raise ValueError(f"Op `name`={name!r} is already registered; pass overwrite=True.")
    OPS[name] = factory


__all__ = [
    "OPS",
    "ALIASES",
    "get_op",
    "register_op",
    "canonical_op_name",
    "Zero",
    "Identity",
    "ReLUConvBN",
    "FactorizedReduce",
    "SkipConnect",
    "SepConv",
    "DilConv",
    "Pool",
    "strided",
]
