"""DARTS: differentiable architecture search (Liu, Simonyan & Yang, ICLR 2019)."""

import time

import keras
import numpy as np
from keras import ops

from keras_nas.autodiff import compiled_function, update_step, value_and_gradients
from keras_nas.oneshot._base import OneShotSearch, batch_accuracy, sparse_ce, tensor

GUARDS = (None, "auxiliary_skip")


class DartsSearch(OneShotSearch):
    """DARTS over a space's supernet: bilevel optimization of weights `w` and `alpha`.

    Each step first updates `alpha` on a validation batch (first order: the gradient of
    `L_val(w, alpha)`; second order: of `L_val(w', alpha)` with the one-step unrolled weights
    `w' = w - xi * grad_w L_train(w, alpha)`, whose Hessian-vector term is approximated by
    central finite differences at `w +/- eps * grad_w' L_val(w', alpha)` with
    `eps = 0.01 / ||grad_w' L_val||`, eq. 7-8 of the paper), then updates `w` on a training
    batch. The two use separate optimizers: `w` is never touched by the `alpha` optimizer and
    `alpha` (outside `trainable_weights`) never by the `w` optimizer. Afterwards the genotype
    is derived: per decision, the option of largest `softmax(alpha)` that is not `"none"`.

    Skip-connection collapse. DARTS is known to drift onto parameter-free skip connections as
    the search goes on (Zela et al. 2020; Chu et al. 2021). Two published remedies are
    available, switchable:

    - `collapse_guard="auxiliary_skip"` (default), DARTS- (Chu et al., "DARTS-: Robustly
      Stepping out of Performance Collapse Without Indicators", ICLR 2021): an auxiliary skip
      connection `beta * cell_input` is added to every cell's output, with `beta` decaying
      linearly from 1 to 0 over the search, so the candidate skip ops no longer have to carry
      the gradient-flow advantage that makes them win unfairly. `None` turns it off.
    - `max_skip=M` (P-DARTS, Chen et al., ICCV 2019): at derivation at most `M` decisions may
      be skip connections; the weakest extra ones fall back to their best other option.

    Args:
        space: a `keras_nas.spaces.Space` with a supernet (`NASBench201Space`, ...).
        order: `"first"` or `"second"` (the finite-difference second-order approximation).
        learning_rate: SGD learning rate of `w` (momentum 0.9, cosine-annealed to 1e-3x).
        weight_decay: weight decay of `w`.
        arch_learning_rate: Adam learning rate of `alpha` (betas 0.5, 0.999).
        arch_weight_decay: weight decay of `alpha`.
        xi: step of the unrolled weights in second order (default: `learning_rate`).
        relaxation: `"softmax"` (DARTS) or `"gumbel"` (GDAS: hard Gumbel samples, temperature
            annealed linearly from `temperature[0]` to `temperature[1]`).
        temperature: `(start, end)` Gumbel temperatures.
        collapse_guard: `"auxiliary_skip"` or None (see above).
        max_skip: None, or the most skip connections a derived architecture may have.
        skip_option: the option name of the skip connection.
        warmup_epochs: epochs that train only `w` before `alpha` starts to move.
        optimizer, arch_optimizer: Keras optimizers overriding the defaults above.
        seed: random seed (data order, initializers).
        verbose: 1 prints one line per epoch.

    Example:

    ```python
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=8, cells_per_stage=1)
    search = DartsSearch(space, order="first", seed=0).fit(x, y, epochs=10, batch_size=64)
    search.best_architecture          # e.g. '|nor_conv_3x3~0|+|...'
    model = search.retrain(x, y, epochs=20)
    ```
    """

    def __init__(
        self,
        space,
        order="first",
        learning_rate=0.025,
        weight_decay=3e-4,
        arch_learning_rate=3e-4,
        arch_weight_decay=1e-3,
        xi=None,
        relaxation="softmax",
        temperature=(10.0, 0.1),
        collapse_guard="auxiliary_skip",
        max_skip=None,
        skip_option="skip_connect",
        warmup_epochs=0,
        optimizer=None,
        arch_optimizer=None,
        seed=None,
        verbose=0,
    ):
        super().__init__(space, seed=seed, verbose=verbose)
        if order not in ("first", "second"):
            raise ValueError(f"`order` must be 'first' or 'second', got {order!r}.")
        if relaxation not in ("softmax", "gumbel"):
            raise ValueError(f"`relaxation` must be 'softmax' or 'gumbel', got {relaxation!r}.")
        if collapse_guard not in GUARDS:
            raise ValueError(f"`collapse_guard` must be one of {GUARDS}, got {collapse_guard!r}.")
        for name, value in (
            ("learning_rate", learning_rate),
            ("arch_learning_rate", arch_learning_rate),
        ):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
        if xi is not None and (not isinstance(xi, (int, float)) or xi < 0):
            raise ValueError(f"`xi` must be a non-negative number or None, got {xi!r}.")
        if max_skip is not None and (not isinstance(max_skip, int) or max_skip < 0):
            raise ValueError(f"`max_skip` must be a non-negative integer or None, got {max_skip!r}.")
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"`warmup_epochs` must be a non-negative integer, got {warmup_epochs!r}.")
        try:
            t0, t1 = (float(t) for t in temperature)
        except (TypeError, ValueError):
            raise ValueError(f"`temperature` must be a pair (start, end), got {temperature!r}.") from None
        if not (t0 > 0 and t1 > 0):
            raise ValueError(f"`temperature` values must be > 0, got {temperature!r}.")
        self.order = order
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.arch_learning_rate = float(arch_learning_rate)
        self.arch_weight_decay = float(arch_weight_decay)
        self.xi = self.learning_rate if xi is None else float(xi)
        self.relaxation = relaxation
        self.temperature = (t0, t1)
        self.collapse_guard = collapse_guard
        self.max_skip = max_skip
        self.skip_option = skip_option
        self.warmup_epochs = warmup_epochs
        self._optimizer = optimizer
        self._arch_optimizer = arch_optimizer

    # -- setting up -------------------------------------------------------------------------
    def setup(self, steps_per_epoch=1, epochs=1):
        """Builds the supernet and the two optimizers (`fit` calls this)."""
        net = self._make_supernet(mode=self.relaxation, temperature=self.temperature[0])
        if self._optimizer is not None:
            self.optimizer = self._optimizer
        else:
            schedule = keras.optimizers.schedules.CosineDecay(
                self.learning_rate, decay_steps=max(1, steps_per_epoch * epochs), alpha=1e-3
            )
            self.optimizer = keras.optimizers.SGD(
                schedule, momentum=0.9, weight_decay=self.weight_decay, global_clipnorm=5.0
            )
        if self._arch_optimizer is not None:
            self.arch_optimizer = self._arch_optimizer
        else:
            self.arch_optimizer = keras.optimizers.Adam(
                self.arch_learning_rate,
                beta_1=0.5,
                beta_2=0.999,
                weight_decay=self.arch_weight_decay,
            )
        self.loss_fn = sparse_ce(net)
        self._compile_steps()
        return net

    def _compile_steps(self):
        net = self.supernet
        state = net.variables
        self._w_step = update_step(self._loss_and_accuracy, net.weight_variables,
                                   self.optimizer, state=state)
        self._a_step_first = update_step(self._loss_and_accuracy, net.arch_variables,
                                         self.arch_optimizer, state=state)

        def a_step_second(xt, yt, xv, yv):
            grads, loss, acc = self._second_order_grads(xt, yt, xv, yv)
            self.arch_optimizer.apply(grads, net.arch_variables)
            return loss, acc

        self._a_step_second = compiled_function(
            a_step_second, state + list(self.arch_optimizer.variables))

    def _loss_and_accuracy(self, x, y):
        out = self.supernet(x, training=True)
        return self.loss_fn(y, out), batch_accuracy(y, out)

    def _second_order_grads(self, xt, yt, xv, yv):
        """The DARTS second-order `alpha` gradient; restores every network variable after."""
        net = self.supernet
        w_vars, a_vars = net.weight_variables, net.arch_variables
        arch_ids = {id(a) for a in a_vars}
        state_vars = [v for v in net.weights if id(v) not in arch_ids]
        saved = [ops.copy(v.value) for v in state_vars]
        saved_w = [ops.copy(v.value) for v in w_vars]

        def train_loss():
            return self._loss_and_accuracy(xt, yt)

        # w' = w - xi * grad_w L_train(w, alpha)
        _, g_train = value_and_gradients(train_loss, w_vars, has_aux=True)
        for v, g in zip(w_vars, g_train):
            v.assign(v.value - self.xi * g)
        # grad of L_val at (w', alpha), with respect to w' and alpha
        (loss, acc), grads = value_and_gradients(
            lambda: self._loss_and_accuracy(xv, yv), w_vars + a_vars, has_aux=True)
        g_wprime, g_alpha = grads[: len(w_vars)], grads[len(w_vars) :]
        eps = 0.01 / (ops.sqrt(sum(ops.sum(ops.square(g)) for g in g_wprime)) + 1e-12)
        # Hessian-vector product by central differences around the original w.
        for v, s, g in zip(w_vars, saved_w, g_wprime):
            v.assign(s + eps * g)
        _, g_plus = value_and_gradients(train_loss, a_vars, has_aux=True)
        for v, s, g in zip(w_vars, saved_w, g_wprime):
            v.assign(s - eps * g)
        _, g_minus = value_and_gradients(train_loss, a_vars, has_aux=True)
        for v, s in zip(state_vars, saved):
            v.assign(s)
        out_grads = [ga - self.xi * (gp - gm) / (2.0 * eps)
                     for ga, gp, gm in zip(g_alpha, g_plus, g_minus)]
        return out_grads, loss, acc

    def arch_gradients(self, xt, yt, xv, yv):
        """The `alpha` gradient one step would apply (first or second order), as tensors.

        `xt, yt` (a training batch) are used only by the second-order unrolling.
        """
        if self.order == "first":
            _, grads = value_and_gradients(
                lambda: self._loss_and_accuracy(tensor(xv), tensor(yv)),
                self.supernet.arch_variables, has_aux=True)
            return grads
        grads, _, _ = self._second_order_grads(tensor(xt), tensor(yt), tensor(xv), tensor(yv))
        return grads

    def step(self, train_batch, val_batch, update_arch=True):
        """One DARTS step: `alpha` on `val_batch` (then `w` on `train_batch`).

        Returns `(train_loss, train_acc, val_loss, val_acc)` as floats (val ones are NaN when
        `alpha` is not updated).
        """
        xt, yt = (tensor(t) for t in train_batch)
        xv, yv = (tensor(t) for t in val_batch)
        vl = va = float("nan")
        if update_arch:
            if self.order == "first":
                vl, va = self._a_step_first(xv, yv)
            else:
                vl, va = self._a_step_second(xt, yt, xv, yv)
            vl, va = float(vl), float(va)
        tl, ta = self._w_step(xt, yt)
        return float(tl), float(ta), vl, va

    # -- the search -------------------------------------------------------------------------
    def _search(self, x, y, xv, yv, epochs, batch_size):
        steps = max(1, len(x) // batch_size)
        net = self.setup(steps_per_epoch=steps, epochs=epochs)
        self.history = {
            k: []
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "alpha", "beta", "temperature", "seconds")
        }
        total = epochs * steps
        done = 0
        started = time.perf_counter()
        for epoch in range(epochs):
            start = time.perf_counter()
            if self.relaxation == "gumbel":
                t0, t1 = self.temperature
                tau = t0 - (t0 - t1) * epoch / max(1, epochs - 1)
                net.set_temperature(tau)
                self._compile_steps()  # the temperature is a constant of the traced steps
            train = self._batches(x, y, batch_size)
            val = self._batches(xv, yv, batch_size)
            logs = []
            for k, tb in enumerate(train):
                if self.collapse_guard == "auxiliary_skip":
                    net.aux_skip_beta.assign(1.0 - done / total)
                logs.append(self.step(tb, val[k % len(val)], update_arch=epoch >= self.warmup_epochs))
                done += 1
            logs = np.asarray(logs, dtype=np.float64)
            self.history["loss"].append(float(np.mean(logs[:, 0])))
            self.history["accuracy"].append(float(np.mean(logs[:, 1])))
            self.history["val_loss"].append(float(np.nanmean(logs[:, 2])) if epoch >= self.warmup_epochs else None)
            self.history["val_accuracy"].append(float(np.nanmean(logs[:, 3])) if epoch >= self.warmup_epochs else None)
            self.history["alpha"].append([p.tolist() for p in net.probabilities()])
            self.history["beta"].append(float(keras.ops.convert_to_numpy(net.aux_skip_beta)))
            self.history["temperature"].append(net.temperature)
            self.history["seconds"].append(time.perf_counter() - start)
            val_acc = self.history["val_accuracy"][-1]
            self._log_epoch(epoch, epochs, started,
                            f"loss {self.history['loss'][-1]:.4f}, accuracy "
                            f"{self.history['accuracy'][-1]:.4f}, validation accuracy "
                            f"{'-' if val_acc is None else f'{val_acc:.4f}'}")
        net.aux_skip_beta.assign(0.0)
        self.num_evaluated = 1
        return self.derive()

    def derive(self):
        """The discrete path: strongest non-`"none"` option per decision, then `max_skip`."""
        net = self.supernet
        path = net.derive(exclude=("none",))
        if self.max_skip is None:
            return path
        probs = net.probabilities()
        skips = [
            k
            for k, (name, options) in enumerate(net.decisions)
            if options[path[k]] == self.skip_option
        ]
        # Keep the strongest `max_skip` skips; the others take their best other option.
        skips.sort(key=lambda k: -probs[k][path[k]])
        for k in skips[self.max_skip :]:
            options = net.decisions[k][1]
            order = np.argsort(-probs[k], kind="stable")
            for i in order:
                if options[int(i)] not in ("none", self.skip_option):
                    path[k] = int(i)
                    break
        return path

    def skip_weight(self):
        """Mean `softmax(alpha)` weight of the skip option over the `alpha`s that have one."""
        net = self.supernet
        vals = [
            p[options.index(self.skip_option)]
            for (name, options), p in zip(net.decisions, net.probabilities())
            if self.skip_option in options
        ]
        return float(np.mean(vals)) if vals else 0.0
