"""What a space or supernet author runs to check their work, and the toy task keras-nas'
own tests train on.

- `check_space(space)`: conformance checks of a `keras_nas.spaces.Space` subclass (decisions
  declared without building, architecture strings that round-trip, a model of the right
  outputs that saves and loads); see `keras_nas.testing.checks`.
- `check_supernet(space)`: the space's weight-sharing supernet runs each path as the space's
  own network of that architecture (same decisions, same outputs with the same weights); see
  `keras_nas.testing.supernet_checks`.
- `toy_task`: `OneOpSpace` and `diagonal_task`, a task only one op can solve, for checking
  that a one-shot search picks it.

Example:

```python
from keras_nas.testing import check_space
report = check_space(MySpace(channels=4), input_shape=(8, 8, 1), num_classes=3)
```
"""

from keras_nas.testing.checks import SPACE_RULES, check_space
from keras_nas.testing.supernet_checks import SUPERNET_RULES, check_supernet

__all__ = ["check_space", "check_supernet", "SPACE_RULES", "SUPERNET_RULES"]
