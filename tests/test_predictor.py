import pytest

from keras_nas.hardware import (
    BlockSpec,
    LatencyPredictor,
    measure_latency,
    mobilenet_blocks,
    spearman,
)
from keras_nas.spaces import MobileNetSpace, Space


@pytest.fixture(scope="module")
def space():
    return MobileNetSpace(input_shape=(16, 16, 3), num_classes=10,
                          stages=((16, 1, 1), (24, 2, 2)), width_multipliers=(0.5, 1.0),
                          kernel_sizes=(3, 5), expansions=(3, 6), head_channels=32)


def test_block_shapes_follow_the_built_network(space):
    arch = "w0.5|k5e6|k3e3-k5e3"
    specs = mobilenet_blocks(space, arch)
    assert [s.kind for s in specs] == ["stem", "mbconv", "mbconv", "mbconv", "head"]
    model = space.build_architecture(arch)
    names = ["stage_0_block_0", "stage_1_block_0", "stage_1_block_1"]
    for spec, name in zip(specs[1:-1], names):
        layer = model.get_layer(name)
        assert tuple(layer.input.shape[1:]) == spec.input_shape
        assert tuple(layer.output.shape[1:]) == spec.output_shape
        assert layer.kernel_size == spec.kernel and layer.expansion == spec.expansion
    assert specs[-1].input_shape == tuple(model.get_layer("head_conv").input.shape[1:])
    # The first block of a stage sees a different input than the next ones.
    assert specs[2].stride == 2 and specs[3].stride == 1 and specs[2].key != specs[3].key


def test_prediction_is_sum_of_blocks_minus_overhead(space):
    arch_a, arch_b = "w1.0|k3e3|k3e3", "w1.0|k3e3|k3e3-k5e6"
    predictor = LatencyPredictor(space, overhead_ms=0.5)
    with pytest.raises(ValueError, match="fit"):
        predictor.predict(arch_a)
    keys_b = [s.key for s in predictor.blocks(arch_b)]
    predictor.table = {k: float(i + 1) for i, k in enumerate(keys_b)}  # 1, 2, 3, 4, 5 ms
    assert predictor.missing([arch_a, arch_b]) == []
    assert predictor.predict(arch_b) == pytest.approx(15 - 4 * 0.5)
    keys_a = [s.key for s in predictor.blocks(arch_a)]
    assert predictor.predict(arch_a) == pytest.approx(sum(predictor.table[k] for k in keys_a) - 3 * 0.5)
    assert len(predictor.missing(["w0.5|k3e3|k3e3"])) == 4


@pytest.mark.slow
def test_fit_measures_blocks_and_predicts_whole_network(space, tmp_path):
    small = MobileNetSpace(input_shape=(16, 16, 3), num_classes=10, stages=((16, 1, 1),),
                           width_multipliers=(1.0,), kernel_sizes=(3,), expansions=(6,),
                           head_channels=32)
    arch = "w1.0|k3e6"
    predictor = LatencyPredictor(small, runs=60, warmup=10).fit([arch])
    assert len(predictor.table) == 3 and all(v > 0 for v in predictor.table.values())
    assert predictor.overhead_ms >= 0
    predicted = predictor.predict(arch)
    measured = measure_latency(small.build_architecture(arch), runs=60, warmup=10).median_ms
    assert 0.25 < predicted / measured < 4.0
    predictor.save(tmp_path / "table.json")
    again = LatencyPredictor.load(tmp_path / "table.json", small)
    assert again.predict(arch) == predicted and again.runs == 60


def test_spearman_and_bad_input(space):
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        spearman([1], [1])
    with pytest.raises(TypeError, match="space"):
        LatencyPredictor("mobilenet")
    with pytest.raises(ValueError, match="quantization"):
        LatencyPredictor(space, quantization="int4")


def test_cell_space_blocks_drop_edges_that_do_not_reach_the_output():
    from keras_nas.spaces import NASBench201Space

    from keras_nas.hardware import cell_blocks

    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4, cells_per_stage=1)
    dead = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
    specs = cell_blocks(space, dead)
    assert [s.kind for s in specs] == ["cell_stem", "op", "resblock", "op", "resblock", "op",
                                       "cell_head"]
    assert {s.op for s in specs if s.kind == "op"} == {"nor_conv_1x1"}
    assert [s.input_shape for s in specs if s.kind == "op"] == [(8, 8, 4), (4, 4, 8), (2, 2, 16)]
    full = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    kinds = [s.kind for s in cell_blocks(space, full)]
    assert kinds.count("op") == 3 * 6 and kinds.count("add") == 3 * 2
    predictor = LatencyPredictor(space, overhead_ms=0.0)
    predictor.table = {s.key: 1.0 for s in cell_blocks(space, full)}
    assert predictor.predict(full) == pytest.approx(len(kinds))


def test_cell_blocks_build_models_of_their_shapes():
    from keras_nas.spaces import NASBench201Space

    from keras_nas.hardware import cell_blocks

    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4, cells_per_stage=1)
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    seen = set()
    for spec in cell_blocks(space, arch):
        if spec.key in seen:
            continue
        seen.add(spec.key)
        model = spec.build()
        inputs = model.inputs
        assert len(inputs) == spec.inputs
        assert tuple(inputs[0].shape[1:]) == spec.input_shape
        assert tuple(model.outputs[0].shape[1:]) == spec.output_shape, spec.key
    assert {k.split("|")[0] for k in seen} == {"cell_stem", "op", "add", "resblock", "cell_head"}


class UserSpace(Space):
    """A user space of one decision, without `latency_blocks`."""

    def declare(self, hp):
        hp.Choice("filters", [8, 16])

    def encode(self, values):
        return f"f{values['filters']}"

    def decode(self, arch_str):
        return {"filters": int(arch_str[1:])}


class UserBlockSpace(UserSpace):
    """The same space, cut for the latency predictor into a stem and a head block."""

    def latency_blocks(self, values):
        h, w, c = self.input_shape
        stem = BlockSpec("stem", (h, w, c), values["filters"], kernel=3)
        return [stem, BlockSpec("head", stem.output_shape, 0, num_classes=self.num_classes)]


def test_space_without_latency_blocks_is_refused_before_measuring(monkeypatch):
    from keras_nas.hardware import predictor as predictor_module

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before refusing the space")

    monkeypatch.setattr(predictor_module, "measure_latency_many", no_measuring)
    monkeypatch.setattr(predictor_module, "to_tflite", no_measuring)
    space = UserSpace(input_shape=(8, 8, 1), num_classes=3)
    with pytest.raises(TypeError, match="UserSpace.*latency_blocks"):
        LatencyPredictor(space)
    with pytest.raises(NotImplementedError, match="UserSpace.*latency predictor"):
        space.latency_blocks({"filters": 8})


def test_user_space_with_latency_blocks_is_predicted_from_its_blocks():
    space = UserBlockSpace(input_shape=(8, 8, 1), num_classes=3)
    predictor = LatencyPredictor(space, overhead_ms=0.25)
    specs = predictor.blocks("f16")  # strings are decoded with the space's `decode`
    assert [s.kind for s in specs] == ["stem", "head"]
    assert specs[0].filters == 16 and specs[1].input_shape == (8, 8, 16)
    assert [s.key for s in predictor.blocks({"filters": 16})] == [s.key for s in specs]
    assert [s.key for s in predictor.missing(["f8", "f16"])] == [
        s.key for s in predictor.blocks("f8") + specs
    ]
    predictor.table = {s.key: 1.5 for s in predictor.missing(["f8", "f16"])}
    assert predictor.predict("f8") == pytest.approx(3.0 - 0.25)
    model = specs[0].build()  # the blocks build as the predictor would measure them
    assert tuple(model.outputs[0].shape[1:]) == specs[0].output_shape


def test_cell_blocks_follow_the_space_max_resolution():
    # keras_nas.search sizes the cell space to max_resolution=16: 28x28 inputs run at 14.
    from keras_nas.spaces import NASBench201Space

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    space = NASBench201Space(input_shape=(28, 28, 1), num_classes=10, channels=4,
                             cells_per_stage=1, max_resolution=16)
    blocks = space.latency_blocks(space.decode(arch))
    model = space.build_architecture(arch)
    assert blocks[1].input_shape[:2] == tuple(model.get_layer("stage_0_cell_0").input.shape[1:3])
    assert blocks[1].input_shape[:2] == (14, 14)
    stem = blocks[0].build()
    assert tuple(stem.output.shape[1:3]) == (14, 14)
    assert blocks[0].key.endswith("|r16")
    plain = NASBench201Space(input_shape=(28, 28, 1), num_classes=10, channels=4,
                             cells_per_stage=1)
    assert "|r" not in plain.latency_blocks(plain.decode(arch))[0].key  # tables measured before
