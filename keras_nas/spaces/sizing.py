"""Sizes a cell space given by name to the data and the time budget.

The NAS-Bench-201 network (`channels=16, cells_per_stage=5`, cells at up to 32x32) is made for
CIFAR on a GPU; on a CPU one epoch of it over 1,750 MNIST digits takes about 40 s, so a
10-minute search trains 2 candidates. `keras_nas.search` therefore builds a space given by
name from the smallest network of a ladder that still learns the task well, and a larger
one only when the budget affords `MIN_TRIALS` trials of it (`docs/BENCHMARKS.md` §5 measures
the ladder: seconds per example and epoch, and accuracy). Settings the user gives in
`space_kwargs` always win, and a space given as an instance is used as it is.

```python
sized_space_kwargs("cell", input_shape=(28, 28, 1), n_train=1750, epochs=5, max_time=600)
# {'max_resolution': 16, 'channels': 16, 'cells_per_stage': 1}
```
"""

#: The ladder, smallest first: settings of the cell spaces and the measured cost of one
#: training epoch, in milliseconds per training example, on the 2-core CPU of
#: `docs/BENCHMARKS.md` (`tools/bench_space_sizes.py`, NAS-Bench-201 cells, 28x28 inputs).
LADDER = (
    {"max_resolution": 16, "channels": 16, "cells": 1, "ms_per_example": 2.0},
    {"max_resolution": 32, "channels": 16, "cells": 1, "ms_per_example": 5.0},
    {"max_resolution": 32, "channels": 16, "cells": 2, "ms_per_example": 10.0},
    {"max_resolution": 32, "channels": 16, "cells": 5, "ms_per_example": 25.0},
)

#: A size is chosen only if the search's share of the budget affords this many full trials.
MIN_TRIALS = 20
#: The search's share of `max_time` (the rest: the final model and what follows).
SEARCH_SHARE = 0.6
#: Seconds a trial costs beyond its epochs (building and tracing the model, measured 3-7 s).
TRIAL_OVERHEAD_S = 5.0

#: Space name -> how a rung's settings read for it; only these spaces are sized. The DARTS
#: space counts all its cells in `layers` (a third of them reductions) and keeps its own width.
_SETTINGS = {
    "cell": lambda rung: {"max_resolution": rung["max_resolution"],
                          "channels": rung["channels"], "cells_per_stage": rung["cells"]},
    "darts": lambda rung: {"max_resolution": rung["max_resolution"],
                           "layers": 3 * rung["cells"]},
}
_SETTINGS["nasbench201"] = _SETTINGS["cell"]


def trial_seconds(rung, n_train, epochs):
    """Estimated seconds of one full trial at `rung` of `LADDER` (on the reference CPU)."""
    return TRIAL_OVERHEAD_S + epochs * n_train * rung["ms_per_example"] / 1000.0


def sized_space_kwargs(space, input_shape, n_train, epochs, max_time=None, user_kwargs=None):
    """Settings for the space `space` (a name) sized to the data and budget, under the user's.

    Args:
        space: the space's name (`"cell"`, `"nasbench201"`, `"darts"`; the MobileNet space is
            not sized: its width multipliers and depths are decisions of the search).
        input_shape: `(height, width, channels)` of one example (its size is what the
            `max_resolution` cap acts on; smaller inputs pass through unchanged).
        n_train: training examples.
        epochs: epochs of a full trial.
        max_time: the search's wall-clock budget in seconds (None: the smallest size).
        user_kwargs: the user's `space_kwargs`; they are kept and win.

    Returns:
        The keyword arguments to build the space with: the user's, plus the size settings
        the user left out.
    """
    user_kwargs = dict(user_kwargs or {})
    if space not in _SETTINGS:
        return user_kwargs
    chosen = LADDER[0]
    if max_time is not None:
        for rung in LADDER:
            if SEARCH_SHARE * max_time >= MIN_TRIALS * trial_seconds(rung, n_train, epochs):
                chosen = rung
    return {**_SETTINGS[space](chosen), **user_kwargs}

