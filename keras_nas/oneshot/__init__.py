"""Weight-sharing (one-shot) architecture search: DARTS, SPOS and ENAS.

Each search trains one supernet in which every architecture of the space is a path, then
returns the found architecture as the space's own architecture string:

```python
from keras_nas.oneshot import DartsSearch
space = keras_nas.spaces.NASBench201Space(channels=8, cells_per_stage=1)
search = DartsSearch(space, seed=0).fit(x, y, validation_data=(xv, yv), epochs=10)
model = search.retrain(x, y, epochs=20)      # the found cell, trained from scratch
```

- `DartsSearch`: differentiable search (first/second order, GDAS relaxation, DARTS- guard).
- `SPOSSearch`: uniform single-path supernet training + evolutionary search.
- `ENASSearch`: LSTM controller trained with REINFORCE on validation accuracy.
- `build_supernet(space)`: the supernet of a space — `ChoiceSupernet`, derived from the
  space's own `build_network(choose)` (NAS-Bench-201, DARTS, MobileNet and users' spaces);
  `Supernet`, its base; `recalibrate_batch_norm`.
"""

from keras_nas.oneshot.darts import DartsSearch  # noqa: F401
from keras_nas.oneshot.enas import ENASSearch  # noqa: F401
from keras_nas.oneshot.spos import SPOSSearch  # noqa: F401
from keras_nas.oneshot.supernet import (  # noqa: F401
    ChoiceSite,
    ChoiceSupernet,
    Supernet,
    arch_variables,
    build_supernet,
    recalibrate_batch_norm,
)

ONESHOT_STRATEGIES = {"darts": DartsSearch, "spos": SPOSSearch, "enas": ENASSearch}
"""Strategy name -> one-shot search class (for `keras_nas.search(strategy=...)`)."""
