import keras
import numpy as np
import pytest

from keras_nas.autodiff import value_and_gradients
from keras_nas.oneshot import DartsSearch
from keras_nas.oneshot.supernet import Supernet
from keras_nas.testing.toy_task import OneOpSpace, diagonal_task
from keras_nas.spaces.base import Space


def _data():
    x, y = diagonal_task(192, seed=0)
    xv, yv = diagonal_task(96, seed=1)
    return x, y, xv, yv


def _search(**kwargs):
    space = OneOpSpace(input_shape=(8, 8, 1), num_classes=2, channels=4)
    search = DartsSearch(space, seed=0, **kwargs)
    search.setup()
    return search


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _weight_gradients(search, x, y):
    _, grads = value_and_gradients(lambda: search._loss_and_accuracy(keras.ops.convert_to_tensor(x),
                                                                    keras.ops.convert_to_tensor(y)),
                                   search.supernet.weight_variables, has_aux=True)
    return grads


def test_alpha_learns_from_validation_batches_and_w_from_training_batches():
    x, y, xv, yv = _data()
    lr_w, lr_a = 0.1, 0.5
    search = _search(
        optimizer=keras.optimizers.SGD(lr_w), arch_optimizer=keras.optimizers.SGD(lr_a)
    )
    net = search.supernet
    train = (x[:32], y[:32])
    val = (xv[:32], yv[:32])
    w0, a0 = _values(net.weight_variables), _values(net.arch_variables)
    # alpha gradient on the validation batch only (first order needs no training batch)
    g_a = [np.asarray(g) for g in search.arch_gradients(None, None, *val)]
    g_a_train = [np.asarray(g) for g in search.arch_gradients(None, None, *train)]
    assert not np.allclose(g_a[0], g_a_train[0])  # the two batches give different updates
    search.step(train, val)
    a1, w1 = _values(net.arch_variables), _values(net.weight_variables)
    np.testing.assert_allclose(a1[0], a0[0] - lr_a * g_a[0], rtol=1e-4, atol=1e-6)
    # w moved by the gradient of the training batch at (w0, alpha1)
    for v, s in zip(net.weight_variables, w0):
        v.assign(s)
    g_w = _weight_gradients(search, *train)
    g_w_val = _weight_gradients(search, *val)
    for before, after, g in zip(w0, w1, g_w):
        g = np.zeros_like(before) if g is None else np.asarray(g)
        np.testing.assert_allclose(after, before - lr_w * g, rtol=1e-4, atol=1e-6)
    assert any(
        g is not None and not np.allclose(np.asarray(g), np.asarray(gv)) for g, gv in zip(g_w, g_w_val)
    )
    # alpha is not among the network weights, nor in the w optimizer
    arch_ids = {id(a) for a in net.arch_variables}
    assert not arch_ids & {id(v) for v in net.weight_variables}
    assert not arch_ids & {id(v) for v in net.trainable_weights}


class _SmoothSpace(Space):
    """A tiny smooth network (tanh/sigmoid, no ReLU kinks, no batch norm) for gradient checks."""

    def declare(self, hp):
        hp.Choice("op", ["tanh", "sigmoid", "linear"])

    def encode(self, values):
        return values["op"]

    def decode(self, arch_str):
        return {"op": arch_str}

    def build_supernet(self, mode="softmax", temperature=1.0, seed=None):
        return _SmoothSupernet(self, seed=seed)


class _SmoothSupernet(Supernet):
    def __init__(self, space, seed=None):
        super().__init__([("op", ["tanh", "sigmoid", "linear"])], seed=seed)
        init = keras.initializers.GlorotUniform
        self.flat = keras.layers.Flatten()
        self.op = self.make_mixed(
            0, [keras.layers.Dense(6, activation=a, kernel_initializer=init(i)) for i, a in enumerate(["tanh", "sigmoid", "linear"])]
        )
        self.out = keras.layers.Dense(3, activation="softmax", kernel_initializer=init(7))
        self.build((None, 1, 1, 6))

    def build(self, input_shape):
        self.op.build((None, 6))
        self.out.build((None, 6))
        self.built = True

    def forward(self, inputs, training=None):
        return self.out(self.mixed(0, self.op, self.flat(inputs), training=training))


def test_second_order_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, xv = rng.normal(size=(2, 64, 1, 1, 6)).astype("float32")
    y, yv = rng.integers(0, 3, size=(2, 64)).astype("int32")
    xi = 0.5
    search = DartsSearch(_SmoothSpace(input_shape=(1, 1, 6), num_classes=3), order="second", xi=xi, seed=0)
    search.setup()
    net = search.supernet
    alpha = net.arch_variables[0]
    alpha.assign([0.3, -0.2, 0.1])
    xt_, yt_, xv_, yv_ = (keras.ops.convert_to_tensor(a) for a in (x, y, xv, yv))
    w0 = [keras.ops.copy(v.value) for v in net.weight_variables]

    def unrolled_val_loss():
        # L_val(w - xi * grad_w L_train(w, alpha), alpha), weights restored after
        g = _weight_gradients(search, xt_, yt_)
        for v, s, gi in zip(net.weight_variables, w0, g):
            v.assign(s - xi * gi)
        loss = float(search.loss_fn(yv_, net(xv_, training=True)))
        for v, s in zip(net.weight_variables, w0):
            v.assign(s)
        return loss

    a0 = np.array(alpha)
    h = 1e-2
    numeric = []
    for k in range(len(a0)):
        values = []
        for sign in (1, -1):
            e = a0.copy()
            e[k] += sign * h
            alpha.assign(e)
            values.append(unrolled_val_loss())
        numeric.append((values[0] - values[1]) / (2 * h))
    alpha.assign(a0)
    numeric = np.array(numeric)
    second = np.asarray(search.arch_gradients(xt_, yt_, xv_, yv_)[0])
    search.order = "first"
    first = np.asarray(search.arch_gradients(None, None, xv_, yv_)[0])
    err2 = np.linalg.norm(second - numeric) / np.linalg.norm(numeric)
    err1 = np.linalg.norm(first - numeric) / np.linalg.norm(numeric)
    assert err2 < 0.02, (second, numeric)
    assert err1 > 5 * err2, (first, second, numeric)
    # the second-order step restored the weights it perturbed
    for v, s in zip(net.weight_variables, w0):
        np.testing.assert_allclose(np.asarray(v), np.asarray(s), atol=1e-6)


@pytest.mark.slow
def test_darts_picks_the_only_op_that_solves_the_task():
    x, y = diagonal_task(384, seed=0)
    xv, yv = diagonal_task(192, seed=1)
    space = OneOpSpace(input_shape=(8, 8, 1), num_classes=2, channels=4)
    # DARTS is seed-sensitive on this task: with 8 epochs seeds 1-3 pick nor_conv_3x3 and seed 0
    # collapses onto skip_connect (the failure DARTS is known for). The seed fixes the weights.
    search = DartsSearch(
        space, seed=2, learning_rate=0.05, arch_learning_rate=0.03, collapse_guard=None
    )
    search.fit(x, y, validation_data=(xv, yv), epochs=8, batch_size=32)
    assert search.best_architecture == "nor_conv_3x3"
    probs = search.supernet.probabilities()[0]
    assert int(np.argmax(probs)) == space.options.index("nor_conv_3x3")
    assert search.history["beta"] == [0.0] * 8  # no auxiliary skip without the guard
    model = search.retrain(x, y, epochs=1, batch_size=32)
    assert model.optimizer is not None and model.output_shape == (None, 2)


def test_max_skip_limits_skip_connections_in_the_genotype():
    search = _search(max_skip=0)
    alpha = search.supernet.arch_variables[0]
    alpha.assign([0.0, 3.0, 1.0, 2.0, 0.5])  # skip_connect strongest, then nor_conv_3x3
    assert search.supernet.values_of(search.supernet.derive())["op"] == "skip_connect"
    assert search.supernet.values_of(search.derive())["op"] == "nor_conv_3x3"
    alpha.assign([5.0, 0.0, 1.0, 0.0, 0.0])  # "none" is never derived
    assert search.supernet.values_of(search.supernet.derive())["op"] == "nor_conv_1x1"


def test_auxiliary_skip_guard_decays_to_zero():
    x, y, xv, yv = _data()
    space = OneOpSpace(input_shape=(8, 8, 1), num_classes=2, channels=4)
    search = DartsSearch(space, seed=0, collapse_guard="auxiliary_skip")
    search.fit(x[:128], y[:128], validation_data=(xv[:64], yv[:64]), epochs=3, batch_size=32)
    beta = search.history["beta"]
    assert beta[0] > beta[1] > beta[2] >= 0.0 and beta[0] > 0.5
    assert float(np.asarray(search.supernet.aux_skip_beta)) == 0.0  # off after the search


def test_gumbel_relaxation_runs_and_anneals():
    x, y, xv, yv = _data()
    space = OneOpSpace(input_shape=(8, 8, 1), num_classes=2, channels=4)
    search = DartsSearch(space, relaxation="gumbel", temperature=(5.0, 1.0), seed=0)
    search.fit(x[:96], y[:96], validation_data=(xv[:64], yv[:64]), epochs=2, batch_size=32)
    assert search.history["temperature"] == [5.0, 1.0]
    assert search.best_architecture in space.options


def test_bad_arguments():
    space = OneOpSpace(input_shape=(8, 8, 1), num_classes=2)
    with pytest.raises(ValueError, match="order"):
        DartsSearch(space, order="third")
    with pytest.raises(ValueError, match="collapse_guard"):
        DartsSearch(space, collapse_guard="magic")
    with pytest.raises(TypeError, match="space"):
        DartsSearch("nasbench201")
    with pytest.raises(ValueError, match="epochs"):
        DartsSearch(space).fit(*diagonal_task(8, seed=0), epochs=0)
    with pytest.raises(ValueError, match="fit"):
        DartsSearch(space).retrain(*diagonal_task(8, seed=0))
