"""A weight-sharing search as the first phase of `keras_nas.Search`: `run_oneshot`.

The supernet is trained once and its best candidates (by the supernet's shared-weight score)
become the search's trials, trained stand-alone like those of any other strategy, so they get
the same records, `summary.json` and final model. The phase's result is written to
`oneshot.json` in the results directory; a resumed search reads it from there instead of
training the supernet again.

```python
result, found = run_oneshot("spos", space, (x, y), (xv, yv), epochs=5, batch_size=32,
                            results_dir="results/search", max_candidates=10)
[c["architecture"] for c in result["candidates"]]   # best first
```
"""

import os

from keras_nas.tuning import records

RESULT_FILE = "oneshot.json"


def run_oneshot(strategy, space, train, validation, *, epochs, batch_size, results_dir,
                max_candidates, seed=None, verbose=0, strategy_kwargs=None):
    """Trains the supernet of `strategy` ("darts", "spos", "enas") once; returns
    `(result, search)`.

    `result` (plain JSON, also in `<results_dir>/oneshot.json`) holds the strategy, the
    phase's seconds, how many candidates the supernet scored, whether its paths ran eagerly
    (`eager_paths`, SPOS and ENAS: `run_eagerly`), its history (and ENAS's controller
    history) and `candidates`: up to `max_candidates` `{"architecture",
    "supernet_accuracy"}`, best first. `search` is the fitted one-shot search object, or
    `None` when the result was read back from an earlier run.
    """
    from keras_nas.oneshot import ONESHOT_STRATEGIES

    path = os.path.join(results_dir, RESULT_FILE)
    if os.path.exists(path):
        return records.read_json(path), None
    found = ONESHOT_STRATEGIES[strategy](
        space, seed=seed, verbose=verbose, **dict(strategy_kwargs or {})).fit(
        *train, validation_data=validation, epochs=epochs, batch_size=batch_size)
    history = getattr(found, "controller_history", None)
    result = records._plain({
        "strategy": strategy, "seconds": found.search_seconds,
        "candidates_evaluated": found.num_evaluated, "eager_paths": found.eager_paths,
        "history": found.history,
        "controller_history": list(history) if history else None,
        "candidates": [{"architecture": arch, "supernet_accuracy": score}
                       for arch, score in found.ranked_candidates(max_candidates)],
    })
    records.write_json(path, result)
    return result, found
