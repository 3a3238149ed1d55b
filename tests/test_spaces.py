"""Search spaces: decisions, architecture strings, builds at several input sizes, training.

The contract every space keeps (declaring builds nothing, strings round-trip, the model's
outputs, saving and loading) is checked by `keras_nas.testing.check_space`; the tests here
check what is particular to each space."""

import csv
import json
import re
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pytest

import keras_nas
from keras_nas import compat
from keras_nas.layers import Cell, DartsCell, MBConv
from keras_nas.spaces import (
    DARTS_OPS,
    EDGE_NAMES,
    NASBENCH201_OPS,
    SPACES,
    DartsSpace,
    MobileNetSpace,
    NASBench201Space,
    Space,
    all_architectures,
    get_space,
)
from keras_nas.testing import check_space

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO.parent / "shared" / "data" / "nasbench201" / "nasbench201.csv"

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
DARTS_V2 = (
    "normal=sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~0,sep_conv_3x3~1|"
    "sep_conv_3x3~1,skip_connect~0|skip_connect~0,dil_conv_3x3~2;"
    "reduce=max_pool_3x3~0,max_pool_3x3~1|skip_connect~2,max_pool_3x3~1|"
    "max_pool_3x3~0,skip_connect~2|skip_connect~2,max_pool_3x3~1"
)

SMALL = {
    "cell": dict(channels=4, cells_per_stage=1),
    "darts": dict(channels=4, layers=3, nodes=2, stem_multiplier=1),
    "mobilenet": dict(stages=((8, 1, 1), (16, 2, 2), (24, 2, 2)), stem_channels=8, head_channels=32),
}


def small_space(name, input_shape=(8, 8, 1), num_classes=10):
    return get_space(name, input_shape=input_shape, num_classes=num_classes, **SMALL[name])


# -- NAS-Bench-201 strings -----------------------------------------------------------------------


def test_all_nasbench201_architectures_round_trip():
    space = NASBench201Space()
    archs = list(all_architectures())
    assert len(archs) == 15625 == len(set(archs)) == len(NASBENCH201_OPS) ** 6
    for arch in archs:
        values = space.decode(arch)
        assert list(values) == EDGE_NAMES
        assert space.encode(values) == arch
    assert ARCH in archs
    assert space.decode(ARCH)["edge_1_2"] == "avg_pool_3x3"
    if TABLE.exists():
        with open(TABLE, newline="") as f:
            table = {row["arch_str"] for row in csv.DictReader(f)}
        assert table == set(archs)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|",
        "|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|",
        "|conv_7x7~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|",
        "none~0+|none~0|none~1|+|none~0|none~1|none~2|",
        None,
    ],
)
def test_nasbench201_decode_rejects_malformed(bad):
    with pytest.raises(ValueError, match="`arch_str`"):
        NASBench201Space().decode(bad)


def test_nasbench201_encode_rejects_bad_values():
    values = NASBench201Space().decode(ARCH)
    with pytest.raises(ValueError, match="`values`.*edge_2_3"):
        NASBench201Space().encode({k: v for k, v in values.items() if k != "edge_2_3"})
    with pytest.raises(ValueError, match="`values`.*sep_conv_3x3"):
        NASBench201Space().encode({**values, "edge_0_1": "sep_conv_3x3"})


@pytest.mark.parametrize(
    "arch, params",
    [
        (ARCH, 0.802426),
        ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         0.129306),
    ],
)
def test_nasbench201_network_matches_benchmark_parameter_count(arch, params):
    # params_M_cifar10 of the NAS-Bench-201 table (PyTorch counts trainable parameters).
    model = NASBench201Space((32, 32, 3), 10).build_values(NASBench201Space().decode(arch))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == round(params * 1e6)
    cells = [layer for layer in model.layers if isinstance(layer, Cell)]
    assert len(cells) == 15 and {c.channels for c in cells} == {16, 32, 64}


# -- DARTS and MobileNet strings ---------------------------------------------------------------


def test_darts_genotype_round_trip():
    space = DartsSpace(nodes=4)
    values = space.decode(DARTS_V2)
    assert values["normal_node_3_op_1"] == "dil_conv_3x3"
    assert values["normal_node_3_input_1"] == 2
    assert space.encode(values) == DARTS_V2
    for bad in [
        "normal=sep_conv_3x3~0,sep_conv_3x3~1",
        DARTS_V2.replace("dil_conv_3x3~2", "dil_conv_3x3~5"),
        DARTS_V2.replace("dil_conv_3x3", "conv_9x9"),
        DARTS_V2.replace("normal=", "normale="),
        DartsSpace(nodes=2).encode(DartsSpace(nodes=2).decode(
            "normal=none~0,none~1|none~0,none~1;reduce=none~0,none~1|none~0,none~1")),
    ]:
        with pytest.raises(ValueError, match="`arch_str`"):
            space.decode(bad)


def test_mobilenet_string_round_trip():
    space = MobileNetSpace()
    arch = "w0.75|k3e6|k5e3-k3e6|k7e6-k3e3-k3e3|k3e6|k3e6-k5e6|k7e3|k3e6"
    values = space.decode(arch)
    assert values["stage_2_depth"] == 3 and values["stage_2_block_0_kernel"] == 7
    assert "stage_0_block_1_kernel" not in values
    assert space.encode(values) == arch
    for bad in ["w0.6|k3e6|k3e6|k3e6|k3e6|k3e6|k3e6|k3e6", "w1.0|k3e6", "x1.0|k3e6|k3e6|k3e6|k3e6|k3e6|k3e6|k3e6",
                "w1.0|k4e6|k3e6|k3e6|k3e6|k3e6|k3e6|k3e6", "w1.0|k3e6-k3e6|k3e6|k3e6|k3e6|k3e6|k3e6|k3e6",
                "w1.0||k3e6|k3e6|k3e6|k3e6|k3e6|k3e6"]:
        with pytest.raises(ValueError, match="`arch_str`"):
            space.decode(bad)


def test_mobilenet_default_is_mobilenetv2():
    space = MobileNetSpace((224, 224, 3), 1000, expansions=(1, 6), dropout=0.0)
    arch = "w1.0|k3e1|k3e6-k3e6|k3e6-k3e6-k3e6|k3e6-k3e6-k3e6-k3e6|k3e6-k3e6-k3e6|k3e6-k3e6-k3e6|k3e6"
    model = space.build_values(space.decode(arch))
    assert model.count_params() == 3538984  # keras.applications.MobileNetV2(weights=None)
    assert space.strides_for(224) == (2, [1, 2, 2, 2, 1, 2, 1])
    assert space.strides_for(32) == (1, [1, 1, 2, 2, 1, 2, 1])
    assert space.strides_for(8) == (1, [1, 1, 1, 1, 1, 2, 1])


# -- decisions -------------------------------------------------------------------------------------


def test_declare_registers_every_decision():
    hp = keras_tuner.HyperParameters()
    NASBench201Space().declare(hp)
    assert [p.name for p in hp.space] == EDGE_NAMES
    assert all(p.values == NASBENCH201_OPS for p in hp.space)

    hp = keras_tuner.HyperParameters()
    DartsSpace(nodes=3).declare(hp)
    names = {p.name for p in hp.space}
    assert len(names) == 2 * 3 * 2 * 2
    assert hp._hps["reduce_node_2_input_1"][0].values == [0, 1, 2, 3]
    assert hp._hps["normal_node_0_op_0"][0].values == DARTS_OPS

    hp = keras_tuner.HyperParameters()
    space = MobileNetSpace(stages=((16, 1, 1), (24, 3, 2)))
    space.declare(hp)
    assert {p.name for p in hp.space} == {
        "width_multiplier", "stage_0_depth", "stage_1_depth", "stage_0_block_0_kernel",
        "stage_0_block_0_expansion"} | {
        f"stage_1_block_{b}_{k}" for b in range(3) for k in ("kernel", "expansion")}


def test_values_of_keeps_only_active_decisions():
    space = MobileNetSpace(stages=((16, 1, 1), (24, 3, 2)))
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    hp.values["stage_1_depth"] = 1
    hp.values["tuner/epochs"] = 3
    values = space.values_of(hp)
    assert "stage_1_block_1_kernel" in hp.values  # KerasTuner keeps inactive values...
    assert "stage_1_block_1_kernel" not in values  # ...values_of does not.
    assert "tuner/epochs" not in values
    assert space.architecture_of(hp) == "w1.0|k3e6|k3e6"


def test_build_honours_the_values():
    hp = keras_tuner.HyperParameters()
    hp.values.update(NASBench201Space().decode(ARCH))
    space = small_space("cell")
    model = space.build(hp)
    assert space.architecture_of(hp) == ARCH
    assert {tuple(layer.ops) for layer in model.layers if isinstance(layer, Cell)} == {
        tuple(NASBench201Space().decode(ARCH).values())}
    assert model.optimizer is not None  # compiled

    space = DartsSpace((8, 8, 1), 10, channels=4, layers=4, nodes=4)
    hp = keras_tuner.HyperParameters()
    hp.values.update(space.decode(DARTS_V2))
    model = space.build(hp)
    cells = [layer for layer in model.layers if isinstance(layer, DartsCell)]
    assert [c.reduction for c in cells] == [False, True, True, False]
    genotype = space.genotype(space.decode(DARTS_V2))
    assert [list(map(tuple, c.get_config()["genotype"])) for c in cells] == [
        genotype["normal"], genotype["reduce"], genotype["reduce"], genotype["normal"]]
    assert cells[2].reduction_prev and cells[3].reduction_prev

    space = small_space("mobilenet")
    hp = keras_tuner.HyperParameters()
    hp.values.update(space.decode("w0.5|k7e3|k5e6-k3e3|k3e6"))
    model = space.build(hp)
    blocks = [layer for layer in model.layers if isinstance(layer, MBConv)]
    assert [(b.kernel_size, b.expansion) for b in blocks] == [(7, 3), (5, 6), (3, 3), (3, 6)]
    assert [b.filters for b in blocks] == [8, 8, 8, 16]  # 0.5 x (8, 16, 16, 24), multiples of 8


# -- the Space contract, building and training ----------------------------------------------------

TINY = {
    "cell": (lambda: NASBench201Space(channels=4, cells_per_stage=1), 6),
    "darts": (lambda: DartsSpace(channels=4, layers=2), 32),
    "mobilenet": (
        lambda: MobileNetSpace(stages=((8, 1, 1), (16, 2, 2)), stem_channels=8, head_channels=32),
        9,
    ),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_builtin_space_passes_check_space(name):
    make, decisions = TINY[name]
    space = make()
    report = check_space(space, input_shape=(8, 8, 1), num_classes=3, samples=3, seed=0)
    assert report["space"] == type(space).__name__ and report["decisions"] == decisions
    assert len(set(report["architectures"])) == 3
    assert all(space.encode(space.decode(a)) == a for a in report["architectures"])
    assert len(report["params"]) == 3 and min(report["params"]) > 0
    assert report["outputs"] == "probabilities" and report["config"] is False
    assert space.input_shape is None  # check_space leaves the space as it was


@pytest.mark.parametrize("name", ["cell", "darts", "mobilenet"])
def test_space_builds_and_trains_on_8x8_digits(name):
    space = small_space(name, (8, 8, 1), 10)
    hp = keras_tuner.HyperParameters()
    model = space.build(hp)
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    before = [w.copy() for w in model.get_weights()]
    # One eager step: graph-mode training of every layer is covered by test_layers.py, and
    # tracing each network's train step would take most of this file's time.
    model.run_eagerly = True
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    # Outputs, saving and loading (untrained): test_builtin_space_passes_check_space.


@pytest.mark.parametrize("name", ["cell", "darts", "mobilenet"])
@pytest.mark.parametrize("shape, classes", [((32, 32, 3), 7), ((224, 224, 3), 3), ((1, 1, 2), 2)])
def test_space_builds_any_input_shape(name, shape, classes):
    space = small_space(name, shape, classes)
    model = space.build_architecture(space.random_architecture(seed=1))
    assert model.input_shape == (None,) + shape
    assert model.output_shape == (None, classes)


def test_small_input_adaptation():
    space = NASBench201Space((8, 8, 1), 10, channels=4, cells_per_stage=1)
    model = space.build_architecture(ARCH)
    assert [model.get_layer(f"stage_{s}_cell_0").output.shape[1] for s in range(3)] == [8, 4, 2]
    model = NASBench201Space((2, 2, 1), 10, channels=4, cells_per_stage=1).build_architecture(ARCH)
    assert [model.get_layer(f"stage_{s}_cell_0").output.shape[1] for s in range(3)] == [2, 1, 1]
    model = NASBench201Space((224, 224, 3), 10, channels=4, cells_per_stage=1).build_architecture(ARCH)
    assert [model.get_layer(f"stage_{s}_cell_0").output.shape[1] for s in range(3)] == [28, 14, 7]

    darts = DartsSpace(layers=5)
    assert darts.reduction_layers(8) == [1, 3]
    assert darts.reduction_layers(2) == [1]
    assert darts.reduction_layers(1) == []


def test_random_architecture_is_seeded():
    for name in SPACES:
        space = get_space(name)
        assert space.random_architecture(3) == space.random_architecture(3)
        assert len({space.random_architecture(s) for s in range(10)}) > 1


# -- registry and arguments ---------------------------------------------------------------------


def test_get_space():
    assert type(get_space("cell")) is NASBench201Space
    assert type(get_space("nasbench201", channels=8)) is NASBench201Space
    assert type(get_space("darts")) is DartsSpace
    assert type(get_space("macro")) is MobileNetSpace and type(get_space("mobilenet")) is MobileNetSpace
    assert isinstance(get_space("cell"), (Space, keras_tuner.HyperModel))
    space = DartsSpace()
    assert get_space(space) is space
    with pytest.raises(ValueError, match=r"`space`.*'cell'.*'darts'.*'macro'"):
        get_space("resnet")
    assert keras_nas.spaces.get_space is get_space


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: NASBench201Space(channels=0), "channels"),
        (lambda: NASBench201Space(cells_per_stage=-1), "cells_per_stage"),
        (lambda: NASBench201Space(input_shape=(8, 8)), "input_shape"),
        (lambda: NASBench201Space(num_classes=1), "num_classes"),
        (lambda: NASBench201Space(learning_rate=0), "learning_rate"),
        (lambda: DartsSpace(layers=0), "layers"),
        (lambda: DartsSpace(nodes=0), "nodes"),
        (lambda: DartsSpace(ops=["sep_conv_3x3", "conv_9x9"]), "name"),
        (lambda: DartsSpace(ops=[]), "ops"),
        (lambda: MobileNetSpace(stages=((16, 1, 3),)), "stages"),
        (lambda: MobileNetSpace(width_multipliers=()), "width_multipliers"),
        (lambda: MobileNetSpace(kernel_sizes=(3, 4)), "kernel_sizes"),
        (lambda: MobileNetSpace(expansions=(0, 6)), "expansions"),
        (lambda: MobileNetSpace(dropout=1.5), "dropout"),
        (lambda: get_space("darts", bogus=1), "bogus"),
    ],
)
def test_bad_arguments_are_named(make, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        make()


def test_unconfigured_space_says_what_is_missing():
    with pytest.raises(ValueError, match="input_shape.*num_classes"):
        NASBench201Space().build(keras_tuner.HyperParameters())


# -- docs/spaces.md --------------------------------------------------------------------------------


def test_own_space_example_in_docs_runs():
    text = (REPO / "docs" / "spaces.md").read_text()
    section = text.split("## Writing your own space", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "class TinySpace(Space)" in code
    scope = {}
    exec(compile(code, "docs/spaces.md", "exec"), scope)
    space = scope["space"]
    assert isinstance(scope["model"], keras.Model)
    assert space.decode(scope["arch"])["cells"] == 2
    assert len([layer for layer in compat.all_layers(scope["model"]) if isinstance(layer, Cell)]) == 2


@pytest.mark.slow
def test_oneshot_search_on_own_space_example_in_docs_runs(tmp_path, monkeypatch):
    # "One-shot search on your own space": DARTS, SPOS and ENAS on the documented TinySpace,
    # through keras_nas.search, with the supernet derived from its build_network.
    text = (REPO / "docs" / "spaces.md").read_text()
    space_code = re.search(r"```python\n(.*?)```", text.split("## Writing your own space", 1)[1],
                           re.S).group(1).split("\nspace = TinySpace(", 1)[0]
    code = re.search(r"```python\n(.*?)```",
                     text.split("## One-shot search on your own space", 1)[1], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(space_code, "docs/spaces.md", "exec"), scope)
    exec(compile(code, "docs/spaces.md", "exec"), scope)
    for strategy in ("darts", "spos", "enas"):
        found = json.loads((tmp_path / "tiny_oneshot" / strategy / "oneshot.json").read_text())
        assert found["strategy"] == strategy and found["candidates"]
        scope["TinySpace"]().decode(found["candidates"][0]["architecture"])
