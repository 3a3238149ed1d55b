"""Parallel trials: the calling process serves the oracle, worker processes train the trials.

`Search(workers=N)` runs its trials this way, on KerasTuner's distributed engine: the chief
(this process) serves the search's oracle over KerasTuner's gRPC service on 127.0.0.1, and
starts N worker processes (`keras_nas.tuning.worker`), each with `cores // N` threads. The
chief keeps everything a one-process search keeps: it decides when the budget allows no
more trials, ranks every trial at successive halving's rungs, reads each finished trial's
timings, and calls the search's trial-end listener (`summary.json`, progress) as each ends.
A worker that dies mid-trial is started again and reruns that trial (a trial whose worker
dies twice fails); a worker that dies before its first trial stops the search with its log.

```python
chief = Chief(tuner, workers=2, spec=spec, data=((x, y), (x_val, y_val)))
chief.run()   # returns when every worker has left; the trials are in tuner.oracle
```
"""

import collections
import os
import pickle
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import keras_tuner
import numpy as np

from keras_nas import compat
from keras_nas.tuning import records
from keras_nas.tuning.worker import RUNG_METRIC, TIMINGS_FILE, write_deadline

OracleServicer, MESSAGES, add_servicer_to_server = compat.keras_tuner_oracle_service()
Trial = keras_tuner.engine.trial.Trial
TrialStatus = keras_tuner.engine.trial.TrialStatus

#: How often the chief looks at its workers.
POLL_S = 0.25
#: Seconds a worker gets to leave after SIGTERM before SIGKILL.
STOP_GRACE_S = 5.0
#: The lines of a worker's log quoted when it fails.
LOG_TAIL_LINES = 15


class WorkerError(RuntimeError):
    """Raised when worker processes cannot run the search (with the failing worker's log)."""


def available_cores():
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers, cores=None):
    """Threads for each of `workers` processes so that together they use the cores once."""
    return max(1, (available_cores() if cores is None else cores) // workers)


class _ChiefServicer(OracleServicer):
    """KerasTuner's oracle service with the chief's part of a search around it.

    Every call holds `lock`, which the chief's own thread also takes, so the oracle and the
    search's records change one call at a time."""

    def __init__(self, chief):
        super().__init__(chief.tuner.oracle)
        self.chief = chief
        self.lock = threading.RLock()
        self.served = set()  # workers that have asked for a trial

    def CreateTrial(self, request, context):
        with self.lock:
            self.served.add(request.tuner_id)
            if self.chief.stopping or self.chief.tuner.out_of_time():
                self.chief.stopping = True
                trial = Trial(self.oracle.get_space(),
                                                       status=TrialStatus.STOPPED)
                return MESSAGES.CreateTrialResponse(trial=trial.to_proto())
            return super().CreateTrial(request, context)

    def UpdateTrial(self, request, context):
        if RUNG_METRIC in request.metrics:
            with self.lock:
                halving = self.chief.tuner.halving
                stop = halving is not None and halving.judge(
                    int(request.step), float(request.metrics[RUNG_METRIC]))
            trial = Trial(
                self.oracle.get_space(), trial_id=request.trial_id,
                status=TrialStatus.STOPPED if stop else TrialStatus.RUNNING)
            return MESSAGES.UpdateTrialResponse(trial=trial.to_proto())
        with self.lock:
            return super().UpdateTrial(request, context)

    def EndTrial(self, request, context):
        with self.lock:
            self.chief.end_trial(Trial.from_proto(request.trial))
        return MESSAGES.EndTrialResponse()

    def GetSpace(self, request, context):
        with self.lock:
            return super().GetSpace(request, context)

    def UpdateSpace(self, request, context):
        with self.lock:
            return super().UpdateSpace(request, context)

    def GetTrial(self, request, context):
        with self.lock:
            return super().GetTrial(request, context)

    def GetBestTrials(self, request, context):
        with self.lock:
            return super().GetBestTrials(request, context)


class Chief:
    """Runs a `NASTuner`'s trials in worker processes (see the module docstring).

    Args:
        tuner: the search's `NASTuner` (its oracle, budget, halving and trial-end listener
            are the chief's).
        workers: how many worker processes.
        spec: what a worker needs besides the data, picklable (`Search._worker_spec`).
        data: `((x, y), (x_val, y_val))` numpy arrays.
        threads: threads per worker (default: the cores shared out, at least 1).
        folder: where the spec, data, deadline and worker logs go (default:
            `<project>/workers`).
    """

    def __init__(self, tuner, workers, spec, data, threads=None, folder=None):
        self.tuner = tuner
        self.workers = int(workers)
        self.threads = threads or threads_per_worker(self.workers)
        self.folder = folder or os.path.join(tuner.project_dir, "workers")
        self.spec = dict(spec)
        self.data = data
        self.stopping = False
        self.failure = None  # the oracle's "too many consecutive failures" error
        self.error = None  # anything else the chief's part of a trial's end raised
        self.crashes = collections.Counter()  # trial_id -> times its worker died on it
        self.restarts = 0
        self._processes = {}
        self._servicer = _ChiefServicer(self)

    # -- the trials -----------------------------------------------------------------------
    def end_trial(self, trial):
        """Ends a worker's trial in the oracle, then does what a one-process search does at
        a trial's end (timings, listener, saved state, the workers' deadline)."""
        oracle = self.tuner.oracle
        try:
            oracle.end_trial(trial)
        except RuntimeError as e:  # the oracle's limit of consecutive failed trials
            self.failure = e
            self.stopping = True
        try:
            trial = oracle.trials[trial.trial_id]
            path = os.path.join(self.tuner.get_trial_dir(trial.trial_id), TIMINGS_FILE)
            if os.path.exists(path):
                self.tuner.timings[trial.trial_id] = records.read_json(path)
            if self.tuner.on_trial_end_callback is not None:
                self.tuner.on_trial_end_callback(self.tuner, trial)
            self.tuner.save()
            write_deadline(self.deadline_path, self.tuner.budget)
        except Exception as e:  # a bug of the chief's: stop the search and raise it there
            self.error = e
            self.stopping = True

    def _fail_crashed_trial(self, trial, returncode):
        trial.status = TrialStatus.FAILED
        trial.message = (f"The worker processes running this trial died twice "
                         f"(exit code {returncode}).")
        self.end_trial(trial)

    # -- the processes --------------------------------------------------------------------
    @property
    def deadline_path(self):
        return os.path.join(self.folder, "deadline.json")

    def _log_path(self, worker_id):
        return os.path.join(self.folder, f"{worker_id}.log")

    def _prepare(self):
        """Writes what the workers read: the data, the spec and the deadline."""
        os.makedirs(self.folder, exist_ok=True)
        (x, y), (x_val, y_val) = self.data
        data_path = os.path.join(self.folder, "data.npz")
        np.savez(data_path, x=x, y=y, x_val=x_val, y_val=y_val)
        spec = dict(self.spec, halving=self.tuner.halving, data=data_path,
                    deadline=self.deadline_path,
                    chief_pid=os.getpid(), directory=os.path.abspath(self.tuner.directory),
                    project_name=self.tuner.project_name)
        spec_path = os.path.join(self.folder, "spec.pkl")
        with open(spec_path, "wb") as f:
            pickle.dump(spec, f)
        write_deadline(self.deadline_path, self.tuner.budget)
        return spec_path

    def _start(self, worker_id, spec_path, port):
        env = dict(os.environ)
        env.update(KERASTUNER_TUNER_ID=worker_id, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=str(port), TF_NUM_INTRAOP_THREADS=str(self.threads),
                   OMP_NUM_THREADS=str(self.threads), TF_CPP_MIN_LOG_LEVEL="3",
                   # The chief's import path, so a space defined beside the caller's script
                   # unpickles in the worker.
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        if self.threads == 1:
            env["TF_NUM_INTEROP_THREADS"] = "1"
        with open(self._log_path(worker_id), "ab") as log:
            self._processes[worker_id] = subprocess.Popen(
                [sys.executable, "-m", "keras_nas.tuning.worker", spec_path], env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _log_tail(self, worker_id):
        try:
            with open(self._log_path(worker_id), errors="replace") as f:
                lines = f.read().strip().splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _on_exit(self, worker_id, returncode, spec_path, port):
        """A worker left: done, or started again (its trial rerun, or failed after two deaths)."""
        if returncode == 0 or self.stopping:
            return
        if worker_id not in self._servicer.served:
            raise WorkerError(
                f"The worker process {worker_id} exited (code {returncode}) before its first "
                f"trial. The end of its log ({self._log_path(worker_id)}):\n"
                f"{self._log_tail(worker_id)}")
        with self._servicer.lock:
            trial = self.tuner.oracle.ongoing_trials.get(worker_id)
            if trial is not None:
                self.crashes[trial.trial_id] += 1
                if self.crashes[trial.trial_id] >= 2:
                    self._fail_crashed_trial(trial, returncode)
        self.restarts += 1
        if self.restarts > 2 * self.workers + 2:
            raise WorkerError(
                f"Worker processes died {self.restarts} times; the last, {worker_id} (code "
                f"{returncode}), logged:\n{self._log_tail(worker_id)}")
        self._start(worker_id, spec_path, port)

    def run(self):
        """Serves the oracle and supervises the workers until all have left.

        Raises the oracle's `RuntimeError` when too many trials in a row failed, and
        `WorkerError` when the workers cannot run."""
        self.tuner.on_search_begin()
        spec_path = self._prepare()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        add_servicer_to_server(self._servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            for i in range(self.workers):
                self._start(f"worker{i}", spec_path, port)
            while self._processes:
                time.sleep(POLL_S)
                for worker_id, process in list(self._processes.items()):
                    if process.poll() is not None:
                        del self._processes[worker_id]
                        self._on_exit(worker_id, process.returncode, spec_path, port)
                if self.error is not None:
                    raise self.error
        finally:
            self._stop_workers()
            server.stop(grace=None)
            for name in ("data.npz", "spec.pkl"):
                path = os.path.join(self.folder, name)
                if os.path.exists(path):
                    os.remove(path)
        self.tuner.on_search_end()
        if self.failure is not None:
            raise self.failure

    def _stop_workers(self):
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.time() + STOP_GRACE_S
        for process in self._processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes = {}
