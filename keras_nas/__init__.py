"""keras-nas: neural architecture search for Keras.

```python
import keras_nas
model = keras_nas.search(x, y, space="cell", strategy="bayesian", max_trials=10, epochs=5)
```
"""

import importlib

__version__ = "0.1.0"

# Importing the layers registers them with Keras, so a found model loads after `import keras_nas`.
from keras_nas import layers  # noqa: F401,E402

# Bound after the submodule import, so `keras_nas.search` is the function, not the module.
from keras_nas.search import Search, search  # noqa: F401,E402

_LAZY = {}
_SUBMODULES = ("spaces", "oracles", "hardware", "estimation", "benchmarks", "oneshot",
               "tuning", "results", "data", "cli")


def __getattr__(name):
    # Heavy parts load on first use, so `import keras_nas` stays quick.
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_nas.{name}")
    raise AttributeError(f"module 'keras_nas' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY) + list(_SUBMODULES))
