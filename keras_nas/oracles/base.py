"""What every keras-nas oracle shares, on top of `keras_tuner.Oracle`.

- the seed kept exactly (KerasTuner replaces a seed of 0 with a random one);
- a numpy random generator whose state is part of the oracle's saved state, so a reloaded
  search proposes what the original would have;
- the search space seen as discrete decisions (`num_bins` values of an `Int` / `Float`,
  `keras_nas.oracles.decisions`);
- the reward of a trial (the objective, negated when minimized, or `reward_fn(trial)`);
- equivalent architectures tried once: `architecture_key(values)` (the space's
  `Space.architecture_key`, which `NASTuner` passes on) replaces the values in KerasTuner's
  hash of what was tried, so no strategy proposes a second spelling of a network it tried;
- one save per ended trial, after the strategy has learned from it (`learn`);
- which trials were skipped untrained as infeasible (`SKIPPED_METRIC`, `was_skipped`) and how
  far each trial is from a latency target (`TARGET_RATIO_METRIC`, `target_ratio`): the tuner
  reports a candidate over a hard target with its infeasible score, untrained, so a strategy
  may treat that score as a constraint rather than a reward.

A strategy subclasses `NASOracle` and writes `populate_space` and, if it learns, `learn`:

```python
class FirstOptionOracle(NASOracle):
    def populate_space(self, trial_id):
        values = {hp.name: options[0] for hp, options in self.decisions() if options}
        return {"status": "RUNNING", "values": values}
```
"""

import hashlib

import keras_tuner
import numpy as np

from keras_nas import validation
from keras_nas.oracles.decisions import space_decisions

SKIPPED_METRIC = "skipped_infeasible"
"""Metric (1.0) of a trial reported untrained because it cannot meet a hard constraint."""
TARGET_RATIO_METRIC = "latency_to_target"
"""Metric of every trial of a search with a latency target: latency / target (<= 1 fits)."""


class NASOracle(keras_tuner.Oracle):
    """Base of keras-nas' strategies (see the module docstring).

    Args:
        objective: as for `keras_tuner.Oracle`; its direction is respected.
        max_trials: the most trials to run.
        seed: random seed (`0` stays 0, where KerasTuner would draw a random one).
        hyperparameters: optional `keras_tuner.HyperParameters` declaring the space up front.
        num_bins: the most discrete values of an `Int` / `Float` hyperparameter.
        reward_fn: optional `fn(trial) -> float`, larger is better; replaces the objective.
        architecture_key: optional `fn(values) -> str`, equal for values that build the same
            network (default: the values; `NASTuner` sets the space's `architecture_key`).
        allow_new_entries, tune_new_entries, max_retries_per_trial,
        max_consecutive_failed_trials: as for `keras_tuner.Oracle`.
    """

    def __init__(self, objective=None, max_trials=10, seed=None, hyperparameters=None,
                 num_bins=10, reward_fn=None, architecture_key=None, allow_new_entries=True,
                 tune_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3):
        validation.check_int(seed, "seed", minimum=0, allow_none=True)
        super().__init__(
            objective=objective, max_trials=max_trials, hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries, tune_new_entries=tune_new_entries, seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if seed is not None:  # KerasTuner draws a random seed for a falsy one (0)
            self.seed = int(seed)
            self._seed_state = self.seed
        self.num_bins = validation.check_int(num_bins, "num_bins", minimum=2)
        if reward_fn is not None and not callable(reward_fn):
            raise TypeError(f"`reward_fn` must be callable or None, got {reward_fn!r}.")
        self.reward_fn = reward_fn
        if architecture_key is not None and not callable(architecture_key):
            raise TypeError("`architecture_key` must be callable or None, got "
                            f"{architecture_key!r}.")
        self.architecture_key = architecture_key
        self._rng = np.random.default_rng(self.seed)
        self._saving_after_learning = False

    def decisions(self):
        """`[(hp, options)]` of the space as it is known now (`options` None when fixed)."""
        return space_decisions(self.hyperparameters, self.num_bins)

    def reward(self, trial):
        """The reward of a completed trial (larger is better), or None when not finite."""
        if self.reward_fn is not None:
            value = self.reward_fn(trial)
        else:
            value = trial.score
            if value is not None and self.objective.direction == "min":
                value = -value
        if value is None:
            return None
        value = float(value)
        return value if np.isfinite(value) else None

    def _compute_values_hash(self, values):
        # KerasTuner's hash of tried values (`_duplicate`, `_record_values`, saved state),
        # over the architecture's key: an equivalent spelling counts as tried.
        if self.architecture_key is None:
            return super()._compute_values_hash(values)
        try:
            key = str(self.architecture_key(values))
        except (ValueError, TypeError, KeyError):  # values the space does not know: as they are
            return super()._compute_values_hash(values)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    @staticmethod
    def was_skipped(trial):
        """Whether `trial` was reported untrained as infeasible (see `SKIPPED_METRIC`)."""
        return trial.metrics.exists(SKIPPED_METRIC)

    @staticmethod
    def target_ratio(trial):
        """The trial's latency over the target (`TARGET_RATIO_METRIC`), or None."""
        if not trial.metrics.exists(TARGET_RATIO_METRIC):
            return None
        value = trial.metrics.get_last_value(TARGET_RATIO_METRIC)
        return float(value) if value is not None and np.isfinite(value) else None

    def learn(self, trial):
        """Takes in an ended trial (any status; called once per `end_trial`)."""

    @keras_tuner.synchronized
    def end_trial(self, trial):
        # KerasTuner saves the oracle in `end_trial`; save once, after learning, instead.
        self._saving_after_learning = True
        try:
            super().end_trial(trial)
        finally:
            self._saving_after_learning = False
        self.learn(self.trials[trial.trial_id])
        self.save()

    def save(self):
        if not self._saving_after_learning:
            super().save()

    def get_state(self):
        state = super().get_state()
        state["rng"] = rng_state_to_json(self._rng)
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state.get("rng")
        if saved is None:  # saved by keras-nas 0.2: inside the strategy's own entry
            saved = next(v["rng"] for v in state.values() if isinstance(v, dict) and "rng" in v)
        self._rng = rng_from_json(saved)


def rng_state_to_json(rng):
    """A numpy `Generator`'s state as JSON (its big integers as decimal strings)."""
    state = rng.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def rng_from_json(state):
    """The numpy `Generator` saved by `rng_state_to_json`."""
    rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
    rng.bit_generator.state = {
        "bit_generator": state["bit_generator"],
        "state": {k: int(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }
    return rng
