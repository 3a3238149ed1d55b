"""Small helpers shared by the keras_nas layers (argument checks, shape arithmetic)."""

import keras

from keras_nas.validation import check_positive_int

# PyTorch's BatchNorm defaults (momentum 0.1 there is 0.9 here), which NAS-Bench-201 and DARTS use.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def check_stride(stride, name="stride"):
    """Strides are 1 or 2 (the strides NAS cells use)."""
    if isinstance(stride, bool) or stride not in (1, 2):
        raise ValueError(f"`{name}` must be 1 or 2, got {stride!r}.")
    return int(stride)


def check_kernel(kernel_size, name="kernel_size"):
    kernel_size = check_positive_int(kernel_size, name)
    if kernel_size % 2 != 1:
        raise ValueError(f"`{name}` must be an odd integer >= 1, got {kernel_size!r}.")
    return kernel_size


def check_4d(input_shape, layer):
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"{type(layer).__name__} expects inputs of shape (batch, height, width, channels), "
            f"got shape {input_shape}."
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"{type(layer).__name__} needs a known channel count, got shape {input_shape}."
        )
    return input_shape


def strided(size, stride):
    """Spatial size after a 'same'-padded op of `stride` (ceil division); None stays None."""
    if size is None:
        return None
    return -(-int(size) // int(stride))


def out_shape(input_shape, channels, stride):
    b, h, w, _ = tuple(input_shape)
    return (b, strided(h, stride), strided(w, stride), int(channels))


def batch_norm(name=None):
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )


def build_sequence(layers, input_shape):
    """Builds each layer of `layers` in turn and returns the final output shape."""
    shape = tuple(input_shape)
    for layer in layers:
        if not layer.built:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def call_sequence(layers, x):
    """Applies `layers` in order (Keras passes `training` down through the call context)."""
    for layer in layers:
        x = layer(x)
    return x
