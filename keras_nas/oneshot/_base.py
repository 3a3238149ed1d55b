"""What DARTS, SPOS and ENAS share: data checks, batching, subnet evaluation, retraining."""

import time

import keras
import numpy as np

from keras_nas.oneshot.supernet import build_supernet
from keras_nas.tuning.training_state import BuildTrainingState
from keras_nas import autodiff, compat, validation
from keras_nas.validation import check_arrays


class OneShotSearch:
    """Base of the weight-sharing searches. Subclasses implement `_search(...)`.

    After `fit`, `best_architecture` is the architecture string of the space (its `encode`),
    `best_values` the hyperparameter values, `history` a dict of per-epoch lists, and
    `search_seconds` the wall time of the search, `num_evaluated` the candidates it scored.

    `run_eagerly`: how the single-path functions (a path's training step, prediction, batch-norm
    calibration) run. False: one traced function serves every path, its graph holding every
    option of every decision as a `switch` branch (fast steps once traced, but tracing costs
    about 0.1-0.5 s per candidate layer: minutes on the default DARTS and MobileNet spaces).
    True: each call runs only its path's layers, untraced (no tracing; each step 0.1-0.5 s
    slower). `"auto"`: eagerly when the supernet training has fewer steps than the supernet
    has candidate layers (`Supernet.num_candidate_layers`), about where the two cost the same
    (docs/benchmarks/oneshot.md, issue 17).
    """

    def __init__(self, space, seed=None, verbose=0, run_eagerly=False):
        from keras_nas.spaces.base import Space

        if not isinstance(space, Space):
            raise TypeError(
                f"`space` must be a keras_nas.spaces.Space, got {type(space).__name__}."
            )
        if run_eagerly not in (True, False, "auto"):
            raise ValueError(f"`run_eagerly` must be True, False or 'auto', got {run_eagerly!r}.")
        self.space = space
        self.run_eagerly = run_eagerly
        self.eager_paths = run_eagerly is True
        self.seed = seed
        self.verbose = int(verbose)
        self.rng = np.random.default_rng(seed)
        self.supernet = None
        self.best_architecture = None
        self.best_values = None
        self.history = {}
        self.search_seconds = None
        self.num_evaluated = 0

    # -- data -----------------------------------------------------------------------------
    def _prepare(self, x, y, validation_data, batch_size, epochs):
        x, y = check_arrays(x, y)
        if validation_data is None:
            # DARTS splits the training set in halves: one for w, one for alpha.
            order = self.rng.permutation(len(x))
            half = len(x) // 2
            if half < 1:
                raise ValueError("`x` needs at least 2 examples to split off validation data.")
            (x, y), (xv, yv) = (x[order[half:]], y[order[half:]]), (
                x[order[:half]],
                y[order[:half]],
            )
        else:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("`validation_data` must be a tuple `(x_val, y_val)` or None.")
            xv, yv = check_arrays(validation_data[0], validation_data[1], x_name="validation_data[0]",
                                  y_name="validation_data[1]")
        validation.check_int(batch_size, "batch_size", minimum=1)
        validation.check_int(epochs, "epochs", minimum=1)
        if xv.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"`validation_data` examples have shape {xv.shape[1:]}, training ones {x.shape[1:]}."
            )
        num_classes = max(2, int(max(y.max(), yv.max())) + 1)
        self.space.configure(input_shape=x.shape[1:], num_classes=num_classes)
        return x, y, xv, yv

    def _batches(self, x, y, batch_size):
        """Shuffled batches of one epoch; a partial last batch is dropped (one traced shape)."""
        order = self.rng.permutation(len(x))
        batch_size = min(batch_size, len(x))
        return [
            (tensor(x[order[i : i + batch_size]]), tensor(y[order[i : i + batch_size]]))
            for i in range(0, len(x) - batch_size + 1, batch_size)
        ]

    def _make_supernet(self, mode="softmax", temperature=1.0):
        self.supernet = build_supernet(
            self.space, mode=mode, temperature=temperature, seed=self.seed
        )
        self.eager_paths = self.run_eagerly is True
        return self.supernet

    def _choose_eager(self, steps):
        """Decides `eager_paths` for a supernet training of `steps` steps (`run_eagerly`)."""
        layers = self.supernet.num_candidate_layers
        self.eager_paths = self.run_eagerly is True or (
            self.run_eagerly == "auto" and steps < layers)
        if self.run_eagerly == "auto":
            self._log(f"{type(self).__name__}: {steps} supernet steps, {layers} candidate layers: "
                      + ("each path runs eagerly" if self.eager_paths else
                         "one traced step for every path (its first call traces it)"))
        return self.eager_paths

    def _path_function(self, fn, variables):
        """`fn(..., path)` as the search runs it: `single_path_function(fn, variables)`, or
        `fn` itself when paths run eagerly (then `path` is a list, `_path_argument`)."""
        return fn if self.eager_paths else single_path_function(fn, variables)

    def _path_argument(self, path):
        """`path` as `_path_function`s take it: a list of ints eagerly, else `path_tensor`."""
        return [int(i) for i in path] if self.eager_paths else path_tensor(path)

    def _log(self, message):
        if self.verbose:
            print(message, flush=True)

    # -- evaluation -------------------------------------------------------------------------
    def _predict_fn(self):
        if getattr(self, "_predict", None) is None:
            net = self.supernet

            def predict(x, path):
                return net(x, training=False, path=path)

            self._predict = self._path_function(predict, net.variables)
        return self._predict

    def _recalibrate(self, calibration, path):
        """Batch-norm statistics of `path` from the calibration batches, in one call.

        The batches are joined into one batch and every BN layer's moving statistics are set
        to that batch's statistics (momentum 0 during the call; a traced function keeps the 0
        of its first call), which is the exact statistics of the calibration examples (SPOS
        recalibration).
        """
        net = self.supernet
        if getattr(self, "_calibrate", None) is None or self._calibrate[0] is not calibration:
            xcal = keras.ops.concatenate([tensor(b) for b in calibration], axis=0)
            bns = [
                layer
                for layer in compat.all_layers(net)
                if isinstance(layer, keras.layers.BatchNormalization)
            ]

            def calibrate(p):
                net(xcal, training=True, path=p)

            self._calibrate = (calibration, self._path_function(calibrate, net.variables), bns)
        _, calibrate, bns = self._calibrate
        saved = [bn.momentum for bn in bns]
        for bn in bns:
            bn.momentum = 0.0
        try:
            calibrate(path)
        finally:
            for bn, m in zip(bns, saved):
                bn.momentum = m

    def subnet_accuracy(self, path, x, y, batch_size=256, calibration=None):
        """Accuracy of the supernet's path `path` (inherited weights) on `(x, y)`.

        Args:
            path: list of option indices, one per decision.
            x, y: data to score on.
            batch_size: evaluation batch size.
            calibration: optional list of input batches to recalibrate batch norm on first.
        """
        p = self._path_argument(path)
        if calibration is not None:
            self._recalibrate(calibration, p)
        predict = self._predict_fn()
        correct = 0
        for i in range(0, len(x), batch_size):
            probs = keras.ops.convert_to_numpy(predict(tensor(x[i : i + batch_size]), p))
            correct += int(np.sum(np.argmax(probs, axis=-1) == y[i : i + batch_size]))
        return correct / len(x)

    # -- the public API ---------------------------------------------------------------------
    def fit(self, x, y, validation_data=None, epochs=10, batch_size=64):
        """Runs the search on `(x, y)`; `alpha`/the controller/evolution score on validation.

        Args:
            x: training images `(n, height, width[, channels])`.
            y: integer labels `(n,)`.
            validation_data: `(x_val, y_val)`; None splits `x` in halves (as DARTS does).
            epochs: supernet training epochs.
            batch_size: batch size of both the training and the validation batches.

        Returns:
            `self`, with `best_architecture`, `best_values`, `history` set.
        """
        if self.seed is not None:
            # The supernet's initial weights come from Keras' global seed: seed it, so a search
            # with a seed gives the same result whatever ran before it in the process.
            keras.utils.set_random_seed(int(self.seed))
        x, y, xv, yv = self._prepare(x, y, validation_data, batch_size, epochs)
        self._log(f"{type(self).__name__}: training the supernet for {epochs} epoch(s) on "
                  f"{len(x)} examples")
        start = time.perf_counter()
        path = self._search(x, y, xv, yv, int(epochs), int(batch_size))
        self.search_seconds = time.perf_counter() - start
        self.best_values = self.supernet.values_of(path)
        self.best_path = [int(i) for i in path]
        self.best_architecture = self.space.encode(self.best_values)
        self._log(f"{type(self).__name__}: found {self.best_architecture}")
        return self

    def _search(self, x, y, xv, yv, epochs, batch_size):
        raise NotImplementedError

    def ranked_candidates(self, k=1):
        """Up to `k` found architectures, best first: `[(arch_str, supernet_score), ...]`.

        The score is the candidate's validation accuracy with the supernet's weights where
        the search scored candidates (SPOS, ENAS), else None (DARTS derives one).

        Example: `search.fit(x, y, epochs=5).ranked_candidates(3)`.
        """
        if self.best_architecture is None:
            raise ValueError("Call `fit()` before `ranked_candidates()`.")
        scores = getattr(self, "scores", None) or {}
        ranked = sorted(scores.items(), key=lambda item: -item[1])
        found = [(self.best_architecture, scores.get(tuple(self.best_path)))]
        for path, score in ranked:
            arch = self.space.encode(self.supernet.values_of(list(path)))
            if len(found) >= k:
                break
            if arch not in {a for a, _ in found}:
                found.append((arch, float(score)))
        return found[:k]

    def _log_epoch(self, epoch, epochs, started, text):
        """Logs one supernet epoch with the time spent and an estimate of the time left."""
        elapsed = time.perf_counter() - started
        left = elapsed / (epoch + 1) * (epochs - epoch - 1)
        self._log(f"supernet epoch {epoch + 1}/{epochs}: {text} ({elapsed:.0f}s, "
                  f"~{left:.0f}s left)")

    def retrain(self, x, y, epochs=10, batch_size=64, validation_data=None, verbose=0):
        """Builds the found architecture stand-alone from scratch and trains it.

        Args:
            x, y: training data (e.g. the search's training and validation data together).
            epochs: training epochs.
            batch_size: batch size.
            validation_data: optional `(x_val, y_val)` passed to `fit`.
            verbose: Keras `fit` verbosity.

        Returns:
            The compiled, trained `keras.Model` of `space.build_architecture(best_architecture)`.
        """
        if self.best_architecture is None:
            raise ValueError("Call `fit()` before `retrain()`: no architecture was found yet.")
        x, y = check_arrays(x, y)
        model = self.space.build_architecture(self.best_architecture)
        model.fit(
            x,
            y,
            epochs=int(epochs),
            batch_size=int(batch_size),
            validation_data=validation_data,
            verbose=verbose,
            callbacks=[BuildTrainingState(x, y)],  # the step is traced once
        )
        return model


def single_path_function(fn, variables):
    """`fn(..., path)` compiled once for every path (an int tensor, `path_tensor`).

    `variables`: every variable `fn` reads or assigns (`autodiff.compiled_function`). On
    TensorFlow a `tf.function` run with the graph optimizer off: its graph holds every option
    of every decision as a `switch` branch, Grappler's passes over it cost more than half of
    the first call, and no step-time gain after it was measured
    (`compat.without_graph_optimizer`; docs/benchmarks/oneshot.md, issue 17). On JAX, `jax.jit`.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return compat.without_graph_optimizer(tf.function(fn, reduce_retracing=True))
    return autodiff.compiled_function(fn, variables)


def tensor(array):
    """A numpy batch as a tensor of the backend (what the compiled steps take)."""
    return keras.ops.convert_to_tensor(array)


def path_tensor(path):
    """A path (option indices) as the int32 tensor that `single_path_function`s take."""
    return keras.ops.convert_to_tensor(np.asarray([int(i) for i in path], dtype="int32"))


def sparse_ce(model):
    """The loss of a supernet's outputs (probabilities, or logits if `from_logits`)."""
    from_logits = bool(getattr(model, "from_logits", False))

    def loss(y, out):
        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, out, from_logits=from_logits)
        )

    return loss


def batch_accuracy(y, out):
    """Mean accuracy of class scores `out` against integer labels `y` (a scalar tensor)."""
    pred = keras.ops.cast(keras.ops.argmax(out, axis=-1), "int32")
    return keras.ops.mean(keras.ops.cast(pred == keras.ops.cast(y, "int32"), "float32"))
