"""Drives a KerasTuner oracle as a Tuner does, on a toy space, for the oracle tests."""

import keras_tuner


def toy_space(n=5, k=4):
    """`n` decisions `d0..`, each a `Choice` of `k` ops `op0..`."""
    hp = keras_tuner.HyperParameters()
    for i in range(n):
        hp.Choice(f"d{i}", [f"op{j}" for j in range(k)])
    return hp


def matches(values):
    """The share of the five decisions set to `op2` (1.0 at the toy optimum)."""
    return sum(values.get(f"d{i}") == "op2" for i in range(5)) / 5


def run(oracle, reward, n):
    """Runs up to `n` trials like a Tuner; a reward of None fails the trial.

    Returns `[(trial_id, values)]` of the trials run, in order.
    """
    out = []
    for _ in range(n):
        trial = oracle.create_trial("t0")
        if trial.status != "RUNNING":
            break
        values = dict(trial.hyperparameters.values)
        score = reward(values)
        if score is None:
            trial.status = "FAILED"
        else:
            oracle.update_trial(trial.trial_id, {"score": score})
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
        out.append((trial.trial_id, values))
    return out
