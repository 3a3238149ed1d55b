"""REINFORCE with an LSTM controller as a KerasTuner oracle (Zoph & Le 2017, ENAS)."""

import math

import keras
import keras_tuner
import numpy as np
from keras_tuner.engine import trial as trial_module

from keras_nas import validation
from keras_nas.autodiff import update_step
from keras_nas.oracles.base import NASOracle
from keras_nas.oracles.controller import LSTMController, reinforce_loss, softmax
from keras_nas.oracles.decisions import option_index
from keras_nas.oracles.decisions import space_decisions
from keras_nas.oracles.decisions import untried_values

_COMPLETED = trial_module.TrialStatus.COMPLETED
ADVANTAGES = ("baseline", "normalized")


class ReinforceOracle(NASOracle):
    """A policy-gradient search: an LSTM controller samples, REINFORCE trains it.

    For every new trial the controller (`LSTMController`, a small Keras LSTM) emits one
    decision per active hyperparameter of the space, in declaration order: `Choice` and
    `Boolean` directly, `Int` and `Float` through at most `num_bins` values, both ends of
    the range included (`keras_nas.oracles.decisions`); inactive conditional
    hyperparameters are neither sampled nor learned. Each completed trial gives a reward
    (the objective, negated when it is minimized, or `reward_fn(trial)`); after every
    `batch_size` rewards the controller takes one Adam step on

        loss = -mean(advantage * log p(architecture)) - entropy_weight * mean(entropy)
               - replay_weight * mean(log p(elite) for the replay_best best trials so far)

    where `advantage` is the reward minus a moving-average baseline, divided (by default,
    `advantage="normalized"`) by a moving root-mean-square of those differences. A sample
    that repeats values already tried (by any trial, failed ones included) is redrawn (up
    to `max_collisions` times, each time at a higher temperature), then replaced by random
    options not tried yet, then, for a binned `Int` / `Float`, by values drawn inside the
    bins of the sample (a value inside a bin is learned as that bin). Values are never
    proposed twice; the search stops early (`STOPPED`) only when a finite space is
    exhausted, or when new values inside the bins keep failing to turn up.
    `controller_history` records every update (reward, baseline, entropy, distributions).

    The defaults (learning rate 0.05, temperature 5 and tanh constant 2.5 as in ENAS,
    normalized advantages, entropy weight 0.01, an LSTM of 16 units, replay of the 5 best
    trials with weight 0.3) were chosen on NAS-Bench-201 runs separate from the reported ones
    (`docs/benchmarks/nasbench201.md`); `advantage="baseline", replay_best=0` gives plain
    REINFORCE.

    The whole state (controller weights, Adam moments, baseline, random generator, which
    trials were learned from) is JSON in `get_state()`, so a reloaded search continues the
    same policy and never learns from a trial twice; a controller saved before the space
    grew is restored as it was and grows on its next use, as it would have without the
    reload. The controller trains on TensorFlow or JAX (`keras_nas.autodiff`); a step is
    compiled once its batch structure comes back.

    Args:
        objective: as for `keras_tuner.Oracle`; its direction is respected.
        max_trials: the most trials to run.
        learning_rate: Adam learning rate of the controller.
        batch_size: completed trials per controller update.
        baseline_decay: decay of the moving-average reward baseline.
        entropy_weight: weight of the entropy bonus.
        temperature: the logits are divided by it (`None`: 1), before the tanh.
        tanh_constant: if set, logits are squashed to `tanh_constant * tanh(logits)`
            (`None`: no squashing).
        units: size of the LSTM.
        max_collisions: redraws of a repeated sample before falling back to random.
        advantage: how a reward becomes the REINFORCE signal: `"baseline"`, reward minus
            the moving-average baseline; `"normalized"`, that difference divided by a
            moving root-mean-square of past differences (same decay), so the step size
            does not depend on the scale of the reward.
        replay_best: if > 0 (with `replay_weight` > 0), every update also raises the
            log-probability of the `replay_best` best trials learned so far, weighted by
            `replay_weight`: the best architectures found keep pulling the policy, as in
            priority-queue training (Abolafia et al. 2018).
        replay_weight: weight of that term (0: plain REINFORCE).
        proxy_starts: with a `proxy` (see `NASOracle`), the first `proxy_starts` trials are
            the best-scored of `proxy_pool` random architectures instead of samples of the
            untrained controller, which learns from them as from its own samples (a
            zero-cost warm-up, Abdelfattah et al. 2021). Without a proxy: unused.
        proxy_samples: with a `proxy`, each later trial is the best-scored of this many
            untried samples of the controller (which learns from the one proposed).
        **kwargs: `seed` (of the controller's initial weights and of the sampling),
            `hyperparameters`, `num_bins`, `reward_fn`, `proxy`, `proxy_pool` and KerasTuner's
            `Oracle` arguments, as for `NASOracle`.

    Example:

    ```python
    oracle = ReinforceOracle(objective="val_accuracy", max_trials=20, seed=1)
    tuner = keras_tuner.RandomSearch(...)  # or any Tuner: pass `oracle=oracle`
    ```
    """

    HISTORY_LENGTH = 500  # controller updates kept in `controller_history`

    def __init__(
        self,
        objective=None,
        max_trials=10,
        learning_rate=0.05,
        batch_size=1,
        baseline_decay=0.9,
        entropy_weight=0.01,
        temperature=5.0,
        tanh_constant=2.5,
        units=16,
        max_collisions=20,
        advantage="normalized",
        replay_best=5,
        replay_weight=0.3,
        proxy_starts=10,
        proxy_samples=5,
        **kwargs,
    ):
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        validation.check_number(learning_rate, "learning_rate", positive=True)
        validation.check_int(batch_size, "batch_size", minimum=1)
        baseline_decay = validation.check_number(baseline_decay, "baseline_decay", minimum=0)
        if baseline_decay >= 1:
            raise ValueError(f"`baseline_decay` must be in [0, 1), got {baseline_decay!r}.")
        validation.check_number(entropy_weight, "entropy_weight", minimum=0)
        if temperature is not None:
            validation.check_number(temperature, "temperature", positive=True)
        if tanh_constant is not None:
            validation.check_number(tanh_constant, "tanh_constant", positive=True)
        validation.check_int(units, "units", minimum=1)
        validation.check_choice(advantage, "advantage", ADVANTAGES)
        validation.check_int(replay_best, "replay_best", minimum=0)
        validation.check_number(replay_weight, "replay_weight", minimum=0)
        validation.check_int(max_collisions, "max_collisions", minimum=0)
        self.proxy_starts = validation.check_int(proxy_starts, "proxy_starts", minimum=0)
        self.proxy_samples = validation.check_int(proxy_samples, "proxy_samples", minimum=1)
        self.learning_rate = float(learning_rate)
        self.batch_size = batch_size
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.temperature = None if temperature is None else float(temperature)
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        self.units = units
        self.max_collisions = max_collisions
        self.advantage = advantage
        self.replay_best = replay_best
        self.replay_weight = float(replay_weight)

        self._controller = None
        self._optimizer = None
        self._decisions = []
        self._signature = []
        self.baseline = None
        self.updates = 0
        self._learned = set()
        self._pending = []
        self._rewards = {}
        self._advantage_var = None
        self._history = []
        self._steps = {}
        self._eager_keys = set()

    # -- the controller ---------------------------------------------------------------
    def _current_decisions(self):
        decisions = space_decisions(self.hyperparameters, self.num_bins)
        return decisions, [[hp.name, len(options)] for hp, options in decisions]

    def _new_controller(self, signature):
        """A controller for `signature` (`[[name, num_options], ...]`) and a new optimizer."""
        controller = LSTMController(
            [n for _, n in signature],
            units=self.units,
            temperature=self.temperature,
            tanh_constant=self.tanh_constant,
            seed=self.seed,
            names=[name for name, _ in signature],
        )
        self._optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        self._optimizer.build(controller.trainable_variables)
        self._steps = {}
        self._eager_keys = set()
        return controller

    def _ensure_controller(self):
        """Builds the controller, or grows it when the space has new decisions."""
        decisions, signature = self._current_decisions()
        self._decisions = decisions
        if not signature or (self._controller is not None and signature == self._signature):
            return
        old, old_signature = self._controller, self._signature
        controller = self._new_controller(signature)
        if old is not None:
            # The space grew: keep the LSTM and every decision that is still the same.
            controller.start.assign(old.start)
            controller.cell.set_weights(old.cell.get_weights())
            for i, entry in enumerate(signature):
                if entry in old_signature:
                    j = old_signature.index(entry)
                    new_rows = slice(controller.offsets[i], controller.offsets[i] + entry[1])
                    old_rows = slice(old.offsets[j], old.offsets[j] + entry[1])
                    for name in ("embedding", "head_kernel", "head_bias"):
                        new_var, old_var = getattr(controller, name), getattr(old, name)
                        value = keras.ops.convert_to_numpy(new_var).copy()
                        old_value = keras.ops.convert_to_numpy(old_var)
                        if name == "head_kernel":
                            value[:, new_rows] = old_value[:, old_rows]
                        else:
                            value[new_rows] = old_value[old_rows]
                        new_var.assign(value)
        self._controller, self._signature = controller, signature

    @property
    def controller(self):
        """The `LSTMController` (built on the first trial, once the space is known)."""
        self._ensure_controller()
        return self._controller

    def _sample(self, temperature, greedy=False):
        """Samples the active decisions from the controller; returns a dict of values.

        With `greedy=True` every decision takes its most probable option (no randomness is
        drawn) and `(values, distributions)` is returned, `distributions` mapping each
        decision's name to the probability of each of its options at that step.
        """
        index = {hp.name: i for i, (hp, _) in enumerate(self._decisions)}
        hps = keras_tuner.HyperParameters()
        values = {}
        distributions = {}
        policy = self._controller.numpy_policy() if self._controller is not None else None
        state = policy.initial_state() if policy is not None else None
        previous = None
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            i = index.get(hp.name)
            if i is None:
                value = hp.default
            else:
                logits, state = policy.step(previous, i, state, temperature)
                p = softmax(logits)
                if greedy:
                    o = int(np.argmax(p))
                    options = self._decisions[i][1]
                    distributions[hp.name] = {
                        str(option): float(q) for option, q in zip(options, p)
                    }
                else:
                    o = int(self._rng.choice(len(p), p=p))
                value = self._decisions[i][1][o]
                previous = (i, o)
            hps.values[hp.name] = value
            values[hp.name] = value
        if greedy:
            return values, distributions
        return values

    def policy_distributions(self):
        """Each decision's distribution along the controller's most probable path.

        The first decision's entry is its exact distribution; each later decision's is its
        distribution given that every earlier decision took its most probable option (the
        LSTM conditions a decision on those before it, so there is no single marginal
        without sampling). Computed at the controller's own temperature, without the
        heating used to redraw duplicates.

        Returns:
            `{hp_name: {str(option): probability}}` for the decisions active on that path.

        Example:

        ```python
        oracle.policy_distributions()["edge_0_1"]  # {"none": 0.1, "skip_connect": 0.3, ...}
        ```
        """
        self._ensure_controller()
        if self._controller is None:
            return {}
        base_temperature = 1.0 if self.temperature is None else self.temperature
        return self._sample(base_temperature, greedy=True)[1]

    def sequence_of(self, values):
        """The `(decision_index, option_index)` sequence of a dict of values."""
        self._ensure_controller()
        sequence = []
        for i, (hp, options) in enumerate(self._decisions):
            if hp.name in values:
                sequence.append((i, option_index(options, values[hp.name], hp)))
        return sequence

    def probability(self, values):
        """Probability that the controller samples exactly `values` (its active decisions)."""
        self._ensure_controller()
        if self._controller is None:
            return 1.0
        return float(np.prod(self._controller.probabilities(self.sequence_of(values))))

    # -- the Oracle interface -----------------------------------------------------------
    def populate_space(self, trial_id):
        self._ensure_controller()
        if len(self.trials) < self.proxy_starts:
            values = self.proxy_start()  # None without a proxy
            if values is not None:
                return {"status": trial_module.TrialStatus.RUNNING, "values": values}
        else:
            self.proxy_starts_done()
        samples = {}
        for _ in range(self.proxy_samples if self.proxy is not None else 1):
            values = self._untried_sample()
            if values is None:
                break
            samples.setdefault(self._compute_values_hash(values), values)
        if not samples:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        values = self.best_by_proxy(list(samples.values()))
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _untried_sample(self):
        """A sample of the controller not tried yet, or other untried values; None if none."""
        base_temperature = 1.0 if self.temperature is None else self.temperature
        first = None
        for attempt in range(self.max_collisions + 1):
            # Each redraw of a repeat is a little hotter, so a peaked policy still moves.
            values = self._sample(base_temperature * (1.0 + 0.25 * attempt))
            if not self._duplicate(values):
                return values
            if first is None:
                first = values
        # The policy keeps repeating itself: random options not tried yet, else new values
        # inside the bins of its first sample (or of random options).
        return untried_values(
            self.hyperparameters,
            self.num_bins,
            self._rng,
            lambda v: not self._duplicate(v),
            near=first,
            tries=10 * (self.max_collisions + 1),
        )

    def learn(self, trial):
        if self._collect(trial) and len(self._pending) >= self.batch_size:
            self._update_controller()

    def _collect(self, trial):
        """Queues a completed trial's reward for learning (once); True if it was new."""
        tid = trial.trial_id
        if trial.status != _COMPLETED or tid in self._learned or tid in self._pending:
            return False
        reward = self.reward(trial)
        if reward is None:
            return False
        self._pending.append(tid)
        self._rewards[tid] = reward
        return True

    def _update_controller(self):
        """One REINFORCE step on the queued trials."""
        self._ensure_controller()
        batch = list(self._pending)
        self._pending = []
        rewards = [self._rewards[tid] for tid in batch]
        baseline, advantages = self._advantages(rewards)
        sequences = [self.sequence_of(self.trials[tid].hyperparameters.values) for tid in batch]
        elites = self._elite_sequences(batch)
        if self._controller is not None and any(sequences):
            # One compiled step per batch structure (which decisions each trial made).
            key = (
                tuple(tuple(d for d, _ in seq) for seq in sequences),
                tuple(tuple(d for d, _ in seq) for seq in elites),
            )
            step = self._steps.get(key)
            if step is None:
                # Compile a structure once it comes back: a conditional space makes many
                # structures that may never repeat, and compiling costs more than one eager
                # step.
                compiled = key in self._eager_keys
                step = self._make_step(key, compiled)
                if compiled:
                    self._steps[key] = step
                else:
                    self._eager_keys.add(key)

            def options(seqs):
                return [keras.ops.convert_to_tensor([o for _, o in seq] or [0], dtype="int32")
                        for seq in seqs]

            _, entropy = step(options(sequences),
                              keras.ops.convert_to_tensor(advantages, dtype="float32"),
                              options(elites))
            self._history.append(
                {
                    "step": int(self.updates),
                    "reward": float(np.mean(rewards)),
                    "baseline": float(baseline),
                    "entropy": float(entropy),
                    "probabilities": self.policy_distributions(),
                }
            )
            del self._history[: -self.HISTORY_LENGTH]
            self.updates += 1
        self._learned.update(batch)

    def _elite_sequences(self, batch):
        """The `replay_best` best learned trials (with `batch`), as decision sequences.

        Always exactly `replay_best` sequences (cycled while fewer trials were learned), so
        the compiled step keeps one shape; none when replay is off.
        """
        if not self.replay_best or not self.replay_weight:
            return []
        learned = sorted(
            self._learned.union(batch), key=lambda tid: (-self._rewards[tid], tid)
        )[: self.replay_best]
        elites = [learned[k % len(learned)] for k in range(self.replay_best)]
        return [self.sequence_of(self.trials[tid].hyperparameters.values) for tid in elites]

    def _advantages(self, rewards):
        """The baseline the batch `rewards` are compared with, and their advantages.

        Moves the baseline (and, for `"normalized"`, the scale) past this batch.
        """
        if self.baseline is None:
            self.baseline = float(np.mean(rewards))
        baseline = self.baseline
        advantages = [float(r - baseline) for r in rewards]
        if self.advantage == "normalized":
            # Divide by a moving root-mean-square of past advantages: the step no longer
            # depends on the scale of the reward (fractions, percentages, latency terms).
            scale = math.sqrt(self._advantage_var) if self._advantage_var else 0.0
            raw = advantages
            advantages = [a / scale for a in raw] if scale > 1e-12 else [0.0 for _ in raw]
            square = float(np.mean(np.square(raw)))
            self._advantage_var = (
                square
                if self._advantage_var is None
                else self.baseline_decay * self._advantage_var
                + (1 - self.baseline_decay) * square
            )
        self.baseline = float(
            self.baseline_decay * baseline + (1 - self.baseline_decay) * np.mean(rewards)
        )
        return baseline, advantages

    def _make_step(self, key, compiled):
        """The REINFORCE step for batches whose trials (and elites) made the decisions `key`."""
        controller, optimizer = self._controller, self._optimizer
        entropy_weight = self.entropy_weight
        replay_weight = self.replay_weight
        batch_key, elite_key = key

        def loss(options, advantages, elite_options):
            sequences = [[(d, options[b][t]) for t, d in enumerate(decisions)]
                         for b, decisions in enumerate(batch_key)]
            elites = [[(d, elite_options[e][t]) for t, d in enumerate(decisions)]
                      for e, decisions in enumerate(elite_key)]
            return reinforce_loss(controller, sequences,
                                  [advantages[b] for b in range(len(batch_key))],
                                  entropy_weight, elites, replay_weight)

        return update_step(loss, controller.trainable_variables, optimizer, compiled=compiled)

    @property
    def controller_history(self):
        """One record per controller update, oldest first (the last `HISTORY_LENGTH`).

        Each record is `{"step": int, "reward": float, "baseline": float, "entropy": float,
        "probabilities": {hp_name: {str(value): float}}}`: the update's index, the mean
        reward of its batch, the baseline the rewards were compared with, the mean entropy
        (nats, summed over the decisions) of the policy along the batch's sequences, and
        `policy_distributions()` just after the update. It is part of `get_state()`, so it
        survives a reload; `keras_nas.results.plots.plot_controller` draws it.

        Example:

        ```python
        history = oracle.controller_history
        history[-1]["probabilities"]["edge_0_1"]
        ```
        """
        return [dict(entry) for entry in self._history]

    @property
    def learned_trial_ids(self):
        """Ids of the trials the controller has been trained on, sorted."""
        return sorted(self._learned)

    def get_state(self):
        state = super().get_state()
        controller = None
        if self._controller is not None:
            controller = {
                "signature": self._signature,
                "weights": [np.asarray(w).tolist() for w in self._controller.get_weights()],
                "optimizer": [
                    keras.ops.convert_to_numpy(v).tolist() for v in self._optimizer.variables
                ],
            }
        state["reinforce"] = {
            "controller": controller,
            "baseline": self.baseline,
            "updates": int(self.updates),
            "learned": sorted(self._learned),
            "pending": list(self._pending),
            "rewards": {k: float(v) for k, v in self._rewards.items()},
            "advantage_var": self._advantage_var,
            "history": self._history,
            # Update structures already run once (compiled from their next use on), so a
            # reloaded oracle computes its next updates exactly as the original would.
            "structures": sorted([[list(map(list, part)) for part in key] for key in self._eager_keys]),
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        s = state["reinforce"]
        self._controller = None
        self._signature = []
        saved = s["controller"]
        if saved is not None:
            # The controller as saved: the space may have grown since (in a trial that was
            # not learned); it then grows on its next use, as it would have without a reload.
            self._signature = [list(entry) for entry in saved["signature"]]
            self._controller = self._new_controller(self._signature)
            self._controller.set_weights([np.asarray(w, dtype="float32") for w in saved["weights"]])
            for variable, value in zip(self._optimizer.variables, saved["optimizer"]):
                variable.assign(np.asarray(value, dtype=variable.dtype))
        self.baseline = s["baseline"]
        self.updates = int(s["updates"])
        self._learned = set(s["learned"])
        self._pending = list(s["pending"])
        self._rewards = dict(s["rewards"])
        self._advantage_var = s.get("advantage_var")
        self._history = list(s.get("history", []))
        self._eager_keys = {
            tuple(tuple(tuple(seq) for seq in part) for part in key)
            for key in s.get("structures", [])
        }
        # A trial completed after the last save (a crash in between) is learned on the next
        # update, and only once.
        for tid in sorted(self.trials):
            self._collect(self.trials[tid])
