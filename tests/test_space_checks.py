"""keras_nas.testing.check_space: the documented TinySpace passes; a space breaking a rule fails
with a message naming the space, the architecture and the rule."""

import re
from pathlib import Path

import keras
import pytest

import keras_nas  # noqa: F401  (registers the keras-nas layers)
from keras_nas.spaces import Space
from keras_nas.testing import SPACE_RULES, check_space

REPO = Path(__file__).resolve().parents[1]


def docs_code(heading, index=0):
    """The `index`-th python block under `## heading` of docs/spaces.md."""
    section = (REPO / "docs" / "spaces.md").read_text().split(f"## {heading}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[index]


def test_documented_tiny_space_passes():
    # The class of "Writing your own space" (not its training example), then the example of
    # "Testing your space", as a reader runs them.
    scope = {}
    code = docs_code("Writing your own space").split("\nspace = TinySpace(", 1)[0]
    exec(compile(code, "docs/spaces.md", "exec"), scope)
    exec(compile(docs_code("Testing your space"), "docs/spaces.md", "exec"), scope)
    report = scope["report"]
    assert report["space"] == "TinySpace" and report["decisions"] == 5
    archs = report["architectures"]
    assert len(set(archs)) == 3
    assert all(re.fullmatch(r"[12]x[a-z_0-9,]+(\+mbconv)?", a) for a in archs)
    assert len(report["params"]) == 3 and min(report["params"]) > 0
    assert report["outputs"] == "probabilities" and report["config"] is False



def test_documented_tiny_space_supernet_passes():
    # The second example of "Testing your space": check_supernet on the derived supernet,
    # whose paths include cell stacks of 1-3 cells that hold the edge choices.
    scope = {}
    code = docs_code("Writing your own space").split("\nspace = TinySpace(", 1)[0]
    exec(compile(code, "docs/spaces.md", "exec"), scope)
    exec(compile(docs_code("Testing your space", 1), "docs/spaces.md", "exec"), scope)
    report = scope["report"]
    assert report["supernet"] == "ChoiceSupernet" and len(report["architectures"]) == 3


# -- a space fast to build, and broken versions of it -------------------------------------------


class MiniSpace(Space):
    """Flatten, one searched dense layer, a dense softmax head."""

    def declare(self, hp):
        hp.Choice("units", [2, 4, 8])
        hp.Choice("activation", ["relu", "tanh"])

    def encode(self, values):
        return f"{values['units']}-{values['activation']}"

    def decode(self, arch_str):
        units, _, activation = arch_str.partition("-")
        return {"units": int(units), "activation": activation}

    def head(self, x):
        return keras.layers.Dense(self.num_classes, activation="softmax", name="classifier")(x)

    def build_values(self, values):
        inputs = keras.Input(self.input_shape)
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(values["units"], activation=values["activation"], name="hidden")(x)
        return keras.Model(inputs, self.head(x))


class LossyDecode(MiniSpace):
    def decode(self, arch_str):
        return {"units": int(arch_str.split("-")[0])}


class LayerInDeclare(MiniSpace):
    def declare(self, hp):
        super().declare(hp)
        self.probe = keras.layers.Dense(4, name="probe")


class BuildInDeclare(MiniSpace):
    def declare(self, hp):
        super().declare(hp)
        self.params = self.build_values({"units": 2, "activation": "relu"}).count_params()


class OverwriteInDeclare(MiniSpace):
    def declare(self, hp):
        super().declare(hp)
        hp.values["units"] = 2


class WrongWidth(MiniSpace):
    def head(self, x):
        return keras.layers.Dense(self.num_classes + 1, activation="softmax")(x)


class NoSoftmax(MiniSpace):
    def head(self, x):
        return keras.layers.Dense(self.num_classes)(x)


class NotFinite(MiniSpace):
    def head(self, x):
        return super().head(keras.layers.Rescaling(float("nan"))(x))


class Doubler(keras.layers.Layer):
    """A custom layer nobody registered with Keras."""

    def call(self, x):
        return 2.0 * x


@keras.saving.register_keras_serializable(package="test_space_checks")
class Scale(keras.layers.Layer):
    """Registered, but its `get_config` leaves out `factor`."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return self.factor * x

    def get_config(self):
        config = super().get_config()
        config.pop("factor", None)
        return config


class Unregistered(MiniSpace):
    def head(self, x):
        return super().head(Doubler()(x))


class IncompleteLayerConfig(MiniSpace):
    def head(self, x):
        return super().head(Scale(3.0)(x))


@pytest.mark.parametrize(
    "space_class, rule, detail",
    [
        (LossyDecode, "round_trip", "lost the decisions ['activation']"),
        (LayerInDeclare, "declare", "Dense 'probe'"),
        (BuildInDeclare, "declare", "InputLayer"),
        (OverwriteInDeclare, "declare", "changed the decision 'units'"),
        (WrongWidth, "model", "shape (2, 4), expected (2, 3)"),
        (NoSoftmax, "model", "not: row sums"),
        (NotFinite, "model", "NaN"),
        (Unregistered, "save_load", "Could not locate class 'Doubler'"),
        (IncompleteLayerConfig, "save_load", "predicts differently"),
    ],
)
def test_broken_space_fails_naming_the_rule(space_class, rule, detail):
    with pytest.raises(AssertionError) as info:
        check_space(space_class(), samples=2)
    message = str(info.value)
    assert message.startswith(f"{space_class.__name__} breaks the rule '{rule}'"), message
    assert SPACE_RULES[rule] in message and detail in message, message
    if rule != "declare":  # a declare failure names the decisions being drawn instead
        assert re.search(r"for the architecture '\d-(relu|tanh)'", message), message


def test_logits_and_small_spaces_pass():
    class TwoArchitectures(MiniSpace):
        def declare(self, hp):
            hp.Fixed("units", 4)
            hp.Choice("activation", ["relu", "tanh"])

    class Logits(TwoArchitectures):
        def head(self, x):
            return keras.layers.Dense(self.num_classes)(x)

        def compile_model(self, model):
            model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            return model

    report = check_space(TwoArchitectures(), samples=4)
    assert sorted(report["architectures"]) == ["4-relu", "4-tanh"]  # all there are
    report = check_space(Logits(), samples=1, num_classes=2, input_shape=(2, 3, 1))
    assert report["outputs"] == "logits" and report["params"] == [6 * 4 + 4 + 4 * 2 + 2]


class Configurable(MiniSpace):
    def __init__(self, max_units=8, **kwargs):
        super().__init__(**kwargs)
        self.max_units = max_units

    def declare(self, hp):
        hp.Choice("units", [2, self.max_units])
        hp.Choice("activation", ["relu", "tanh"])

    def get_config(self):
        return {"max_units": self.max_units, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ForgetfulConfig(Configurable):
    def get_config(self):
        return {"name": self.name}


def test_config_round_trip_is_checked_when_the_space_has_one():
    report = check_space(Configurable(max_units=4), samples=1)
    assert report["config"] is True
    message = r"ForgetfulConfig breaks the rule 'config'.*\['units'\]"
    with pytest.raises(AssertionError, match=message):
        check_space(ForgetfulConfig(max_units=4), samples=1)


def test_arguments_are_checked_and_the_space_is_left_as_it_was():
    space = MiniSpace()
    report = check_space(space, samples=1)
    assert report["space"] == "MiniSpace" and len(report["architectures"]) == 1
    assert space.input_shape is None and space.num_classes is None  # as it was
    for kwargs, error, name in [
        (dict(space=MiniSpace), TypeError, "space"),
        (dict(space=space, num_classes=1), ValueError, "num_classes"),
        (dict(space=space, samples=0), ValueError, "samples"),
        (dict(space=space, input_shape=(8, 8)), ValueError, "input_shape"),
        (dict(space=space, input_shape=(8, 0, 1)), ValueError, "input_shape"),
        (dict(space=space, seed=1.5), TypeError, "seed"),
        (dict(space=MiniSpace(input_shape=(4, 4, 1)), input_shape=(8, 8, 1)), ValueError,
         "input_shape"),
    ]:
        with pytest.raises(error, match=name):
            check_space(**kwargs)
