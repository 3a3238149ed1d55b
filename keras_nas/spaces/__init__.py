"""Search spaces: `keras_tuner.HyperModel`s whose every decision is a hyperparameter.

- `NASBench201Space` (names `"cell"`, `"nasbench201"`): the NAS-Bench-201 cell space.
- `DartsSpace` (`"darts"`): DARTS normal and reduction cells.
- `MobileNetSpace` (`"mobilenet"`, `"macro"`): MobileNetV2-style macro search.

Example:

```python
space = keras_nas.spaces.get_space("cell", input_shape=(8, 8, 1), num_classes=10)
```
"""

from keras_nas.spaces.base import Space
from keras_nas.spaces.darts import DARTS_OPS, DartsSpace
from keras_nas.spaces.mobilenet import MOBILENETV2_STAGES, MobileNetSpace
from keras_nas.spaces.nasbench201 import (
    EDGE_NAMES,
    NASBENCH201_OPS,
    NASBench201Space,
    all_architectures,
)

SPACES = {
    "cell": NASBench201Space,
    "nasbench201": NASBench201Space,
    "darts": DartsSpace,
    "mobilenet": MobileNetSpace,
    "macro": MobileNetSpace,
}
"""Space name -> `Space` subclass."""


def get_space(space, **kwargs):
    """Makes a search space from its name (or passes a `Space` instance through).

    Args:
        space: a key of `SPACES` (`"cell"`, `"nasbench201"`, `"darts"`, `"mobilenet"`,
            `"macro"`), or a `Space` instance (returned as is; `kwargs` must then be empty).
        **kwargs: constructor arguments of the space, e.g. `input_shape`, `num_classes`.

    Returns:
        A `Space`.

    Example: `get_space("darts", input_shape=(32, 32, 3), num_classes=10, layers=8)`.
    """
    if isinstance(space, Space):
        if kwargs:
            raise ValueError(
                f"`space` is already a Space instance; got unexpected arguments {sorted(kwargs)}."
            )
        return space
    if not isinstance(space, str) or space.lower() not in SPACES:
        raise ValueError(
            f"Unknown `space`={space!r}. Choose one of {sorted(SPACES)} or pass a "
            "keras_nas.spaces.Space instance."
        )
    return SPACES[space.lower()](**kwargs)


__all__ = [
    "Space",
    "NASBench201Space",
    "DartsSpace",
    "MobileNetSpace",
    "SPACES",
    "get_space",
    "NASBENCH201_OPS",
    "EDGE_NAMES",
    "DARTS_OPS",
    "MOBILENETV2_STAGES",
    "all_architectures",
]
