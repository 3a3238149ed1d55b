"""A queue of architectures an oracle proposes before its own strategy: `WarmStartQueue`.

A mixin for `keras_tuner.Oracle` classes: while `warm_start_queue` holds decisions,
`populate_space` proposes them in order (hyperparameters a queued entry does not set keep
their current values), then the oracle's own `populate_space` takes over. The queue is part of
the oracle's saved state (`get_state()["warm_start_queue"]`, plain JSON), so a resumed search
does not propose an entry twice. `with_queue(oracle)` puts it in front of any oracle's class
(KerasTuner's random, Bayesian, Hyperband, keras-nas' own), whose strategy (its own
`populate_space`) then runs once the queue is empty.

```python
oracle = with_queue(keras_tuner.oracles.BayesianOptimizationOracle(objective="val_accuracy"))
oracle.warm_start_queue = [{"edge_0_1": "nor_conv_3x3", ...}]
```
"""

import functools

import keras_tuner


class WarmStartQueue:
    """Mixin: proposes `warm_start_queue` first (see the module docstring)."""

    @property
    def warm_start_queue(self):
        return self.__dict__.setdefault("_warm_start_queue", [])

    @warm_start_queue.setter
    def warm_start_queue(self, queue):
        self.__dict__["_warm_start_queue"] = [dict(values) for values in queue]

    def populate_space(self, trial_id):
        queue = self.warm_start_queue
        if not queue:
            return super().populate_space(trial_id)
        hp = self.hyperparameters.copy()
        unknown = sorted(set(queue[0]) - {p.name for p in hp.space})
        if unknown:
            raise ValueError(
                f"The oracle does not know the hyperparameters {unknown} of a warm-start "
                "architecture: let a Tuner register the space first."
            )
        values = dict(hp.values)
        values.update(queue.pop(0))
        return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": values}

    def get_state(self):
        state = super().get_state()
        state["warm_start_queue"] = [dict(v) for v in self.warm_start_queue]
        return state

    def set_state(self, state):
        super().set_state(state)
        self.warm_start_queue = state.get("warm_start_queue", [])


@functools.lru_cache(maxsize=None)
def _queued_class(cls):
    return type(cls.__name__, (WarmStartQueue, cls), {"__module__": cls.__module__,
                                                       "__qualname__": cls.__qualname__})


def with_queue(oracle):
    """`oracle`, its class given `WarmStartQueue` if it lacks it (changed in place; returned).

    Its behaviour is otherwise the same: the new class only puts the mixin in front of the
    oracle's own class, under the same name.
    """
    if not isinstance(oracle, keras_tuner.Oracle):
        raise TypeError(f"`oracle` must be a keras_tuner.Oracle, got {type(oracle).__name__}.")
    if not isinstance(oracle, WarmStartQueue):
        oracle.__class__ = _queued_class(type(oracle))
    return oracle
