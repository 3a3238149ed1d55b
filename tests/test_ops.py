"""Candidate ops: shapes at stride 1/2 and with channel changes, values, configs, errors."""

import keras
import numpy as np
import pytest

from keras_nas import layers as L

X = np.random.default_rng(0).normal(size=(2, 7, 7, 4)).astype("float32")


def n_weights(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


@pytest.mark.parametrize("name", sorted(L.OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels", [4, 6])
def test_op_output_shape(name, stride, channels):
    op = L.get_op(name, channels, stride)
    y = keras.ops.convert_to_numpy(op(X, training=True))
    expected = (2, 7 if stride == 1 else 4, 7 if stride == 1 else 4, channels)
    assert y.shape == expected
    assert tuple(op.compute_output_shape(X.shape)) == expected
    assert np.isfinite(y).all()
    # Symbolic use (what functional models do) agrees with eager use.
    assert tuple(op(keras.Input((7, 7, 4))).shape) == (None,) + expected[1:]


@pytest.mark.parametrize("stride", [1, 2])
def test_ops_on_one_pixel_inputs(stride):
    x = np.ones((2, 1, 1, 3), "float32")
    for name in L.OPS:
        assert L.get_op(name, 4, stride)(x).shape == (2, 1, 1, 4), name


def test_none_is_zeros_and_skip_is_identity():
    assert not np.any(keras.ops.convert_to_numpy(L.get_op("none", 6, 2)(X)))
    skip = L.get_op("skip_connect", 4, 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(skip(X)), X)
    assert n_weights(skip) == 0
    # Stride 2 is a FactorizedReduce; a channel change at stride 1 a ReLU-Conv1x1-BN.
    reduce = L.get_op("skip_connect", 4, 2)
    reduce(X)
    assert isinstance(reduce.reduce, L.FactorizedReduce)
    assert n_weights(reduce) == 4 * 2 + 4 * 2 + 2 * 4
    change = L.get_op("skip_connect", 6, 1)
    change(X)
    assert isinstance(change.reduce, L.ReLUConvBN)
    assert n_weights(change) == 4 * 6 + 2 * 6
    assert L.get_op("identity", 4).__class__ is L.SkipConnect
    assert L.get_op("zero", 4).__class__ is L.Zero
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(L.Identity()(X)), X)


def test_conv_ops_weights():
    # ReLU-Conv-BN: kxk kernel without bias, BN gamma and beta.
    op = L.get_op("nor_conv_3x3", 6)
    op(X)
    assert n_weights(op) == 3 * 3 * 4 * 6 + 2 * 6
    # DARTS SepConv: (dw kxk, pw C_in->C_in, BN) then (dw kxk, pw C_in->C_out, BN).
    op = L.get_op("sep_conv_5x5", 6, 2)
    op(X)
    assert n_weights(op) == (25 * 4 + 4 * 4 + 2 * 4) + (25 * 4 + 4 * 6 + 2 * 6)
    # DilConv: dilated dw kxk, pw, BN.
    op = L.get_op("dil_conv_3x3", 6, 2)
    op(X)
    assert n_weights(op) == 9 * 4 + 4 * 6 + 2 * 6
    assert op.depthwise.dilation_rate == (2, 2)


def test_dilated_conv_at_stride_2_subsamples_stride_1():
    one = L.DilConv(6, 3, stride=1)
    two = L.DilConv(6, 3, stride=2)
    one(X)
    two(X)
    two.set_weights(one.get_weights())
    a = keras.ops.convert_to_numpy(one(X, training=False))
    b = keras.ops.convert_to_numpy(two(X, training=False))
    np.testing.assert_allclose(b, a[:, ::2, ::2, :], atol=1e-5)


def test_pooling_values():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    mx = keras.ops.convert_to_numpy(L.get_op("max_pool_3x3", 1)(x))[0, :, :, 0]
    assert mx[0, 0] == 5 and mx[3, 3] == 15 and mx[1, 1] == 10
    avg = keras.ops.convert_to_numpy(L.get_op("avg_pool_3x3", 1)(x))[0, :, :, 0]
    # Padding is not counted: the corner averages its 2x2 neighbourhood.
    assert avg[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert avg[1, 1] == pytest.approx(np.mean([0, 1, 2, 4, 5, 6, 8, 9, 10]))
    # A channel change puts a ReLU-Conv1x1-BN in front.
    proj = L.get_op("avg_pool_3x3", 6)
    proj(X)
    assert n_weights(proj) == 4 * 6 + 2 * 6


def test_factorized_reduce_odd_and_tiny_sizes():
    fr = L.FactorizedReduce(5)
    assert fr(X).shape == (2, 4, 4, 5)
    assert fr.conv_a.filters == 2 and fr.conv_b.filters == 3
    assert L.FactorizedReduce(4)(np.ones((1, 1, 1, 3), "float32")).shape == (1, 1, 1, 4)


@pytest.mark.parametrize(
    "layer",
    [
        L.Zero(5, 2),
        L.Identity(),
        L.ReLUConvBN(5, 3, 2),
        L.FactorizedReduce(6),
        L.SkipConnect(6, 2),
        L.SepConv(5, 5, 2),
        L.DilConv(5, 5, 1),
        L.Pool(5, "max", 2),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_op_config_round_trip(layer):
    config = keras.saving.serialize_keras_object(layer)
    assert config["module"] == "keras_nas" or config.get("registered_name", "").startswith(
        "keras_nas>"
    )
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_unknown_op_names_the_argument():
    with pytest.raises(ValueError, match="`name`.*conv_9x9.*sep_conv_3x3"):
        L.get_op("conv_9x9", 4)
    with pytest.raises(TypeError, match="`name`"):
        L.get_op(3, 4)


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: L.get_op("nor_conv_3x3", 0), "channels"),
        (lambda: L.get_op("nor_conv_3x3", 4, stride=3), "stride"),
        (lambda: L.ReLUConvBN(4, kernel_size=2), "kernel_size"),
        (lambda: L.Pool(4, pool_type="min"), "pool_type"),
        (lambda: L.FactorizedReduce(1), "channels"),
        (lambda: L.DilConv(4, dilation_rate=0), "dilation_rate"),
    ],
)
def test_bad_arguments_are_named(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        make()
    with pytest.raises(TypeError, match="`channels`"):
        L.get_op("nor_conv_1x1", 2.5)


def test_register_op():
    name = "test_conv_5x5"
    L.register_op(name, lambda c, stride=1, **kw: L.ReLUConvBN(c, 5, stride, **kw))
    try:
        assert L.get_op(name, 3, 2)(X).shape == (2, 4, 4, 3)
        assert L.Cell([name], 3)(X).shape == (2, 7, 7, 3)
        with pytest.raises(ValueError, match="already registered"):
            L.register_op(name, lambda c, stride=1: None)
    finally:
        del L.OPS[name]
