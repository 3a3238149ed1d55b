"""The supernet derived from a space's `build_network(choose)`: shared decisions, paths that
are the space's own networks, nested choices, and clear errors for spaces it cannot hold."""

import functools

import keras
import numpy as np
import pytest

from keras_nas.layers import get_op
from keras_nas.oneshot import ChoiceSite, ChoiceSupernet, build_supernet
from keras_nas.spaces import NASBench201Space, Space
from keras_nas.spaces.choices import FixedChoices, decision_options
from keras_nas.testing import SUPERNET_RULES, check_supernet

OPS = ["nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


class TwoOpSpace(Space):
    """Stem, two searched ops (`first`, `second`), and a `deep` choice of one or two more."""

    def __init__(self, *args, declare_extra=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.declare_extra = declare_extra

    def declare(self, hp):
        hp.Choice("first", OPS)
        hp.Choice("second", OPS)
        hp.Boolean("deep")
        if self.declare_extra:
            hp.Choice("extra", ["a", "b"])

    def encode(self, values):
        return f"{values['first']},{values['second']},{int(values['deep'])}"

    def decode(self, arch_str):
        first, second, deep = arch_str.split(",")
        return {"first": first, "second": second, "deep": deep == "1"}

    def ops(self, name):
        return self.choose(name, {op: functools.partial(get_op, op, 4) for op in OPS})

    def build_network(self, choose):
        self.choose = choose
        inputs = keras.Input(self.input_shape)
        x = keras.layers.Conv2D(4, 1, name="stem")(inputs)
        x = self.ops("first")(x)

        def deep(flag):
            layers = [self.ops("second")] + ([self.ops("second")] if flag else [])
            return keras.Sequential(layers)

        x = choose("deep", {False: functools.partial(deep, False),
                            True: functools.partial(deep, True)})(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(self.num_classes, activation="softmax")(x))


def test_decision_options_cover_choice_boolean_and_int():
    class Mixed(TwoOpSpace):
        def declare(self, hp):
            super().declare(hp)
            hp.Int("depth", 1, 3)
            hp.Choice("fixed", ["only"])

    assert decision_options(Mixed()) == [
        ("first", OPS), ("second", OPS), ("deep", [False, True]), ("depth", [1, 2, 3]),
        ("fixed", ["only"])]


def test_each_decision_is_one_alpha_shared_by_all_its_sites():
    space = TwoOpSpace(input_shape=(6, 6, 1), num_classes=3)
    net = build_supernet(space, seed=0)
    assert isinstance(net, ChoiceSupernet)
    assert net.decision_names == ["first", "second", "deep"]
    # "second" is chosen in both options of "deep": three sites, one alpha
    assert [len(group) for group in net._mixed_ops] == [1, 3, 1]
    assert all(isinstance(s, ChoiceSite) for group in net._mixed_ops for s in group)
    assert len(net.arch_variables) == 3
    trainable = {id(w) for w in net.trainable_weights}
    assert not trainable & {id(v) for v in net.arch_variables}


def test_paths_compute_the_stand_alone_networks_including_nested_choices():
    space = TwoOpSpace(input_shape=(6, 6, 1), num_classes=3)
    report = check_supernet(space, input_shape=(6, 6, 1), num_classes=3, samples=6)
    assert len(report["architectures"]) == 6
    assert {a.rsplit(",", 1)[1] for a in report["architectures"]} == {"0", "1"}
    assert space.input_shape == (6, 6, 1)  # the caller's configuration is kept


def test_nasbench201_supernet_is_derived_and_its_paths_are_the_space_networks():
    space = NASBench201Space(channels=4, cells_per_stage=1)
    report = check_supernet(space, samples=3)
    assert report["supernet"] == "ChoiceSupernet" and report["decisions"] == 6
    # one cell per stage: each edge decision has a site in each of the 3 cells
    net = build_supernet(NASBench201Space(input_shape=(8, 8, 1), num_classes=3, channels=4,
                                          cells_per_stage=1))
    assert [len(group) for group in net._mixed_ops] == [3] * 6


def test_fixed_choices_build_the_chosen_layer_and_say_what_is_wrong():
    choose = FixedChoices({"op": "b"})
    layer = choose("op", {"a": lambda: keras.layers.ReLU(), "b": lambda: keras.layers.Identity()})
    assert isinstance(layer, keras.layers.Identity)
    with pytest.raises(ValueError, match="'other'.*does not hold"):
        choose("other", {"a": lambda: keras.layers.ReLU()})
    with pytest.raises(ValueError, match="'b' is not one of the options"):
        choose("op", {"a": lambda: keras.layers.ReLU()})
    with pytest.raises(TypeError, match="non-empty dict"):
        choose("op", [keras.layers.ReLU()])
    with pytest.raises(TypeError, match="function that makes"):
        choose("op", {"b": keras.layers.ReLU()})
    with pytest.raises(TypeError, match="not a Keras layer"):
        choose("op", {"b": lambda: "relu"})


def test_spaces_a_supernet_cannot_hold_get_clear_errors():
    shape = dict(input_shape=(6, 6, 1), num_classes=3)
    with pytest.raises(ValueError, match=r"\['extra'\].*never calls `choose`"):
        build_supernet(TwoOpSpace(declare_extra=True, **shape))

    class Undeclared(TwoOpSpace):
        def build_network(self, choose):
            choose("missing", {"a": lambda: keras.layers.ReLU()})

    with pytest.raises(ValueError, match="'missing'.*declares no such decision"):
        build_supernet(Undeclared(**shape))

    class OtherOptions(TwoOpSpace):
        def build_network(self, choose):
            choose("first", {"nor_conv_1x1": lambda: keras.layers.ReLU()})

    with pytest.raises(ValueError, match="'first'.*gives the options"):
        build_supernet(OtherOptions(**shape))

    class Continuous(TwoOpSpace):
        def declare(self, hp):
            super().declare(hp)
            hp.Float("rate", 0.0, 0.5)

    with pytest.raises(ValueError, match="'rate' of type Float"):
        build_supernet(Continuous(**shape))

    class ValuesOnly(Space):
        def declare(self, hp):
            hp.Choice("op", ["a", "b"])

        def build_values(self, values):
            raise AssertionError("not called")

    with pytest.raises(TypeError, match="build_network"):
        build_supernet(ValuesOnly(**shape))
    with pytest.raises(TypeError, match="no `build_network"):
        ChoiceSupernet(ValuesOnly(**shape))


def test_check_supernet_names_a_path_that_is_not_the_architecture():
    class Drifting(TwoOpSpace):
        """Its stand-alone networks add a layer the supernet does not have."""

        def build_values(self, values):
            model = super().build_values(values)
            x = keras.layers.Dense(3, activation="softmax")(model.output)
            return keras.Model(model.input, x)

    with pytest.raises(AssertionError, match="rule 'subnet'.*path"):
        check_supernet(Drifting(), input_shape=(6, 6, 1), num_classes=3)
    assert set(SUPERNET_RULES) == {"decisions", "arch_weights", "relaxed", "subnet"}


def test_auxiliary_skip_is_added_where_a_site_keeps_its_input_shape():
    space = TwoOpSpace(input_shape=(6, 6, 1), num_classes=3)
    net = build_supernet(space, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 1)).astype("float32")
    before = np.asarray(net(x, path=[0, 0, 0]))
    net.aux_skip_beta.assign(1.0)
    after = np.asarray(net(x, path=[0, 0, 0]))
    net.aux_skip_beta.assign(0.0)
    assert np.abs(before - after).max() > 1e-4
    np.testing.assert_allclose(np.asarray(net(x, path=[0, 0, 0])), before, atol=1e-6)
