"""keras-nas: neural architecture search for Keras.

```python
import keras_nas
model = keras_nas.search(x, y, space="cell", strategy="bayesian", max_trials=10, epochs=5)
```
"""

__version__ = "0.1.0"

from keras_nas import layers  # noqa: F401  (registers the serializable layers)
from keras_nas import oracles  # noqa: F401
from keras_nas import spaces  # noqa: F401
from keras_nas.search import Search, search  # noqa: F401
