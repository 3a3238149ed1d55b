"""`keras_nas.search()` and the `Search` object behind it."""

import math
import os
import secrets
import shutil
import time

import keras_tuner

from keras_nas import data as data_lib
from keras_nas import validation
from keras_nas.oracles.base import NASOracle
from keras_nas.oracles.registry import make_oracle
from keras_nas.spaces import Space, get_space
from keras_nas.spaces.sizing import sized_space_kwargs
from keras_nas.tuning import records
from keras_nas.tuning.budget import TimeBudget
from keras_nas.tuning.final_model import (
    check_augmentation, check_policy, estimate_seconds, make_final_model)
from keras_nas.tuning.progress import ProgressPrinter
from keras_nas.tuning.pruning import SuccessiveHalving
from keras_nas.tuning.schedules import CosineLearningRate
from keras_nas.tuning.tuner import NASTuner, quiet_dead_edges


#: `max_trials` when it is not given: this many without `max_time`, else no limit but time.
DEFAULT_MAX_TRIALS = 10
NO_TRIAL_LIMIT = 100_000
#: The most candidates of a one-shot search trained stand-alone.
ONESHOT_CANDIDATES = 10

#: The retraining's epochs relative to a trial's, by default: the search finds its best
#: architecture early (the best validation accuracy stops rising after a third of the trials in
#: `docs/BENCHMARKS.md` §4), and 20 epochs test about 0.5 points above 10 on mnist2500.
FINAL_EPOCHS_FACTOR = 4

#: The most of `max_time` kept back for the final model (a retraining then trains the epochs
#: that fit in it).
FINAL_SHARE = 0.35
#: What `max_time` keeps back for the final model before any trial has measured it: this
#: share of `max_time`, at most `FIRST_RESERVE_MAX_S` seconds (plus the saving).
FIRST_RESERVE_SHARE = 0.1
FIRST_RESERVE_MAX_S = 30.0

#: Seconds kept back for saving the returned model (measured: 0.3-1.5 s).
_SAVE_S = 2.0

#: `learning_rate_schedule` name -> `fn(epochs) -> callbacks` for `NASTuner(schedule=...)`.
SCHEDULES = {"cosine": lambda epochs: [CosineLearningRate()], None: None}


#: `workers="auto"` starts worker processes only for a `max_time` of at least this many
#: seconds: the README's 100 s main job scored lower with 2 workers (their start-up and the
#: shorter final retraining left it 0.968 against 0.976, `docs/BENCHMARKS.md` §4).
AUTO_MIN_TIME_S = 200.0
#: ... and at most this many (one per core).
AUTO_MAX_WORKERS = 8


def _check_workers(workers):
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise (ValueError if isinstance(workers, int) and not isinstance(workers, bool)
               else TypeError)(
            f"`workers` must be a positive integer or 'auto', got {workers!r}.")
    return workers


class SearchFailedError(RuntimeError):
    """Raised when a search stops because too many trials in a row failed."""


def _oneshot_strategies():
    from keras_nas.oneshot import ONESHOT_STRATEGIES

    return ONESHOT_STRATEGIES


def strategy_names():
    """Every strategy name `Search` accepts: KerasTuner oracles and one-shot searches."""
    from keras_nas.oracles.registry import STRATEGIES

    return sorted(set(STRATEGIES) | set(_oneshot_strategies()))


def _space_config(space):
    """A space's class, the keras-nas space classes it derives from (`kinds`, the class
    first) and its plain settings (channels, cells, ...), for comparing searches and for
    reading the results without guessing the space from architecture strings."""
    config = {"class": type(space).__name__}
    if isinstance(space, Space):
        config["kinds"] = [c.__name__ for c in type(space).__mro__
                           if isinstance(c, type) and issubclass(c, Space) and c is not Space]
    for name, value in sorted(vars(space).items()):
        if not name.startswith("_") and isinstance(value, (bool, int, float, str, tuple, list,
                                                            type(None))):
            config[name] = list(value) if isinstance(value, tuple) else value
    return config


def _differences(before, now):
    """`["epochs: 2 there, 5 here", ...]` for the settings both dicts record."""
    if before.get("keras_tuner_project"):
        return ["a KerasTuner project that records no keras-nas settings"]
    found = []
    for key in before:
        if key not in now or before[key] == now[key]:
            continue
        if isinstance(before[key], dict) and isinstance(now[key], dict):
            found += [f"{key}.{d}" for d in _differences(before[key], now[key])]
        else:
            found.append(f"{key}: {before[key]!r} there, {now[key]!r} here")
    return found


def _short_architecture(space):
    return getattr(space, "short_architecture", None)


def _architecture_legend(space):
    legend = getattr(space, "architecture_legend", None)
    return legend() if legend is not None else None


class Search:
    """A neural architecture search: space, strategy, budget, and what it found.

    `keras_nas.search()` is `Search(...).fit(...).best_model`; use `Search` itself for the
    trials, the summary and the KerasTuner tuner.

    Args:
        space: a space name (`"cell"`/`"nasbench201"`, `"darts"`, `"mobilenet"`/`"macro"`)
            or a `keras_nas.spaces.Space` / `keras_tuner.HyperModel` instance.
        strategy: a KerasTuner oracle by name (`"random"`, `"bayesian"`, `"hyperband"`,
            `"reinforce"`, `"evolution"`, `"local"`, `"gp"`: `keras_nas.oracles.STRATEGIES`),
            a one-shot weight-sharing search (`"darts"`, `"spos"`, `"enas"`: one supernet
            trained for `epochs`, then the found architecture retrained), or a
            `keras_tuner.Oracle`.
        max_trials: the most architectures to try (default: 10, or as many as `max_time`
            allows when it is given), counting the trained ones: a candidate skipped
            untrained under a hard latency target does not count (at most 20 per trial).
        epochs: training epochs per trial (Hyperband's largest budget).
        batch_size: batch size for numpy inputs.
        objective: the metric to optimize, with its direction (`"val_accuracy"` by default);
            a string or a `keras_tuner.Objective`.
        seed: makes the proposed architectures and initial weights reproducible.
        directory: the folder of all searches.
        project_name: this search's subfolder; its trials, `summary.json` and
            `best_model.keras` are written to `directory/project_name`. Running the same
            search again resumes it (KerasTuner's rule) unless `overwrite=True`.
        overwrite: start afresh, discarding an earlier search of the same name.
        final_model: what is returned (`keras_nas.tuning.final_model`): `"retrain"` (the default)
            trains the best trial's architecture anew on training + validation data for
            `final_epochs`; `"checkpoint"` returns the best trial's own weights. A retraining
            that does not fit in what `max_time` leaves falls back to the checkpoint.
            `summary["final_model"]` records what was done and what it was checked on.
        final_epochs: epochs of the retraining (default: 4 x `epochs`); with `max_time`, as
            many of them as fit in what is left (at least the best trial's best epoch count,
            else the checkpoint is returned).
        final_augmentation: `"shift"` (the default): the retraining shows each image shifted
            by a random number of pixels, up to 10% of its side, each epoch (images given as
            arrays; `keras_nas.tuning.augmentation`); None: the images as they are. Trials
            always see the images as they are.
        max_time: optional wall-clock budget in seconds for the whole call: trials, the
            final model and saving it. Time for the final model is kept back from what the
            trials measured; no trial starts when too little is left, and a running trial
            stops at the deadline.
        successive_halving: stop trials early at 1, 3, 9, ... epochs unless they are in the
            top third of what reached that epoch (`keras_nas.tuning.pruning`); not with Hyperband,
            which has its own schedule.
        learning_rate_schedule: `"cosine"` (the default: the learning rate decays from the
            space's to 0 over each training) or None.
        time_after_search: seconds of `max_time` the caller keeps for its own work after
            `fit` returns (the command's TFLite export and figures).
        started: the `time.time()` that `max_time` counts from (default: when `fit` is
            called); the command passes its own start, so its start-up counts too.
        max_consecutive_failed_trials: stop when this many trials in a row fail.
        max_retries_per_trial: reruns of a trial that raised before it counts as failed.
        verbose: 0 silent, 1 a table row per trial, 2 also Keras' progress bars.
        space_kwargs: keyword arguments for a space given by name. A cell space given by
            name is sized to the data and `max_time` (`keras_nas.spaces.sizing`: cells at up to
            16x16, 16 channels, one cell per stage unless the budget affords more); what
            `space_kwargs` sets always wins.
        strategy_kwargs: keyword arguments for a strategy given by name.
        on_trial_end: optional `fn(record)` called with each finished trial's record (a dict
            as in `summary["trials"]`), after `summary.json` is written.
        latency_ms: a latency target in milliseconds (batch 1, TFLite). With it every trial's
            latency is measured (or predicted, see `hardware`) and the search maximizes
            `latency_objective` instead of `objective`.
        latency_objective: `"mnasnet"` (MnasNet's soft reward ACC*(LAT/T)^-0.07, the
            default), `"mnasnet_hard"`, `"hard"` (a hard constraint) or `"tunas"` (TuNAS's
            absolute reward), or a `keras_nas.results.objectives.Objective`.
        hardware: `"measure"` (TFLite latency measured with LiteRT in a fresh process),
            `"predict"` (with `latency_predictor`) or None; each trial then records
            `latency_ms`, `params`, `macs`, `flops` and `size_bytes`. Defaults to
            `"measure"` when `latency_ms` is given.
        latency_predictor: a fitted `keras_nas.hardware.predictor.LatencyPredictor` for
            `hardware="predict"`.
        latency_device: a `keras_nas.hardware.RemoteDevice` (a phone or board running
            `tools/litert_server.py`) to measure every trial on, instead of this machine.
        workers: trials trained at once, each in its own process with `cores // workers`
            threads (`keras_nas.tuning.chief`); this process serves the strategy, writes
            `summary.json` after every trial and makes the final model. `"auto"` (the
            default): one per core when that measured faster, i.e. for a `max_time` of at
            least 200 s on numpy data with a tuner-driven strategy and no latency timed on this
            machine (on 2 cores at 300 s: 1.4-1.6x the trials, the same or higher test
            accuracy, `docs/BENCHMARKS.md` §4), else 1 (here, one trial at a time). With more than one,
            a space, callbacks or latency predictor of your own must be picklable, from a
            module the workers can import (not `__main__`; "auto" then stays at 1).
        listen: `"HOST:PORT"` the search serves its workers on (default: a free port on
            127.0.0.1, this machine only). Beyond loopback (e.g. `"0.0.0.0:7000"`), workers
            on other machines join with `keras-nas worker --chief HOST:PORT`, and a `token`
            is required.
        token: the secret every worker must present (default: a fresh one for the workers
            started here); a worker elsewhere reads it from `KERAS_NAS_TOKEN`.
        compilation_cache: on JAX, where a short trial is mostly XLA compiling its steps,
            JAX's persistent compilation cache keeps what was compiled, so the same program
            (an architecture tried again, the best one's retraining, a re-run or resumed
            search, a worker's trials) is read from disk instead
            (`keras_nas.tuning.compile_cache`): `"auto"` (the default: in
            `~/.cache/keras_nas/jax`, unless JAX was given a folder already), a folder path,
            or None (JAX left as it is). Nothing is done on TensorFlow.

    Example:

    ```python
    s = keras_nas.Search(space="cell", strategy="random", max_trials=5, epochs=2)
    s.fit(x, y, validation_data=(x_val, y_val))
    s.best_model.evaluate(x_test, y_test)
    s.best_architecture, len(s.trials)
    ```
    """

    def __init__(self, space="cell", strategy="bayesian", *, max_trials=None, epochs=5,
                 batch_size=32, objective="val_accuracy", seed=None,
                 directory="keras_nas_results", project_name="search", overwrite=False,
                 final_model="retrain", final_epochs=None, final_augmentation="shift",
                 max_time=None, successive_halving=True, learning_rate_schedule="cosine",
                 time_after_search=0.0, started=None,
                 max_consecutive_failed_trials=3, max_retries_per_trial=0, verbose=1,
                 space_kwargs=None, strategy_kwargs=None, on_trial_end=None,
                 latency_ms=None, latency_objective="mnasnet", hardware=None,
                 latency_predictor=None, latency_device=None, workers="auto", listen=None,
                 token=None, compilation_cache="auto"):
        if max_trials is None:  # bounded by the time budget when there is one
            max_trials = DEFAULT_MAX_TRIALS if max_time is None else NO_TRIAL_LIMIT
        self.max_trials = validation.check_int(max_trials, "max_trials", minimum=1)
        self.epochs = validation.check_int(epochs, "epochs", minimum=1)
        self.batch_size = validation.check_int(batch_size, "batch_size", minimum=1)
        self.final_model = check_policy(final_model)
        self.final_augmentation = check_augmentation(final_augmentation)
        self.final_epochs = (FINAL_EPOCHS_FACTOR * self.epochs if final_epochs is None
                             else validation.check_int(final_epochs, "final_epochs", minimum=1))
        self.successive_halving = bool(successive_halving)
        self.started = validation.check_number(started, "started", allow_none=True)
        self.after_search_s = validation.check_number(
            time_after_search, "time_after_search", minimum=0, unit="seconds")
        self.learning_rate_schedule = validation.check_choice(
            learning_rate_schedule, "learning_rate_schedule", tuple(SCHEDULES))
        self.max_consecutive_failed_trials = validation.check_int(
            max_consecutive_failed_trials, "max_consecutive_failed_trials", minimum=1)
        self.max_retries_per_trial = validation.check_int(
            max_retries_per_trial, "max_retries_per_trial", minimum=0)
        self.workers = None if workers == "auto" else _check_workers(workers)
        self._listening = listen is not None
        # Trials in worker processes: more than one here, or any that join from elsewhere
        # ("auto" is decided in `fit`, from the data and the budget).
        self.parallel = self._listening or (self.workers or 1) > 1
        self.listen = "127.0.0.1:0" if listen is None else listen
        self.token = token
        from keras_nas.tuning.compile_cache import check_setting

        self.compilation_cache = check_setting(compilation_cache)
        self.compilation_cache_dir = None
        from keras_nas.tuning.protocol import check_listen

        check_listen(self.listen, token)
        self.max_time = max_time
        if max_time is not None:
            validation.check_number(max_time, "max_time", positive=True, unit="seconds")
        self.seed = validation.check_int(seed, "seed", minimum=0, allow_none=True)
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise ValueError(f"`directory` must be a folder path, got {directory!r}.")
        if not isinstance(project_name, str) or not project_name or os.sep in project_name:
            raise ValueError(f"`project_name` must be a plain folder name, got {project_name!r}.")
        self.directory = os.fspath(directory)
        self.project_name = project_name
        self.overwrite = bool(overwrite)
        self.verbose = int(verbose)
        if on_trial_end is not None and not callable(on_trial_end):
            raise ValueError(f"`on_trial_end` must be callable, got {on_trial_end!r}.")
        self.on_trial_end = on_trial_end
        self.reward = None
        if latency_ms is not None:
            validation.check_number(latency_ms, "latency_ms", positive=True, unit="milliseconds")
            from keras_nas.results.objectives import make_objective

            base = objective if isinstance(objective, str) else "val_accuracy"
            self.reward = make_objective(latency_objective, float(latency_ms), metric=base)
            hardware = hardware or "measure"
        if hardware not in (None, "measure", "predict"):
            raise ValueError(f"`hardware` must be 'measure', 'predict' or None, got {hardware!r}.")
        if hardware == "predict" and latency_predictor is None:
            raise ValueError("`hardware='predict'` needs a fitted `latency_predictor`.")
        self.hardware = hardware
        self.latency_predictor = latency_predictor
        self.latency_device = latency_device
        self.latency_ms = None if latency_ms is None else float(latency_ms)
        self.objective = keras_tuner.Objective(objective, "max") if (
            isinstance(objective, str) and objective == "val_accuracy") else objective
        if self.reward is not None:
            self.objective = self.reward.keras_tuner_objective()
        self.space = self._resolve_space(space, space_kwargs or {})
        self._space_arg, self._space_kwargs = space, dict(space_kwargs or {})
        self.space_name = space if isinstance(space, str) else type(space).__name__
        self.strategy = strategy
        self.strategy_name = strategy if isinstance(strategy, str) else type(strategy).__name__
        self.strategy_kwargs = dict(strategy_kwargs or {})
        if not isinstance(strategy, keras_tuner.Oracle) and (
                not isinstance(strategy, str) or strategy not in strategy_names()):
            raise ValueError(
                f"Unknown `strategy` {strategy!r}: expected one of {strategy_names()} "
                "or a keras_tuner.Oracle instance."
            )
        self.oneshot = isinstance(strategy, str) and strategy in _oneshot_strategies()
        if self.oneshot and not isinstance(self.space, Space):
            raise ValueError(f"One-shot `strategy`={strategy!r} needs a keras_nas space, "
                             f"got {type(self.space).__name__}.")
        self.tuner = None
        self.budget = None
        self.final_model_info = None
        self.oneshot_search = None
        self.oneshot_result = None
        self.resumed = False
        self.data = None
        self.best_model = None
        self.best_hyperparameters = None
        self.best_info = {}
        self._started = None
        self._chief = None

    @staticmethod
    def _resolve_space(space, space_kwargs):
        if isinstance(space, str):
            return get_space(space, **space_kwargs)
        if isinstance(space, keras_tuner.HyperModel):
            if space_kwargs:
                raise ValueError("`space_kwargs` applies only to a space given by name.")
            return space
        raise ValueError(
            f"`space` must be a space name or a keras_tuner.HyperModel, got {space!r}."
        )

    # -- paths --------------------------------------------------------------------------
    @property
    def results_dir(self):
        """The folder of this search: trials, `summary.json`, `best_model.keras`."""
        return os.path.join(self.directory, self.project_name)

    @property
    def summary_path(self):
        return os.path.join(self.results_dir, "summary.json")

    @property
    def best_model_path(self):
        return os.path.join(self.results_dir, "best_model.keras")

    # -- running ------------------------------------------------------------------------
    def _check_output_dir(self):
        folder = os.path.abspath(self.results_dir)
        probe_dir = folder
        while not os.path.exists(probe_dir):
            probe_dir = os.path.dirname(probe_dir)
        if not os.path.isdir(probe_dir) or not os.access(probe_dir, os.W_OK | os.X_OK):
            raise ValueError(
                f"`directory` {self.directory!r} is not writable: cannot create {folder!r}."
            )

    def fit(self, x=None, y=None, *, validation_data=None, validation_split=0.2,
            dataset=None, data_dir=None, num_classes=None, callbacks=None):
        """Runs the search and sets `best_model`. Returns `self`.

        A folder that holds an earlier run of the same search (same space, strategy,
        objective, data shape, epochs and seed) resumes it; one that holds another search
        raises `ValueError` naming the difference, and is left as it is.

        Args:
            x: numpy images `(samples, height, width[, channels])` or a `tf.data.Dataset`
                of `(x, y)` pairs; None to use `dataset`.
            y: integer labels for numpy `x`.
            validation_data: `(x_val, y_val)` (or a dataset when `x` is one); when None,
                `validation_split` of `x` is held out (seeded by `seed`).
            validation_split: the held-out share when there is no `validation_data`.
            dataset: `"digits"` (the embedded default, used when neither `x` nor `dataset`
                is given), a `.npz` file (see `keras_nas.data.load_npz`) or the name of a
                prepared TensorFlow Datasets set.
            data_dir: TensorFlow Datasets data folder.
            num_classes: class count (default: inferred from the labels).
            callbacks: Keras callbacks for every trial's `fit` (a TensorBoard callback gets a
                log folder per trial, with KerasTuner's HParams).
        """
        self._started = time.time() if self.started is None else self.started
        self.budget = TimeBudget(self.max_time, started=self._started)
        if self.after_search_s:
            self.budget.reserve("after_search", self.after_search_s)
        if self.max_time is not None:
            # Until a trial has measured what the final model costs, keep back enough for
            # the cheapest policy (restore the best checkpoint, check it, save it).
            self.budget.reserve("final_model", _SAVE_S + min(FIRST_RESERVE_SHARE * self.max_time,
                                                             FIRST_RESERVE_MAX_S))
        previous = None if self.overwrite else self._previous_settings()
        if self.seed is None:
            # One seed for everything, the validation split included: the folder's when the
            # search resumes, else a fresh one that summary.json records.
            recorded = (previous or {}).get("seed")
            self.seed = int(recorded) if recorded is not None else secrets.randbelow(2**31)
        self.data = data_lib.prepare(
            x, y, validation_data=validation_data, validation_split=validation_split,
            dataset=dataset, data_dir=data_dir, num_classes=num_classes,
            batch_size=self.batch_size, seed=self.seed,
        )
        self._size_space(previous)
        if self.oneshot and self.data.is_dataset:
            raise ValueError(f"`x`: strategy {self.strategy!r} takes numpy arrays, "
                             "not a tf.data.Dataset.")
        self._resolve_workers(callbacks)
        if self.parallel and self.data.is_dataset:
            raise ValueError(f"`x`: `workers`={self.workers} takes numpy arrays (or a "
                             "`dataset` name or file), not a tf.data.Dataset.")
        worker_spec = self._worker_spec(callbacks) if self.parallel else None
        self._check_output_dir()
        self._start_or_resume(previous)
        oracle = self._oneshot_oracle() if self.oneshot else self._make_oracle()
        self._progress = self._progress_printer() if self.verbose >= 1 else None
        self.tuner = NASTuner(
            oracle, self.space, seed=self.seed, budget=self.budget,
            halving=self._halving(oracle), schedule=SCHEDULES[self.learning_rate_schedule],
            on_trial_end_callback=self._on_trial_end, hardware=self.hardware,
            latency_predictor=self.latency_predictor, latency_device=self.latency_device,
            reward=self.reward, directory=self.directory, project_name=self.project_name,
            overwrite=False,
        )
        if self._progress is not None:
            ended = [t for t in self.tuner.oracle.trials.values()
                     if t.status not in ("RUNNING", "IDLE")]
            skipped = sum(1 for t in ended if NASOracle.was_skipped(t))
            self._progress.resume(done=len(ended) - skipped, skipped=skipped)
        from keras_nas.tuning.compile_cache import use_jax_compilation_cache

        self.compilation_cache_dir = use_jax_compilation_cache(self.compilation_cache)
        self._write_summary()
        train, val = self.data.train, self.data.validation
        fit_args = ((train,) if self.data.is_dataset else train)
        try:
            if worker_spec is not None:
                from keras_nas.tuning.chief import Chief

                self.tuner.oracle.verbose = 1 if self.verbose >= 2 else 0
                self._chief = Chief(self.tuner, self.workers, worker_spec, data=(train, val),
                                    listen=self.listen, token=self.token)
                self._chief.run()
            else:
                self.tuner.search(
                    *fit_args, validation_data=val, epochs=self.epochs,
                    batch_size=self.batch_size, callbacks=list(callbacks or []),
                    verbose=1 if self.verbose >= 2 else 0,
                )
        except RuntimeError as e:
            if "consecutive failures" not in str(e):
                raise
            self._write_summary()
            raise SearchFailedError(self._failure_message()) from None
        self._write_summary()
        self._finish()
        self._write_summary()
        return self

    def _resolve_workers(self, callbacks):
        """Decides `workers="auto"` (`_auto_workers`), and so whether trials run in workers."""
        if self.workers is None:
            self.workers = self._auto_workers(callbacks)
            self.parallel = self._listening or self.workers > 1

    def _auto_workers(self, callbacks):
        """`workers="auto"`: one worker process per core (at most `AUTO_MAX_WORKERS`) for a
        search bounded by at least `AUTO_MIN_TIME_S` of `max_time` on numpy data, by a
        tuner-driven strategy, whose settings can travel to worker processes, and that does
        not time latency on this machine (the workers' training would disturb it); else 1
        (the trials run here)."""
        from keras_nas.tuning.chief import available_cores

        count = min(available_cores(), AUTO_MAX_WORKERS)
        measures_here = self.hardware == "measure" and self.latency_device is None
        if (count < 2 or self.max_time is None or self.max_time < AUTO_MIN_TIME_S
                or self.oneshot or self.data.is_dataset or measures_here):
            return 1
        try:
            self._worker_spec(callbacks)
        except ValueError:  # e.g. a space defined in __main__: it stays in this process
            return 1
        return count

    def _worker_spec(self, callbacks):
        """What each worker process needs besides the data (`keras_nas.tuning.worker`),
        checked to travel there before any work starts."""
        import pickle

        spec = {"space": self.space, "objective": self.objective, "seed": self.seed,
                "schedule": self.learning_rate_schedule,
                "hardware": self.hardware, "latency_predictor": self.latency_predictor,
                "latency_device": self.latency_device, "reward": self.reward,
                "epochs": self.epochs, "batch_size": self.batch_size,
                "callbacks": list(callbacks or []), "verbose": 1 if self.verbose >= 2 else 0,
                "compilation_cache": self.compilation_cache}
        argument = {"space": "space", "callbacks": "callbacks", "objective": "objective",
                    "latency_predictor": "latency_predictor",
                    "latency_device": "latency_device", "reward": "latency_objective"}
        for key, value in spec.items():
            name = argument.get(key, key)
            classes = {type(v) for v in (value if isinstance(value, list) else [value])}
            if any(c.__module__ == "__main__" for c in classes):
                raise ValueError(
                    f"`{name}`: with `workers`={self.workers} its class must come from a "
                    "module the worker processes can import, not from `__main__` (move "
                    "it into a .py file beside your script and import it from there).")
            try:
                pickle.dumps(value)
            except Exception as e:
                raise ValueError(f"`{name}` must be picklable to reach the worker processes "
                                 f"of `workers`={self.workers}: {e}") from None
        return spec

    def _size_space(self, previous=None):
        """Sizes a space given by name to the data and budget (`keras_nas.spaces.sizing`).

        A resumed search keeps the sizes its folder recorded (`previous`), so extending its
        `max_time` continues the same search."""
        if isinstance(self._space_arg, str):
            kwargs = sized_space_kwargs(self._space_arg, self.data.input_shape,
                                        self.data.sizes()[0], self.epochs, self.max_time,
                                        self._space_kwargs)
            recorded = (previous or {}).get("space_config") or {}
            if (previous or {}).get("space") == self._space_arg:
                kwargs.update({k: recorded[k] for k in kwargs
                               if k in recorded and k not in self._space_kwargs})
            self.space = self._configured(self._resolve_space(self._space_arg, kwargs))
        elif isinstance(self.space, Space):
            self._configured(self.space)

    def _configured(self, space):
        return space.configure(input_shape=self.data.input_shape,
                               num_classes=self.data.num_classes)

    # -- one folder, one search ---------------------------------------------------------
    def settings(self):
        """What makes two runs the same search (a folder resumes only for equal settings)."""
        objective = self.objective
        return records._plain({
            "space": self.space_name,
            "space_config": _space_config(self.space),
            "strategy": self.strategy_name,
            "objective": (objective if isinstance(objective, str) else
                          {"name": objective.name, "direction": objective.direction}),
            "latency_target_ms": self.latency_ms,
            "latency_objective": self._reward_config(),
            "hardware": self.hardware,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "input_shape": list(self.data.input_shape) if self.data else None,
            "num_classes": self.data.num_classes if self.data else None,
            "seed": self.seed,
        })

    def _previous_settings(self):
        """The settings of the search this folder holds (None if it holds none)."""
        if os.path.exists(self.summary_path):
            summary = records.read_json(self.summary_path)
            # Folders of keras-nas 0.1 have no "settings"; their summary names the main ones.
            return summary.get("settings") or {
                k: summary.get(k) for k in ("space", "strategy", "epochs", "input_shape",
                                            "num_classes", "seed") if k in summary}
        if os.path.exists(os.path.join(self.results_dir, "oracle.json")):
            return {"keras_tuner_project": True}
        return None

    def _start_or_resume(self, previous):
        """Resumes the search this folder holds (`previous`: its settings), or starts a new
        one (recording its settings before any work); another search in the folder is a
        `ValueError`, raised before anything in the folder changes."""
        self.resumed = previous is not None and not self.overwrite
        if self.resumed:
            differences = _differences(previous, self.settings())
            if differences:
                raise ValueError(
                    f"The folder {self.results_dir!r} holds another search ("
                    f"{'; '.join(differences)}): pass `overwrite`=True to replace it, or "
                    "choose another folder.")
            return
        if self.overwrite and os.path.isdir(self.results_dir):
            shutil.rmtree(self.results_dir)
        os.makedirs(self.results_dir, exist_ok=True)
        self._write_summary()

    # -- strategies ---------------------------------------------------------------------
    def _make_oracle(self):
        if isinstance(self.strategy, keras_tuner.Oracle):
            return self.strategy
        return make_oracle(
            self.strategy, objective=self.objective, max_trials=self.max_trials,
            epochs=self.epochs, seed=self.seed,
            max_consecutive_failed_trials=self.max_consecutive_failed_trials,
            max_retries_per_trial=self.max_retries_per_trial, **self.strategy_kwargs,
        )

    def _oneshot_oracle(self):
        """The trials of a weight-sharing search: its supernet's best candidates
        (`keras_nas.oneshot.runner`), trained stand-alone one per trial."""
        from keras_nas.oneshot.runner import run_oneshot
        from keras_nas.oracles.candidates import CandidateOracle

        self.oneshot_result, self.oneshot_search = run_oneshot(
            self.strategy, self.space, self.data.train, self.data.validation,
            epochs=self.epochs, batch_size=self.batch_size, results_dir=self.results_dir,
            max_candidates=min(self.max_trials, ONESHOT_CANDIDATES), seed=self.seed,
            verbose=int(self.verbose >= 1), strategy_kwargs=self.strategy_kwargs)
        candidates = [self.space.decode(c["architecture"])
                      for c in self.oneshot_result["candidates"]]
        return CandidateOracle(
            candidates, objective=self.objective,
            max_consecutive_failed_trials=self.max_consecutive_failed_trials,
            max_retries_per_trial=self.max_retries_per_trial)

    # -- time -----------------------------------------------------------------------------
    def _elapsed(self):
        return time.time() - self._started if self._started else 0.0

    def _halving(self, oracle):
        """Successive halving over the trials' epochs, unless off or Hyperband's oracle."""
        if not self.successive_halving or isinstance(oracle, keras_tuner.oracles.HyperbandOracle):
            return None
        objective = self.reward.metric if self.reward is not None else self.objective
        direction = getattr(objective, "direction", None) or "max"
        return SuccessiveHalving(max_epochs=self.epochs, direction=direction)

    def _progress_printer(self):
        """The trial table: with a latency target, accuracy and latency, ranked by reward."""
        if self.reward is not None:
            shown = dict(objective=self.reward.metric, metrics=("latency_ms",),
                         rank=lambda record: record.get("score"))
        else:
            shown = dict(objective=getattr(self.objective, "name", str(self.objective)),
                         direction=getattr(self.objective, "direction", None) or "max")
        printer = ProgressPrinter(
            max_trials=self.max_trials if self.max_trials < NO_TRIAL_LIMIT else None,
            max_time=self.max_time,
            describe=_short_architecture(self.space), legend=_architecture_legend(self.space),
            **shown)
        return printer.start(elapsed=self._elapsed())

    def _finish(self):
        """Makes the returned model by the `final_model` policy, in the time that is left."""
        best = self.tuner.oracle.get_best_trials(1)
        if not best or best[0].status != "COMPLETED":
            raise RuntimeError(
                f"No trial of the search in {self.results_dir!r} completed; "
                "see summary.json for each trial's error."
            )
        best = best[0]
        record = self._record_of(best)
        if record.get("skipped"):  # even the best candidate was over a hard latency target
            raise RuntimeError(
                f"No candidate met the latency target of {self.reward.target:g} ms: every trial "
                f"was over it and none was trained (the best: {record['skipped']}); "
                f"see {self.summary_path}.")
        self.best_hyperparameters = best.hyperparameters
        self.budget.reserve("final_model", 0.0)
        time_left = self.budget.left() - self.budget.reserved() - _SAVE_S
        epochs = best.hyperparameters.values.get("tuner/epochs", self.final_epochs)
        with quiet_dead_edges():
            model, info = make_final_model(
                self.final_model, self.tuner, best, record, self.data, self.batch_size,
                time_left=time_left, seed=self.seed, epochs=epochs,
                augmentation=self.final_augmentation, verbose=1 if self.verbose >= 2 else 0)
        self.best_model = model
        model.save(self.best_model_path)
        info["architecture"] = record["architecture"]
        info["search_validation_accuracy"] = record["metrics"].get(self._accuracy_metric())
        self.final_model_info = info

    def _record_of(self, trial):
        return records.trial_record(trial, self.space, self.tuner.timings.get(trial.trial_id))

    def _accuracy_metric(self):
        if self.reward is not None:
            return self.reward.metric
        return getattr(self.objective, "name", str(self.objective))

    def _reserve_final_model(self):
        """Keeps back the time the final model will take, from the best trial so far."""
        best = self.tuner.oracle.get_best_trials(1)
        if not best or best[0].status != "COMPLETED":
            return
        n_train, n_val = self.data.sizes()
        epochs = best[0].hyperparameters.values.get("tuner/epochs", self.final_epochs)
        seconds = estimate_seconds(self.final_model, self._record_of(best[0]), n_train, n_val,
                                   epochs)
        # A retraining fits its epochs to what is left, so it need not hold back more than
        # its share of the budget.
        cap = FINAL_SHARE * self.max_time if self.max_time is not None else math.inf
        self.budget.reserve("final_model", _SAVE_S + min(seconds, cap))

    def _failure_message(self):
        failed = [t for t in self.trials if t["status"] == "FAILED"]
        first = failed[0] if failed else None
        where = f"trial {first['trial_id']}: {first['error']}" if first else "unknown"
        return (f"The search stopped: {self.max_consecutive_failed_trials} trials in a row "
                f"failed. The first failure was {where} (every trial's error is in "
                f"{self.summary_path}).")

    # -- results ------------------------------------------------------------------------
    @property
    def best_architecture(self):
        """The architecture string of the best trial (None before `fit`)."""
        return self.summary.get("best_architecture")

    @property
    def trials(self):
        """Every trial as a dict (see `summary.json`), in trial order."""
        if self.tuner is None:
            return []
        oracle = self.tuner.oracle
        rows = [
            records.trial_record(t, self.space, self.tuner.timings.get(t.trial_id))
            for t in oracle.trials.values()
        ]
        return sorted(rows, key=lambda r: (r["number"] is None, r["number"], r["trial_id"]))

    @property
    def summary(self):
        """The search as a dict: settings, the best trial and every trial."""
        trials = self.trials
        best = self.tuner.oracle.get_best_trials(1) if self.tuner else []
        best = best[0] if best and best[0].status == "COMPLETED" else None
        best_record = next((r for r in trials if best and r["trial_id"] == best.trial_id), None)
        objective = self.tuner.oracle.objective if self.tuner else None
        return {
            "space": self.space_name,
            "strategy": self.strategy_name,
            "objective": ({"name": objective.name, "direction": objective.direction}
                          if objective is not None and hasattr(objective, "direction") else None),
            "max_trials": self.max_trials if self.max_trials < NO_TRIAL_LIMIT else None,
            "max_time": self.max_time,
            "epochs": self.epochs,
            "latency_target_ms": self.latency_ms,
            "latency_objective": self._reward_config(),
            "seed": self.seed,
            "input_shape": list(self.data.input_shape) if self.data else None,
            "num_classes": self.data.num_classes if self.data else None,
            "settings": self.settings(),
            "elapsed_s": self._elapsed() if self._started else None,
            "best_trial_id": best_record["trial_id"] if best_record else None,
            "best_architecture": best_record["architecture"] if best_record else None,
            "best_model": (os.path.basename(self.best_model_path)
                           if self.best_model is not None else None),
            "final_model": self.final_model_info,
            "budget": self.budget.to_dict() if self.budget is not None else None,
            "workers": self._workers_summary(),
            "compilation_cache": self.compilation_cache_dir,
            "best": dict(self.best_info),
            "oneshot": self._oneshot_summary(),
            "controller_history": self._controller_history(),
            "trials": trials,
        }

    def _workers_summary(self):
        """How the trials ran: processes and threads in each (None: here, one at a time)."""
        if not self.parallel:
            return None
        from keras_nas.tuning.chief import threads_per_worker

        chief, count = self._chief, self.workers or 1
        return {"count": count,
                "threads_per_worker": chief.threads if chief else threads_per_worker(count),
                "restarts": chief.restarts if chief else 0}

    def _reward_config(self):
        """The latency reward as data: its score's name, its class and its settings."""
        if self.reward is None:
            return None
        return {"name": self.reward.name, "class": type(self.reward).__name__,
                **self.reward.get_config()}

    def _oneshot_summary(self):
        """The weight-sharing phase of a one-shot search (without its controller history)."""
        if self.oneshot_result is None:
            return None
        return {k: v for k, v in self.oneshot_result.items() if k != "controller_history"}

    def _controller_history(self):
        """The REINFORCE controller's updates (reward, baseline, entropy, probabilities)."""
        history = getattr(self.tuner.oracle, "controller_history", None) if self.tuner else None
        if history is None and self.oneshot_result is not None:
            history = self.oneshot_result.get("controller_history")
        return records._plain(list(history)) if history else None

    def pareto_front(self, objectives=None):
        """The completed trials no other trial beats on every objective, best score first.

        Args:
            objectives: `{metric: "max" | "min"}`; default accuracy (max) against
                `latency_ms` and `params` (min), those the trials recorded.

        Example: `[t["architecture"] for t in search.pareto_front()]`.
        """
        from keras_nas.results.objectives import pareto_front

        trials = [t for t in self.trials if t["status"] == "COMPLETED"]
        if objectives is None:
            metric = self.reward.metric if self.reward is not None else getattr(
                self.tuner.oracle.objective, "name", "val_accuracy")
            objectives = {metric: "max"}
            for cost in ("latency_ms", "params"):
                if trials and all(t["metrics"].get(cost) is not None for t in trials):
                    objectives[cost] = "min"
        return sorted(pareto_front(trials, objectives), key=lambda t: -(t["score"] or 0.0))

    def _write_summary(self):
        records.write_json(self.summary_path, self.summary)

    def record_best(self, **info):
        """Adds facts about the returned model (TFLite size, latency...) to `summary["best"]`
        and rewrites `summary.json`."""
        self.best_info.update(info)
        self._write_summary()

    def _on_trial_end(self, tuner, trial):
        self._reserve_final_model()
        self._write_summary()
        record = records.trial_record(trial, self.space, tuner.timings.get(trial.trial_id))
        if self._progress is not None:
            self._progress.on_trial_end(record)
        if self.on_trial_end is not None:
            self.on_trial_end(record)


def search(x=None, y=None, *, validation_data=None, validation_split=0.2, dataset=None,
           data_dir=None, num_classes=None, callbacks=None, **kwargs):
    """Searches for an architecture and returns it trained: a compiled `keras.Model`.

    Args:
        x, y, validation_data, validation_split, dataset, data_dir, num_classes, callbacks:
            the data, as for `Search.fit` (with nothing given, scikit-learn's digits).
        **kwargs: the search settings, as for `Search` (`space`, `strategy`, `max_trials`,
            `epochs`, `seed`, `directory`, `project_name`, `overwrite`, `final_model`, ...).

    Example:

    ```python
    import keras_nas
    model = keras_nas.search(x_train, y_train, validation_data=(x_val, y_val),
                             space="cell", strategy="bayesian", max_trials=20, epochs=5)
    model.evaluate(x_test, y_test)
    model.save("best.keras")   # loads again after `import keras_nas`
    ```
    """
    return Search(**kwargs).fit(
        x, y, validation_data=validation_data, validation_split=validation_split,
        dataset=dataset, data_dir=data_dir, num_classes=num_classes, callbacks=callbacks,
    ).best_model
