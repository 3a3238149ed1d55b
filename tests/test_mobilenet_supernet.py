import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas.oneshot import ChoiceSupernet, DartsSearch, ENASSearch, SPOSSearch, build_supernet
from keras_nas.spaces import MobileNetSpace
from keras_nas.testing import check_supernet


def _space(**kwargs):
    config = dict(
        input_shape=(8, 8, 1),
        num_classes=3,
        stages=((8, 1, 1), (16, 2, 2)),
        width_multipliers=(0.5, 1.0),
        kernel_sizes=(3, 5),
        expansions=(1, 3),
        head_channels=16,
    )
    config.update(kwargs)
    return MobileNetSpace(**config)


def _data(n=96, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n).astype("int32")
    # class c: a bright stripe in row block c, plus noise
    x = rng.normal(0.0, 0.5, size=(n, 8, 8, 1)).astype("float32")
    for c in range(classes):
        x[y == c, 2 * c : 2 * c + 3, :, 0] += 1.5
    return x, y


def _path(net, **chosen):
    """A path from option values by decision name (others: option 0)."""
    path = [0] * len(net.decisions)
    for k, (name, options) in enumerate(net.decisions):
        if name in chosen:
            path[k] = options.index(chosen[name])
    return path


def test_subnets_equal_their_standalone_networks():
    space = _space(se_ratio=0.25)
    net = build_supernet(space, seed=0)
    assert isinstance(net, ChoiceSupernet)  # derived from MobileNetSpace.build_network
    assert net.decision_names == [
        "width_multiplier",
        "stage_0_block_0_kernel",  # stage 0 has max depth 1: no depth decision
        "stage_0_block_0_expansion",
        "stage_1_depth",
        "stage_1_block_0_kernel",
        "stage_1_block_0_expansion",
        "stage_1_block_1_kernel",
        "stage_1_block_1_expansion",
    ]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8, 8, 1)).astype("float32")
    # move the batch-norm statistics away from their initial values on several paths
    for _ in range(6):
        net(x, training=True, path=net.random_path(rng))
    paths = [
        _path(net, width_multiplier=0.5, stage_1_depth=1),
        _path(net, width_multiplier=1.0, stage_1_depth=2, stage_1_block_1_kernel=5),
        _path(net, width_multiplier=0.5, stage_1_depth=2, stage_0_block_0_expansion=3,
              stage_1_block_0_kernel=5, stage_1_block_1_expansion=3),
        _path(net, width_multiplier=1.0, stage_1_depth=1, stage_0_block_0_kernel=5),
    ]
    outputs = []
    for path in paths:
        values = net.values_of(path)
        arch = space.encode(values)
        assert space.decode(arch) == values  # inactive block decisions are left out
        assert space.encode(net.values_of(net.path_of(space.decode(arch)))) == arch
        model = net.to_standalone(path)
        assert model.count_params() == space.build_architecture(arch).count_params()
        out = np.asarray(net(x, training=False, path=path))
        np.testing.assert_allclose(np.asarray(model(x, training=False)), out, atol=1e-5)
        outputs.append(out)
    # the paths are different functions (the comparison above is not trivially true)
    for i in range(len(outputs)):
        for j in range(i):
            assert np.abs(outputs[i] - outputs[j]).max() > 1e-4
    # inactive block decisions do not change the network
    a = _path(net, stage_1_depth=1, stage_1_block_1_kernel=3)
    b = _path(net, stage_1_depth=1, stage_1_block_1_kernel=5)
    np.testing.assert_array_equal(net(x, path=a), net(x, path=b))
    assert space.encode(net.values_of(a)) == space.encode(net.values_of(b)) == "w0.5|k3e1|k3e1"


def test_training_mode_matches_standalone_without_dropout():
    space = _space(dropout=0.0, stages=((8, 2, 1), (16, 2, 2)))
    net = build_supernet(space, seed=1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 8, 8, 1)).astype("float32")
    for path in (net.random_path(rng), net.random_path(rng)):
        model = net.to_standalone(path)
        np.testing.assert_allclose(
            np.asarray(model(x, training=True)), np.asarray(net(x, training=True, path=path)),
            atol=1e-5,
        )


def test_one_traced_function_serves_every_tensor_path():
    space = _space()
    net = build_supernet(space, seed=0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    net(x, training=True, path=net.random_path(rng))

    @tf.function
    def predict(x, path):
        return net(x, training=False, path=path)

    seen = set()
    for _ in range(8):
        path = net.random_path(rng)
        out = predict(tf.constant(x), tf.constant(path, dtype="int32"))
        np.testing.assert_allclose(out, net(x, training=False, path=path), atol=1e-6)
        seen.add(net.values_of(path)["width_multiplier"])
    assert predict.experimental_get_tracing_count() == 1
    assert seen == {0.5, 1.0}


def test_relaxed_modes_and_derive():
    space = _space()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    net = build_supernet(space, seed=0)
    relaxed = np.asarray(net(x, training=False))
    np.testing.assert_allclose(relaxed.sum(axis=-1), 1.0, atol=1e-5)  # mixture of softmaxes
    assert np.abs(relaxed - np.asarray(net(x, training=False, path=[0] * 8))).max() > 1e-5
    # every alpha gets a gradient through the relaxation
    with tf.GradientTape() as tape:
        for a in net.arch_variables:  # alpha is not trainable: watched explicitly, as DARTS does
            tape.watch(a.value)
        loss = keras.ops.mean(keras.ops.log(net(x, training=True)[:, 0]))
    grads = tape.gradient(loss, [a.value for a in net.arch_variables])
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)
    # derive picks the argmax of each decision
    net.alphas[0].assign([0.0, 1.0])
    net.alphas[3].assign([2.0, 0.0])
    path = net.derive()
    assert net.values_of(path)["width_multiplier"] == 1.0
    assert net.values_of(path)["stage_1_depth"] == 1
    assert "stage_1_block_1_kernel" not in net.values_of(path)
    # Gumbel: the argmax path at inference, hard samples with alpha gradients in training
    gumbel = build_supernet(space, mode="gumbel", seed=0)
    gumbel.alphas[0].assign([0.0, 5.0])
    np.testing.assert_allclose(
        gumbel(x, training=False), gumbel(x, training=False, path=gumbel.derive()), atol=1e-6
    )
    with tf.GradientTape() as tape:
        for a in gumbel.arch_variables:
            tape.watch(a.value)
        loss = keras.ops.mean(keras.ops.log(gumbel(x, training=True)[:, 0]))
    grads = tape.gradient(loss, [a.value for a in gumbel.arch_variables])
    assert grads[0] is not None and np.abs(grads[0].numpy()).sum() > 0


def _search_space(**kwargs):
    # Smaller than `_space()` to keep the traced steps cheap; still a width, a depth and
    # per-block kernel decisions (with a stride-2 stage).
    config = dict(num_classes=None, stages=((8, 2, 2),), expansions=(1,), head_channels=0)
    config.update(kwargs)
    return _space(**config)


@pytest.mark.slow
def test_spos_enas_darts_search_the_macro_space_end_to_end(tmp_path):
    import keras_nas

    x, y = _data(96, seed=0)
    xv, yv = _data(48, seed=1)
    searches = [
        SPOSSearch(_search_space(), population_size=3, generations=1, parents=2,
                   calibration_batches=1, seed=0),
        DartsSearch(_search_space(), seed=0),
        # GDAS (hard Gumbel samples in the traced steps); one width keeps its trace short
        DartsSearch(_search_space(width_multipliers=(1.0,)), relaxation="gumbel", seed=0),
    ]
    for search in searches:
        search.fit(x, y, validation_data=(xv, yv), epochs=1, batch_size=32)
        arch = search.best_architecture
        space = search.space
        assert arch == space.encode(space.decode(arch))
        assert search.supernet.values_of(search.best_path) == space.decode(arch)
        model = space.build_architecture(arch)
        assert model.predict(xv[:4], verbose=0).shape == (4, 3)
    # SPOS scored candidates by inherited accuracy; the same value is reproducible
    spos = searches[0]
    best = spos.best_architecture
    assert spos.evaluate_architecture(best, spos._xv, spos._yv) == max(spos.scores.values())
    # ENAS through `keras_nas.search` with the space by name
    found = keras_nas.Search(
        space="mobilenet", strategy="enas", epochs=1, final_epochs=1, seed=0, verbose=0,
        space_kwargs=dict(stages=((8, 2, 2),), width_multipliers=(0.5, 1.0),
                          kernel_sizes=(3, 5), expansions=(1,), head_channels=0),
        strategy_kwargs=dict(controller_steps=2, controller_batch=2, final_samples=3,
                             calibration_batches=1),
        directory=str(tmp_path), batch_size=32,
    ).fit(x, y, validation_data=(xv, yv))
    enas = found.oneshot_search
    assert isinstance(enas, ENASSearch)
    assert enas.space.encode(enas.space.decode(enas.best_architecture)) == enas.best_architecture
    assert 0 < enas.controller_probability(enas.best_architecture) <= 1
    assert found.best_model.predict(xv[:4], verbose=0).shape == (4, 3)


def test_bad_input():
    with pytest.raises(ValueError, match="needs `input_shape`"):
        build_supernet(_space(input_shape=None))  # not configured
    net = build_supernet(_space(stages=((8, 1, 1),), width_multipliers=(1.0,)), seed=0)
    x = np.zeros((2, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="`path` must have 2 entries"):
        net(x, path=[0, 0, 0])
    with pytest.raises(ValueError, match="out of range"):
        net(x, path=[0, 2])
    with pytest.raises(ValueError, match="out of range"):
        net.values_of([5, 0])
    with pytest.raises(ValueError, match="lacks the decision 'stage_0_block_0_kernel'"):
        net.path_of({"width_multiplier": 1.0, "stage_0_block_0_expansion": 3})
    with pytest.raises(ValueError, match="not an option of 'stage_0_block_0_kernel'"):
        net.path_of({"stage_0_block_0_kernel": 7, "stage_0_block_0_expansion": 3})
    with pytest.raises(TypeError, match="`values` must be a dict"):
        net.path_of("w1.0|k3e3")
    # single-option hyperparameters are no decisions but are filled in
    assert net.values_of([1, 1]) == {
        "width_multiplier": 1.0, "stage_0_depth": 1,
        "stage_0_block_0_kernel": 5, "stage_0_block_0_expansion": 3,
    }


def test_paths_of_one_architecture_are_scored_once():
    space = _space()
    net = build_supernet(space)
    # Stage 1 at depth 1: the kernel of its block 1 does not change the network.
    a = _path(net, stage_1_depth=1, stage_1_block_1_kernel=3)
    b = _path(net, stage_1_depth=1, stage_1_block_1_kernel=5)
    assert a != b and space.encode(net.values_of(a)) == space.encode(net.values_of(b))
    assert net.canonical_path(a) == net.canonical_path(b)
    deeper = _path(net, stage_1_depth=2, stage_1_block_1_kernel=5)
    assert net.canonical_path(deeper) == deeper  # an active decision is kept
    search = SPOSSearch(space, seed=0)
    search.supernet = net
    calls = []
    search.subnet_accuracy = lambda path, *args, **kwargs: calls.append(path) or 0.5
    search._xv = search._yv = search._calibration = None
    assert search.score(a) == search.score(b) == 0.5
    assert len(calls) == 1 and search.num_evaluated == 1


def test_shared_blocks_run_once_and_the_space_passes_the_supernet_checks():
    space = _space(dropout=0.0, stages=((8, 1, 1), (16, 3, 2)), width_multipliers=(1.0,))
    net = build_supernet(space, seed=0)
    depth_sites = [s for s in net._mixed_ops[net.decision_names.index("stage_1_depth")]]
    # blocks 1 and 2 of stage 1: options 1..3 run [skip, block, block] and [skip, skip, block]
    assert [s.option_candidates for s in depth_sites] == [[0, 1, 1], [0, 0, 1]]
    assert [len(s.candidates) for s in depth_sites] == [2, 2]
    # the weights of every (block, kernel, expansion) once: no copy per depth
    standalone = space.build_architecture("w1.0|k3e1|k3e1-k3e1-k3e1")
    blocks = sum(1 for layer in standalone.layers if layer.name.startswith("stage_"))
    assert blocks == 4
    # a depth below the maximum leaves named identities in the stand-alone network
    shallow = space.build_architecture("w1.0|k3e1|k3e1")
    assert [layer.name for layer in shallow.layers if "skipped" in layer.name] == [
        "stage_1_block_1_skipped", "stage_1_block_2_skipped"]
    assert shallow.count_params() < standalone.count_params()
    check_supernet(space, samples=4, seed=0)
