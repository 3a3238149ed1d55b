"""A one-decision space and a task that only one of its candidate ops can solve.

`diagonal_task` draws 8x8 images of +/-1 pixels that are constant along the diagonals (class
0) or along the anti-diagonals (class 1). Every pixel has the same distribution in both
classes, so ops that see one pixel (`skip_connect`, `nor_conv_1x1`) followed by pooling are at
chance; a 3x3 average pool is symmetric under left-right mirroring, which swaps the classes, so
it is at chance too; `none` sees nothing. Only `nor_conv_3x3` can tell the orientations apart.

`OneOpSpace` is the network `input -> 1x1 conv -> BN -> [op] -> BN -> ReLU -> pooling ->
softmax` with the op as its only decision, written once with `choose` (its supernet is the
derived `ChoiceSupernet`). It serves the one-shot tests and examples: a correct
DARTS/SPOS/ENAS must pick `nor_conv_3x3` here.
"""

import functools

import keras
import numpy as np

from keras_nas.layers._utils import batch_norm
from keras_nas.layers.ops import get_op
from keras_nas.spaces.base import Space

ONE_OP_OPTIONS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def diagonal_task(n, size=8, seed=None):
    """`(x, y)`: `n` images `(size, size, 1)` of +/-1, diagonal (0) or anti-diagonal (1) stripes.

    Example: `x, y = diagonal_task(400, seed=0)`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}.")
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    y = rng.integers(0, 2, size=n)
    v = rng.choice([-1.0, 1.0], size=(n, 2 * size - 1))
    diag = v[:, (i - j + size - 1)]
    anti = v[:, (i + j)]
    x = np.where(y[:, None, None] == 0, diag, anti)
    return x[..., None].astype("float32"), y.astype("int32")


class OneOpSpace(Space):
    """One decision `op` over `options`, inside a tiny network (see the module docstring).

    Args:
        channels: channels of the network.
        options: candidate op names (keys of `keras_nas.layers.OPS`).
        input_shape, num_classes, learning_rate, name: as for `Space`.

    Example: `OneOpSpace(input_shape=(8, 8, 1), num_classes=2).build_architecture("nor_conv_3x3")`.
    """

    def __init__(
        self, input_shape=None, num_classes=None, channels=4, options=None, learning_rate=1e-2, name=None
    ):
        super().__init__(input_shape, num_classes, learning_rate=learning_rate, name=name)
        self.channels = int(channels)
        self.options = list(options or ONE_OP_OPTIONS)

    def declare(self, hp):
        hp.Choice("op", self.options)

    def encode(self, values):
        return str(values["op"])

    def decode(self, arch_str):
        if arch_str not in self.options:
            raise ValueError(f"`arch_str` must be one of {self.options}, got {arch_str!r}.")
        return {"op": arch_str}

    def build_network(self, choose):
        """The network, its op made by `choose("op", ...)` (so its supernet is derived)."""
        self._check_configured()
        c = self.channels
        inputs = keras.Input(self.input_shape)
        x = keras.layers.Conv2D(c, 1, use_bias=False, name="stem_conv")(inputs)
        x = batch_norm(name="stem_bn")(x)
        x = choose("op", {o: functools.partial(get_op, o, c, 1) for o in self.options})(x)
        x = batch_norm(name="head_bn")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", name="classifier")(x)
        return keras.Model(inputs, outputs)
