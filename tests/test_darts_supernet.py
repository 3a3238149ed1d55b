import numpy as np
import pytest
import tensorflow as tf

from keras_nas.oneshot import ChoiceSupernet, DartsSearch, ENASSearch, SPOSSearch, build_supernet
from keras_nas.testing import check_supernet
from keras_nas.testing.toy_task import diagonal_task
from keras_nas.spaces import DartsSpace

OPS = ["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"]
# For the searches: without sep_conv, and for SPOS/ENAS with one node per cell, the traced
# single-path training step (a switch per slot, differentiated) compiles in a few seconds.
LIGHT_OPS = ["none", "skip_connect", "nor_conv_1x1", "max_pool_3x3"]


def _space(ops=OPS, num_classes=3, nodes=2):
    return DartsSpace(
        input_shape=(8, 8, 1), num_classes=num_classes, channels=4, layers=3, nodes=nodes, ops=ops
    )


def _randomize(net, seed=0):
    """Random network weights and batch-norm statistics (alphas and beta untouched)."""
    rng = np.random.default_rng(seed)
    skip = {id(v) for v in net.arch_variables} | {id(net.aux_skip_beta)}
    for v in net.weights:
        if id(v) in skip:
            continue
        if "variance" in v.path:
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
        else:
            v.assign(rng.normal(0.0, 0.3, v.shape).astype("float32"))


@pytest.fixture(scope="module")
def net():
    net = build_supernet(_space(), seed=0)
    _randomize(net)
    return net


@pytest.mark.slow
def test_supernet_is_derived_from_the_space(net):
    space = net.space
    assert isinstance(net, ChoiceSupernet)  # from DartsSpace.build_network
    assert net.decision_names == space.hp_names()
    # One alpha per decision: node k's inputs have k + 2 options, its ops len(OPS).
    shapes = [tuple(a.shape) for a in net.arch_variables]
    assert shapes == [(2,), (4,), (2,), (4,), (3,), (4,), (3,), (4,)] * 2
    arch_ids = {id(a) for a in net.arch_variables}
    assert not arch_ids & {id(v) for v in net.trainable_weights}
    assert net(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 3)
    report = check_supernet(space, samples=3, seed=0)
    assert report["supernet"] == "ChoiceSupernet"


@pytest.mark.slow
def test_subnet_equals_standalone_network_and_one_trace_serves_every_path(net):
    space = net.space
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    paths = [net.random_path(rng) for _ in range(3)]
    # Both slots of normal node 1 read state 2 with sep_conv: two ops of their own.
    values = net.values_of(paths[0])
    for a in range(2):
        values[f"normal_node_1_input_{a}"] = 2
        values[f"normal_node_1_op_{a}"] = "sep_conv_3x3"
    paths.append(net.path_of(values))

    @tf.function
    def predict(x, path):
        return net(x, training=False, path=path)

    outputs = []
    for path in paths:
        model = net.to_standalone(path)
        expected = model(x, training=False).numpy()
        eager = net(x, training=False, path=path).numpy()
        traced = predict(tf.constant(x), tf.constant(path, dtype="int32")).numpy()
        np.testing.assert_allclose(eager, expected, atol=1e-5)
        np.testing.assert_allclose(traced, expected, atol=1e-5)
        outputs.append(expected)
        # the stand-alone network is the space's own: DartsCells of (op, input) pairs
        own = space.build_values(net.values_of(path))
        cells = [(l.name, l.genotype, l.preprocess0 is None, l.preprocess1 is None)
                 for l in model.layers if l.name.startswith("cell_")]
        assert cells == [(l.name, l.genotype, l.preprocess0 is None, l.preprocess1 is None)
                         for l in own.layers if l.name.startswith("cell_")]
    assert predict.experimental_get_tracing_count() == 1
    assert not np.allclose(outputs[0], outputs[1], atol=1e-4)  # paths do differ


def test_relaxed_forward_uses_alphas_and_auxiliary_skip(net):
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 1)).astype("float32")
    base = net(x, training=False).numpy()
    saved = [a.numpy() for a in net.arch_variables]
    for name, alpha in (("normal_node_1_op_0", [0.0, 5.0, 0.0, 0.0]),
                        ("normal_node_1_input_1", [0.0, 0.0, 5.0])):
        try:
            net.alphas[net.decision_names.index(name)].assign(alpha)
            assert not np.allclose(net(x, training=False).numpy(), base, atol=1e-6)
        finally:
            for a, s in zip(net.arch_variables, saved):
                a.assign(s)
    net.aux_skip_beta.assign(1.0)
    try:
        assert not np.allclose(net(x, training=False).numpy(), base, atol=1e-6)
    finally:
        net.aux_skip_beta.assign(0.0)
    np.testing.assert_allclose(net(x, training=False).numpy(), base, atol=1e-6)


def _set_alphas(net, table):
    """Zero alphas, then `{decision: {option: value}}`."""
    for a in net.arch_variables:
        a.assign(np.zeros(a.shape, "float32"))
    for name, entries in table.items():
        options = net.decisions[net.decision_names.index(name)][1]
        alpha = np.zeros(len(options), "float32")
        for option, value in entries.items():
            alpha[options.index(option)] = value
        net.alphas[net.decision_names.index(name)].assign(alpha)


def test_darts_derive_picks_the_strongest_input_and_op_of_each_slot():
    space = _space(nodes=2)
    net = build_supernet(space, seed=0)
    _set_alphas(net, {
        "normal_node_0_input_0": {1: 2.0},
        "normal_node_0_op_0": {"none": 9.0, "sep_conv_3x3": 1.0},  # `none` never chosen
        "normal_node_0_op_1": {"skip_connect": 3.0},
        "normal_node_1_input_0": {2: 1.0},
        "normal_node_1_op_0": {"skip_connect": 1.0},
        "normal_node_1_input_1": {0: 1.0},
        "normal_node_1_op_1": {"max_pool_3x3": 1.0},
        "reduce_node_0_op_0": {"skip_connect": 0.5},
    })
    genotype = space.encode(net.values_of(net.derive(exclude=("none",))))
    assert genotype.split(";")[0] == (
        "normal=sep_conv_3x3~1,skip_connect~0|skip_connect~2,max_pool_3x3~0")
    space.build_architecture(genotype)
    # P-DARTS limit: the weakest skips take their best other option.
    search = DartsSearch(space, max_skip=1, seed=0)
    search.supernet = net
    limited = space.encode(net.values_of(search.derive()))
    assert limited.count("skip_connect") == 1
    assert "skip_connect~0" in limited.split(";")[0].split("|")[0]  # the strongest stays
    assert 0.0 < search.skip_weight() < 1.0


def _data(n=64, seed=0):
    x, y = diagonal_task(n, seed=seed)
    return x, y


def _check_found(search, space):
    arch = search.best_architecture
    assert isinstance(arch, str) and arch.startswith("normal=")
    assert space.decode(arch) == search.best_values
    model = space.build_architecture(arch)
    assert model.output_shape == (None, 2)


@pytest.mark.slow
def test_darts_search_first_order_end_to_end():
    x, y = _data()
    xv, yv = _data(32, seed=1)
    space = _space(LIGHT_OPS, num_classes=2, nodes=1)
    search = DartsSearch(space, seed=0, max_skip=1, arch_learning_rate=0.05)
    search.fit(x, y, validation_data=(xv, yv), epochs=1, batch_size=32)
    _check_found(search, space)
    net = search.supernet
    assert search.best_architecture.count("skip_connect") <= 1
    assert len(search.history["alpha"][-1]) == len(net.arch_variables)
    assert any(np.abs(a.numpy()).max() > 1e-2 for a in net.arch_variables)  # alphas moved
    assert float(net.aux_skip_beta.numpy()) == 0.0
    # The second-order alpha gradient runs and restores the network weights.
    search.order = "second"
    before = [v.numpy() for v in net.weights]
    grads = search.arch_gradients(x[:16], y[:16], xv[:16], yv[:16])
    assert len(grads) == len(net.arch_variables)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)
    assert any(np.abs(g.numpy()).max() > 0 for g in grads)
    for v, b in zip(net.weights, before):
        np.testing.assert_array_equal(v.numpy(), b)


@pytest.mark.slow
def test_spos_search_end_to_end():
    x, y = _data()
    xv, yv = _data(32, seed=1)
    space = _space(LIGHT_OPS, num_classes=2, nodes=1)
    search = SPOSSearch(
        space, population_size=3, generations=1, calibration_batches=1, seed=0
    )
    search.fit(x, y, validation_data=(xv, yv), epochs=1, batch_size=32)
    _check_found(search, space)
    assert search.num_evaluated >= 3
    acc = search.evaluate_architecture(search.best_architecture, xv, yv)
    assert acc == search.scores[tuple(search.best_path)]


@pytest.mark.slow
def test_enas_search_end_to_end():
    x, y = _data()
    xv, yv = _data(32, seed=1)
    space = _space(LIGHT_OPS, num_classes=2, nodes=1)
    search = ENASSearch(
        space,
        controller_steps=1,
        controller_batch=2,
        final_samples=2,
        calibration_batches=1,
        seed=0,
    )
    search.fit(x, y, validation_data=(xv, yv), epochs=1, batch_size=32)
    _check_found(search, space)
    assert 0.0 < search.controller_probability(search.best_architecture) <= 1.0


def test_bad_inputs(net):
    with pytest.raises(ValueError, match="num_classes"):
        build_supernet(DartsSpace(channels=4, layers=3, nodes=2))
    with pytest.raises(ValueError, match="mode"):
        build_supernet(_space(), mode="hard")
    x = np.zeros((1, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="path"):
        net(x, path=[0] * 3)
    with pytest.raises(ValueError, match="out of range"):
        net(x, path=[0] * 2 + [5] + [0] * (len(net.decisions) - 3))
    with pytest.raises(ValueError, match="normal_node_0_op_0"):
        net.path_of({**net.values_of([0] * len(net.decisions)), "normal_node_0_op_0": "conv"})
