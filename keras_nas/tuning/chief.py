"""Parallel trials: the calling process serves the oracle, worker processes train the trials.

`Search(workers=N)` runs its trials this way, on KerasTuner's distributed engine: the chief
(this process) serves the search's oracle over KerasTuner's gRPC service, with the search's
settings, data, deadline and trial files beside it (`keras_nas.tuning.protocol`), and starts
N worker processes here (`keras_nas.tuning.worker`, `cores // N` threads each); more can join
from other machines (`keras-nas worker --chief HOST:PORT`) when it listens beyond loopback.
The chief keeps everything a one-process search keeps: it decides when the budget allows no
more trials, ranks every trial at successive halving's rungs, stores each finished trial's
checkpoint and timings, and calls the search's trial-end listener (`summary.json`, progress)
as each ends.

Faults: a worker process here that dies is started again, and the trial it was running goes
to the next worker that asks (a trial whose workers die twice fails); a worker elsewhere that
stops beating for `WORKER_LOST_S` loses its trial the same way; a worker here that dies before
its first trial stops the search with its log.

```python
chief = Chief(tuner, workers=2, spec=spec, data=((x, y), (x_val, y_val)))
chief.run()   # returns when the search has no trial left; the trials are in tuner.oracle
```
"""

import collections
import json
import os
import pickle
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import keras_tuner

from keras_nas import compat
from keras_nas.tuning import records
from keras_nas.tuning.protocol import (
    CHANNEL_OPTIONS, CHUNK_BYTES, SERVICE, TOKEN_ENV, TokenCheck, arrays_to_bytes, check_listen,
    decode_file, is_loopback)
from keras_nas.tuning.tuner import CHECKPOINT_FILE
from keras_nas.tuning.worker import RUNG_METRIC, TIMINGS_FILE

OracleServicer, MESSAGES, add_servicer_to_server = compat.keras_tuner_oracle_service()
Trial = keras_tuner.engine.trial.Trial
TrialStatus = keras_tuner.engine.trial.TrialStatus

#: Threads serving the workers' calls.
SERVER_THREADS = 8
#: How often the chief looks at its workers.
POLL_S = 0.25
#: A worker that has not beaten for this long is lost (its trial goes to another worker).
WORKER_LOST_S = 20.0
#: Seconds a worker gets to leave after SIGTERM before SIGKILL.
STOP_GRACE_S = 5.0
#: The lines of a worker's log quoted when it fails.
LOG_TAIL_LINES = 15
#: The files of a trial's folder that workers may send.
TRIAL_FILES = (CHECKPOINT_FILE, TIMINGS_FILE)


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

    def CreateTrial(self, request, context):
        with self.lock:
            self.chief.seen(request.tuner_id, asked=True)
            if self.chief.stopping or self.chief.tuner.out_of_time():
                self.chief.stopping = True
                trial = Trial(self.oracle.get_space(), status=TrialStatus.STOPPED)
                answer = MESSAGES.CreateTrialResponse(trial=trial.to_proto())
            else:
                self.oracle.max_trials = self.chief.tuner.trials_allowed()
                answer = super().CreateTrial(request, context)
            if Trial.from_proto(answer.trial).status == TrialStatus.STOPPED:
                self.chief.done_workers.add(request.tuner_id)  # it leaves now
            return answer

    def UpdateTrial(self, request, context):
        if RUNG_METRIC in request.metrics:
            with self.lock:
                halving = self.chief.tuner.halving
                stop = halving is not None and halving.judge(
                    int(request.step), float(request.metrics[RUNG_METRIC]))
            trial = Trial(self.oracle.get_space(), trial_id=request.trial_id,
                          status=TrialStatus.STOPPED if stop else TrialStatus.RUNNING)
            return MESSAGES.UpdateTrialResponse(trial=trial.to_proto())
        with self.lock:
            return super().UpdateTrial(request, context)

    def EndTrial(self, request, context):
        with self.lock:
            self.chief.end_trial(Trial.from_proto(request.trial))
        return MESSAGES.EndTrialResponse()

    def _locked(name):
        """KerasTuner's own `name` call, holding the lock."""
        def call(self, request, context):
            with self.lock:
                return getattr(OracleServicer, name)(self, request, context)

        call.__name__ = name
        return call

    GetSpace = _locked("GetSpace")
    UpdateSpace = _locked("UpdateSpace")
    GetTrial = _locked("GetTrial")
    GetBestTrials = _locked("GetBestTrials")
    del _locked

    # -- the keras_nas.Chief service (keras_nas.tuning.protocol) ---------------------------
    def handler(self):
        methods = {"Spec": grpc.unary_unary_rpc_method_handler(self.spec),
                   "Data": grpc.unary_stream_rpc_method_handler(self.data),
                   "Beat": grpc.unary_unary_rpc_method_handler(self.beat),
                   "PutFile": grpc.unary_unary_rpc_method_handler(self.put_file),
                   "GetFile": grpc.unary_unary_rpc_method_handler(self.get_file)}
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    def spec(self, request, context):
        return self.chief.spec_bytes

    def data(self, request, context):
        content = self.chief.data_bytes
        for start in range(0, len(content), CHUNK_BYTES):
            yield content[start:start + CHUNK_BYTES]

    def beat(self, request, context):
        # Without the lock: a heartbeat must be answered while another call holds it (a
        # Bayesian oracle's `create_trial` can compute for seconds on a busy machine).
        self.chief.seen(str(json.loads(request).get("worker")))
        budget = self.chief.tuner.budget
        deadline = budget.search_deadline() if budget is not None else None
        return json.dumps({"search_deadline": records._plain(deadline)}).encode()

    def _trial_file(self, message, context):
        trial_id, name, content = decode_file(message)
        if name not in TRIAL_FILES or trial_id not in self.oracle.trials:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"no file {name!r} of a trial {trial_id!r} here")
        return os.path.join(self.chief.tuner.get_trial_dir(trial_id), name), content

    def put_file(self, request, context):
        with self.lock:
            path, content = self._trial_file(request, context)
            with open(path + ".part", "wb") as f:
                f.write(content)
            os.replace(path + ".part", path)
        return b""

    def get_file(self, request, context):
        with self.lock:
            path, _ = self._trial_file(request, context)
            if not os.path.exists(path):
                return b""
            with open(path, "rb") as f:
                return f.read()


class Chief:
    """Runs a `NASTuner`'s trials in worker processes (see the module docstring).

    Args:
        tuner: the search's `NASTuner` (its oracle, budget, halving and trial-end listener
            are the chief's).
        workers: how many worker processes to start here.
        spec: what a worker needs besides the data, picklable (`Search._worker_spec`).
        data: `((x, y), (x_val, y_val))` numpy arrays.
        threads: threads per worker here (default: the cores shared out, at least 1).
        listen: `"HOST:PORT"` to serve on (default: a free port on 127.0.0.1, this machine only).
        token: the secret every worker presents (default: a fresh one; required with a
            `listen` beyond loopback).
        folder: where the worker logs go (default: `<project>/workers`).
    """

    def __init__(self, tuner, workers, spec, data, threads=None, listen="127.0.0.1:0",
                 token=None, folder=None):
        self.host, self.port = check_listen(listen, token)
        self.token = token or secrets.token_urlsafe(24)
        self.tuner = tuner
        self.workers = int(workers)
        self.threads = threads or threads_per_worker(self.workers)
        self.folder = folder or os.path.join(tuner.project_dir, "workers")
        self.spec = dict(spec)
        self.data = data
        self.spec_bytes = self.data_bytes = b""
        self.stopping = False
        self.failure = None  # the oracle's "too many consecutive failures" error
        self.error = None  # anything else the chief's part of a trial's end raised
        self.crashes = collections.Counter()  # trial_id -> times its worker died on it
        self.restarts = 0
        self.last_seen = {}  # worker id -> when it last called
        self._asked = set()  # workers that have asked for a trial
        self.done_workers = set()  # workers told that no trial is left
        self._processes = {}
        self._servicer = _ChiefServicer(self)

    # -- the trials -----------------------------------------------------------------------
    def seen(self, worker_id, asked=False):
        self.last_seen[worker_id] = time.time()
        if asked:
            self._asked.add(worker_id)

    def end_trial(self, trial):
        """Ends a worker's trial in the oracle, then does what a one-process search does at
        a trial's end (timings, listener, saved state)."""
        oracle = self.tuner.oracle
        try:
            oracle.end_trial(trial)
        except RuntimeError as e:  # the oracle's limit of consecutive failed trials
            self.failure = e
            self.stopping = True
            for worker_id, running in list(oracle.ongoing_trials.items()):
                if running.trial_id == trial.trial_id:  # the oracle raised before this
                    del oracle.ongoing_trials[worker_id]
        try:
            trial = oracle.trials[trial.trial_id]
            path = os.path.join(self.tuner.get_trial_dir(trial.trial_id), TIMINGS_FILE)
            if os.path.exists(path):
                self.tuner.timings[trial.trial_id] = records.read_json(path)
            if self.tuner.on_trial_end_callback is not None:
                self.tuner.on_trial_end_callback(self.tuner, trial)
            self.tuner.save()
        except Exception as e:  # a bug of the chief's: stop the search and raise it there
            self.error = e
            self.stopping = True

    def _lose_worker(self, worker_id, why):
        """A worker is gone: its trial goes to the next worker that asks, or fails if its
        workers died on it twice."""
        with self._servicer.lock:
            self.last_seen.pop(worker_id, None)
            trial = self.tuner.oracle.ongoing_trials.get(worker_id)
            if trial is None:
                return
            self.crashes[trial.trial_id] += 1
            if self.crashes[trial.trial_id] < 2:
                compat.requeue_trial(self.tuner.oracle, worker_id)
                return
            failed = Trial(trial.hyperparameters, trial_id=trial.trial_id,
                           status=TrialStatus.FAILED)
            failed.message = f"The workers running this trial died twice (the last: {why})."
            self.end_trial(failed)

    # -- the processes here ----------------------------------------------------------------
    def _log_path(self, worker_id):
        return os.path.join(self.folder, f"{worker_id}.log")

    def _prepare(self):
        """What the workers ask for: the spec and the data."""
        os.makedirs(self.folder, exist_ok=True)
        self.spec_bytes = pickle.dumps(dict(self.spec, halving=self.tuner.halving))
        (x, y), (x_val, y_val) = self.data
        self.data_bytes = arrays_to_bytes(x=x, y=y, x_val=x_val, y_val=y_val)

    def _start(self, worker_id):
        env = dict(os.environ)
        env.update({TOKEN_ENV: self.token, "TF_NUM_INTRAOP_THREADS": str(self.threads),
                    "OMP_NUM_THREADS": str(self.threads), "TF_CPP_MIN_LOG_LEVEL": "3",
                    # The chief's import path, so a space defined beside the caller's script
                    # unpickles in the worker.
                    "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        if self.threads == 1:
            env["TF_NUM_INTEROP_THREADS"] = "1"
        command = [sys.executable, "-m", "keras_nas.tuning.worker",
                   "--chief", f"127.0.0.1:{self.port}", "--id", worker_id]
        with open(self._log_path(worker_id), "ab") as log:
            self._processes[worker_id] = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _log_tail(self, worker_id):
        try:
            with open(self._log_path(worker_id), errors="replace") as f:
                lines = f.read().strip().splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _on_exit(self, worker_id, returncode):
        """A worker here left: done, or started again (its trial to the next worker)."""
        if returncode == 0:
            return
        if worker_id not in self._asked:
            raise WorkerError(
                f"The worker process {worker_id} exited (code {returncode}) before its first "
                f"trial. The end of its log ({self._log_path(worker_id)}):\n"
                f"{self._log_tail(worker_id)}")
        self._lose_worker(worker_id, f"{worker_id} exited with code {returncode}")
        if self.stopping:
            return
        self.restarts += 1
        if self.restarts > 2 * self.workers + 2:
            raise WorkerError(
                f"Worker processes died {self.restarts} times; the last, {worker_id} (code "
                f"{returncode}), logged:\n{self._log_tail(worker_id)}")
        self._start(worker_id)

    def _lose_silent_workers(self):
        """Workers elsewhere that stopped beating lose their trials."""
        now = time.time()
        for worker_id, when in list(self.last_seen.items()):
            if worker_id not in self._processes and now - when > WORKER_LOST_S:
                self._lose_worker(worker_id, f"{worker_id} silent for {now - when:.0f} s")

    def _finished(self):
        """No trial is running and every worker here has been told none is left (the final
        model need not wait for their processes to exit)."""
        with self._servicer.lock:
            return (set(self._processes) <= self.done_workers
                    and not self.tuner.oracle.ongoing_trials)

    def serve(self):
        """Starts serving the oracle and the workers' requests; returns the gRPC server."""
        self._prepare()
        # Threads enough that heartbeats and file transfers never wait behind a long oracle
        # call; the oracle's own calls still run one at a time (`_ChiefServicer.lock`).
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_THREADS),
                             interceptors=[TokenCheck(self.token)], options=CHANNEL_OPTIONS)
        add_servicer_to_server(self._servicer, server)
        server.add_generic_rpc_handlers((self._servicer.handler(),))
        self.port = server.add_insecure_port(f"{self.host}:{self.port}")
        server.start()
        if not is_loopback(self.host):
            print(f"keras-nas: serving the search on {self.host}:{self.port}; workers on other "
                  f"machines join with: KERAS_NAS_TOKEN=<the token> keras-nas worker --chief "
                  f"{socket.getfqdn()}:{self.port}", flush=True)
        return server

    def run(self):
        """Serves the oracle and supervises the workers until no trial is left.

        Raises the oracle's `RuntimeError` when too many trials in a row failed, and
        `WorkerError` when the workers cannot run."""
        self.tuner.on_search_begin()
        server = self.serve()
        try:
            for i in range(self.workers):
                self._start(f"worker{i}")
            while not self._finished():
                time.sleep(POLL_S)
                for worker_id, process in list(self._processes.items()):
                    if process.poll() is not None:
                        del self._processes[worker_id]
                        self._on_exit(worker_id, process.returncode)
                self._lose_silent_workers()
                if self.error is not None:
                    raise self.error
        finally:
            self._stop_workers()
            server.stop(grace=None)
        self.tuner.on_search_end()
        if self.failure is not None:
            raise self.failure

    def _stop_workers(self):
        """Ends the worker processes here; those that do not leave within `STOP_GRACE_S` are
        killed, in the background (the chief's work goes on meanwhile)."""
        processes = list(self._processes.values())
        self._processes = {}
        for process in processes:
            if process.poll() is None:
                process.terminate()

        def reap():
            deadline = time.time() + STOP_GRACE_S
            for process in processes:
                try:
                    process.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

        threading.Thread(target=reap, daemon=True, name="reap-workers").start()
