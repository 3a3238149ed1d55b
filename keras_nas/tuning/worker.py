"""A worker process of a parallel search: it trains the trials the chief's oracle hands out.

`Search(workers=N)` starts N of these (`keras_nas.tuning.chief`), each as

```
KERASTUNER_TUNER_ID=worker0 KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=PORT \\
    python -m keras_nas.tuning.worker FOLDER/spec.pkl
```

A worker is a KerasTuner worker (its oracle is a client of the chief's, over KerasTuner's gRPC
service) running `WorkerTuner`: a `NASTuner` whose search state lives with the chief, so
- successive halving asks the chief at each rung (`RUNG_METRIC`), which ranks the value among
  every worker's trials;
- the time budget is the chief's deadline, read from the file the chief rewrites whenever
  its reserves change (`SharedDeadline`);
- a trial's timings are written beside its checkpoint (`TIMINGS_FILE`) for the chief's
  `summary.json`, before the trial ends;
- when the chief's process is gone, the worker exits instead of waiting for it.
"""

import math
import os
import pickle
import sys
import threading
import time

import keras_tuner

from keras_nas.tuning import records
from keras_nas.tuning.tuner import NASTuner, quiet_dead_edges

#: The metric name of a rung query: `update_trial(trial_id, {RUNG_METRIC: value}, step=epochs)`
#: asks the chief whether the trial goes on; the chief answers with status "STOPPED" or
#: "RUNNING" and records nothing in the trial.
RUNG_METRIC = "keras_nas/rung"
#: A trial's timings, in its trial folder, written by the worker that ran it.
TIMINGS_FILE = "timings.json"
#: How often a worker checks that the chief's process still runs.
ORPHAN_CHECK_S = 2.0


class SharedDeadline:
    """The chief's search deadline for a worker: `TimeBudget`'s queries, answered from the
    JSON file (`{"search_deadline": t}`, null for none) the chief rewrites.

    Example: `SharedDeadline("results/search/workers/deadline.json").search_left()`.
    """

    def __init__(self, path, clock=time.time, reread_s=0.5):
        self.path = path
        self.clock = clock
        self.reread_s = reread_s
        self._deadline = math.inf
        self._read_at = -math.inf

    def search_deadline(self):
        now = self.clock()
        if now - self._read_at >= self.reread_s:
            self._read_at = now
            try:
                found = records.read_json(self.path).get("search_deadline")
                self._deadline = math.inf if found is None else float(found)
            except (OSError, ValueError):
                pass  # being replaced this instant: keep the last value
        return self._deadline

    @property
    def limited(self):
        return math.isfinite(self.search_deadline())

    def search_left(self):
        return self.search_deadline() - self.clock()


def write_deadline(path, budget):
    """Writes `budget`'s search deadline where the workers' `SharedDeadline` reads it."""
    records.write_json(path, {"search_deadline": budget.search_deadline()})


class _ChiefJudge:
    """Successive halving's `judge` for one trial of a worker: the chief decides."""

    def __init__(self, oracle, trial_id, rungs):
        self.oracle = oracle
        self.trial_id = trial_id
        self.rungs = set(rungs)

    def judge(self, epochs_done, value):
        if epochs_done not in self.rungs or value is None or not math.isfinite(value):
            return False
        answer = self.oracle.update_trial(self.trial_id, {RUNG_METRIC: float(value)},
                                          step=int(epochs_done))
        return answer.status == keras_tuner.engine.trial.TrialStatus.STOPPED


class WorkerTuner(NASTuner):
    """`NASTuner` in a worker process: the chief keeps the budget and successive halving."""

    def pre_create_trial(self):
        """Nothing: the chief stops handing out trials when the budget runs out."""

    def _rung_stop(self, trial):
        judge = _ChiefJudge(self.oracle, trial.trial_id, self.halving.rungs)
        return self.halving.callback(self._epoch_objective(), judge=judge)

    def on_trial_end(self, trial):
        timing = self.timings.setdefault(trial.trial_id, {})
        timing.update(ended=time.time(), worker=self.tuner_id)
        records.write_json(os.path.join(self.get_trial_dir(trial.trial_id), TIMINGS_FILE),
                           timing)
        super().on_trial_end(trial)


class _ChiefOracleStandIn(keras_tuner.Oracle):
    """The worker's own oracle until KerasTuner replaces it by a client of the chief's: it
    lends the objective; the chief's oracle holds the trials."""

    def populate_space(self, trial_id):
        raise RuntimeError("A worker's trials come from the chief's oracle.")

    def reload(self):
        """Nothing: the state is the chief's."""

    def save(self):
        """Nothing: the state is the chief's."""


def _exit_when_orphaned(chief_pid):
    """Ends this process when the chief's is gone, now or later (KerasTuner's client would
    otherwise wait for it for an hour)."""
    def check():
        if os.getppid() != chief_pid:
            print(f"keras-nas worker: the chief (process {chief_pid}) is gone; exiting.",
                  file=sys.stderr, flush=True)
            os._exit(3)

    def watch():
        while True:
            time.sleep(ORPHAN_CHECK_S)
            check()

    check()
    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()


def run(spec_path):
    """Trains the chief's trials until it has none left (the worker process' work)."""
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)
    _exit_when_orphaned(spec["chief_pid"])
    import numpy as np

    from keras_nas.search import SCHEDULES

    with np.load(spec["data"]) as arrays:
        x, y = arrays["x"], arrays["y"]
        validation = (arrays["x_val"], arrays["y_val"])
    tuner = WorkerTuner(
        _ChiefOracleStandIn(objective=spec["objective"], max_trials=1), spec["space"],
        seed=spec["seed"], budget=SharedDeadline(spec["deadline"]), halving=spec["halving"],
        schedule=SCHEDULES[spec["schedule"]], hardware=spec["hardware"],
        latency_predictor=spec["latency_predictor"], latency_device=spec["latency_device"],
        reward=spec["reward"], directory=spec["directory"], project_name=spec["project_name"],
        overwrite=False)
    with quiet_dead_edges():
        tuner.search(x, y, validation_data=validation, epochs=spec["epochs"],
                     batch_size=spec["batch_size"], callbacks=list(spec["callbacks"]),
                     verbose=spec["verbose"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m keras_nas.tuning.worker SPEC.pkl "
                 "(started by keras_nas.Search(workers=N))")
    run(sys.argv[1])
