"""Zero-cost proxies: scores of an untrained network that predict how well it will train.

Every proxy takes a built Keras classification model and returns a Python float where
**higher means a better predicted architecture**:

| name | data | definition |
|---|---|---|
| `synflow` | none | sum of `|theta * dR/dtheta|`, `R` = sum of the output of the net with `|weights|`, all-ones input, float64 (Tanaka et al. 2020; Abdelfattah et al. 2021) |
| `snip` | x, y | sum of `|theta * dL/dtheta|`, `L` = mean cross-entropy (Lee et al. 2019) |
| `grad_norm` | x, y | sum over weight tensors of `||dL/dtheta||_2` (Abdelfattah et al. 2021) |
| `jacob_cov` | x | `-sum(log(l + 1e-5) + 1/(l + 1e-5))` over eigenvalues `l` of the correlation matrix of the per-example input Jacobians (Mellor et al. 2020, v1) |
| `naswot` | x | `log|K_H|`, `K_H[i, j]` = number of ReLU units on which examples i and j agree (Mellor et al., ICML 2021) |
| `params` | none | trainable parameters (baseline) |
| `flops` | none | FLOPs of one example's forward pass, `keras_nas.hardware.cost.count_flops` (baseline) |

Conventions shared by all proxies:

- **Backend.** Any Keras backend that `keras_nas.autodiff` differentiates on (TensorFlow,
  JAX); synflow's float64 pass turns on JAX's 64-bit mode for its duration.
- **Weights are never written.** Every forward pass goes through `model.stateless_call` with
  the current weight values (or, for synflow, their absolute values) passed in as tensors,
  and the updated batch-norm statistics it returns are thrown away. A model's weights after a
  proxy are bit-for-bit those before it.
- **Softmax outputs.** If the model's output layer applies a softmax (a layer with
  `activation="softmax"`, `keras.layers.Activation("softmax")` or `keras.layers.Softmax`),
  the softmax is switched off for the duration of the proxy and the proxies see the
  pre-softmax logits, as the reference implementations (PyTorch networks that output logits)
  do. Otherwise the output is taken to be logits. `snip` and `grad_norm` use the mean sparse
  cross-entropy of those logits; `synflow` and `jacob_cov` sum them.
- **Which parameters count.** `synflow`, `snip` and `grad_norm` sum over the *weight tensors*,
  the trainable variables of rank >= 2 (kernels of Conv, Depthwise/Separable Conv and Dense
  layers), and leave out biases and batch-norm scales, as Abdelfattah et al. sum over the
  `weight` of `Conv2d` and `Linear` layers.
- **Batch norm.** Data-dependent proxies run the network in training mode (batch statistics),
  as the reference code does with `net.train()`. `synflow` runs it in inference mode with the
  stored moving statistics, which for an untrained network (mean 0, variance 1) is the
  near-identity that Abdelfattah et al. get by building the network without batch norm.
- **Labels** `y` are integer class ids of shape `(batch,)` or one-hot rows `(batch, classes)`.

Example:

```python
import numpy as np, keras
from keras_nas.estimation import score, synflow

model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
y = np.arange(16) % 10
print(synflow(model), score(model, "snip", x, y), score(model, "naswot", x))
```
"""

import contextlib
import math

import keras
import numpy as np

from keras_nas import compat
from keras_nas.autodiff import value_and_input_gradients

_JACOB_K = 1e-5


# ---------------------------------------------------------------------------------------------
# checks and shared machinery
# ---------------------------------------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    if not model.built:
        raise ValueError(
            "`model` must be built (call it once or give it an Input) before a proxy can "
            "score it."
        )
    return model


def _check_x(x, min_batch=1, name="x"):
    if x is None:
        raise ValueError(f"`{name}` is required: a batch of inputs of shape (batch, ...).")
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(
            f"`{name}` must be a numeric batch of shape (batch, ...), got shape {x.shape} "
            f"and dtype {x.dtype}."
        )
    if x.shape[0] < min_batch:
        raise ValueError(
            f"`{name}` must hold at least {min_batch} examples, got {x.shape[0]}."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` must be finite (found NaN or inf).")
    return x.astype("float32", copy=False)


def _check_y(y, batch):
    if y is None:
        raise ValueError("`y` is required: integer labels of shape (batch,) or one-hot rows.")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = np.argmax(y, axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(
            f"`y` must hold one label per example of `x` ({batch}), got shape {np.shape(y)}."
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("`y` must be integer class ids (or one-hot rows).")
    return y.astype("int64")


def _all_layers(model):
    """Every layer of `model`, nested ones included, each once."""
    return list(compat.all_layers(model, include_self=False, recursive=True))


def _output_layer(model):
    outputs = getattr(model, "outputs", None)
    if outputs:
        if len(outputs) != 1:
            raise ValueError(
                f"`model` must have a single (classification) output, it has {len(outputs)}."
            )
        history = getattr(outputs[0], "_keras_history", None)
        if history is not None:
            return history[0]
    layers = getattr(model, "layers", None)
    return layers[-1] if layers else None


def _is_named(fn, name):
    return fn is not None and getattr(fn, "__name__", None) == name


@contextlib.contextmanager
def _logits_view(model):
    """Switches off a final softmax for the duration of the block (see the module doc)."""
    layer = _output_layer(model)
    restore = None
    if layer is not None:
        if isinstance(layer, keras.layers.Softmax):

            def _identity(inputs, mask=None, **kwargs):
                return inputs

            layer.call = _identity

            def restore():
                del layer.call

        elif _is_named(getattr(layer, "activation", None), "softmax"):
            original = layer.activation
            layer.activation = keras.activations.linear

            def restore():
                layer.activation = original

    try:
        yield
    finally:
        if restore is not None:
            restore()


def _values(model):
    trainable = [keras.ops.convert_to_tensor(v.value) for v in model.trainable_variables]
    non_trainable = [keras.ops.convert_to_tensor(v.value) for v in model.non_trainable_variables]
    return trainable, non_trainable


def _with(values, indices, replacements):
    """`values` with `values[i]` replaced by the matching `replacements` for `i` in `indices`."""
    out = list(values)
    for i, value in zip(indices, replacements):
        out[i] = value
    return out


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype="float64")


def _run(model, trainable, non_trainable, x, training):
    """A side-effect-free forward pass; returns the output (logits view applies outside)."""
    out, _ = model.stateless_call(trainable, non_trainable, x, training=training)
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise ValueError(
                f"`model` must have a single (classification) output, it gave {len(out)}."
            )
        out = out[0]
    return out


def _weight_indices(model):
    """Positions in `model.trainable_variables` of the weight tensors (rank >= 2)."""
    return [i for i, v in enumerate(model.trainable_variables) if len(v.shape) >= 2]


def _loss_gradients(model, x, y, training=True):
    """Mean cross-entropy gradients w.r.t. the weight tensors, with their values (numpy)."""
    _check_model(model)
    x = _check_x(x)
    y = _check_y(y, x.shape[0])
    trainable, non_trainable = _values(model)
    idx = _weight_indices(model)
    if not idx:
        raise ValueError("`model` has no weight tensors (trainable variables of rank >= 2).")
    watched = [trainable[i] for i in idx]
    inputs = keras.ops.convert_to_tensor(x)
    labels = keras.ops.convert_to_tensor(y.astype("int32"))

    def loss_of(weights):
        logits = _run(model, _with(trainable, idx, weights), non_trainable, inputs, training)
        logits = keras.ops.cast(keras.ops.reshape(logits, (x.shape[0], -1)), "float32")
        if int(y.max()) >= logits.shape[-1] or int(y.min()) < 0:
            raise ValueError(
                f"`y` holds labels outside [0, {logits.shape[-1]}) for a model with "
                f"{logits.shape[-1]} outputs."
            )
        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))

    with _logits_view(model):
        _, grads = value_and_input_gradients(loss_of, watched)
    return [(_numpy(w), _numpy(g)) for w, g in zip(watched, grads)]


def _float(value, proxy):
    value = float(value)
    if math.isnan(value):
        raise FloatingPointError(f"proxy {proxy!r} gave NaN for this model.")
    return value


# ---------------------------------------------------------------------------------------------
# synflow
# ---------------------------------------------------------------------------------------------


def _compute_policy(dtype):
    """A dtype policy that keeps float32 variables and computes in `dtype`."""
    policy = keras.DTypePolicy("float32")
    policy._compute_dtype = dtype  # Keras has no public float32/float64 "mixed" policy.
    return policy


@contextlib.contextmanager
def _compute_in(model, dtype):
    layers = [model] + _all_layers(model)
    saved = [layer.dtype_policy for layer in layers]
    policy = _compute_policy(dtype)
    try:
        for layer in layers:
            layer.dtype_policy = policy
        yield
    finally:
        for layer, old in zip(layers, saved):
            layer.dtype_policy = old


def synflow(model, input_shape=None, precision="float64"):
    """SynFlow: the data-free "synaptic flow" score (Tanaka et al. 2020; Abdelfattah et al. 2021).

    Every weight is replaced by its absolute value, an all-ones input of batch 1 is passed
    through the network in inference mode, `R` is the sum of the (pre-softmax) output, and the
    score is `sum |theta * dR/dtheta|` over the weight tensors. The pass runs in float64
    (layers compute in float64 while reading the float32 weights), as the reference does
    with `net.double()`, because `R` grows with depth and overflows float32 for deep cell
    networks (about 1e60 for 60 conv layers). The gradient is taken of `log R`, which stays
    representable, and multiplied back by `R` in float64:
    `theta * dR/dtheta = R * theta * dlogR/dtheta` (every term is non-negative here).

    The data is ignored: the score depends on the architecture and the initial weights only.
    Weights are not modified (the absolute values are passed to `model.stateless_call`).

    Args:
        model: a built `keras.Model`.
        input_shape: shape of one example, e.g. `(32, 32, 3)`; defaults to the model's.
        precision: `"float64"` (default) or `"float32"` for the forward pass.

    Returns:
        The score as a Python float (`inf` if `R` overflows even in float64, `0.0` for a
        network whose output does not depend on its weights).

    Example:

    ```python
    s = synflow(model, input_shape=(32, 32, 3))
    ```
    """
    _check_model(model)
    if precision not in ("float64", "float32"):
        raise ValueError(f"`precision` must be 'float64' or 'float32', got {precision!r}.")
    input_shape = _input_shape(model, input_shape)
    trainable, non_trainable = _values(model)
    idx = _weight_indices(model)
    if not idx:
        raise ValueError("`model` has no weight tensors (trainable variables of rank >= 2).")
    with _logits_view(model), _compute_in(model, precision), _x64(precision):
        absolute = [keras.ops.abs(t) for t in trainable]
        watched = [absolute[i] for i in idx]
        ones = keras.ops.ones((1,) + input_shape, dtype=precision)

        def log_r_of(weights):
            out = _run(model, _with(absolute, idx, weights), non_trainable, ones, training=False)
            r = keras.ops.sum(keras.ops.cast(out, precision))
            return keras.ops.log(r), r

        (_, r), grads = value_and_input_gradients(log_r_of, watched, has_aux=True)
        r_value = float(keras.ops.convert_to_numpy(r))
        if not math.isfinite(r_value):
            return math.inf
        if r_value <= 0.0:
            return 0.0
        total = sum(float(np.sum(np.abs(_numpy(w) * _numpy(g)))) for w, g in zip(watched, grads))
    return _float(total * r_value, "synflow")


def _x64(precision):
    """JAX computes in float32 unless its 64-bit mode is on: on for a float64 pass."""
    if precision != "float64" or keras.backend.backend() != "jax":
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)


def _input_shape(model, input_shape):
    if input_shape is None:
        inputs = getattr(model, "inputs", None)
        if not inputs or len(inputs) != 1:
            raise ValueError(
                "Pass `input_shape` (shape of one example): the model has no single Input."
            )
        input_shape = tuple(inputs[0].shape[1:])
    try:
        input_shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`input_shape` must be a tuple of positive ints, got {input_shape!r}."
        ) from None
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"`input_shape` must be a tuple of positive ints, got {input_shape!r}.")
    return input_shape


# ---------------------------------------------------------------------------------------------
# gradient proxies
# ---------------------------------------------------------------------------------------------


def snip(model, x, y, training=True):
    """SNIP saliency at initialization (Lee et al. 2019), as a NAS proxy (Abdelfattah et al. 2021).

    `sum |theta * dL/dtheta|` over the weight tensors, `L` the mean sparse cross-entropy of
    the logits on `(x, y)`, the network in training mode (batch statistics).

    Args:
        model: a built `keras.Model`.
        x: a batch of inputs.
        y: integer labels `(batch,)` or one-hot `(batch, classes)`.
        training: batch-norm mode of the pass (default True, as the reference).

    Returns:
        The score as a Python float.

    Example: `snip(model, x[:64], y[:64])`.
    """
    pairs = _loss_gradients(model, x, y, training=training)
    return _float(sum(float(np.sum(np.abs(w * g))) for w, g in pairs), "snip")


def grad_norm(model, x, y, training=True):
    """Gradient norm (Abdelfattah et al. 2021): the sum over weight tensors of `||dL/dtheta||_2`.

    `L` is the mean sparse cross-entropy of the logits on `(x, y)`; each weight tensor
    (kernel) contributes the Euclidean norm of its gradient.

    Args:
        model: a built `keras.Model`.
        x: a batch of inputs.
        y: integer labels `(batch,)` or one-hot `(batch, classes)`.
        training: batch-norm mode of the pass (default True, as the reference).

    Returns:
        The score as a Python float.

    Example: `grad_norm(model, x[:64], y[:64])`.
    """
    pairs = _loss_gradients(model, x, y, training=training)
    return _float(sum(float(np.linalg.norm(g.ravel())) for _, g in pairs), "grad_norm")


def snip_and_grad_norm(model, x, y, training=True):
    """`(snip, grad_norm)` from one shared backward pass (they use the same gradients).

    Example: `s, g = snip_and_grad_norm(model, x, y)`.
    """
    pairs = _loss_gradients(model, x, y, training=training)
    return (
        _float(sum(float(np.sum(np.abs(w * g))) for w, g in pairs), "snip"),
        _float(sum(float(np.linalg.norm(g.ravel())) for _, g in pairs), "grad_norm"),
    )


# ---------------------------------------------------------------------------------------------
# jacob_cov
# ---------------------------------------------------------------------------------------------


def input_jacobians(model, x, training=True):
    """Per-example gradients of the summed logits w.r.t. the input, flattened.

    Row `i` is `d(sum_k f_k(x_i)) / dx_i` (one backward pass of the summed output, as Mellor et
    al.), shape `(batch, prod(x.shape[1:]))`, float64.

    Example: `J = input_jacobians(model, x)`.
    """
    _check_model(model)
    x = _check_x(x)
    trainable, non_trainable = _values(model)

    def total_of(inputs):
        out = _run(model, trainable, non_trainable, inputs[0], training)
        return keras.ops.sum(keras.ops.cast(out, "float32"))

    with _logits_view(model):
        _, (grad,) = value_and_input_gradients(total_of, [keras.ops.convert_to_tensor(x)])
    return _numpy(grad).reshape(x.shape[0], -1)


def jacobian_correlation(jacobians):
    """Correlation matrix of the rows of `jacobians`.

    Rows without variance (e.g. an all-zero Jacobian, a network whose output ignores its
    input) carry no distinguishing information; they are taken as perfectly correlated with
    every row, so such networks get the lowest `jacob_cov`.

    Example: `jacobian_correlation(input_jacobians(model, x))`.
    """
    j = np.asarray(jacobians, dtype="float64")
    centered = j - j.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centered, axis=1)
    flat = norms <= 1e-12 * max(1.0, float(np.max(np.abs(j))) if j.size else 1.0)
    safe = np.where(flat, 1.0, norms)
    corr = (centered @ centered.T) / np.outer(safe, safe)
    corr[flat, :] = 1.0
    corr[:, flat] = 1.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def jacob_cov_from_correlation(corr):
    """`-sum(log(l + k) + 1 / (l + k))`, `k = 1e-5`, over eigenvalues `l` of `corr`.

    Example: `jacob_cov_from_correlation(np.eye(4))` is about `-4.0`.
    """
    eig = np.linalg.eigvalsh(np.asarray(corr, dtype="float64"))
    eig = np.clip(eig, 0.0, None)  # a correlation matrix is PSD; clip round-off below 0
    return float(-np.sum(np.log(eig + _JACOB_K) + 1.0 / (eig + _JACOB_K)))


def jacob_cov(model, x, y=None, training=True):
    """Jacobian covariance (Mellor et al. 2020, "NAS without training" v1; Abdelfattah et al.).

    The input-Jacobians of a batch (`input_jacobians`) are correlated across examples
    (`jacobian_correlation`, `np.corrcoef` of the rows) and the score is
    `-sum_i(log(l_i + 1e-5) + 1/(l_i + 1e-5))` over the eigenvalues `l_i` of that matrix:
    a network that maps different inputs to distinct local linear maps scores higher.
    `y` is ignored (accepted so every proxy has the same call form). Needs >= 2 examples.

    Args:
        model: a built `keras.Model`.
        x: a batch of at least 2 inputs.
        y: ignored.
        training: batch-norm mode of the pass (default True).

    Returns:
        The score as a Python float (at most `-(batch - 1) * 1e5` roughly when all Jacobians
        are identical).

    Example: `jacob_cov(model, x[:64])`.
    """
    _check_x(x, min_batch=2)
    return _float(
        jacob_cov_from_correlation(jacobian_correlation(input_jacobians(model, x, training))),
        "jacob_cov",
    )


# ---------------------------------------------------------------------------------------------
# NASWOT
# ---------------------------------------------------------------------------------------------

_RELU_INPUT_LAYERS = []


def register_relu_layer(layer_class):
    """Declares a layer class that starts with a ReLU computed inside `call()` (by `keras.ops`).

    NASWOT reads binary ReLU codes. ReLUs that are layers (`keras.layers.ReLU`,
    `keras.layers.Activation("relu")`, any layer with `activation="relu"`) are found by
    inspection; a layer that instead applies `keras.ops.relu` to its input inside `call()` is
    invisible to that, so register its class here and NASWOT records `inputs > 0` for it.

    Example: `register_relu_layer(MyReLUConv)`.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"`layer_class` must be a keras Layer subclass, got {layer_class!r}.")
    if layer_class not in _RELU_INPUT_LAYERS:
        _RELU_INPUT_LAYERS.append(layer_class)
    return layer_class


def _relu_role(layer):
    """'output' if the layer's output is a ReLU's, 'input' if it applies ReLU to its input first."""
    if isinstance(layer, keras.layers.ReLU):
        slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
        threshold = float(getattr(layer, "threshold", 0.0) or 0.0)
        return "output" if slope == 0.0 and threshold == 0.0 else None
    if _is_named(getattr(layer, "activation", None), "relu"):
        return "output"
    if isinstance(layer, tuple(_RELU_INPUT_LAYERS)):
        # Its own ReLU sublayers, if any, are hooked directly instead.
        inner = compat.all_layers(layer, include_self=False, recursive=True)
        if any(_relu_role(sub) == "output" for sub in inner):
            return None
        return "input"
    return None


@contextlib.contextmanager
def _recording(layers_roles, sink):
    """Wraps `call` of each (layer, role) to pass `(layer, tensor)` to `sink` on every call.

    `tensor` is the layer's output for role `'output'` and its first input for `'input'`.
    The wrappers are instance attributes and are deleted on exit, restoring the class `call`.
    """
    patched = []

    def make(layer, role, original):
        def hooked(*args, **kwargs):
            out = original(*args, **kwargs)
            if role == "output":
                tensor = out
            else:
                tensor = args[0] if args else next(iter(kwargs.values()))
            sink(layer, tensor)
            return out

        return hooked

    try:
        for layer, role in layers_roles:
            original = layer.call
            layer.call = make(layer, role, original)
            patched.append(layer)
        yield
    finally:
        for layer in patched:
            del layer.call


def relu_layers(model):
    """The layers whose ReLU activations NASWOT reads, with `'output'`/`'input'` roles.

    Example: `[(l.name, role) for l, role in relu_layers(model)]`.
    """
    _check_model(model)
    found = []
    for layer in _all_layers(model):
        role = _relu_role(layer)
        if role is not None:
            found.append((layer, role))
    return found


def relu_codes(model, x, training=True):
    """Binary ReLU activation codes: `(batch, N_A)` array of 0/1, one column per ReLU unit.

    Unit `u` of example `i` is 1 when the unit is active (its pre-activation is > 0). Columns
    are all ReLU layers of `relu_layers(model)` in call order, flattened.

    Example: `c = relu_codes(model, x)`.
    """
    _check_model(model)
    x = _check_x(x)
    codes = []
    _forward_relus(model, x, training, lambda layer, t: codes.append(
        (keras.ops.convert_to_numpy(t).reshape(x.shape[0], -1) > 0).astype("float64")))
    return np.concatenate(codes, axis=1)


def _forward_relus(model, x, training, sink):
    targets = relu_layers(model)
    if not targets:
        raise ValueError(
            "`model` has no ReLU activations for NASWOT: expected keras.layers.ReLU, "
            "Activation('relu'), layers with activation='relu', or classes registered with "
            "register_relu_layer()."
        )
    trainable, non_trainable = _values(model)
    with _recording(targets, sink):
        _run(model, trainable, non_trainable, keras.ops.convert_to_tensor(x), training)


def naswot_kernel_of(model, x, training=True):
    """`K_H` of `model` on batch `x`, accumulated layer by layer without storing the codes.

    For a layer with 0/1 codes `C` of `n` units, `C C^T + (1-C)(1-C)^T` equals
    `2 C C^T + n - s_i - s_j` with `s` the row sums; one matrix product per ReLU layer.

    Example: `K = naswot_kernel_of(model, x)`.
    """
    _check_model(model)
    x = _check_x(x)
    batch = x.shape[0]
    kernel = np.zeros((batch, batch), dtype="float64")

    def accumulate(layer, tensor):
        c = keras.ops.cast(keras.ops.reshape(tensor, (batch, -1)) > 0, "float32")
        n = float(c.shape[1])
        gram = _numpy(keras.ops.matmul(c, keras.ops.transpose(c)))
        s = np.diag(gram)  # row sums of a 0/1 matrix: c_i . c_i
        kernel[...] += 2.0 * gram + n - s[:, None] - s[None, :]

    _forward_relus(model, x, training, accumulate)
    return kernel


def naswot_kernel(codes):
    """`K_H[i, j] = N_A - hamming(c_i, c_j)`: units on which examples i and j agree.

    Computed as `C C^T + (1 - C)(1 - C)^T` for the 0/1 code matrix `C` (Mellor et al. 2021).

    Example: `naswot_kernel(relu_codes(model, x))`.
    """
    c = np.asarray(codes, dtype="float64")
    if c.ndim != 2:
        raise ValueError(f"`codes` must be a (batch, units) matrix, got shape {c.shape}.")
    return c @ c.T + (1.0 - c) @ (1.0 - c).T


def naswot(model, x, y=None, training=True):
    """NASWOT score (Mellor et al., "Neural Architecture Search without Training", ICML 2021).

    `log|K_H|` (`np.linalg.slogdet`) of the kernel of binary ReLU codes (`relu_codes`,
    `naswot_kernel`). ReLUs are found by inspecting every (nested) layer: `keras.layers.ReLU`
    (zero threshold and slope; a `max_value` cap is fine), any layer whose `activation` is
    relu (including `keras.layers.Activation("relu")`), and layer classes registered with
    `register_relu_layer` (recorded as `inputs > 0`). The `ReLUConvBN`, `FactorizedReduce`,
    `SepConv` and `DilConv` ops of `keras_nas.layers` hold a `keras.layers.ReLU` sublayer and
    are covered by the first rule. Their `call` is wrapped for one forward pass and restored.
    `y` is ignored. Returns `-inf` when `K_H` is singular (two examples with equal codes).

    Example: `naswot(model, x[:64])`.
    """
    _check_x(x, min_batch=2)
    sign, logdet = np.linalg.slogdet(naswot_kernel_of(model, x, training))
    if sign <= 0:
        return -math.inf
    return _float(logdet, "naswot")


# ---------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------


def params(model):
    """Number of trainable parameters (the size baseline).

    Example: `params(model)`.
    """
    _check_model(model)
    return float(sum(int(np.prod(v.shape)) for v in model.trainable_variables))


def flops(model, input_shape=None):
    """Floating-point operations of one example's forward pass (the compute baseline).

    Reuses `keras_nas.hardware.cost.count_flops`: `2 x` the multiply-accumulates of Conv
    (all kinds) and Dense layers, nested ones included, plus biases, activations, batch norm,
    pooling and merges (see that module for the exact conventions). For NAS-Bench-201-style
    "FLOPs" (which are MACs) use `keras_nas.hardware.cost.count_macs`; the two rank cell
    networks almost identically.

    Args:
        model: a built `keras.Model`.
        input_shape: shape of one example; defaults to the model's.

    Returns:
        FLOPs as a float.

    Example: `flops(model) / 1e6` (MFLOPs).
    """
    from keras_nas.hardware.cost import count_flops

    _check_model(model)
    if input_shape is not None:
        input_shape = _input_shape(model, input_shape)
    return float(count_flops(model, input_shape))


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------

PROXIES = {
    "synflow": lambda model, x=None, y=None: synflow(
        model, input_shape=None if x is None else np.shape(x)[1:]
    ),
    "snip": lambda model, x=None, y=None: snip(model, x, y),
    "grad_norm": lambda model, x=None, y=None: grad_norm(model, x, y),
    "jacob_cov": lambda model, x=None, y=None: jacob_cov(model, x),
    "naswot": lambda model, x=None, y=None: naswot(model, x),
    "params": lambda model, x=None, y=None: params(model),
    "flops": lambda model, x=None, y=None: flops(
        model, input_shape=None if x is None else np.shape(x)[1:]
    ),
}
"""Proxy name -> `f(model, x=None, y=None) -> float`; higher predicts a better network."""

DATA_FREE = ("synflow", "params", "flops")
"""Proxies that do not look at the data (`x` only gives them the input shape)."""

NEEDS_LABELS = ("snip", "grad_norm")
"""Proxies that need labels `y`."""


def score(model, proxy, x=None, y=None):
    """Scores `model` with the zero-cost proxy named `proxy` (a key of `PROXIES`).

    Args:
        model: a built `keras.Model`.
        proxy: `"synflow"`, `"snip"`, `"grad_norm"`, `"jacob_cov"`, `"naswot"`, `"params"`
            or `"flops"`.
        x: a batch of inputs (needed by all but the data-free proxies).
        y: labels of `x` (needed by `snip` and `grad_norm`).

    Returns:
        The score as a float; higher predicts a better architecture.

    Example:

    ```python
    s = score(model, "jacob_cov", x_batch)
    ```
    """
    if not isinstance(proxy, str) or proxy not in PROXIES:
        raise ValueError(f"Unknown `proxy` {proxy!r}: expected one of {sorted(PROXIES)}.")
    return PROXIES[proxy](model, x, y)
