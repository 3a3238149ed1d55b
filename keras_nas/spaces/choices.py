"""How a space's network makes its decisions: `choose(name, options)`, one builder for every use.

A space that implements `build_network(choose)` describes its network once. Each architecture
decision in it is a call `choose(name, options)`, where `name` is a hyperparameter the space
declares and `options` maps each of its values to a function that makes the Keras layer for
that value. The caller decides what `choose` returns:

- `FixedChoices(values)` (what `Space.build_values` passes): the layer of the value `values`
  holds, so the network is one stand-alone architecture;
- a supernet's chooser (`keras_nas.oneshot.ChoiceSupernet`): one `MixedOp` over every option's
  layer, shared by all calls with the same `name`, so one network holds every architecture.

```python
def build_network(self, choose):
    inputs = keras.Input(self.input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = choose("op", {op: lambda op=op: get_op(op, 8) for op in ("nor_conv_3x3", "skip_connect")})(x)
    ...
```
"""

import keras
import keras_tuner

from keras_nas import compat

#: The most values an `Int` decision may have to count as a choice between options.
MAX_INT_OPTIONS = 64


def check_options(name, options):
    """`options` as a dict `{value: layer factory}`, or a clear error naming decision `name`."""
    if not isinstance(options, dict) or not options:
        raise TypeError(
            f"`options` of choose({name!r}, ...) must be a non-empty dict of each value to a "
            f"function making its Keras layer, got {options!r}."
        )
    for value, make in options.items():
        if not callable(make) or isinstance(make, keras.layers.Layer):
            raise TypeError(
                f"`options[{value!r}]` of choose({name!r}, ...) must be a function that makes "
                f"a Keras layer (e.g. `lambda: get_op(...)`), got {make!r}."
            )
    return options


def make_layer(name, value, make):
    """Calls the factory of option `value` of decision `name`; checks it made a Keras layer."""
    layer = make()
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            f"The option {value!r} of choose({name!r}, ...) made {layer!r}, not a Keras layer."
        )
    return layer


class FixedChoices:
    """The `choose` of one architecture: returns the layer of the value `values[name]`.

    Example: `space.build_network(FixedChoices({"op": "nor_conv_3x3"}))` is what
    `space.build_values({"op": "nor_conv_3x3"})` returns.
    """

    def __init__(self, values):
        if not isinstance(values, dict):
            raise TypeError(f"`values` must be a dict of decision names to values, got {values!r}.")
        self.values = values

    def __call__(self, name, options):
        options = check_options(name, options)
        if name not in self.values:
            raise ValueError(
                f"The network makes the decision {name!r}, which `values` does not hold "
                f"(it holds {sorted(self.values)})."
            )
        value = self.values[name]
        if value not in options:
            raise ValueError(
                f"`values`[{name!r}]={value!r} is not one of the options the network gives "
                f"for it: {list(options)}."
            )
        return make_layer(name, value, options[value])


def shared(make):
    """A layer factory that makes its layer once and then returns that same layer.

    Options given one `shared` factory run one layer with one set of weights, in a
    stand-alone network and in a supernet (which runs it once for all of them). A stage
    whose depth is a choice uses it: every depth past block `b` runs the same block.

    ```python
    block = shared(lambda: MBConv(32, name="block_2"))
    skip = shared(lambda: keras.layers.Identity(name="block_2_skipped"))
    x = choose("depth", {d: block if d > 2 else skip for d in (1, 2, 3, 4)})(x)
    ```
    """
    made = []

    def make_once():
        if not made:
            made.append(make())
        return made[0]

    return make_once


def decision_options(space):
    """`[(name, [values])]` of every decision `space.declare` makes, in declaration order.

    `Choice` and `Boolean` give their values, `Fixed` its value, an `Int` its range (up to
    `MAX_INT_OPTIONS` values); a `Float` or a larger `Int` is not a choice between options and
    raises `ValueError`, as a weight-sharing supernet needs one option per path.
    """
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    decisions = []
    for p in hp.space:
        if isinstance(p, keras_tuner.engine.hyperparameters.Boolean):
            values = [False, True]
        elif isinstance(p, keras_tuner.engine.hyperparameters.Int):
            count, value_at = compat.hp_grid(p)
            if count > MAX_INT_OPTIONS:
                raise ValueError(
                    f"{type(space).__name__} declares the Int {p.name!r} with {count} values: "
                    f"one-shot searches take at most {MAX_INT_OPTIONS} options per decision."
                )
            values = [int(value_at(i)) for i in range(count)]
        elif isinstance(p, keras_tuner.engine.hyperparameters.Choice):
            values = p.values
        elif isinstance(p, keras_tuner.engine.hyperparameters.Fixed):
            values = [p.value]
        else:
            values = None
        if values is None:
            raise ValueError(
                f"{type(space).__name__} has the hyperparameter {p.name!r} of type "
                f"{type(p).__name__}: one-shot searches need every decision to be a Choice, "
                "a Boolean or a small Int."
            )
        decisions.append((p.name, list(values)))
    return decisions
