"""SPOS: single-path one-shot NAS with uniform sampling (Guo et al., ECCV 2020)."""

import time

import keras
import numpy as np

from keras_nas import validation
from keras_nas.autodiff import fused_apply, update_step, value_and_gradients
from keras_nas.oneshot._base import OneShotSearch, batch_accuracy, sparse_ce

#: The supernet's learning rate when `learning_rate` is not given, per `optimizer` name.
DEFAULT_LEARNING_RATES = {"adam": 3e-3, "sgd": 0.05}
#: The supernet's weight decay when `weight_decay` is not given, per `optimizer` name.
DEFAULT_WEIGHT_DECAYS = {"adam": None, "sgd": 1e-4}


class SPOSSearch(OneShotSearch):
    """Uniform single-path supernet training, then evolution over weight-inheriting subnets.

    Training: every step draws one path (one option per decision) and trains only that path's
    weights on a training batch. `sampling="uniform"` draws each decision's option uniformly
    at random (SPOS); `sampling="fair"` is strict fairness (FairNAS, Chu et al., ICCV 2021):
    each decision walks through shuffled permutations of its options, so within every block of
    `n` steps (`n` its number of options) each option of the decision is trained exactly
    once. Search: an evolutionary algorithm (population, top-k parents, crossover and
    mutation, as in SPOS) scores each candidate by its validation accuracy with the inherited
    supernet weights, after re-estimating the batch-norm statistics of that path on
    `calibration_batches` training batches (the shared statistics belong to no single path).

    Args:
        space: a `keras_nas.spaces.Space` with a supernet (`NASBench201Space`, ...).
        learning_rate: the supernet optimizer's learning rate (default: `DEFAULT_LEARNING_RATES`
            of `optimizer`: Adam 3e-3, SGD 0.05).
        weight_decay: weight decay of the supernet weights (default: `DEFAULT_WEIGHT_DECAYS` of
            `optimizer`: none for Adam, 1e-4 for SGD).
        population_size: candidates per generation.
        generations: generations after the random initial population.
        parents: how many of the best candidates breed.
        mutation_prob: probability that a mutation redraws each decision.
        calibration_batches: training batches used to recalibrate batch norm per candidate.
        eval_samples: the most validation examples a candidate is scored on.
        exclude: options a candidate may not take on every decision at once (an all-"none"
            cell is never useful), checked as "not all decisions in `exclude`".
        optimizer: the supernet's optimizer: `"adam"` (Adam, constant rate: the default; it
            ranks cells like stand-alone training far better than SGD, docs/benchmarks/
            oneshot.md), `"sgd"` (momentum 0.9, cosine decay, weight decay, clipping), or a
            Keras optimizer.
        sampling: `"uniform"` or `"fair"`, how training paths are drawn (see above); fair
            ranked steadily better after long supernet training (80 epochs), the same after
            5-20 (docs/benchmarks/oneshot.md).
        run_eagerly: `"auto"`, True or False: whether each path's steps run untraced, only
            its own layers (see `OneShotSearch`). Both take the same steps: the weights off
            the path get zero gradients, which Adam's and SGD's momentum still move them by
            (eagerly through `autodiff.fused_apply`).
        seed: random seed.
        verbose: 1 prints progress.

    Example:

    ```python
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=8, cells_per_stage=1)
    search = SPOSSearch(space, population_size=10, generations=3, seed=0)
    search.fit(x, y, validation_data=(xv, yv), epochs=10, batch_size=64)
    model = search.retrain(x, y, epochs=20)
    ```
    """

    def __init__(
        self,
        space,
        learning_rate=None,
        weight_decay=None,
        population_size=16,
        generations=4,
        parents=4,
        mutation_prob=0.2,
        calibration_batches=4,
        eval_samples=512,
        exclude=("none",),
        optimizer="adam",
        sampling="uniform",
        run_eagerly="auto",
        seed=None,
        verbose=0,
    ):
        super().__init__(space, seed=seed, verbose=verbose, run_eagerly=run_eagerly)
        validation.check_choice(sampling, "sampling", ("uniform", "fair"))
        for name, value, minimum in (
            ("population_size", population_size, 2),
            ("generations", generations, 0),
            ("parents", parents, 1),
            ("calibration_batches", calibration_batches, 0),
            ("eval_samples", eval_samples, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
        if isinstance(optimizer, str):
            validation.check_choice(optimizer, "optimizer", tuple(DEFAULT_LEARNING_RATES))
            if learning_rate is None:
                learning_rate = DEFAULT_LEARNING_RATES[optimizer]
            if weight_decay is None:
                weight_decay = DEFAULT_WEIGHT_DECAYS[optimizer]
        elif not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError("`optimizer` must be 'adam', 'sgd' or a keras optimizer, got "
                            f"{optimizer!r}.")
        # None with a keras optimizer: it keeps its own rate and decay.
        learning_rate = validation.check_number(learning_rate, "learning_rate", positive=True,
                                                allow_none=True)
        weight_decay = validation.check_number(weight_decay, "weight_decay", minimum=0,
                                               allow_none=True)
        if not isinstance(mutation_prob, (int, float)) or not 0 <= mutation_prob <= 1:
            raise ValueError(f"`mutation_prob` must be in [0, 1], got {mutation_prob!r}.")
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.population_size = population_size
        self.generations = generations
        self.parents = min(parents, population_size)
        self.mutation_prob = float(mutation_prob)
        self.calibration_batches = calibration_batches
        self.eval_samples = eval_samples
        self.exclude = tuple(exclude)
        self._optimizer = optimizer
        self.sampling = sampling
        self._fair_queues = None
        self.scores = {}

    # -- supernet training -----------------------------------------------------------------
    def setup(self, steps_per_epoch=1, epochs=1):
        """Builds the supernet (single-path) and its optimizer (`fit` calls this)."""
        net = self._make_supernet(mode="softmax")
        self._choose_eager(steps_per_epoch * epochs)
        schedule = None
        if not isinstance(self._optimizer, str):
            self.optimizer = self._optimizer
        elif self._optimizer == "adam":
            self.optimizer = keras.optimizers.Adam(self.learning_rate,
                                                   weight_decay=self.weight_decay)
        else:
            # The rate is set from the schedule once per step: Keras evaluates a schedule once
            # per weight (for the weight decay), a copy per weight in the traced step.
            schedule = keras.optimizers.schedules.CosineDecay(
                self.learning_rate, decay_steps=max(1, steps_per_epoch * epochs), alpha=1e-2
            )
            self.optimizer = keras.optimizers.SGD(
                self.learning_rate, momentum=0.9, weight_decay=self.weight_decay,
                global_clipnorm=5.0
            )
        optimizer = self.optimizer
        loss_fn = sparse_ce(net)

        def loss_and_accuracy(x, y, path):
            out = net(x, training=True, path=path)
            return loss_fn(y, out), batch_accuracy(y, out)

        variables = net.weight_variables
        if self.eager_paths:
            if not optimizer.built:
                optimizer.build(variables)
            # The gradient of a weight off the path: one zero tensor per shape, made once.
            shapes = {(v.shape, v.dtype) for v in variables}
            zeros = {shape: keras.ops.zeros(*shape) for shape in shapes}
            off_path = [zeros[v.shape, v.dtype] for v in variables]

            def apply_gradients(x, y, path):
                weights = [w for w in net.path_weights(path) if w.trainable]
                (loss, accuracy), grads = value_and_gradients(
                    lambda: loss_and_accuracy(x, y, path), weights, has_aux=True)
                given = {id(w): g for w, g in zip(weights, grads)}
                fused_apply(optimizer, [given.get(id(v), zero)
                                        for v, zero in zip(variables, off_path)], variables)
                return loss, accuracy
        else:
            # Ops off the path get zero gradients (momentum and weight decay still move them).
            apply_gradients = update_step(loss_and_accuracy, variables, optimizer,
                                          compiled=False)

        def train_step(x, y, path):
            if schedule is not None:
                optimizer.learning_rate.assign(schedule(optimizer.iterations))
            return apply_gradients(x, y, path)

        self._train_step = self._path_function(
            train_step, net.variables + list(optimizer.variables))
        self._predict = None
        return net

    def _valid(self, path):
        options = [o for _, o in self.supernet.decisions]
        return not all(opts[i] in self.exclude for opts, i in zip(options, path))

    def sample_path(self):
        """A uniformly drawn path (redrawn while every decision is in `exclude`)."""
        for _ in range(100):
            path = self.supernet.random_path(self.rng)
            if self._valid(path):
                return path
        return path

    def fair_path(self):
        """The next path of strict-fairness sampling (`sampling="fair"`).

        Decision `d` takes its options in the order of a shuffled permutation, a fresh one
        after every `n_d` calls, so over each block of `n_d` calls every option is drawn once.
        A path with every decision in `exclude` is passed over (for NAS-Bench-201's all-`none`
        cell: 1 in 5**6 paths), which is the only departure from exact fairness.

        Example: with 6 decisions of 5 options, `[search.fair_path() for _ in range(5)]`
        uses each option of each decision once.
        """
        if self._fair_queues is None:
            self._fair_queues = [[] for _ in self.supernet.num_options]
        for _ in range(100):
            path = []
            for queue, n in zip(self._fair_queues, self.supernet.num_options):
                if not queue:
                    queue.extend(int(i) for i in self.rng.permutation(n))
                path.append(queue.pop(0))
            if self._valid(path):
                return path
        return path

    def training_path(self):
        """The path of the next supernet training step (uniform or fair, see `sampling`)."""
        return self.fair_path() if self.sampling == "fair" else self.sample_path()

    def train_supernet(self, x, y, epochs, batch_size, log=True):
        """Trains the supernet, one sampled path per batch (`log`: a line per epoch)."""
        started = time.perf_counter()
        for epoch in range(epochs):
            start = time.perf_counter()
            logs = []
            for xb, yb in self._batches(x, y, batch_size):
                loss, acc = self._train_step(xb, yb, self._path_argument(self.training_path()))
                logs.append((float(loss), float(acc)))
            logs = np.asarray(logs)
            self.history["loss"].append(float(logs[:, 0].mean()))
            self.history["accuracy"].append(float(logs[:, 1].mean()))
            self.history["seconds"].append(time.perf_counter() - start)
            if log:
                self._log_epoch(epoch, epochs, started,
                                f"loss {self.history['loss'][-1]:.4f}, "
                                f"accuracy {self.history['accuracy'][-1]:.4f}")

    # -- evolution ----------------------------------------------------------------------------
    def score(self, path):
        """Validation accuracy of `path` with inherited weights and recalibrated batch norm."""
        key = tuple(int(i) for i in self.supernet.canonical_path(path))
        if key not in self.scores:
            self.scores[key] = self.subnet_accuracy(
                key, self._xv, self._yv, calibration=self._calibration
            )
            self.num_evaluated += 1
        return self.scores[key]

    def _mutate(self, path):
        child = list(path)
        for k, n in enumerate(self.supernet.num_options):
            if self.rng.random() < self.mutation_prob:
                child[k] = int(self.rng.integers(n))
        return self.supernet.canonical_path(child)

    def _crossover(self, a, b):
        child = [int(a[k] if self.rng.random() < 0.5 else b[k]) for k in range(len(a))]
        return self.supernet.canonical_path(child)

    def evolve(self):
        """Runs the evolutionary search; returns the best path found."""
        population = []
        tries = 0
        while len(population) < self.population_size and tries < 50 * self.population_size:
            tries += 1
            p = self.supernet.canonical_path(self.sample_path())
            if tuple(p) not in {tuple(q) for q in population}:
                population.append(p)
        ranked = sorted(population, key=lambda p: -self.score(p))
        self.history["generation_best"] = [self.score(ranked[0])]
        for gen in range(self.generations):
            top = ranked[: self.parents]
            children = []
            tries = 0
            while len(children) < self.population_size and tries < 50 * self.population_size:
                tries += 1
                if self.rng.random() < 0.5 and len(top) > 1:
                    i, j = self.rng.choice(len(top), 2, replace=False)
                    child = self._crossover(top[i], top[j])
                else:
                    child = self._mutate(top[int(self.rng.integers(len(top)))])
                if not self._valid(child) or tuple(child) in self.scores:
                    continue
                if tuple(child) in {tuple(c) for c in children}:
                    continue
                children.append(child)
            ranked = sorted(top + children, key=lambda p: -self.score(p))
            self.history["generation_best"].append(self.score(ranked[0]))
            self._log(f"evolution generation {gen + 1}/{self.generations}: "
                      f"{self.num_evaluated} candidates scored, best "
                      f"{self.score(ranked[0]):.4f}")
        best = max(self.scores, key=lambda k: self.scores[k])
        return list(best)

    def _search(self, x, y, xv, yv, epochs, batch_size):
        steps = max(1, len(x) // batch_size)
        self.setup(steps_per_epoch=steps, epochs=epochs)
        self.history = {"loss": [], "accuracy": [], "seconds": []}
        self.scores = {}
        self.num_evaluated = 0
        self._fair_queues = None
        self.train_supernet(x, y, epochs, batch_size)
        self._xv, self._yv = xv[: self.eval_samples], yv[: self.eval_samples]
        self._calibration = [xb for xb, _ in self._batches(x, y, batch_size)][
            : self.calibration_batches
        ] or None
        start = time.perf_counter()
        best = self.evolve()
        self.history["evolution_seconds"] = time.perf_counter() - start
        return best

    def evaluate_architecture(self, arch, x, y, calibration=None):
        """Inherited-weight accuracy of an architecture string on `(x, y)` (after `fit`).

        `calibration`: input batches to recalibrate batch norm on (default: the ones the
        search used).
        """
        if self.supernet is None:
            raise ValueError("Call `fit()` before `evaluate_architecture()`.")
        path = self.supernet.path_of(self.space.decode(arch))
        return self.subnet_accuracy(
            path, x, y, calibration=self._calibration if calibration is None else calibration
        )
