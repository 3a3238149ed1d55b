"""`NASTuner`: the KerasTuner tuner of a keras-nas search, and what one trial does.

```python
tuner = NASTuner(oracle, space, directory="results", project_name="search", max_time=600)
tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
```
"""

import contextlib
import math
import os
import time
import warnings

import keras
import keras_tuner
import numpy as np

from keras_nas.estimation.screening import proxy_function
from keras_nas.oracles.base import SKIPPED_METRIC, TARGET_RATIO_METRIC, NASOracle
from keras_nas.spaces import Space
from keras_nas.tuning import trial_memory
from keras_nas.tuning.budget import EpochTimer, StopAtDeadline, TimeBudget
from keras_nas.tuning.training_state import BuildTrainingState
from keras_nas.tuning.trial_checkpoint import BestEpochWeights, restore_checkpoint, write_checkpoint


#: A trial's best-epoch weights, in its trial folder.
CHECKPOINT_FILE = "checkpoint.weights.npz"

#: Candidates skipped untrained as infeasible do not use up `max_trials`; at most this many
#: per trial of the budget are proposed, so a search whose every candidate is over its
#: latency target still ends.
SKIPPED_PER_TRIAL = 20


class NASTuner(keras_tuner.Tuner):
    """The KerasTuner `Tuner` of a keras-nas search.

    On top of `keras_tuner.Tuner` it: honours Hyperband's per-trial epochs and warm starts for
    any oracle; fails a trial whose loss becomes NaN; records every trial's parameter count,
    build, fit and per-epoch seconds; keeps to a wall-clock budget (no trial starts when too
    little is left, and a running one stops at the deadline); counts only trained candidates
    against the oracle's `max_trials` (one skipped untrained as infeasible costs a latency
    measurement, not a training: see `trials_allowed`); stops trials early by
    successive halving; has a keras-nas oracle propose each network once, however the space
    spells it (`Space.architecture_key`); trains every candidate with the same learning-rate
    schedule; seeds each trial's weights; and tells a listener about every trial that ends
    (for `summary.json` and progress). It stays a plain KerasTuner tuner: any `Oracle`, resume,
    and the distributed chief/worker mode work as they do for KerasTuner's own tuners.

    Args:
        oracle: a `keras_tuner.Oracle`.
        hypermodel: the search space (a `keras_nas.spaces.Space` or any `HyperModel`).
        seed: optional integer; trial `n` trains with `keras.utils.set_random_seed(seed + n)`.
        max_time: optional wall-clock budget in seconds, counted from `search()` (a simple
            form of `budget`).
        budget: optional `keras_nas.tuning.budget.TimeBudget`: the trials end by its
            `search_deadline()`, which keeps back time for what follows the search.
        halving: optional `keras_nas.tuning.pruning.SuccessiveHalving` over the trials' epochs (not
            applied to Hyperband's trials, which have a schedule of their own).
        schedule: optional `fn(epochs) -> [keras callbacks]`, the learning-rate schedule of
            every trial (e.g. `lambda epochs: [CosineLearningRate()]`).
        on_trial_end_callback: optional `fn(tuner, trial)` called after a trial has ended.
        **kwargs: passed to `keras_tuner.Tuner` (`directory`, `project_name`, `overwrite`...).
    """

    def __init__(self, oracle, hypermodel, seed=None, max_time=None, budget=None,
                 halving=None, schedule=None, on_trial_end_callback=None, hardware=None,
                 latency_predictor=None, latency_device=None, reward=None, **kwargs):
        self.seed = seed
        self.max_time = max_time
        self.budget = budget
        self.halving = halving
        self.schedule = schedule
        self.hardware = hardware
        self.latency_predictor = latency_predictor
        self.latency_device = latency_device
        self.reward = reward
        self.on_trial_end_callback = on_trial_end_callback
        self.timings = {}
        super().__init__(oracle, hypermodel, **kwargs)
        self.trial_budget = oracle.max_trials  # trained trials; see `trials_allowed`
        if (isinstance(oracle, NASOracle) and isinstance(hypermodel, Space)
                and oracle.architecture_key is None):
            # A network tried under one spelling is not proposed again under another.
            oracle.architecture_key = hypermodel.architecture_key
        if isinstance(getattr(oracle, "proxy", None), str):
            if not isinstance(hypermodel, Space):
                raise ValueError(
                    f"The strategy's `proxy` {oracle.proxy!r} is a proxy's name, which only a "
                    "keras-nas Space can compute; with another hypermodel pass "
                    "`fn(values) -> float`."
                )
            # A strategy given a proxy by name scores untrained models of this space.
            oracle.proxy = proxy_function(hypermodel, oracle.proxy)

    def search(self, *args, **kwargs):
        # Each trial collects garbage once (`release_previous_trial`); make that walk only the
        # objects the previous trial made, not the ~400,000 TensorFlow's import left.
        with trial_memory.collect_only_new_objects():
            return super().search(*args, **kwargs)

    # -- the space ----------------------------------------------------------------------
    def _populate_initial_space(self):
        hp = self.oracle.get_space()
        if isinstance(self.hypermodel, Space):
            # A keras-nas space declares every decision without building a model.
            self.hypermodel.declare(hp)
            self.oracle.update_space(hp)
            return
        try:
            super()._populate_initial_space()  # KerasTuner builds the default model
        except Exception:
            # A default candidate that cannot be built fails its own trial later, not the
            # whole search now; keep what it declared before it raised.
            try:
                self.hypermodel.build(hp)
            except Exception:
                pass
            self.oracle.update_space(hp)

    # -- budget -------------------------------------------------------------------------
    def on_search_begin(self):
        super().on_search_begin()
        if self.budget is None and self.max_time is not None:
            self.budget = TimeBudget(self.max_time)

    def pre_create_trial(self):
        # The oracle stops once its trial count reaches `max_trials`.
        self.oracle.max_trials = self.trials_allowed()

    def trials_allowed(self):
        """How many trials the oracle may have made when it proposes the next: those it has
        when the time is up; else the budget (the oracle's `max_trials` when the tuner was
        made) plus the candidates skipped untrained as infeasible, at most
        `SKIPPED_PER_TRIAL` per trial of the budget. None: no limit."""
        if self.out_of_time():
            return len(self.oracle.trials)
        if not self.trial_budget:
            return None
        skipped = sum(1 for t in self.oracle.trials.values() if NASOracle.was_skipped(t))
        return self.trial_budget + min(skipped, SKIPPED_PER_TRIAL * self.trial_budget)

    def out_of_time(self):
        """True when the budget has too little left to start another trial."""
        return self.budget is not None and self.budget.search_left() < self._start_cost()

    def _start_cost(self):
        """Seconds a new trial needs to learn anything: build, trace and one epoch (the median
        of the trials so far; 0 before the first, which always starts)."""
        costs = sorted((t.get("build_s") or 0.0) + (t.get("first_epoch_extra_s") or 0.0)
                       + t["epoch_s"] for t in self.timings.values()
                       if t.get("epoch_s") is not None)
        return costs[len(costs) // 2] if costs else 0.0

    def training_callbacks(self, epochs):
        """The learning-rate schedule every candidate trains with (also the final model)."""
        return list(self.schedule(epochs)) if self.schedule is not None else []

    # -- one trial ----------------------------------------------------------------------
    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self.timings[trial.trial_id] = {"started": time.time()}

    def run_trial(self, trial, *args, **kwargs):
        # The trial's traced graphs die with its model; let TensorFlow's gradient registry
        # forget them too, or each trial keeps its whole traced graph (trial_memory.py).
        with trial_memory.forget_new_custom_gradients():
            return self._train_trial(trial, *args, **kwargs)

    def _train_trial(self, trial, x, y=None, validation_data=None, epochs=1, batch_size=32,
                     callbacks=None, verbose=0, **fit_kwargs):
        hp = trial.hyperparameters
        initial_epoch = 0
        if "tuner/epochs" in hp.values:  # Hyperband's budget for this trial
            epochs = hp.values["tuner/epochs"]
            initial_epoch = hp.values["tuner/initial_epoch"]
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed + _trial_number(trial))

        started = time.perf_counter()
        trial_memory.release_previous_trial()  # its model and traced graphs
        released = time.perf_counter()
        model = self._try_build(hp)
        if "tuner/trial_id" in hp.values:  # Hyperband: continue from the earlier round
            past = self._get_checkpoint_fname(hp.values["tuner/trial_id"])
            if os.path.exists(past):
                restore_checkpoint(model, past, optimizer=True)
                self.timings[trial.trial_id]["continued_from"] = hp.values["tuner/trial_id"]
        built = time.perf_counter()
        hardware = None
        if self.hardware is not None:
            # Latency and size do not depend on the weights: known before any training.
            hardware = self._hardware_metrics(model, hp, trial.trial_id)
            ratio = None if self.reward is None else self.reward.target_ratio(hardware)
            if ratio is not None:  # how far from the target: a constraint model's input
                hardware[TARGET_RATIO_METRIC] = ratio
            skipped = self._skip_infeasible(trial, model, hardware)
            if skipped is not None:
                self.timings[trial.trial_id].update(
                    release_s=released - started, build_s=built - released,
                    hardware_s=time.perf_counter() - built, epochs=0, epochs_trained=0)
                return skipped
        measured = time.perf_counter()

        callbacks = self._deepcopy_callbacks(callbacks or [])
        self._configure_tensorboard_dir(callbacks, trial)
        best_epoch = BestEpochWeights(self._epoch_objective())
        timer = EpochTimer()
        # The optimizer's and metrics' variables are made before the training step is traced,
        # so it is traced once (training_state.py).
        callbacks += [BuildTrainingState(x, y), best_epoch, timer,
                      keras.callbacks.TerminateOnNaN(), *self.training_callbacks(epochs)]
        rung_stop = deadline_stop = None
        if self.halving is not None and "tuner/epochs" not in hp.values:
            rung_stop = self._rung_stop(trial)
            callbacks.append(rung_stop)
        if self.budget is not None and self.budget.limited:
            deadline_stop = StopAtDeadline(self.budget.search_deadline)
            callbacks.append(deadline_stop)
        if y is None:  # a tf.data.Dataset: it shuffles itself, or not, as its author chose
            fit_kwargs.setdefault("shuffle", False)
        with quiet_dead_edges():
            history = model.fit(
                x, y, validation_data=validation_data, epochs=epochs,
                initial_epoch=initial_epoch, batch_size=None if y is None else batch_size,
                callbacks=callbacks, verbose=verbose, **fit_kwargs,
            )
        fitted = time.perf_counter()
        self.timings[trial.trial_id].update(
            epoch_s=timer.steady_epoch_s(), first_epoch_extra_s=timer.first_epoch_extra_s(),
            best_epoch=best_epoch.best_epoch, epochs_trained=len(timer.seconds),
            stopped_at_rung=rung_stop.stopped_at if rung_stop is not None else None,
            stopped_by_time=bool(deadline_stop is not None and deadline_stop.stopped_early),
        )

        if deadline_stop is not None and deadline_stop.stopped_early and not history.history:
            raise keras_tuner.errors.FailedTrialError(
                "The time budget ended the trial before its first epoch did.")
        losses = history.history.get("loss", [])
        if any(not math.isfinite(v) for v in losses):
            raise keras_tuner.errors.FailedTrialError(
                f"The training loss became NaN or infinite (epoch {len(losses)})."
            )
        write_checkpoint(best_epoch, self._get_checkpoint_fname(trial.trial_id))
        saved = time.perf_counter()
        metrics = _best_epoch_metrics(history.history, self._epoch_objective())
        metrics["params"] = int(model.count_params())
        if hardware is not None:
            metrics.update(hardware)
        if self.reward is not None:
            metrics[self.reward.name] = self.reward(metrics)
        self.timings[trial.trial_id].update(
            release_s=released - started, build_s=built - released, fit_s=fitted - measured,
            checkpoint_s=saved - fitted, hardware_s=measured - built,
            epochs=int(epochs - initial_epoch),
        )
        return metrics

    def _rung_stop(self, trial):
        """The callback that stops `trial` at a rung of successive halving."""
        return self.halving.callback(self._epoch_objective())

    def _skip_infeasible(self, trial, model, hardware):
        """The metrics of a candidate over a hard latency target, reported without training
        (its score does not depend on its accuracy); None for one that must be trained."""
        score = None if self.reward is None else self.reward.infeasible_score(hardware)
        if score is None:  # within the target, or a soft reward (it weighs the accuracy too)
            return None
        latency = hardware.get(self.reward.latency_metric)
        self.timings[trial.trial_id]["skipped"] = (
            f"{self.reward.latency_metric} {latency:.3g} over the target {self.reward.target:g}: "
            "not trained")
        return {**hardware, "params": int(model.count_params()), self.reward.name: score,
                SKIPPED_METRIC: 1.0}

    def _try_build(self, hp):
        # KerasTuner's own clears the session and collects garbage twice more first; a trial
        # has just done that (`release_previous_trial`), so only build and check here.
        model = self._build_hypermodel(hp)
        if not isinstance(model, keras.Model):
            raise keras_tuner.errors.FatalTypeError(
                "The search space's build(hp) must return a keras.Model; "
                f"got {type(model).__name__}.")
        if self.max_model_size:
            size = sum(math.prod(w.shape) for w in model.trainable_weights)
            if size > self.max_model_size:
                raise keras_tuner.errors.FailedTrialError(
                    f"Oversized model: {size} trainable parameters, more than "
                    f"max_model_size={self.max_model_size}.")
        return model

    def _get_checkpoint_fname(self, trial_id):
        return os.path.join(self.get_trial_dir(trial_id), CHECKPOINT_FILE)

    def load_model(self, trial):
        """The trial's model with the weights of its best epoch."""
        keras.backend.clear_session()
        model = self._try_build(trial.hyperparameters)
        return restore_checkpoint(model, self._get_checkpoint_fname(trial.trial_id))

    def _epoch_objective(self):
        """What picks a trial's best epoch: the reward's accuracy metric when there is one
        (a reward needs the latency, which is known only after training)."""
        if self.reward is not None:
            return keras_tuner.Objective(self.reward.metric, "max")
        return self.oracle.objective

    def _hardware_metrics(self, model, hp, trial_id=None):
        from keras_nas.hardware.metrics import hardware_metrics

        architecture = None
        if self.hardware == "predict":
            architecture = self.hypermodel.architecture_of(hp)
        found = hardware_metrics(model, latency=self.hardware, predictor=self.latency_predictor,
                                 architecture=architecture, device=self.latency_device)
        if found.get("latency_protocol") is not None:  # how latency was measured: summary.json
            self.timings.setdefault(trial_id, {})["latency_protocol"] = found["latency_protocol"]
        return {k: float(v) for k, v in found.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None}

    def on_trial_end(self, trial):
        self.timings.setdefault(trial.trial_id, {})["ended"] = time.time()
        try:
            super().on_trial_end(trial)  # oracle.end_trial and saving; may stop the search
        finally:
            if self.on_trial_end_callback is not None:
                self.on_trial_end_callback(self, trial)
        # The trial's graph and model are freed when the next trial starts
        # (`release_previous_trial`) or before retraining (`_finish`).

    # -- saved state --------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state["timings"] = self.timings
        if self.halving is not None:
            state["halving"] = self.halving.get_state()
        return state

    def set_state(self, state):
        super().set_state(state)
        self.timings = state.get("timings", {})
        if self.halving is not None and "halving" in state:
            self.halving.set_state(state["halving"])


@contextlib.contextmanager
def quiet_dead_edges():
    """NAS-Bench-201 cells keep ops on edges that cannot reach the output (as the benchmark
    does); Keras warns that those weights get no gradient. That is expected, so hush it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
        yield


def _trial_number(trial):
    return int(trial.trial_id) if str(trial.trial_id).isdigit() else 0


def _best_epoch_metrics(history, objective):
    """All metrics at the epoch that was best for the objective."""
    name = objective.name
    if name not in history:
        raise keras_tuner.errors.FatalValueError(
            f"The objective {name!r} is not among the metrics the model reports: "
            f"{sorted(history)}. Pass `objective=` one of them."
        )
    values = np.asarray(history[name], dtype="float64")
    values = np.where(np.isfinite(values), values, -np.inf if objective.direction == "max"
                      else np.inf)
    best = int(np.argmax(values) if objective.direction == "max" else np.argmin(values))
    return {k: float(v[best]) for k, v in history.items() if len(v) > best}
