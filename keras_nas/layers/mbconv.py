"""The MobileNetV2 inverted-residual block (MBConv), with optional squeeze-excitation."""

import numbers

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
)
from keras_nas.validation import check_positive_int

register = keras.saving.register_keras_serializable(package="keras_nas")


@register
class MBConv(keras.layers.Layer):
    """Inverted residual block (Sandler et al., 2018).

    1x1 expansion to `expansion * C_in` channels (skipped when `expansion == 1`), BN, ReLU6;
    depthwise `kernel_size` x `kernel_size` with `strides`, BN, ReLU6; optional
    squeeze-excitation (global pool, 1x1 ReLU to `max(1, int(C_in * se_ratio))` channels,
    1x1 sigmoid, rescale); 1x1 projection to `filters`, BN. The input is added back when
    `strides == 1` and `C_in == filters`.

    Args:
        filters: output channels.
        kernel_size: odd depthwise kernel size (3, 5, 7 in the MobileNet space).
        expansion: integer expansion ratio >= 1.
        strides: 1 or 2.
        se_ratio: squeeze-excitation ratio in [0, 1]; 0 disables it.

    Example: `MBConv(24, kernel_size=5, expansion=6, strides=2)(x)`.
    """

    def __init__(self, filters, kernel_size=3, expansion=6, strides=1, se_ratio=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = check_kernel(kernel_size)
        self.expansion = check_positive_int(expansion, "expansion")
        self.strides = check_stride(strides, "strides")
        if isinstance(se_ratio, bool) or not isinstance(se_ratio, numbers.Real) or not (
            0.0 <= se_ratio <= 1.0
        ):
            raise ValueError(f"`se_ratio` must be a number in [0, 1], got {se_ratio!r}.")
        self.se_ratio = float(se_ratio)
        self.expand = []
        self.depthwise = []
        self.se = []
        self.project = []
        self.residual = False

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        c_in = input_shape[-1]
        hidden = c_in * self.expansion
        if self.expansion != 1:
            self.expand = [
                keras.layers.Conv2D(hidden, 1, use_bias=False),
                batch_norm(),
                keras.layers.ReLU(6.0),
            ]
        self.depthwise = [
            keras.layers.DepthwiseConv2D(
                self.kernel_size, strides=self.strides, padding="same", use_bias=False
            ),
            batch_norm(),
            keras.layers.ReLU(6.0),
        ]
        shape = build_sequence(self.expand + self.depthwise, input_shape)
        if self.se_ratio > 0:
            squeezed = max(1, int(c_in * self.se_ratio))
            self.se = [
                keras.layers.Conv2D(squeezed, 1, activation="relu"),
                keras.layers.Conv2D(hidden, 1, activation="sigmoid"),
            ]
            build_sequence(self.se, (shape[0], 1, 1, hidden))
        self.project = [keras.layers.Conv2D(self.filters, 1, use_bias=False), batch_norm()]
        build_sequence(self.project, shape)
        self.residual = self.strides == 1 and c_in == self.filters

    def call(self, inputs):
        x = call_sequence(self.expand + self.depthwise, inputs)
        if self.se:
            scale = call_sequence(self.se, ops.mean(x, axis=(1, 2), keepdims=True))
            x = ops.multiply(x, scale)
        x = call_sequence(self.project, x)
        if self.residual:
            x = ops.add(x, inputs)
        return x

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.filters, self.strides)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "expansion": self.expansion,
                "strides": self.strides,
                "se_ratio": self.se_ratio,
            }
        )
        return config
