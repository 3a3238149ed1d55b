"""Regularized (aging) evolution as a KerasTuner oracle (Real et al. 2019)."""

import keras_tuner
import numpy as np
from keras_tuner.engine import trial as trial_module

from keras_nas import validation
from keras_nas.oracles.base import NASOracle
from keras_nas.oracles.decisions import complete_values
from keras_nas.oracles.decisions import neighbour_moves
from keras_nas.oracles.decisions import option_index
from keras_nas.oracles.decisions import space_decisions
from keras_nas.oracles.decisions import untried_neighbours
from keras_nas.oracles.decisions import untried_values
from keras_nas.oracles.decisions import within_bins

_COMPLETED = trial_module.TrialStatus.COMPLETED
_RUNNING = trial_module.TrialStatus.RUNNING


class EvolutionOracle(NASOracle):
    """Regularized evolution: tournament selection, one-decision mutation, oldest dies.

    The first `population_size` trials are random (with a `proxy`, see `NASOracle`: the
    best-scored of `proxy_pool` random architectures). After that, each new trial samples
    `sample_size` members of the population at random, takes the one with the best reward
    (the objective, negated when it is minimized, or `reward_fn(trial)`) as parent, and
    changes one of its decisions (a `Choice`, `Boolean`, or a binned `Int` / `Float`, see
    `keras_nas.oracles.decisions`) to a different value; conditional hyperparameters that
    become active get random values, those that become inactive are dropped. A child whose
    values were already tried (by any trial, failed ones included) has its binned values
    redrawn inside their bins, else is mutated again (a random walk away from the parent,
    up to `max_mutations` steps); when no new child turns up, the trial is random and new.
    With a `proxy` the child is instead the parent's best-scored untried neighbour (one
    decision changed; a zero-cost move proposal, Abdelfattah et al. 2021), and the random
    mutation only when every neighbour was tried. Values are never proposed twice: the
    search stops (`STOPPED`) once a finite space is exhausted. A completed trial joins the
    population and the oldest member leaves it (aging), once and only once per trial, also
    across a reload. Failed and invalid trials never join.

    Args:
        objective: as for `keras_tuner.Oracle`; its direction is respected.
        max_trials: the most trials to run.
        population_size: size of the population (and of the random start).
        sample_size: members drawn for each tournament (at most `population_size`).
        max_mutations: mutation steps tried to reach values not tried yet.
        **kwargs: `seed`, `hyperparameters`, `num_bins`, `reward_fn`, `proxy`, `proxy_pool`
            and KerasTuner's `Oracle` arguments, as for `NASOracle`.

    Example:

    ```python
    oracle = EvolutionOracle(objective="val_accuracy", max_trials=50,
                             population_size=10, sample_size=3, seed=0)
    tuner = keras_tuner.RandomSearch(hypermodel, max_trials=50)  # any Tuner: `oracle=oracle`
    ```
    """

    def __init__(
        self,
        objective=None,
        max_trials=10,
        population_size=20,
        sample_size=5,
        max_mutations=20,
        **kwargs,
    ):
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        self.population_size = validation.check_int(population_size, "population_size",
                                                    minimum=1)
        self.sample_size = validation.check_int(sample_size, "sample_size", minimum=1,
                                                maximum=self.population_size)
        self.max_mutations = validation.check_int(max_mutations, "max_mutations", minimum=1)

        self.population = []  # trial ids, oldest first
        self._rewards = {}  # trial id -> reward of every trial that joined
        self._origin = {}  # trial id -> parent trial id, or None for a random trial

    # -- proposals -----------------------------------------------------------------------
    def populate_space(self, trial_id):
        random_started = sum(1 for parent in self._origin.values() if parent is None)
        values = None
        if self.population and random_started >= self.population_size:
            self.proxy_starts_done()
            parent = self._select_parent()
            values = self._mutate_until_new(self.trials[parent].hyperparameters.values)
            if values is not None:
                self._origin[trial_id] = parent
                return {"status": _RUNNING, "values": values}
        elif random_started < self.population_size:
            values = self.proxy_start()  # None without a proxy
        if values is None:
            values = self._random_values()  # KerasTuner's: None after repeated collisions
        if values is None:
            values = untried_values(self.hyperparameters, self.num_bins, self._rng, self._new)
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        self._origin[trial_id] = None
        return {"status": _RUNNING, "values": values}

    def _select_parent(self):
        k = min(self.sample_size, len(self.population))
        picks = self._rng.choice(len(self.population), size=k, replace=False)
        candidates = [self.population[int(i)] for i in sorted(picks)]
        return max(candidates, key=lambda tid: self._rewards[tid])

    def mutate(self, values):
        """`values` with one decision changed to a different option (None if none can change)."""
        decisions = space_decisions(self.hyperparameters, self.num_bins)
        active = [(hp, options) for hp, options in decisions if hp.name in values]
        if not active:
            return None
        hp, options = active[int(self._rng.integers(len(active)))]
        current = option_index(options, values[hp.name], hp)
        others = [i for i in range(len(options)) if i != current]
        child = dict(values)
        child[hp.name] = options[others[int(self._rng.integers(len(others)))]]
        # Newly active conditional hyperparameters get random values.
        return complete_values(
            self.hyperparameters,
            child,
            lambda hp: hp.random_sample(int(self._rng.integers(2**31 - 1))),
        )

    def _new(self, values):
        return not self._duplicate(values)

    def _mutate_until_new(self, parent_values):
        """A child not tried yet, at most `max_mutations` mutations away, or None; with a
        proxy, the best-scored untried neighbour of the parent when there is one."""
        if self.proxy is not None:
            moves = neighbour_moves(self.decisions(), parent_values)
            found = untried_neighbours(self.hyperparameters, moves, parent_values,
                                       self.num_bins, self._rng, self._new)
            if found:
                return self.best_by_proxy(found)
        child = dict(parent_values)
        for _ in range(self.max_mutations):
            child = self.mutate(child)
            if child is None:
                return None
            if self._new(child):
                return child
            nearby = within_bins(self.hyperparameters, child, self.num_bins, self._rng)
            if nearby is not None and self._new(nearby):
                return nearby
        return None

    # -- results -------------------------------------------------------------------------
    def learn(self, trial):
        self._join(trial)

    def _join(self, trial):
        tid = trial.trial_id
        if trial.status != _COMPLETED or tid in self._rewards:
            return False
        reward = self.reward(trial)
        if reward is None:
            return False
        self._rewards[tid] = reward
        self.population.append(tid)
        while len(self.population) > self.population_size:
            self.population.pop(0)
        return True

    def get_state(self):
        state = super().get_state()
        state["evolution"] = {
            "population": list(self.population),
            "rewards": {k: float(v) for k, v in self._rewards.items()},
            "origin": dict(self._origin),
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        s = state["evolution"]
        self.population = list(s["population"])
        self._rewards = dict(s["rewards"])
        self._origin = dict(s["origin"])
        # Trials completed after the last save join now (once), in the order they ended.
        for tid in self.end_order:
            if tid in self.trials:
                self._join(self.trials[tid])
