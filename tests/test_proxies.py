"""Zero-cost proxies: definitions checked against hand computations on tiny networks."""

import math

import keras
import keras_tuner
import numpy as np
import pytest

from keras_nas.estimation import (
    PROXIES,
    ProxyEstimator,
    flops,
    grad_norm,
    input_jacobians,
    jacob_cov,
    jacob_cov_from_correlation,
    jacobian_correlation,
    naswot,
    naswot_kernel,
    naswot_kernel_of,
    params,
    prescreen,
    warm_start,
    relu_codes,
    relu_layers,
    score,
    snip,
    snip_and_grad_norm,
    synflow,
)
from keras_nas.spaces.base import Space


def tiny_convnet(softmax=True, seed=1):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(3, activation="softmax" if softmax else None)(h)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 8)


@pytest.fixture(scope="module")
def convnet():
    return tiny_convnet()


def _weights_equal(before, model):
    return all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_each_proxy_finite_deterministic_and_leaves_weights(name, convnet, batch):
    x, y = batch
    before = [w.copy() for w in convnet.get_weights()]  # BN moving stats included
    first = score(convnet, name, x, y)
    second = score(convnet, name, x, y)
    assert isinstance(first, float) and math.isfinite(first)
    assert first == second
    assert _weights_equal(before, convnet)
    # The final softmax was switched back on.
    probs = np.asarray(convnet(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_softmax_output_is_scored_as_its_logits(batch):
    x, y = batch
    with_softmax, logits = tiny_convnet(True), tiny_convnet(False)
    logits.set_weights(with_softmax.get_weights())
    for name in ("synflow", "snip", "grad_norm", "jacob_cov", "naswot"):
        assert score(with_softmax, name, x, y) == pytest.approx(score(logits, name, x, y), rel=1e-6)
    # A separate keras.layers.Softmax output layer is handled too, and restored.
    keras.utils.set_random_seed(3)
    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Softmax()])
    bare = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    bare.set_weights(seq.get_weights())
    assert synflow(seq) == pytest.approx(synflow(bare), rel=1e-9)
    np.testing.assert_allclose(np.asarray(seq(np.ones((2, 4)))).sum(axis=1), 1.0, rtol=1e-6)


def test_synflow_ignores_the_data(convnet):
    rng = np.random.default_rng(5)
    x1 = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    x2 = 100.0 * rng.uniform(size=(16, 8, 8, 3)).astype("float32")
    assert score(convnet, "synflow", x1) == score(convnet, "synflow", x2) == synflow(convnet)


def test_synflow_of_bias_free_linear_net_matches_closed_form():
    # out = x W1 W2; with |W| and x = 1: R = 1^T |W1| |W2| 1, and each of the two layers
    # contributes sum |W * dR/dW| = R (Euler's theorem, R is linear in each layer): total 2R.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(4, use_bias=False),
        keras.layers.Dense(3, use_bias=False, activation="softmax"),
    ])
    w1, w2 = (np.abs(w).astype("float64") for w in model.get_weights())
    r = np.ones(5) @ w1 @ w2 @ np.ones(3)
    assert synflow(model) == pytest.approx(2.0 * r, rel=1e-6)


def test_synflow_uses_float64_where_float32_overflows():
    keras.utils.set_random_seed(0)
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(64, use_bias=False, kernel_initializer="ones")
               for _ in range(24)]
    model = keras.Sequential(layers)
    # Every unit of layer n is 64^n, so R = 64 * 64^24 = 64^25 (~1e45), beyond float32.
    r = 64.0 ** 25
    assert synflow(model) == pytest.approx(24 * r, rel=1e-6)
    assert synflow(model, precision="float32") == math.inf


def test_grad_norm_and_snip_of_single_dense_layer_by_hand():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.layers[0].bias.assign([0.1, -0.2, 0.3])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4)).astype("float32")
    y = np.array([0, 2, 1, 1, 0])
    w, b = (v.astype("float64") for v in model.get_weights())
    z = x.astype("float64") @ w + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = x.astype("float64").T @ (p - np.eye(3)[y]) / len(y)  # d mean-CE / dW; bias excluded
    assert grad_norm(model, x, y) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert snip(model, x, y) == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)
    assert snip_and_grad_norm(model, x, y) == (snip(model, x, y), grad_norm(model, x, y))
    # One-hot labels are the same labels.
    assert grad_norm(model, x, np.eye(3)[y]) == grad_norm(model, x, y)


def test_naswot_kernel_is_hamming_similarity(convnet, batch):
    x, _ = batch
    codes = relu_codes(convnet, x)
    n_units = 8 * 8 * 4 * 2  # two ReLU layers of 8x8x4 units
    assert codes.shape == (8, n_units) and set(np.unique(codes)) <= {0.0, 1.0}
    expected = np.array([[n_units - np.sum(codes[i] != codes[j]) for j in range(8)]
                         for i in range(8)], dtype="float64")
    np.testing.assert_array_equal(naswot_kernel(codes), expected)
    np.testing.assert_array_equal(naswot_kernel_of(convnet, x), expected)
    assert naswot(convnet, x) == pytest.approx(np.linalg.slogdet(expected)[1], rel=1e-12)


def test_naswot_codes_of_a_dense_relu_layer_by_hand():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="relu"),
                              keras.layers.Dense(2)])
    x = np.random.default_rng(3).normal(size=(5, 3)).astype("float32")
    w, b = model.layers[0].get_weights()
    np.testing.assert_array_equal(relu_codes(model, x), (x @ w + b > 0).astype("float64"))
    assert [role for _, role in relu_layers(model)] == ["output"]
    # Two identical examples make K_H singular.
    assert naswot(model, np.stack([x[0], x[0], x[1]])) == -math.inf


def test_jacob_cov_ranks_identical_jacobians_below_distinct_ones():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6)).astype("float32")
    keras.utils.set_random_seed(0)
    linear = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(3)])
    relu = keras.Sequential([keras.Input((6,)), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(3)])
    j = input_jacobians(linear, x)
    np.testing.assert_allclose(j, np.repeat(j[:1], 8, axis=0), rtol=1e-5)  # all rows equal
    np.testing.assert_allclose(jacobian_correlation(j), np.ones((8, 8)), atol=1e-6)
    assert jacob_cov(linear, x) < jacob_cov(relu, x)
    # Closed forms: identity correlation and all-ones correlation.
    k = 1e-5
    assert jacob_cov_from_correlation(np.eye(4)) == pytest.approx(-4 * (math.log(1 + k) + 1 / (1 + k)))
    ones = -(math.log(4 + k) + 1 / (4 + k) + 3 * (math.log(k) + 1 / k))
    assert jacob_cov_from_correlation(np.ones((4, 4))) == pytest.approx(ones, rel=1e-6)


def test_params_and_flops_count(convnet):
    # conv 3x3x3x4 (no bias) + BN (gamma, beta) + conv 3x3x4x4 + bias + dense 4x3 + bias
    assert params(convnet) == 108 + 8 + 144 + 4 + 12 + 3
    from keras_nas.hardware.cost import count_flops

    assert flops(convnet) == count_flops(convnet) > 2 * (64 * 108 + 64 * 144 + 12)
    linear = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, use_bias=False)])
    assert flops(linear) == 2 * 5 * 4


def test_bad_arguments(convnet, batch):
    x, y = batch
    with pytest.raises(ValueError, match="proxy"):
        score(convnet, "zen", x, y)
    with pytest.raises(ValueError, match="`y`"):
        snip(convnet, x, None)
    with pytest.raises(ValueError, match="`y`"):
        grad_norm(convnet, x, y[:3])
    with pytest.raises(ValueError, match="`y`"):
        snip(convnet, x, y + 10)
    with pytest.raises(ValueError, match="`x`"):
        jacob_cov(convnet, x[:1])
    with pytest.raises(TypeError, match="`model`"):
        synflow("not a model")
    with pytest.raises(ValueError, match="ReLU"):
        naswot(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="`keep`"):
        prescreen(WidthSpace(), ["w2"], "params", keep=0)
    with pytest.raises(ValueError, match="`x`"):
        ProxyEstimator("snip")


class WidthSpace(Space):
    """A tiny space for the tests: one conv whose width is the architecture ("w<width>")."""

    def __init__(self):
        super().__init__(input_shape=(6, 6, 2), num_classes=3)

    def declare(self, hp):
        hp.Choice("width", [1, 2, 3, 4, 6, 8])

    def encode(self, values):
        return f"w{values['width']}"

    def decode(self, arch_str):
        return {"width": int(arch_str[1:])}

    def build_values(self, values):
        keras.utils.set_random_seed(values["width"])
        inp = keras.Input(self.input_shape)
        h = keras.layers.Conv2D(values["width"], 3, activation="relu")(inp)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(inp, keras.layers.Dense(self.num_classes, activation="softmax")(h))


def test_prescreen_keeps_the_k_best_by_the_proxy():
    space = WidthSpace()
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    pool = ["w3", "w1", "w8", "w2", "w6", "w4", "w8"]  # a duplicate is scored once
    assert prescreen(space, pool, "params", keep=3) == ["w8", "w6", "w4"]
    by_hand = {a: synflow(space.build_architecture(a)) for a in set(pool)}
    best = sorted(by_hand, key=by_hand.get, reverse=True)[:2]
    assert prescreen(space, pool, "synflow", keep=2) == best
    ranked = ProxyEstimator("synflow").rank(space, pool)
    assert [a for a, _ in ranked] == sorted(by_hand, key=by_hand.get, reverse=True)
    assert [s for _, s in ranked] == pytest.approx(sorted(by_hand.values(), reverse=True))
    assert len(prescreen(space, pool, "params", keep=50)) == 6


def test_relus_inside_nasbench201_ops_are_found():
    ops_module = pytest.importorskip("keras_nas.layers.ops")
    cell_op = ops_module.ReLUConvBN(4, kernel_size=3)
    inp = keras.Input((6, 6, 4))
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(cell_op(inp)))
    model = keras.Model(inp, out)
    found = relu_layers(model)
    assert [type(layer).__name__ for layer, _ in found] == ["ReLU"]
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 4)).astype("float32")
    np.testing.assert_array_equal(relu_codes(model, x), (x.reshape(4, -1) > 0).astype("float64"))


def test_warm_start_makes_an_oracle_propose_the_prescreened_first(tmp_path):
    space = WidthSpace()
    survivors = prescreen(space, ["w1", "w2", "w3", "w8"], "params", keep=2)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=6, seed=0
    )
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    oracle.hyperparameters = hp
    oracle._set_project_dir(str(tmp_path), "warm")
    warm_start(oracle, space, survivors)
    first = oracle.create_trial("t0")
    assert first.hyperparameters.values == {"width": 8}
    assert oracle.get_state()["warm_start_queue"] == [{"width": 3}]
    state = oracle.get_state()
    oracle.warm_start_queue = []
    oracle.set_state(state)  # the queue travels with the state (resume)
    oracle.end_trial(first)
    second = oracle.create_trial("t0")
    assert second.hyperparameters.values == {"width": 3}
    oracle.end_trial(second)
    assert oracle.get_state()["warm_start_queue"] == []
    third = oracle.create_trial("t0")  # the oracle's own (random) choice from here on
    assert third.hyperparameters.values["width"] in (1, 2, 3, 4, 6, 8)
    with pytest.raises(TypeError, match="`oracle`"):
        warm_start("oracle", space, survivors)
    # the oracle's class gained the queue, nothing else: same name, still a RandomSearchOracle
    assert type(oracle).__name__ == "RandomSearchOracle"
    assert isinstance(oracle, keras_tuner.oracles.RandomSearchOracle)
    assert "populate_space" not in vars(oracle)  # no method patched onto the instance


def test_keras_nas_oracles_take_a_warm_start_queue(tmp_path):
    from keras_nas.oracles import EvolutionOracle

    space = WidthSpace()
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    oracle = EvolutionOracle(objective="val_accuracy", max_trials=4, seed=0,
                             hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "warm")
    warm_start(oracle, space, ["w6"])
    assert type(oracle).__name__ == "EvolutionOracle"
    assert oracle.create_trial("t0").hyperparameters.values == {"width": 6}
    assert oracle.create_trial("t1").hyperparameters.values["width"] in (1, 2, 3, 4, 6, 8)


def test_proxies_on_a_small_nasbench201_network():
    spaces = pytest.importorskip("keras_nas.spaces")
    space = spaces.NASBench201Space(input_shape=(8, 8, 3), num_classes=10, channels=4,
                                    cells_per_stage=1)
    convs = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    no_path = "|none~0|+|avg_pool_3x3~0|none~1|+|none~0|none~1|none~2|"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 6)
    keras.utils.set_random_seed(0)
    model = space.build_architecture(convs)
    before = [w.copy() for w in model.get_weights()]
    scores = {name: score(model, name, x, y) for name in PROXIES}
    assert all(math.isfinite(v) for v in scores.values())
    assert _weights_equal(before, model)
    # ReLUs nested in the cells' ReLUConvBN ops are found, not only the head's.
    found = relu_layers(model)
    assert len(found) > 1 and all(type(layer).__name__ == "ReLU" for layer, _ in found)
    keras.utils.set_random_seed(0)
    dead = space.build_architecture(no_path)
    assert synflow(dead) == 0.0 and snip(dead, x, y) == 0.0
    assert jacob_cov(dead, x) < scores["jacob_cov"]
    assert prescreen(space, [no_path, convs], "synflow", keep=1) == [convs]
