"""A worker of a parallel search: it trains the trials the chief's oracle hands out.

`Search(workers=N)` starts N of these on its own machine (`keras_nas.tuning.chief`), and
`keras-nas worker --chief HOST:PORT` joins a search from another machine; both run

```
KERAS_NAS_TOKEN=<token> python -m keras_nas.tuning.worker --chief HOST:PORT [--id NAME]
```

A worker asks the chief for the search's settings and data (`keras_nas.tuning.protocol`), then
is a KerasTuner worker (its oracle a client of the chief's, over KerasTuner's gRPC service)
running `WorkerTuner`: a `NASTuner` whose search state lives with the chief, so
- successive halving asks the chief at each rung (`RUNG_METRIC`), which ranks the value among
  every worker's trials;
- the time budget is the chief's deadline, which the worker's heartbeat brings back
  (`ChiefWatch`, every `BEAT_S`);
- a trial's checkpoint and timings go to the chief's trial folder before the trial ends;
- when the chief has not answered for `CHIEF_LOST_S`, the worker exits instead of waiting.
"""

import argparse
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

import keras_tuner

from keras_nas import compat
from keras_nas.tuning import records
from keras_nas.tuning.protocol import (
    CONNECT_TIMEOUT_S, TOKEN_ENV, ChiefLink, ChiefUnreachable)
from keras_nas.tuning.tuner import CHECKPOINT_FILE, NASTuner, quiet_dead_edges

#: The metric name of a rung query: `update_trial(trial_id, {RUNG_METRIC: value}, step=epochs)`
#: asks the chief whether the trial goes on; the chief answers with status "STOPPED" or
#: "RUNNING" and records nothing in the trial.
RUNG_METRIC = "keras_nas/rung"
#: A trial's timings, in its trial folder (written by the worker that ran it).
TIMINGS_FILE = "timings.json"
#: Seconds between a worker's heartbeats.
BEAT_S = 1.0
#: A worker whose chief has not answered for this long exits.
CHIEF_LOST_S = 20.0


class ChiefWatch:
    """A worker's heartbeat: tells the chief it lives, keeps the chief's deadline, and ends the
    process when the chief is gone. It is the worker's budget (`TimeBudget`'s queries).

    Example: `watch = ChiefWatch(link, "worker0").start(); watch.search_left()`.
    """

    def __init__(self, link, worker_id, clock=time.time, lost_s=CHIEF_LOST_S):
        self.link = link
        self.worker_id = worker_id
        self.clock = clock
        self.lost_s = lost_s
        self._deadline = math.inf
        self._answered = clock()

    def beat(self):
        """One heartbeat; True if the chief answered."""
        try:
            deadline = self.link.beat(self.worker_id, timeout=max(BEAT_S, 1.0) * 2)
        except ChiefUnreachable:
            return False
        self._deadline = math.inf if deadline is None else float(deadline)
        self._answered = self.clock()
        return True

    def chief_lost(self):
        return self.clock() - self._answered > self.lost_s

    def start(self):
        self.beat()

        def loop():
            while True:
                time.sleep(BEAT_S)
                if not self.beat() and self.chief_lost():
                    print(f"keras-nas worker: the chief at {self.link.address} has not answered "
                          f"for {self.lost_s:.0f} s; it is gone, exiting.", file=sys.stderr,
                          flush=True)
                    os._exit(3)

        threading.Thread(target=loop, daemon=True, name="chief-watch").start()
        return self

    def search_deadline(self):
        return self._deadline

    @property
    def limited(self):
        return math.isfinite(self._deadline)

    def search_left(self):
        return self._deadline - self.clock()


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
    """`NASTuner` in a worker: the chief keeps the budget, the halving and the trial files.

    Args:
        link: the `ChiefLink` to the chief.
        *args, **kwargs: as for `NASTuner`.
    """

    def __init__(self, link, *args, **kwargs):
        self.link = link
        super().__init__(*args, **kwargs)

    def pre_create_trial(self):
        """Nothing: the chief stops handing out trials when the budget runs out."""

    def _rung_stop(self, trial):
        judge = _ChiefJudge(self.oracle, trial.trial_id, self.halving.rungs)
        return self.halving.callback(self._epoch_objective(), judge=judge)

    def run_trial(self, trial, *args, **kwargs):
        earlier = trial.hyperparameters.values.get("tuner/trial_id")
        if earlier is not None:  # Hyperband continues an earlier trial: fetch its weights
            path = self._get_checkpoint_fname(earlier)
            content = self.link.get_file(earlier, CHECKPOINT_FILE)
            if content is not None and not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(content)
        return super().run_trial(trial, *args, **kwargs)

    def on_trial_end(self, trial):
        timing = self.timings.setdefault(trial.trial_id, {})
        timing.update(ended=time.time(), worker=self.tuner_id)
        path = os.path.join(self.get_trial_dir(trial.trial_id), TIMINGS_FILE)
        records.write_json(path, timing)
        for path in (self._get_checkpoint_fname(trial.trial_id), path):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    self.link.put_file(trial.trial_id, os.path.basename(path), f.read())
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


def default_worker_id():
    """A name unique among the workers of a search: host and process (never "chief", which
    KerasTuner reserves)."""
    return f"worker-{socket.gethostname()}-{os.getpid()}".replace("chief", "chf")


def run(address, token, worker_id=None, connect_timeout=CONNECT_TIMEOUT_S):
    """Trains the chief's trials until it has none left.

    Raises `ChiefUnreachable` (one line) when the chief does not answer within
    `connect_timeout` seconds or refuses the token.

    Example: `run("10.0.0.5:7000", token)` (what `keras-nas worker` does).
    """
    if ":" not in address:
        raise ValueError(f"`--chief` must be HOST:PORT, got {address!r}.")
    worker_id = worker_id or default_worker_id()
    if "chief" in worker_id:
        raise ValueError(f"A worker's name must not contain 'chief', got {worker_id!r}.")
    link = ChiefLink(address, token)
    spec = link.spec(timeout=connect_timeout)
    watch = ChiefWatch(link, worker_id).start()
    (x, y), validation = link.data()
    from keras_nas.search import SCHEDULES
    from keras_nas.tuning.compile_cache import use_jax_compilation_cache

    # On JAX, this machine's cache (or the folder given): trials compiled here before, or by
    # another worker, are read instead of compiled again.
    use_jax_compilation_cache(spec.get("compilation_cache"))

    host, port = address.rsplit(":", 1)
    os.environ.update(KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=port,
                      KERASTUNER_TUNER_ID=worker_id)
    scratch = tempfile.mkdtemp(prefix="keras-nas-worker-")
    try:
        tuner = WorkerTuner(
            link, _ChiefOracleStandIn(objective=spec["objective"], max_trials=1),
            spec["space"], seed=spec["seed"], budget=watch, halving=spec["halving"],
            schedule=SCHEDULES[spec["schedule"]], hardware=spec["hardware"],
            latency_predictor=spec["latency_predictor"], latency_device=spec["latency_device"],
            reward=spec["reward"], directory=scratch, project_name="search", overwrite=False)
        compat.send_oracle_calls_through(tuner.oracle, link.channel)
        with quiet_dead_edges():
            tuner.search(x, y, validation_data=validation, epochs=spec["epochs"],
                         batch_size=spec["batch_size"], callbacks=list(spec["callbacks"]),
                         verbose=spec["verbose"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_nas.tuning.worker",
        description="A worker of a keras-nas search (started by Search(workers=N)).")
    parser.add_argument("--chief", required=True, help="HOST:PORT of the chief")
    parser.add_argument("--id", default=None, help="this worker's name (default: host-pid)")
    parser.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S)
    args = parser.parse_args(argv)
    try:
        run(args.chief, os.environ.get(TOKEN_ENV, ""), args.id, args.connect_timeout)
    except (ChiefUnreachable, ValueError) as e:
        print(f"keras-nas worker: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
