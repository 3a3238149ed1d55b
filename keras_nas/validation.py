"""One set of argument and data checks for all of keras-nas.

Every public entry point checks its arguments here before any long work starts, so one rule
holds everywhere and every message names the argument and what was expected. The rule for
error types is Python's: a value of the wrong type raises `TypeError`, a value of the right
type outside its range raises `ValueError` (booleans are not numbers here).

```python
from keras_nas import validation

epochs = validation.check_int(5, "epochs", minimum=1)              # 5
rate = validation.check_number(0.1, "learning_rate", positive=True)  # 0.1
x, y = validation.check_arrays(np.zeros((10, 8, 8)), np.arange(10) % 2)   # x is (10, 8, 8, 1)
```
"""

import math
import numbers

import numpy as np


def _integer_range(minimum, maximum):
    if minimum is not None and maximum is not None:
        return f"an integer between {minimum} and {maximum}"
    if minimum == 1:
        return "a positive integer"
    if minimum == 0:
        return "a non-negative integer"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def check_int(value, name, minimum=None, maximum=None, allow_none=False):
    """`value` as an `int`, or an error naming `name` and the range it must lie in.

    Example: `check_int(epochs, "epochs", minimum=1)`.
    """
    if value is None and allow_none:
        return None
    expected = _integer_range(minimum, maximum) + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be {expected}, got {value!r}.")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"`{name}` must be {expected}, got {value!r}.")
    return value


def check_positive_int(value, name, minimum=1):
    """`check_int` with a lower bound (1 by default): counts, sizes, epochs."""
    return check_int(value, name, minimum=minimum)


def check_number(value, name, minimum=None, maximum=None, positive=False, unit="",
                 allow_none=False):
    """`value` as a finite `float`, or an error naming `name`.

    `positive=True` requires `value > 0`; `minimum`/`maximum` are inclusive bounds; `unit`
    ("seconds", "milliseconds") only words the message.

    Example: `check_number(max_time, "max_time", positive=True, unit="seconds")`.
    """
    if value is None and allow_none:
        return None
    kind = "a positive number" if positive else "a finite number"
    if minimum is not None and maximum is not None:
        kind = f"a number between {minimum} and {maximum}"
    elif minimum is not None:
        kind = f"a number >= {minimum}"
    elif maximum is not None:
        kind = f"a number <= {maximum}"
    expected = kind + (f" of {unit}" if unit else "") + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be {expected}, got {value!r}.")
    value = float(value)
    if (not math.isfinite(value) or (positive and value <= 0)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        raise ValueError(f"`{name}` must be {expected}, got {value!r}.")
    return value


def check_choice(value, name, choices):
    """`value` if it is one of `choices`, else a `ValueError` listing them.

    Example: `check_choice(policy, "final_model", ("retrain", "checkpoint"))`.
    """
    if not any(value == c and type(value) is type(c) for c in choices):
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")
    return value


# -- data ---------------------------------------------------------------------------------
def check_images(x, name="x"):
    """`x` as a non-empty, finite float32 array of images `(samples, height, width, channels)`.

    Grey images `(samples, height, width)` get a channel axis.
    """
    try:
        x = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"`{name}` must be array-like of numbers: {e}") from None
    if x.dtype == object or not (
        np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)
    ):
        raise ValueError(f"`{name}` must hold numbers, got an array of dtype {x.dtype}.")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"`{name}` is empty: it needs at least one example.")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"`{name}` must have shape (samples, height, width) or "
            f"(samples, height, width, channels), got shape {x.shape}."
        )
    x = x.astype("float32", copy=False)
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"`{name}` contains {bad} NaN or infinite values.")
    return x


def check_labels(y, name="y", num_examples=None, x_name="x"):
    """`y` as int32 class indices `(samples,)`; `(samples, 1)` is flattened."""
    try:
        y = np.asarray(y)
    except Exception as e:
        raise ValueError(f"`{name}` must be array-like of integer labels: {e}") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of integer class labels, got shape {y.shape}."
        )
    if num_examples is not None and len(y) != num_examples:
        raise ValueError(
            f"`{x_name}` and `{name}` must have the same length, "
            f"got {num_examples} examples and {len(y)} labels."
        )
    if y.dtype == object or not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"`{name}` must hold integer class labels, got dtype {y.dtype}.")
    if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"`{name}` must hold integer class labels, got non-integer values.")
    y = y.astype("int32")
    if len(y) and y.min() < 0:
        raise ValueError(f"`{name}` must hold labels >= 0, got {int(y.min())}.")
    return y


def check_arrays(x, y, x_name="x", y_name="y"):
    """One `(x, y)` pair checked: float32 images `(n, h, w, c)` and int32 labels `(n,)`.

    Example:

    ```python
    x, y = check_arrays(np.zeros((10, 8, 8)), np.arange(10) % 2)   # x becomes (10, 8, 8, 1)
    ```
    """
    x = check_images(x, x_name)
    return x, check_labels(y, y_name, len(x), x_name)
