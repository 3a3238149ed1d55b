"""Search strategies by name: what `keras_nas.search(strategy=...)` and the CLI accept."""

import keras_tuner


def _kt_seed(seed):
    """KerasTuner's built-in oracles treat a seed of 0 as "no seed"; shift so 0 is a seed too."""
    return None if seed is None else int(seed) + 1


def _random(objective, max_trials, epochs, seed, **kwargs):
    return keras_tuner.oracles.RandomSearchOracle(
        objective=objective, max_trials=max_trials, seed=_kt_seed(seed), **kwargs
    )


def _bayesian(objective, max_trials, epochs, seed, **kwargs):
    return keras_tuner.oracles.BayesianOptimizationOracle(
        objective=objective, max_trials=max_trials, seed=_kt_seed(seed), **kwargs
    )


def _hyperband(objective, max_trials, epochs, seed, **kwargs):
    oracle = keras_tuner.oracles.HyperbandOracle(
        objective=objective, max_epochs=max(int(epochs), 2), seed=_kt_seed(seed), **kwargs
    )
    # Hyperband has a budget of its own; `max_trials` caps it as for every other strategy.
    oracle.max_trials = max_trials
    return oracle


def _reinforce(objective, max_trials, epochs, seed, **kwargs):
    from keras_nas.oracles.reinforce import ReinforceOracle

    return ReinforceOracle(objective=objective, max_trials=max_trials, seed=seed, **kwargs)


def _evolution(objective, max_trials, epochs, seed, **kwargs):
    from keras_nas.oracles.evolution import EvolutionOracle

    # The default population suits small budgets: a tenth of the trials, at least 4.
    kwargs.setdefault("population_size", max(4, min(20, int(max_trials or 20) // 10)))
    kwargs.setdefault("sample_size", max(2, kwargs["population_size"] // 2))
    return EvolutionOracle(objective=objective, max_trials=max_trials, seed=seed, **kwargs)


def _local(objective, max_trials, epochs, seed, **kwargs):
    from keras_nas.oracles.local_search import LocalSearchOracle

    # 10 random trials measured best at 50 and 100 queries on NAS-Bench-201; a small budget
    # keeps at least four fifths of its trials for the local search.
    kwargs.setdefault("initial_samples", max(2, min(10, int(max_trials or 100) // 5)))
    return LocalSearchOracle(objective=objective, max_trials=max_trials, seed=seed, **kwargs)


def _gp(objective, max_trials, epochs, seed, **kwargs):
    from keras_nas.oracles.gp import GPOracle

    # as local search: 10 random trials, fewer on a small budget
    kwargs.setdefault("initial_samples", max(2, min(10, int(max_trials or 100) // 5)))
    return GPOracle(objective=objective, max_trials=max_trials, seed=seed, **kwargs)


STRATEGIES = {
    "random": _random,
    "bayesian": _bayesian,
    "hyperband": _hyperband,
    "reinforce": _reinforce,
    "evolution": _evolution,
    "local": _local,
    "gp": _gp,
}


def make_oracle(strategy, *, objective, max_trials, epochs, seed=None, **kwargs):
    """Returns a new `keras_tuner.Oracle` for a strategy name, or `strategy` itself if it is one.

    Args:
        strategy: a name from `STRATEGIES` or a `keras_tuner.Oracle` instance.
        objective: a `keras_tuner.Objective` (or metric name) to optimize.
        max_trials: the most trials the search may run.
        epochs: epochs per trial (Hyperband's largest budget).
        seed: random seed of the strategy.

    Example:

    ```python
    oracle = make_oracle("random", objective="val_accuracy", max_trials=10, epochs=3)
    ```
    """
    if isinstance(strategy, keras_tuner.Oracle):
        return strategy
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown `strategy` {strategy!r}: expected one of {sorted(STRATEGIES)} "
            "or a keras_tuner.Oracle instance."
        )
    return STRATEGIES[strategy](objective, max_trials, epochs, seed, **kwargs)
