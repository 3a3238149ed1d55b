"""Drives a KerasTuner oracle as a Tuner does, on a toy space, for the oracle tests."""

import keras_tuner


def toy_space(n=5, k=4):
    """`n` decisions `d0..`, each a `Choice` of `k` ops `op0..`."""
    hp = keras_tuner.HyperParameters()
    for i in range(n):
        hp.Choice(f"d{i}", [f"op{j}" for j in range(k)])
    return hp


def new_oracle(oracle_class, tmp_path, name="p", **kwargs):
    """An `oracle_class` maximizing "score" over `toy_space()` (unless given), in
    `tmp_path/name`, quiet, without a trial limit (unless given)."""
    kwargs.setdefault("objective", keras_tuner.Objective("score", "max"))
    kwargs.setdefault("hyperparameters", toy_space())
    kwargs.setdefault("max_trials", None)
    oracle = oracle_class(**kwargs)
    oracle._set_project_dir(str(tmp_path), name)
    oracle.verbose = 0
    return oracle


def matches(values):
    """The share of the five decisions set to `op2` (1.0 at the toy optimum)."""
    return sum(values.get(f"d{i}") == "op2" for i in range(5)) / 5


def drive(oracle, reward, n, grow=None):
    """Runs up to `n` trials like a Tuner; a reward of None fails the trial, a dict is the
    trial's metrics (else the reward is its "score"). `grow(hp)`, if given, is called on
    each trial's hyperparameters before it is scored (a space that grows).

    Returns `([(trial_id, values)], status)`: the trials run, in order, and the status that
    ended the run (`"RUNNING"` when all `n` ran).
    """
    out = []
    for _ in range(n):
        trial = oracle.create_trial("t0")
        if trial.status != "RUNNING":
            return out, trial.status
        values = dict(trial.hyperparameters.values)
        if grow is not None:
            grow(trial.hyperparameters)
        score = reward(values)
        if score is None:
            trial.status = "FAILED"
        else:
            oracle.update_trial(trial.trial_id,
                                score if isinstance(score, dict) else {"score": score})
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
        out.append((trial.trial_id, values))
    return out, "RUNNING"


def run(oracle, reward, n):
    """`drive` without the ending status: `[(trial_id, values)]` of the trials run."""
    return drive(oracle, reward, n)[0]
