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
- an optional `proxy`, a score of untrained architectures (a zero-cost proxy such as the
  parameter count): `proxy_start()` gives a strategy the best-scored untried architecture of
  `proxy_pool` random ones where it would start from a random one, and `best_by_proxy` orders
  its candidates; scores are computed once and saved with the oracle;
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
import math
import warnings

import keras_tuner
import numpy as np

from keras_nas import validation
from keras_nas.estimation.screening import check_proxy
from keras_nas.oracles.decisions import space_decisions
from keras_nas.oracles.decisions import untried_values

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
        proxy: optional score of untrained values, `fn(values) -> float`, higher is more
            promising; or a data-free proxy's name (`"params"`, `"synflow"`, `"flops"`) that
            `NASTuner` computes on its space's model of the values
            (`keras_nas.estimation.proxy_function`). Strategies that take one start from the
            best-scored of `proxy_pool` random architectures (see each strategy).
        proxy_pool: how many random architectures the proxy's starts are chosen from.
        allow_new_entries, tune_new_entries, max_retries_per_trial,
        max_consecutive_failed_trials: as for `keras_tuner.Oracle`.
    """

    def __init__(self, objective=None, max_trials=10, seed=None, hyperparameters=None,
                 num_bins=10, reward_fn=None, architecture_key=None, proxy=None,
                 proxy_pool=100, allow_new_entries=True,
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
        self.proxy = check_proxy(proxy)
        self.proxy_pool = validation.check_int(proxy_pool, "proxy_pool", minimum=1)
        self._proxy_scores = {}  # values hash -> the proxy's score (None: failed)
        self._proxy_pool = None  # the random architectures the starts come from, once drawn
        self._proxy_failed = False  # warned that the proxy raised
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

    # -- the proxy ------------------------------------------------------------------------
    def proxy_start(self):
        """The best-scored untried architecture of the proxy's pool (`proxy_pool` random ones,
        drawn on first use), or None without a proxy or once the pool is used up."""
        if self.proxy is None:
            return None
        if self._proxy_pool is None:
            pool = {}
            for _ in range(self.proxy_pool):
                values = untried_values(
                    self.hyperparameters, self.num_bins, self._rng,
                    lambda v: not self._duplicate(v) and self._compute_values_hash(v) not in pool,
                    tries=1,
                )
                if values is None:
                    break
                pool[self._compute_values_hash(values)] = values
            self._proxy_pool = list(pool.values())
        self._proxy_pool = [v for v in self._proxy_pool if not self._duplicate(v)]
        return self.best_by_proxy(self._proxy_pool)

    def proxy_starts_done(self):
        """Drops the rest of the proxy's pool (it is saved with the oracle until then)."""
        if self._proxy_pool:
            self._proxy_pool = []

    def best_by_proxy(self, candidates):
        """The candidate values (a list) with the best proxy score (the first of equals; the
        first without a proxy), or None when there are none."""
        if not candidates:
            return None
        if self.proxy is None:
            return candidates[0]
        return max(candidates, key=self.proxy_score)  # the first of equals

    def proxy_score(self, values):
        """The proxy's score of `values`, computed once; -inf when it fails or is not finite
        (such a candidate comes last, the search goes on)."""
        if isinstance(self.proxy, str):
            raise RuntimeError(
                f"`proxy` {self.proxy!r} is a proxy's name: `NASTuner` turns it into a function "
                "of its space; an oracle driven another way needs `fn(values) -> float`."
            )
        key = self._compute_values_hash(values)
        if key not in self._proxy_scores:
            try:
                score = float(self.proxy(values))
            except Exception as e:  # a candidate the proxy cannot score is tried last
                if not self._proxy_failed:
                    warnings.warn(f"The strategy's `proxy` failed on {values}: "
                                  f"{type(e).__name__}: {e}. Candidates it cannot score are "
                                  "tried last (warned once).", RuntimeWarning, stacklevel=2)
                self._proxy_failed = True
                score = math.nan
            self._proxy_scores[key] = score if math.isfinite(score) else None
        score = self._proxy_scores[key]
        return -math.inf if score is None else score

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
        if self.proxy is not None:
            state["proxy"] = {"scores": dict(self._proxy_scores), "pool": self._proxy_pool}
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state.get("rng")
        if saved is None:  # saved by keras-nas 0.2: inside the strategy's own entry
            saved = next(v["rng"] for v in state.values() if isinstance(v, dict) and "rng" in v)
        self._rng = rng_from_json(saved)
        proxy = state.get("proxy", {})
        self._proxy_scores = dict(proxy.get("scores", {}))
        self._proxy_pool = proxy.get("pool")


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
