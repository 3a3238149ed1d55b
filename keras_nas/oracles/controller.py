"""The LSTM controller of `ReinforceOracle`, and helpers shared by keras-nas' oracles.

`LSTMController` is an LSTM that reads the previous decision and emits a distribution over
the next one (Zoph & Le 2017; Pham et al. 2018). The decisions themselves (a search space's
hyperparameters as finite lists of options) are in `keras_nas.oracles.decisions`.
"""

import math

import keras
import numpy as np

from keras_nas.autodiff import update_step


@keras.saving.register_keras_serializable(package="keras_nas")
class LSTMController(keras.Model):
    """An LSTM policy over a sequence of discrete decisions.

    Step `t` reads the embedding of decision `t-1` (a learned start vector at `t=0`; every
    option of every decision has its own embedding row), advances one `keras.layers.LSTMCell`,
    and the decision's own output projection gives the logits of decision `t`. Decisions may
    be skipped (inactive conditional hyperparameters); the LSTM then just reads the decisions
    that were made. Embeddings and output projections of all decisions are stored as one
    table each (sliced per decision), which keeps the controller at six weight tensors: one
    REINFORCE step stays cheap in eager mode.

    Args:
        num_options: list of the number of options of each decision, in order.
        units: size of the LSTM state and of the embeddings.
        temperature: logits are divided by it (`None`: 1).
        tanh_constant: if set, logits become `tanh_constant * tanh(logits)` (ENAS), which
            bounds how peaked the policy can become.
        seed: seed of the weight initializers.
        names: optional names of the decisions (used to keep weights when the space grows).

    Example:

    ```python
    controller = LSTMController([5, 5, 5], units=32, seed=0)
    state = controller.initial_state()
    logits, state = controller.step(None, 0, state)
    ```
    """

    def __init__(
        self,
        num_options,
        units=32,
        temperature=None,
        tanh_constant=None,
        seed=None,
        names=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_options = [int(n) for n in num_options]
        if not num_options or min(num_options) < 1:
            raise ValueError(
                f"`num_options` must be a non-empty list of positive integers, got {num_options!r}."
            )
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer, got {units!r}.")
        if temperature is not None and not float(temperature) > 0:
            raise ValueError(f"`temperature` must be > 0 or None, got {temperature!r}.")
        if tanh_constant is not None and not float(tanh_constant) > 0:
            raise ValueError(f"`tanh_constant` must be > 0 or None, got {tanh_constant!r}.")
        self.num_options = num_options
        self.units = units
        self.temperature = None if temperature is None else float(temperature)
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        self.seed = seed
        self.names = list(names) if names is not None else [f"d{i}" for i in range(len(num_options))]
        if len(self.names) != len(num_options):
            raise ValueError("`names` must have one entry per decision of `num_options`.")
        self.offsets = [int(v) for v in np.cumsum([0] + num_options[:-1])]
        total = int(sum(num_options))
        base = 0 if seed is None else int(seed) * 1000

        def init(k, uniform=0.1):
            return keras.initializers.RandomUniform(
                -uniform, uniform, seed=None if seed is None else base + k
            )

        self.start = self.add_weight(shape=(1, units), initializer=init(0), name="start")
        self.cell = keras.layers.LSTMCell(
            units, kernel_initializer=init(1), recurrent_initializer=init(2), name="lstm_cell"
        )
        self.cell.build((None, units))
        self.embedding = self.add_weight(
            shape=(total, units), initializer=init(3), name="embedding"
        )
        self.head_kernel = self.add_weight(
            shape=(units, total), initializer=init(4), name="head_kernel"
        )
        self.head_bias = self.add_weight(shape=(total,), initializer="zeros", name="head_bias")
        self.built = True

    def initial_state(self):
        """The LSTM state before the first decision."""
        zeros = keras.ops.zeros((1, self.units))
        return [zeros, zeros]

    def step(self, previous, index, state, temperature=None):
        """Logits of decision `index` given the previous decision.

        Args:
            previous: `None` at the first step, else `(decision_index, option_index)` of the
                decision made just before.
            index: which decision the logits are for.
            state: the LSTM state (from `initial_state()` or the previous `step`).
            temperature: overrides the controller's temperature for this step.

        Returns:
            `(logits, state)`: a tensor of shape `(num_options[index],)` and the new state.
        """
        if previous is None:
            x = self.start
        else:
            d, o = previous
            if hasattr(o, "shape"):  # a tensor inside a compiled step
                x = keras.ops.take(self.embedding, keras.ops.reshape(o + self.offsets[d], (1,)), axis=0)
            else:
                row = self.offsets[d] + int(o)
                x = self.embedding[row : row + 1]
        out, state = self.cell(x, state)
        lo, hi = self.offsets[index], self.offsets[index] + self.num_options[index]
        logits = keras.ops.matmul(out, self.head_kernel[:, lo:hi])[0] + self.head_bias[lo:hi]
        temperature = self.temperature if temperature is None else temperature
        if temperature is not None:
            logits = logits / temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * keras.ops.tanh(logits)
        return logits, state

    def log_prob(self, sequence):
        """Log-probability and entropy of a sequence of `(decision_index, option_index)`.

        Returns two scalar tensors (differentiable with respect to the weights).
        """
        state = self.initial_state()
        previous = None
        total_log_prob = 0.0
        total_entropy = 0.0
        for d, o in sequence:
            logits, state = self.step(previous, d, state)
            log_p = keras.ops.log_softmax(logits)
            total_log_prob = total_log_prob + keras.ops.take(log_p, o)
            total_entropy = total_entropy - keras.ops.sum(keras.ops.exp(log_p) * log_p)
            previous = (d, o)
        return total_log_prob, total_entropy

    def probabilities(self, sequence):
        """Probability of each decision of `sequence` under the current policy (numpy)."""
        policy = self.numpy_policy()
        state = policy.initial_state()
        previous = None
        probs = []
        for d, o in sequence:
            logits, state = policy.step(previous, d, state)
            probs.append(float(softmax(logits)[int(o)]))
            previous = (d, o)
        return probs

    def numpy_policy(self):
        """A copy of the current policy in numpy, for fast sampling (same maths as `step`)."""
        return NumpyPolicy(self)

    def call(self, inputs):
        """Logits of every decision when the options `inputs` (a list of ints) are taken."""
        state = self.initial_state()
        previous = None
        outputs = []
        for d in range(len(self.num_options)):
            logits, state = self.step(previous, d, state)
            outputs.append(logits)
            previous = (d, int(inputs[d]))
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_options": list(self.num_options),
                "units": self.units,
                "temperature": self.temperature,
                "tanh_constant": self.tanh_constant,
                "seed": self.seed,
                "names": list(self.names),
            }
        )
        return config


def softmax(logits):
    """The softmax of a 1-D array of logits, in float64 (numpy; for sampling)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def reinforce_loss(controller, sequences, advantages, entropy_weight, elites=(),
                   replay_weight=0.0):
    """The REINFORCE loss of `controller` and the mean entropy: `(loss, mean entropy)`.

    The loss, the same for `ReinforceOracle` and ENAS, is
    `-mean_b(advantage_b * log p(sequence_b)) - entropy_weight * mean_b(entropy_b)
    - replay_weight * mean_e(log p(elite_e))`, where a sequence is a list of
    `(decision_index, option)` (the option an int or an int scalar tensor) and `elites` are
    sequences to imitate (replay of the best architectures; none by default).
    """
    loss = 0.0
    total_entropy = 0.0
    for advantage, sequence in zip(advantages, sequences):
        log_prob, entropy = controller.log_prob(sequence)
        loss = loss - advantage * log_prob - entropy_weight * entropy
        total_entropy = total_entropy + entropy
    loss = loss / len(sequences)
    for sequence in elites:
        log_prob, _ = controller.log_prob(sequence)
        loss = loss - replay_weight * log_prob / len(elites)
    return loss, total_entropy / len(sequences)


def reinforce_step(controller, optimizer, sequences, advantages, entropy_weight, elites=(),
                   replay_weight=0.0):
    """One eager REINFORCE update of `controller` (`reinforce_loss`) on TensorFlow or JAX;
    returns `(loss, mean entropy)`.

    Example: `reinforce_step(controller, keras.optimizers.Adam(1e-3), [[(0, 1), (1, 0)]], [0.5], 0.01)`.
    """
    step = update_step(
        lambda: reinforce_loss(controller, sequences, advantages, entropy_weight, elites,
                               replay_weight),
        controller.trainable_variables, optimizer, compiled=False)
    return step()


class NumpyPolicy:
    """A frozen numpy copy of an `LSTMController`: `step` computes the same logits.

    Sampling a trial takes one pass of a few tiny matrix products; doing it in numpy keeps a
    proposal far below a millisecond, while learning stays in Keras.
    """

    def __init__(self, controller):
        self.units = controller.units
        self.temperature = controller.temperature
        self.tanh_constant = controller.tanh_constant
        def array(v):
            return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)

        self.offsets = list(controller.offsets)
        self.num_options = list(controller.num_options)
        self.start = array(controller.start)
        self.kernel = array(controller.cell.kernel)
        self.recurrent = array(controller.cell.recurrent_kernel)
        self.bias = array(controller.cell.bias)
        self.embedding = array(controller.embedding)
        self.head_kernel = array(controller.head_kernel)
        self.head_bias = array(controller.head_bias)

    def initial_state(self):
        zeros = np.zeros((1, self.units))
        return [zeros, zeros]

    def step(self, previous, index, state, temperature=None):
        """Same as `LSTMController.step`, returning numpy logits."""
        if previous is None:
            x = self.start
        else:
            d, o = previous
            x = self.embedding[self.offsets[d] + int(o)][None, :]
        h, c = state
        z = x @ self.kernel + h @ self.recurrent + self.bias
        u = self.units
        i = _sigmoid(z[:, :u])
        f = _sigmoid(z[:, u : 2 * u])
        c = f * c + i * np.tanh(z[:, 2 * u : 3 * u])
        o = _sigmoid(z[:, 3 * u :])
        h = o * np.tanh(c)
        lo, hi = self.offsets[index], self.offsets[index] + self.num_options[index]
        logits = (h @ self.head_kernel[:, lo:hi] + self.head_bias[lo:hi])[0]
        temperature = self.temperature if temperature is None else temperature
        if temperature is not None:
            logits = logits / temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * np.tanh(logits)
        return logits, [h, c]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
