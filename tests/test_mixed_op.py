import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas.layers.mixed_op import MixedOp


def _candidates():
    return [
        keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=keras.initializers.GlorotUniform(1)),
        keras.layers.Conv2D(4, 1, kernel_initializer=keras.initializers.GlorotUniform(2)),
        keras.layers.Identity(),
    ]


X = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")


def test_softmax_is_weighted_sum_and_alpha_is_not_trainable():
    m = MixedOp(_candidates(), alpha_initializer=keras.initializers.Constant([0.5, -1.0, 2.0]))
    y = m(X)
    w = np.exp([0.5, -1.0, 2.0]) / np.exp([0.5, -1.0, 2.0]).sum()
    expected = sum(wi * np.asarray(c(X)) for wi, c in zip(w, m.candidates))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert all(v is not m.alpha for v in m.trainable_weights)
    assert m.arch_variables == [m.alpha]
    # alpha gets a gradient through the relaxation
    with tf.GradientTape() as tape:
        tape.watch(m.alpha.value)
        loss = tf.reduce_sum(m(X) ** 2)
    g = tape.gradient(loss, m.alpha.value)
    assert g is not None and np.abs(g.numpy()).sum() > 0


def test_single_path_python_and_tensor_index():
    m = MixedOp(_candidates())
    m(X)
    for i in range(3):
        ref = np.asarray(m.candidates[i](X))
        np.testing.assert_allclose(m(X, active=i), ref, atol=1e-6)
        f = tf.function(lambda x, k: m(x, active=k))
        np.testing.assert_allclose(f(X, tf.constant(i)), ref, atol=1e-6)
    single = MixedOp(_candidates(), mode="single", active=2)
    np.testing.assert_allclose(single(X), X)


def test_gumbel_hard_forward_with_gradient():
    m = MixedOp(_candidates(), mode="gumbel", temperature=0.5, seed=3)
    m(X)
    outs = [np.asarray(c(X)) for c in m.candidates]
    with tf.GradientTape() as tape:
        tape.watch(m.alpha.value)
        y = m(X, training=True)
        loss = tf.reduce_sum(y)
    y = np.asarray(y)
    # the forward value is exactly one candidate (straight-through weight is 1)
    assert min(np.abs(y - o).max() for o in outs) < 1e-5
    g = tape.gradient(loss, m.alpha.value)
    assert g is not None and np.abs(g.numpy()).sum() > 0
    # inference runs the argmax op
    k = int(np.argmax(m.alpha.numpy()))
    np.testing.assert_allclose(m(X, training=False), outs[k], atol=1e-6)


def test_shared_alpha_and_serialization(tmp_path):
    shared = MixedOp(_candidates(), shared_alpha=True)
    with pytest.raises(ValueError, match="shared_alpha"):
        shared(X)
    a = tf.Variable([0.0, 0.0, 5.0])
    assert np.abs(np.asarray(shared(X, alpha=a)) - X).max() < 0.1
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, MixedOp(_candidates(), names=["c3", "c1", "id"])(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(X), model(X), atol=1e-6)
    assert loaded.layers[-1].names == ["c3", "c1", "id"]


def test_bad_arguments():
    with pytest.raises(TypeError, match="candidates"):
        MixedOp(keras.layers.Identity())
    with pytest.raises(ValueError, match="candidates"):
        MixedOp([])
    with pytest.raises(ValueError, match="mode"):
        MixedOp(_candidates(), mode="hard")
    with pytest.raises(ValueError, match="temperature"):
        MixedOp(_candidates(), temperature=0)
    with pytest.raises(ValueError, match="active"):
        MixedOp(_candidates(), active=5)
    with pytest.raises(ValueError, match="names"):
        MixedOp(_candidates(), names=["a"])


def test_options_may_share_one_candidate_layer():
    conv = keras.layers.Conv2D(4, 1, kernel_initializer=keras.initializers.GlorotUniform(3))
    skip = keras.layers.Identity()
    # options 0..3: skip, conv, conv, conv (as depths past a block do)
    m = MixedOp([skip, conv], option_candidates=[0, 1, 1, 1],
                alpha_initializer=keras.initializers.Constant([0.3, -0.2, 0.1, 0.4]),
                names=["1", "2", "3", "4"])
    y = np.asarray(m(X))
    p = np.exp([0.3, -0.2, 0.1, 0.4]) / np.exp([0.3, -0.2, 0.1, 0.4]).sum()
    expected = p[0] * X + p[1:].sum() * np.asarray(conv(X))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert tuple(m.alpha.shape) == (4,) and m.num_options == 4 and m.num_candidates == 2
    for option, layer in ((0, skip), (2, conv), (3, conv)):
        np.testing.assert_allclose(m(X, active=option), layer(X), atol=1e-6)
        np.testing.assert_allclose(m(X, active=tf.constant(option)), layer(X), atol=1e-6)
    again = MixedOp.from_config(m.get_config())
    assert again.option_candidates == [0, 1, 1, 1]
    with pytest.raises(ValueError, match="leaves candidates \\[1\\] unused"):
        MixedOp([skip, conv], option_candidates=[0, 0])
    with pytest.raises(ValueError, match="`option_candidates\\[1\\]` must be an integer between 0 and 1"):
        MixedOp([skip, conv], option_candidates=[0, 2])
    with pytest.raises(TypeError, match="`option_candidates\\[0\\]`"):
        MixedOp([skip, conv], option_candidates=["a", 1])
    with pytest.raises(ValueError, match="`names` must name each of the 4 options"):
        MixedOp([skip, conv], option_candidates=[0, 1, 1, 1], names=["a", "b"])
