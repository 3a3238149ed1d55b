"""Equivalent spellings of one network are tried once (`Space.architecture_key`)."""

import keras_tuner
import pytest

from keras_nas.oracles import EvolutionOracle, GPOracle, LocalSearchOracle, ReinforceOracle
from keras_nas.spaces import NASBench201Space
from keras_nas.spaces.base import Space
from keras_nas.spaces.nasbench201 import all_architectures
from keras_nas.tuning.tuner import NASTuner
from tests import oracle_driver

SPACE = NASBench201Space()


def key_of(arch_str):
    return SPACE.architecture_key(SPACE.decode(arch_str))


def nasbench201_hp():
    hp = keras_tuner.HyperParameters()
    SPACE.declare(hp)
    return hp


def convs(values):
    """A reward with many ties among equivalent cells: the share of 3x3 convolutions."""
    return sum(op == "nor_conv_3x3" for op in values.values()) / 6


def test_the_nasbench201_cells_are_6100_networks():
    assert len({key_of(a) for a in all_architectures()}) == 6100


@pytest.mark.parametrize("a, b", [
    # node 1 reaches no output: its op does not matter
    ("|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|",
     "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"),
    # a skip only renames node 1: reading it is reading the input
    ("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|",
     "|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"),
    # nodes 1 and 2 compute the same: which one the output convolves does not matter
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",
     "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|nor_conv_1x1~2|"),
    # a skip from a node that is always zero adds nothing
    ("|none~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|",
     "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"),
])
def test_equivalent_cells_share_a_key(a, b):
    assert a != b and key_of(a) == key_of(b)


def test_different_networks_have_different_keys():
    conv3 = "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"
    conv1 = "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
    chain = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"
    # a convolution of a node that is always zero is still computed (its batch norm's shift)
    of_zero = "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|none~2|"
    assert len({key_of(conv3), key_of(conv1), key_of(chain), key_of(of_zero)}) == 4


def test_decisions_besides_the_cell_are_part_of_the_key():
    values = SPACE.decode("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|")
    assert SPACE.architecture_key({**values, "lr": 0.1}) != SPACE.architecture_key(
        {**values, "lr": 0.01})


def test_the_base_key_is_the_values_in_any_order():
    space = Space()
    assert space.architecture_key({"a": 1, "b": "x"}) == space.architecture_key({"b": "x", "a": 1})
    assert space.architecture_key({"a": 1}) != space.architecture_key({"a": 2})


STRATEGIES = {
    "local": lambda **kw: LocalSearchOracle(initial_samples=5, **kw),
    "evolution": lambda **kw: EvolutionOracle(population_size=8, sample_size=3, **kw),
    "gp": lambda **kw: GPOracle(initial_samples=5, random_candidates=20, **kw),
    "reinforce": lambda **kw: ReinforceOracle(**kw),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_strategy_proposes_a_network_twice(tmp_path, name):
    oracle = oracle_driver.new_oracle(STRATEGIES[name], tmp_path, name, seed=1,
                                      hyperparameters=nasbench201_hp(),
                                      architecture_key=SPACE.architecture_key)
    tried = oracle_driver.run(oracle, convs, 60)
    assert len(tried) == 60
    assert len({SPACE.architecture_key(v) for _, v in tried}) == 60


def test_the_tried_networks_survive_a_reload(tmp_path):
    def new(seed):
        return oracle_driver.new_oracle(LocalSearchOracle, tmp_path, "resume", seed=seed,
                                        initial_samples=5, hyperparameters=nasbench201_hp(),
                                        architecture_key=SPACE.architecture_key)

    first = oracle_driver.run(new(2), convs, 30)
    resumed = new(2)
    resumed.reload()
    rest = oracle_driver.run(resumed, convs, 30)
    assert len({SPACE.architecture_key(v) for _, v in first + rest}) == 60


def test_without_a_key_equivalent_cells_are_proposed(tmp_path):
    # What the key saves: the same search spends trials on cells it already tried.
    oracle = oracle_driver.new_oracle(LocalSearchOracle, tmp_path, "plain", seed=1,
                                      initial_samples=5, hyperparameters=nasbench201_hp())
    tried = oracle_driver.run(oracle, convs, 60)
    assert len({SPACE.architecture_key(v) for _, v in tried}) < 60


def test_a_key_that_cannot_read_the_values_falls_back_to_them(tmp_path):
    def key(values):
        raise ValueError("not a cell")

    oracle = oracle_driver.new_oracle(LocalSearchOracle, tmp_path, "fallback", seed=1,
                                      initial_samples=3, architecture_key=key)
    tried = oracle_driver.run(oracle, oracle_driver.matches, 20)
    assert len({tuple(sorted(v.items())) for _, v in tried}) == 20


def test_the_tuner_gives_a_keras_nas_oracle_the_space_key(tmp_path):
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4,
                             cells_per_stage=1)
    oracle = LocalSearchOracle(objective="val_accuracy", max_trials=2)
    NASTuner(oracle, space, directory=str(tmp_path), project_name="p")
    assert oracle.architecture_key == space.architecture_key

    def own(values):
        return "mine"

    oracle = LocalSearchOracle(objective="val_accuracy", max_trials=2, architecture_key=own)
    NASTuner(oracle, space, directory=str(tmp_path), project_name="q")
    assert oracle.architecture_key is own


def test_the_key_must_be_callable():
    with pytest.raises(TypeError, match="architecture_key"):
        LocalSearchOracle(objective="val_accuracy", architecture_key="edges")


def test_a_darts_node_with_its_inputs_swapped_is_the_same_network():
    from keras_nas.spaces import DartsSpace

    space = DartsSpace()
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    values = dict(hp.values)
    values.update({"normal_node_1_input_0": 2, "normal_node_1_op_0": "max_pool_3x3",
                   "normal_node_1_input_1": 0, "normal_node_1_op_1": "sep_conv_3x3"})
    swapped = dict(values)
    swapped.update({"normal_node_1_input_0": 0, "normal_node_1_op_0": "sep_conv_3x3",
                    "normal_node_1_input_1": 2, "normal_node_1_op_1": "max_pool_3x3"})
    other = dict(values, normal_node_1_op_0="avg_pool_3x3")
    assert space.encode(values) != space.encode(swapped)
    assert space.architecture_key(values) == space.architecture_key(swapped)
    assert space.architecture_key(values) != space.architecture_key(other)


@pytest.mark.slow
def test_cells_with_one_key_convert_to_the_same_tflite_graph():
    # What lets a search with a latency target treat them as one candidate.
    from keras_nas.hardware.export import load_interpreter, to_tflite

    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4,
                             cells_per_stage=1)

    def ops(arch):
        interpreter = load_interpreter(to_tflite(space.build_values(space.decode(arch))))
        return sorted(op["op_name"] for op in interpreter._get_ops_details())

    dead_conv = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    dead_pool = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    assert key_of(dead_conv) == key_of(dead_pool)
    assert ops(dead_conv) == ops(dead_pool)
    live = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    assert key_of(live) != key_of(dead_conv) and ops(live) != ops(dead_conv)
