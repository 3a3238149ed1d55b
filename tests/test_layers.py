"""Searchable layers: Cell, ResNetBasicBlock, DartsCell, MBConv, and .keras round trips."""

import keras
import numpy as np
import pytest

import keras_nas  # noqa: F401  (registers the layers, as a user would)
from keras_nas import layers as L

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 8, 8, 4)).astype("float32")


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def n_weights(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


# -- Cell ----------------------------------------------------------------------------------


def test_cell_edges_order():
    assert L.cell_edges(4) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def test_cell_sums_inputs_of_each_node():
    skip, none = "skip_connect", "none"
    # node1 = x; node2 = x + node1 = 2x; node3 = node2 = 2x.
    cell = L.Cell([skip, skip, skip, none, none, skip], channels=4)
    np.testing.assert_allclose(to_np(cell(X)), 2 * X, rtol=1e-6)
    # node3 = x + node1 + node2 = x + x + 2x.
    cell = L.Cell([skip, skip, skip, skip, skip, skip], channels=4)
    np.testing.assert_allclose(to_np(cell(X)), 4 * X, rtol=1e-6)
    assert n_weights(cell) == 0


def test_cell_without_path_is_zero():
    cell = L.Cell(["nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none", "none", "none"], 4)
    y = to_np(cell(X))
    assert y.shape == X.shape and not y.any()
    assert not to_np(L.Cell(["none"] * 6, 6)(X)).any()


def test_cell_shapes_and_weights():
    ops = ["nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "none", "skip_connect", "nor_conv_3x3"]
    cell = L.Cell(ops, channels=4)
    assert cell(X).shape == X.shape
    assert n_weights(cell) == (36 * 4 + 8) + (4 * 4 + 8) + (36 * 4 + 8)
    # Other node counts and a channel change with stride 2 on the input edges.
    assert L.Cell(ops[:3], channels=6, stride=2)(X).shape == (2, 4, 4, 6)
    assert L.Cell(["sep_conv_3x3"], channels=5)(X).shape == (2, 8, 8, 5)


def test_cell_bad_arguments():
    with pytest.raises(ValueError, match="`ops`"):
        L.Cell(["nor_conv_3x3"] * 5, 4)
    with pytest.raises(TypeError, match="`ops`"):
        L.Cell("nor_conv_3x3", 4)
    with pytest.raises(ValueError, match="`name`.*bogus"):
        L.Cell(["bogus", "none", "none"], 4)
    with pytest.raises(ValueError, match="`channels`"):
        L.Cell(["none"], 0)


def test_resnet_block():
    block = L.ResNetBasicBlock(8, stride=2)
    assert block(X).shape == (2, 4, 4, 8)
    assert block(X[:, :7, :7]).shape == (2, 4, 4, 8)
    # PyTorch-equivalent parameter count: two 3x3 convs with BN, 1x1 conv shortcut.
    assert n_weights(block) == 9 * 4 * 8 + 16 + 9 * 8 * 8 + 16 + 4 * 8
    same = L.ResNetBasicBlock(4, stride=1)
    same(X)
    assert same.shortcut == []
    assert L.ResNetBasicBlock(6, stride=1)(X).shape == (2, 8, 8, 6)


# -- DartsCell -------------------------------------------------------------------------------

GENOTYPE = "sep_conv_3x3~0,dil_conv_5x5~1|skip_connect~0,max_pool_3x3~2|avg_pool_3x3~3,none~1"


def test_genotype_strings():
    pairs = L.parse_cell_genotype(GENOTYPE)
    assert pairs[:2] == [("sep_conv_3x3", 0), ("dil_conv_5x5", 1)]
    assert len(pairs) == 6
    assert L.format_cell_genotype(pairs) == GENOTYPE
    with pytest.raises(ValueError, match="`genotype`"):
        L.parse_cell_genotype("sep_conv_3x3~0|skip_connect~1")


def test_darts_cell_shapes():
    normal = L.DartsCell(GENOTYPE, channels=3)
    assert normal([X, X]).shape == (2, 8, 8, 9)
    reduce = L.DartsCell(GENOTYPE, channels=3, reduction=True)
    assert reduce([X, X]).shape == (2, 4, 4, 9)
    small = X[:, :4, :4]
    after = L.DartsCell(GENOTYPE, channels=5, reduction_prev=True)
    assert after([X, small]).shape == (2, 4, 4, 15)
    assert isinstance(after.preprocess0, L.FactorizedReduce)
    # Reduction cells run the ops on the cell inputs at stride 2, the others at stride 1.
    strides = [getattr(op, "stride", None) for op in reduce.edge_layers]
    assert strides == [2, 2, 2, 1, 1, 2]


def test_darts_cell_concatenates_nodes():
    # Node 0 reads the (preprocessed) inputs through "none" only: its slice is zero.
    cell = L.DartsCell("none~0,none~1|skip_connect~0,skip_connect~1", channels=3)
    y = to_np(cell([X, X], training=False))
    assert y.shape == (2, 8, 8, 6)
    assert not y[..., :3].any() and y[..., 3:].any()


def test_darts_cell_preprocesses_only_inputs_it_reads():
    cell = L.DartsCell("skip_connect~0,skip_connect~0|skip_connect~2,none~0", channels=3)
    assert cell([X, X]).shape == (2, 8, 8, 6)
    assert cell.preprocess1 is None
    assert n_weights(cell) == n_weights(cell.preprocess0) == 4 * 3 + 2 * 3


def test_darts_cell_bad_arguments():
    with pytest.raises(ValueError, match="`genotype` node 0 may read inputs 0..1"):
        L.DartsCell("sep_conv_3x3~0,sep_conv_3x3~2", 4)
    with pytest.raises(ValueError, match="`name`"):
        L.DartsCell("conv~0,sep_conv_3x3~1", 4)
    with pytest.raises(TypeError, match="`reduction`"):
        L.DartsCell(GENOTYPE, 4, reduction=1)
    with pytest.raises(ValueError, match="do not line up"):
        L.DartsCell(GENOTYPE, 4)([X, X[:, :4, :4]])


def test_darts_cell_takes_node_inputs_and_layers_for_its_slots():
    # NodeInputs of get_op layers are its (op, input) pairs: the same cell and config.
    entries = [L.NodeInput(i, L.get_op(op, 3, 2 if i < 2 else 1))
               for op, i in L.parse_cell_genotype(GENOTYPE)]
    from_inputs = L.DartsCell(entries, channels=3, reduction=True)
    assert from_inputs.genotype == L.DartsCell(GENOTYPE, 3, reduction=True).genotype
    assert from_inputs.get_config()["genotype"][0] == ["sep_conv_3x3", 0]
    # Any other layer takes the cell's inputs unprocessed (and preprocesses what it reads).
    from keras_nas.layers.darts_cell import darts_preprocess

    pre = darts_preprocess(3)
    pick = L.NodeInput(1, keras.layers.Conv2D(3, 1), preprocess=pre[1])
    other = L.NodeInput(0, keras.layers.Conv2D(3, 3, padding="same"), preprocess=pre[0])
    cell = L.DartsCell([pick, other], channels=3, preprocess=pre)
    y = to_np(cell([X, X], training=False))
    assert y.shape == (2, 8, 8, 3) and cell.preprocess0 is pre[0]
    # the cell's weights: its preprocessing first, as in a cell of pairs
    assert [id(w) for w in cell.weights[:len(pre[0].weights)]] == [id(w) for w in pre[0].weights]
    config = cell.get_config()
    assert isinstance(config["genotype"][0], dict)
    again = L.DartsCell.from_config(config)
    assert isinstance(again.genotype[0], L.NodeInput) and again.genotype[0].index == 1
    assert L.NodeInput.from_config(pick.get_config()).index == 1
    with pytest.raises(ValueError, match="needs `preprocess`"):
        L.DartsCell([pick, other], channels=3)
    with pytest.raises(ValueError, match="not both"):
        L.DartsCell([pick, ("skip_connect", 0)], channels=3, preprocess=pre)
    with pytest.raises(ValueError, match="`index`"):
        L.NodeInput(-1, keras.layers.Identity())
    with pytest.raises(TypeError, match="`op`"):
        L.NodeInput(0, "sep_conv_3x3")
    with pytest.raises(ValueError, match="NodeInput\\(3\\)"):
        L.NodeInput(3, keras.layers.Identity())([X, X])


# -- MBConv ----------------------------------------------------------------------------------


def test_mbconv_structure():
    block = L.MBConv(4, kernel_size=5, expansion=6, strides=1)
    y = block(X)
    assert y.shape == X.shape and block.residual
    hidden = 24
    assert n_weights(block) == 4 * hidden + 2 * hidden + 25 * hidden + 2 * hidden + hidden * 4 + 8
    thin = L.MBConv(8, kernel_size=3, expansion=1, strides=2)
    assert thin(X).shape == (2, 4, 4, 8) and not thin.residual and thin.expand == []
    se = L.MBConv(4, 3, 3, 1, se_ratio=0.25)
    se(X)
    plain = L.MBConv(4, 3, 3, 1)
    plain(X)
    # Squeeze-excitation: 12 -> 1 -> 12 channels with biases.
    assert n_weights(se) - n_weights(plain) == (12 * 1 + 1) + (1 * 12 + 12)


def test_mbconv_residual_adds_input():
    block = L.MBConv(4, 3, 3, 1)
    block(X)
    # Zero the projection's BN scale and shift: the block then returns its input.
    bn = block.project[-1]
    bn.gamma.assign(np.zeros(4, "float32"))
    np.testing.assert_allclose(to_np(block(X, training=False)), X, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(filters=0), "filters"),
        (dict(filters=4, kernel_size=4), "kernel_size"),
        (dict(filters=4, expansion=0), "expansion"),
        (dict(filters=4, strides=3), "strides"),
        (dict(filters=4, se_ratio=2.0), "se_ratio"),
    ],
)
def test_mbconv_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        L.MBConv(**kwargs)


# -- .keras round trip -------------------------------------------------------------------------


def test_every_layer_round_trips_through_keras_file(tmp_path):
    inputs = keras.Input((6, 6, 3))
    # Every candidate op, at stride 2 with a channel change, summed.
    branches = [L.get_op(name, 6, 2)(inputs) for name in sorted(L.OPS)]
    x = keras.layers.Add()(branches)
    x = L.Cell(["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1",
                "sep_conv_3x3"], 6)(x)
    x = L.ResNetBasicBlock(8, 2)(x)
    s = L.DartsCell(GENOTYPE, 4, reduction=True)([x, x])
    s = L.DartsCell("sep_conv_5x5~0,skip_connect~1|dil_conv_3x3~2,max_pool_3x3~1", 4,
                    reduction_prev=True)([x, s])
    s = L.MBConv(8, 5, 6, 1, se_ratio=0.25)(s)
    s = L.MBConv(8, 3, 1, 1)(s)
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(s))
    model = keras.Model(inputs, outputs)
    # One eager step, so batch-norm statistics are not their initial values.
    model.compile("adam", "mse", run_eagerly=True)
    data = RNG.normal(size=(8, 6, 6, 3)).astype("float32")
    model.fit(data, RNG.normal(size=(8, 5)), epochs=1, verbose=0)

    path = tmp_path / "all_layers.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    kinds = {type(layer).__name__ for layer in loaded.layers}
    assert {"Zero", "SkipConnect", "ReLUConvBN", "SepConv", "DilConv", "Pool", "Cell",
            "ResNetBasicBlock", "DartsCell", "MBConv"} <= kinds
    # The reloaded model runs in graph mode (predict traces `call`), the original eagerly.
    np.testing.assert_allclose(
        loaded.predict(data, verbose=0), to_np(model(data, training=False)),
        rtol=1e-5, atol=1e-5,
    )
    assert len(loaded.weights) == len(model.weights)
