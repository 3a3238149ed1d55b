"""Bayesian optimization over architectures as a KerasTuner oracle: a Gaussian process on the
one-hot decisions of the space, expected improvement over neighbours of the best ones."""

import numpy as np
from keras_tuner.engine import trial as trial_module
from scipy import special

from keras_nas import validation
from keras_nas.oracles.base import NASOracle
from keras_nas.oracles.decisions import is_active
from keras_nas.oracles.decisions import neighbour_moves
from keras_nas.oracles.decisions import option_index
from keras_nas.oracles.decisions import untried_completion
from keras_nas.oracles.decisions import untried_values
from keras_nas.oracles.surrogate import GaussianProcess
from keras_nas.oracles.surrogate import expected_improvement
from keras_nas.oracles.surrogate import normal_scores

_COMPLETED = trial_module.TrialStatus.COMPLETED
_RUNNING = trial_module.TrialStatus.RUNNING


class GPOracle(NASOracle):
    """Model-based search: a Gaussian process predicts the reward of untried architectures.

    The first `initial_samples` trials are random (with a `proxy`, see `NASOracle`: the
    best-scored of `proxy_pool` random architectures). After that, every new trial is chosen
    from a pool of untried candidates: every neighbour (one decision changed, see
    `keras_nas.oracles.decisions.neighbour_moves`; decisions it switches on filled in at
    random) of the `neighbours_of` best completed trials, plus `random_candidates` random
    architectures. A Gaussian process (`keras_nas.oracles.surrogate`), fitted to the rewards
    of the completed trials (the objective, negated when minimized, or `reward_fn(trial)`)
    turned into normal scores of their ranks, over one-hot encodings of their decisions
    (`Choice`, `Boolean`, binned `Int` / `Float`; an inactive decision encodes as zeros),
    predicts each candidate; the one with the largest expected improvement over the best
    reward is proposed. The model is refitted from the trials for every proposal, so the
    oracle keeps no state beyond its random generator: a reloaded search proposes what the
    original would have. Values are never proposed twice; the search stops (`STOPPED`) once a
    finite space is exhausted.

    Constraints: a trial the tuner skipped untrained because it cannot meet a hard latency
    target (`NASOracle.was_skipped`) has a score that is not a reward: the reward model is
    fitted to the trained trials only, and a second Gaussian process, fitted to every trial's
    margin to the target (`-log(latency / target)` where the trials report
    `NASOracle.target_ratio`, else +1 trained / -1 skipped), gives each candidate a
    probability of fitting; the proposal maximizes expected improvement times that
    probability (constrained Bayesian optimization, Gardner et al. 2014). Without skipped
    trials this is plain expected improvement.

    Measured on the NAS-Bench-201 table (`docs/benchmarks/nasbench201.md`,
    `docs/benchmarks/hardware.md` §4): on par with local search at 100 trials, ahead of it
    early; under a hard latency target the best of the strategies.

    Args:
        objective: as for `keras_tuner.Oracle`; its direction is respected.
        max_trials: the most trials to run.
        initial_samples: random trials before the model chooses (at least 2).
        neighbours_of: the best completed trials whose neighbours are candidates.
        random_candidates: random architectures added to each pool.
        max_points: the most completed trials the model is fitted to (the best half of them
            and the most recent rest), bounding the cost of a proposal.
        **kwargs: `seed`, `hyperparameters`, `num_bins`, `reward_fn`, `proxy`, `proxy_pool`
            and KerasTuner's `Oracle` arguments, as for `NASOracle`.

    Example:

    ```python
    model = keras_nas.search(x, y, strategy="gp", max_trials=50)   # by name, or:
    oracle = GPOracle(objective="val_accuracy", max_trials=100, seed=0)
    ```
    """

    def __init__(
        self,
        objective=None,
        max_trials=10,
        initial_samples=10,
        neighbours_of=5,
        random_candidates=100,
        max_points=400,
        **kwargs,
    ):
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        self.initial_samples = validation.check_int(initial_samples, "initial_samples",
                                                    minimum=2)
        self.neighbours_of = validation.check_int(neighbours_of, "neighbours_of", minimum=0)
        self.random_candidates = validation.check_int(random_candidates, "random_candidates",
                                                      minimum=0)
        if self.neighbours_of == self.random_candidates == 0:
            raise ValueError("`neighbours_of` and `random_candidates` cannot both be 0: the "
                             "pool of candidates would be empty.")
        self.max_points = validation.check_int(max_points, "max_points", minimum=2)

    def populate_space(self, trial_id):
        scored, margins = self._history()
        values = None
        if len(margins) >= self.initial_samples:
            self.proxy_starts_done()
            values = self._best_candidate(scored, margins)
        else:
            values = self.proxy_start()  # None without a proxy
        if values is None:
            values = self._random_values()  # KerasTuner's: None after repeated collisions
        if values is None:
            values = untried_values(self.hyperparameters, self.num_bins, self._rng, self._new)
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": _RUNNING, "values": values}

    def _history(self):
        """`([(values, reward)], [(values, margin)])` of the completed trials, oldest first:
        the trained ones with a finite reward; and all, each with its margin to a hard
        constraint (None when no trial was skipped, i.e. no constraint to model)."""
        trials = [self.trials.get(trial_id) for trial_id in self.end_order]
        trials = [t for t in trials if t is not None and t.status == _COMPLETED]
        scored, margins = [], []
        for trial in trials:
            skipped = self.was_skipped(trial)
            reward = None if skipped else self.reward(trial)
            if reward is not None:
                scored.append((trial.hyperparameters.values, reward))
            if skipped or reward is not None:
                margins.append((trial.hyperparameters.values, skipped, self.target_ratio(trial)))
        if not any(skipped for _, skipped, _ in margins):
            return scored, [(values, None) for values, _, _ in margins]
        if all(ratio is not None and ratio > 0 for _, _, ratio in margins):
            return scored, [(values, -np.log(ratio)) for values, _, ratio in margins]
        return scored, [(values, -1.0 if skipped else 1.0) for values, skipped, _ in margins]

    def _best_candidate(self, scored, margins):
        """The untried candidate with the largest expected improvement times probability of
        meeting the constraint; None if there is none."""
        decisions = self.decisions()
        pool = self._candidates(scored, decisions)
        if not pool:
            return None
        encoded_pool = self._encode(pool, decisions)
        gain = np.ones(len(pool))
        if scored:
            points = self._model_points(scored)
            y = normal_scores([reward for _, reward in points])
            model = GaussianProcess().fit(self._encode([v for v, _ in points], decisions), y)
            mean, std = model.predict(encoded_pool)
            gain = expected_improvement(mean, std, y.max())
        if margins[0][1] is not None:  # some trial was skipped: model the constraint
            points = margins[-self.max_points:]
            model = GaussianProcess().fit(self._encode([v for v, _ in points], decisions),
                                          np.array([margin for _, margin in points]))
            mean, std = model.predict(encoded_pool)
            gain = gain * special.ndtr(mean / np.maximum(std, 1e-12))
        best = np.flatnonzero(gain >= gain.max() * (1 - 1e-9))
        return pool[int(best[self._rng.integers(len(best))])]

    def _candidates(self, scored, decisions):
        """Untried neighbours of the best trials and random architectures, each once."""
        pool = {}
        ranked = sorted(scored, key=lambda item: -item[1])  # stable: earlier first on ties
        for values, _ in ranked[: self.neighbours_of]:
            for hp, option in neighbour_moves(decisions, values):
                child = dict(values)
                child[hp.name] = option
                found = untried_completion(self.hyperparameters, child, self.num_bins,
                                           self._rng, lambda v: self._new(v, pool))
                if found is not None:
                    pool[self._compute_values_hash(found)] = found
        for _ in range(self.random_candidates):
            values = untried_values(self.hyperparameters, self.num_bins, self._rng,
                                    lambda v: self._new(v, pool), tries=1)
            if values is None:
                break
            pool[self._compute_values_hash(values)] = values
        return list(pool.values())

    def _model_points(self, scored):
        """The trials the model is fitted to: all, or the best and the most recent ones."""
        if len(scored) <= self.max_points:
            return scored
        order = sorted(range(len(scored)), key=lambda i: -scored[i][1])
        keep = set(order[: self.max_points // 2])
        for i in range(len(scored) - 1, -1, -1):
            if len(keep) >= self.max_points:
                break
            keep.add(i)
        return [scored[i] for i in sorted(keep)]

    def _encode(self, values_list, decisions):
        """One-hot rows of the active decisions of each set of values."""
        widths = [len(options) for _, options in decisions]
        offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        rows = np.zeros((len(values_list), max(1, int(offsets[-1]))))
        for r, values in enumerate(values_list):
            for (hp, options), offset in zip(decisions, offsets):
                if hp.name in values and is_active(hp, values):
                    rows[r, offset + option_index(options, values[hp.name], hp)] = 1.0
        return rows

    def _new(self, values, pool=()):
        return not self._duplicate(values) and self._compute_values_hash(values) not in pool

