import numpy as np
import pytest
import tensorflow as tf

from keras_nas.oneshot import DartsSearch, ENASSearch, SPOSSearch, build_supernet
from keras_nas.oneshot.darts_supernet import DartsSupernet
from keras_nas.testing.toy_task import diagonal_task
from keras_nas.spaces import DartsSpace, NASBench201Space

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


def test_supernet_mirrors_the_space(net):
    space = net.space
    assert isinstance(net, DartsSupernet)
    assert net.decision_names == space.hp_names()
    # One alpha per edge and cell type: nodes 0, 1 have 2 and 3 incoming edges.
    assert len(net.arch_variables) == 2 * (2 + 3)
    assert all(tuple(a.shape) == (len(OPS),) for a in net.arch_variables)
    assert [c.reduction for c in net.cells] == [False, True, True]
    arch_ids = {id(a) for a in net.arch_variables}
    assert not arch_ids & {id(v) for v in net.trainable_weights}
    assert net(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 3)


def test_subnet_equals_standalone_network_and_one_trace_serves_every_path(net):
    space = net.space
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    paths = [net.random_path(rng) for _ in range(3)]
    # Both slots of normal node 1 read state 2 with sep_conv: one shared op instance.
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
        assert model.name == space.build_values(net.values_of(path)).name
    assert predict.experimental_get_tracing_count() == 1
    assert not np.allclose(outputs[0], outputs[1], atol=1e-4)  # paths do differ
    # The shared op's weights went into both stand-alone layers of that node.
    cell = net.to_standalone(paths[-1]).get_layer("cell_0_normal")
    w0, w1 = (layer.get_weights() for layer in cell.edge_layers[2:4])
    assert len(w0) > 0 and all(np.array_equal(a, b) for a, b in zip(w0, w1))


def test_relaxed_forward_uses_alphas_and_auxiliary_skip(net):
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 1)).astype("float32")
    base = net(x, training=False).numpy()
    saved = [a.numpy() for a in net.arch_variables]
    try:
        net.edge_alpha("normal", 1, 1).assign([0.0, 5.0, 0.0, 0.0])
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
    """Zero alphas, then `{(cell, i, k): {op: value}}`."""
    for a in net.arch_variables:
        a.assign(np.zeros(a.shape, "float32"))
    for (cell, i, k), entries in table.items():
        alpha = np.zeros(len(net.op_names), "float32")
        for op, value in entries.items():
            alpha[net.op_names.index(op)] = value
        net.edge_alpha(cell, i, k).assign(alpha)


def test_darts_derive_picks_the_two_strongest_edges_per_node():
    space = _space(nodes=3)
    net = DartsSupernet(space, seed=0)
    _set_alphas(
        net,
        {
            # node 0: edge 1 (sep_conv) is stronger than edge 0 (max_pool)
            ("normal", 0, 0): {"max_pool_3x3": 1.0},
            ("normal", 1, 0): {"sep_conv_3x3": 3.0},
            # node 1: edge 0's large `none` weight does not count; edges 2 then 1 win
            ("normal", 0, 1): {"none": 9.0, "skip_connect": 0.5},
            ("normal", 1, 1): {"max_pool_3x3": 1.0},
            ("normal", 2, 1): {"skip_connect": 2.0},
            # node 2: edges 3 and 0 of four
            ("normal", 0, 2): {"sep_conv_3x3": 1.5},
            ("normal", 1, 2): {"max_pool_3x3": 0.5},
            ("normal", 3, 2): {"sep_conv_3x3": 2.5},
            ("reduce", 0, 0): {"skip_connect": 1.0},
            ("reduce", 1, 0): {"max_pool_3x3": 2.0},
            ("reduce", 1, 1): {"sep_conv_3x3": 2.0},
            ("reduce", 2, 1): {"skip_connect": 1.0},
            ("reduce", 2, 2): {"max_pool_3x3": 2.0},
            ("reduce", 3, 2): {"sep_conv_3x3": 1.0},
        },
    )
    genotype = space.encode(net.values_of(net.derive()))
    assert genotype == (
        "normal=sep_conv_3x3~1,max_pool_3x3~0|skip_connect~2,max_pool_3x3~1"
        "|sep_conv_3x3~3,sep_conv_3x3~0;"
        "reduce=max_pool_3x3~1,skip_connect~0|sep_conv_3x3~1,skip_connect~2"
        "|max_pool_3x3~2,sep_conv_3x3~3"
    )
    space.build_architecture(genotype)
    # P-DARTS limit: the weakest of the three skips lose their skip option and are re-derived.
    limited = space.encode(net.values_of(net.derive(max_skip=1)))
    assert limited.count("skip_connect") == 1
    assert "skip_connect~2" in limited.split(";")[0]  # the strongest skip (normal node 1) stays
    assert net.derive(max_skip=3) == net.derive()
    # DartsSearch delegates to the supernet, max_skip included.
    search = DartsSearch(space, max_skip=1, seed=0)
    search.supernet = net
    assert search.derive() == net.derive(max_skip=1)
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


def test_darts_search_first_order_end_to_end():
    x, y = _data()
    xv, yv = _data(32, seed=1)
    space = _space(LIGHT_OPS, num_classes=2)
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
    with pytest.raises(TypeError, match="space"):
        DartsSupernet(NASBench201Space(input_shape=(8, 8, 1), num_classes=2))
    with pytest.raises(ValueError, match="num_classes"):
        DartsSupernet(DartsSpace(channels=4, layers=3, nodes=2))
    with pytest.raises(ValueError, match="mode"):
        DartsSupernet(_space(), mode="hard")
    x = np.zeros((1, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="path"):
        net(x, path=[0] * 3)
    with pytest.raises(ValueError, match="reads states"):
        net(x, path=[0] * 2 + [5] + [0] * (len(net.decisions) - 3))
    with pytest.raises(ValueError, match="max_skip"):
        net.derive(max_skip=-1)
    with pytest.raises(ValueError, match="`i`"):
        net.edge_alpha("normal", 3, 1)
    with pytest.raises(ValueError, match="cell"):
        net.edge_alpha("other", 0, 0)
    with pytest.raises(ValueError, match="normal_node_0_op_0"):
        net.path_of({**net.values_of([0] * len(net.decisions)), "normal_node_0_op_0": "conv"})
