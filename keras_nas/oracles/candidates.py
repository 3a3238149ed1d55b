"""An oracle that proposes a fixed list of architectures, in order, then stops."""

import keras_tuner
from keras_tuner.engine import trial as trial_module


class CandidateOracle(keras_tuner.Oracle):
    """Proposes the given candidates one per trial, in order, and stops after the last.

    A one-shot search (DARTS, SPOS, ENAS) ends with a short list of architectures scored
    with the supernet's shared weights; `keras_nas.Search` trains them stand-alone through
    this oracle, so they get the same trials, records and final model as any other search.
    It also suits a user's own shortlist. Its state (the candidates and how many were
    proposed) is JSON, so a search resumes where it stopped.

    Args:
        candidates: a list of dicts of hyperparameter values, one per architecture (each as
            complete as the space needs; e.g. `space.decode(arch_str)`).
        objective, max_retries_per_trial, max_consecutive_failed_trials: as for
            `keras_tuner.Oracle`.
        max_trials: the most candidates to propose (default: all of them).

    Example:

    ```python
    space = keras_nas.spaces.NASBench201Space()
    oracle = CandidateOracle([space.decode(a) for a in shortlist], objective="val_accuracy")
    ```
    """

    def __init__(self, candidates, objective=None, max_trials=None, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3):
        if not isinstance(candidates, (list, tuple)) or not candidates or not all(
                isinstance(c, dict) for c in candidates):
            raise ValueError("`candidates` must be a non-empty list of dicts of "
                             f"hyperparameter values, got {candidates!r}.")
        self.candidates = [dict(c) for c in candidates]
        if max_trials is None:
            max_trials = len(self.candidates)
        super().__init__(objective=objective, max_trials=max_trials,
                         max_retries_per_trial=max_retries_per_trial,
                         max_consecutive_failed_trials=max_consecutive_failed_trials)
        self.proposed = 0

    def populate_space(self, trial_id):
        if self.proposed >= len(self.candidates):
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        values = self.candidates[self.proposed]
        self.proposed += 1
        return {"status": trial_module.TrialStatus.RUNNING, "values": dict(values)}

    def get_state(self):
        state = super().get_state()
        state["candidates"] = {"values": self.candidates, "proposed": self.proposed}
        return state

    def set_state(self, state):
        super().set_state(state)
        self.candidates = [dict(c) for c in state["candidates"]["values"]]
        self.proposed = int(state["candidates"]["proposed"])
