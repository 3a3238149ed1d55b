"""ENAS: efficient NAS by parameter sharing (Pham et al., ICML 2018)."""

import time

import keras
import numpy as np

from keras_nas.oneshot._base import batch_accuracy
from keras_nas.oneshot.spos import SPOSSearch
from keras_nas.oracles.controller import reinforce_step, softmax


class ENASSearch(SPOSSearch):
    """An LSTM controller samples paths of a shared-weight supernet; REINFORCE trains it.

    Each epoch alternates ENAS's two phases: (1) the supernet weights are trained on the
    training batches, one controller-sampled path per batch; (2) the controller takes
    `controller_steps` REINFORCE steps, each on `controller_batch` sampled paths whose reward is
    their accuracy on a validation batch, with a moving-average baseline and an entropy bonus.
    The controller is `keras_nas.oracles.controller.LSTMController` (sampling through its
    `numpy_policy()`, log-probabilities and entropies through its `log_prob`), updated with
    the same REINFORCE loss as `ReinforceOracle`:
    `-mean((reward - baseline) * log p(path)) - entropy_weight * mean(entropy)`.
    At the end `final_samples` paths are drawn from the controller and the best on the
    validation data (inherited weights, batch norm recalibrated) is the result.

    Args:
        space: a `keras_nas.spaces.Space` with a supernet.
        learning_rate: the supernet optimizer's learning rate (default: SGD's 0.05).
        controller_learning_rate: Adam learning rate of the controller.
        controller_steps: controller updates per epoch.
        controller_batch: paths per controller update.
        entropy_weight: weight of the policy-entropy bonus.
        baseline_decay: decay of the reward baseline.
        temperature, tanh_constant: of the controller's logits (ENAS: 5.0 and 2.5).
        units: LSTM size.
        final_samples: paths drawn from the trained controller and scored at the end.
        calibration_batches, eval_samples, weight_decay: as for `SPOSSearch`.
        optimizer: as for `SPOSSearch`, but SGD (`"sgd"`) by default: on ENAS's
            controller-sampled paths Adam ranked no better (docs/benchmarks/oneshot.md).
        run_eagerly: as for `SPOSSearch`.
        seed: random seed.
        verbose: 1 prints progress.

    Example:

    ```python
    search = ENASSearch(space, seed=0).fit(x, y, validation_data=(xv, yv), epochs=10)
    search.best_architecture
    ```
    """

    def __init__(
        self,
        space,
        learning_rate=None,
        controller_learning_rate=0.01,
        controller_steps=10,
        controller_batch=4,
        entropy_weight=1e-4,
        baseline_decay=0.95,
        temperature=5.0,
        tanh_constant=2.5,
        units=32,
        final_samples=20,
        calibration_batches=4,
        eval_samples=512,
        weight_decay=None,
        optimizer="sgd",
        run_eagerly="auto",
        seed=None,
        verbose=0,
    ):
        super().__init__(
            space,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            calibration_batches=calibration_batches,
            eval_samples=eval_samples,
            optimizer=optimizer,
            run_eagerly=run_eagerly,
            seed=seed,
            verbose=verbose,
        )
        for name, value, minimum in (
            ("controller_steps", controller_steps, 0),
            ("controller_batch", controller_batch, 1),
            ("final_samples", final_samples, 1),
            ("units", units, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
        if not 0 <= float(baseline_decay) < 1:
            raise ValueError(f"`baseline_decay` must be in [0, 1), got {baseline_decay!r}.")
        if not float(controller_learning_rate) > 0:
            raise ValueError(
                f"`controller_learning_rate` must be > 0, got {controller_learning_rate!r}."
            )
        self.controller_learning_rate = float(controller_learning_rate)
        self.controller_steps = controller_steps
        self.controller_batch = controller_batch
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.controller_temperature = temperature
        self.tanh_constant = tanh_constant
        self.units = units
        self.final_samples = final_samples
        self.baseline = None
        self.controller = None

    def _build_controller(self):
        from keras_nas.oracles.controller import LSTMController

        net = self.supernet
        self.controller = LSTMController(
            net.num_options,
            units=self.units,
            temperature=self.controller_temperature,
            tanh_constant=self.tanh_constant,
            seed=self.seed,
            names=net.decision_names,
        )
        self.controller_optimizer = keras.optimizers.Adam(self.controller_learning_rate)
        self.controller_optimizer.build(self.controller.trainable_variables)

    def sample_path(self):
        """A path sampled from the controller (uniform before the controller exists)."""
        if self.controller is None:
            return super().sample_path()
        policy = self._policy
        state = policy.initial_state()
        previous = None
        path = []
        for d in range(len(self.supernet.decisions)):
            logits, state = policy.step(previous, d, state)
            o = int(self.rng.choice(len(logits), p=softmax(logits)))
            path.append(o)
            previous = (d, o)
        return path

    def _reward_fn(self):
        net = self.supernet

        def reward(x, y, path):
            # Batch statistics (ENAS scores shared weights in training-mode batch norm).
            return batch_accuracy(y, net(x, training=True, path=path))

        return self._path_function(reward, net.variables)

    def train_controller(self, val_batches):
        """`controller_steps` REINFORCE steps with validation-batch accuracy as reward."""
        rewards_seen = []
        for step in range(self.controller_steps):
            self._policy = self.controller.numpy_policy()
            paths = [self.sample_path() for _ in range(self.controller_batch)]
            xb, yb = val_batches[step % len(val_batches)]
            rewards = [
                float(self._reward(xb, yb, self._path_argument(p))) for p in paths
            ]
            self.num_evaluated += len(paths)
            if self.baseline is None:
                self.baseline = float(np.mean(rewards))
            advantages = [r - self.baseline for r in rewards]
            sequences = [list(enumerate(p)) for p in paths]
            reinforce_step(self.controller, self.controller_optimizer, sequences, advantages,
                           self.entropy_weight)
            self.baseline = float(
                self.baseline_decay * self.baseline
                + (1 - self.baseline_decay) * float(np.mean(rewards))
            )
            rewards_seen.extend(rewards)
        self._policy = self.controller.numpy_policy()
        return float(np.mean(rewards_seen)) if rewards_seen else None

    def _search(self, x, y, xv, yv, epochs, batch_size):
        steps = max(1, len(x) // batch_size)
        self.setup(steps_per_epoch=steps, epochs=epochs)
        self.controller = None
        self.baseline = None
        self.scores = {}
        self.num_evaluated = 0
        self._build_controller()
        self._policy = self.controller.numpy_policy()
        self._reward = self._reward_fn()
        self.history = {"loss": [], "accuracy": [], "reward": [], "seconds": []}
        started = time.perf_counter()
        for epoch in range(epochs):
            self.train_supernet(x, y, 1, batch_size, log=False)
            start = time.perf_counter()
            reward = self.train_controller(self._batches(xv, yv, batch_size))
            self.history["reward"].append(reward)
            self.history["seconds"][-1] += time.perf_counter() - start
            self._log_epoch(epoch, epochs, started,
                            f"loss {self.history['loss'][-1]:.4f}, mean controller reward "
                            f"{reward if reward is None else round(reward, 4)}")
        self._xv, self._yv = xv[: self.eval_samples], yv[: self.eval_samples]
        self._calibration = [xb for xb, _ in self._batches(x, y, batch_size)][
            : self.calibration_batches
        ] or None
        candidates = []
        for _ in range(self.final_samples):
            p = self.supernet.canonical_path(self.sample_path())
            if tuple(p) not in {tuple(c) for c in candidates}:
                candidates.append(p)
        best = max(candidates, key=self.score)
        return best

    def controller_probability(self, arch):
        """Probability that the trained controller samples architecture string `arch`."""
        path = self.supernet.path_of(self.space.decode(arch))
        return float(np.prod(self.controller.probabilities(list(enumerate(path)))))
