"""Gradients and compiled steps on TensorFlow and JAX: the one place keras-nas differentiates
or compiles by hand.

Keras' `fit` differentiates for itself; a strategy that trains something else (REINFORCE's
controller, a one-shot supernet and its `alpha`) needs the gradient of its own loss with
respect to some Keras variables. `value_and_gradients` computes it with the backend's own
machinery: `tf.GradientTape` on TensorFlow, `jax.value_and_grad` over the variables' values
(read through a stateless scope) on JAX; `value_and_input_gradients` differentiates a function
of tensors (the zero-cost proxies' gradients with respect to weights passed to
`stateless_call`, or to the input). `compiled_function` compiles a function that reads and
assigns variables (`tf.function`; on JAX `jax.jit` of a function of the variables' values),
and `update_step` makes a compiled optimizer step with it. `fused_apply` is
`optimizer.apply` for an eager caller, with TensorFlow's fused kernels. PyTorch is not
supported: its wheel (555 MB, plus the CUDA libraries it pulls) is too large for this
project's CI, so no test could run it.

Example:

```python
layer = keras.layers.Dense(1)
layer.build((None, 3))
loss, grads = value_and_gradients(
    lambda: keras.ops.sum(layer(keras.ops.ones((2, 3))) ** 2), layer.trainable_variables)
keras.optimizers.SGD(0.1).apply(grads, layer.trainable_variables)
```
"""

import keras

from keras_nas import compat

BACKENDS = ("tensorflow", "jax")


def value_and_input_gradients(fn, tensors, has_aux=False):
    """`(fn(tensors), [d fn / d t for t in tensors])` for a scalar-valued function of tensors.

    Like `jax.value_and_grad` of `fn` at the list `tensors`, on any backend; `fn` must not
    write to variables (use `model.stateless_call`).

    Example:

    ```python
    value, (grad,) = value_and_input_gradients(lambda t: keras.ops.sum(t[0] ** 3),
                                               [keras.ops.ones((2,))])   # grad: [3., 3.]
    ```
    """
    backend = keras.backend.backend()
    tensors = list(tensors)
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(t) for t in tensors]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(tensors)
        grads = tape.gradient(value[0] if has_aux else value, tensors)
    elif backend == "jax":
        import jax

        value, grads = jax.value_and_grad(fn, has_aux=has_aux)(
            [keras.ops.convert_to_tensor(t) for t in tensors])
    else:
        raise _unsupported(backend)
    grads = [keras.ops.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]
    return value, grads


def _unsupported(backend):
    return RuntimeError(f"keras-nas differentiates on the {BACKENDS} backends of Keras, not on "
                        f"{backend!r}: set KERAS_BACKEND to one of them.")


def value_and_gradients(fn, variables, has_aux=False):
    """`(fn(), [d fn() / d v for v in variables])` for a scalar-valued `fn()` of `variables`.

    Args:
        fn: a function of no arguments that reads `variables` and returns a scalar tensor
            (with `has_aux=True`: a pair `(scalar, anything)`, only the scalar differentiated).
            What it assigns to other variables (e.g. batch-norm statistics) is kept.
        variables: a list of `keras.Variable`, trainable or not (an architecture's `alpha`).
        has_aux: whether `fn` returns a pair.

    Returns:
        What `fn` returned and one gradient per variable (zeros where `fn` does not depend
        on it), as tensors of the backend.
    """
    backend = keras.backend.backend()
    variables = list(variables)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            values = [v.value for v in variables]
            tape.watch(values)  # non-trainable variables are not watched by default
            value = fn()
        grads = tape.gradient(value[0] if has_aux else value, values)
    elif backend == "jax":
        import jax

        ids = {id(v) for v in variables}
        written = []

        def of(values):
            with compat.nested_stateless_scope(zip(variables, values)) as scope:
                out = fn()
            written[:] = [v for v in scope.assigned if id(v) not in ids]
            new = [scope.get_current_value(v) for v in written]
            return (out[0], (out[1], new)) if has_aux else (out, new)

        (value, aux), grads = jax.value_and_grad(of, has_aux=True)([v.value for v in variables])
        if has_aux:
            aux, new = aux
            value = (value, aux)
        else:
            new = aux
        for variable, updated in zip(written, new):  # outside the differentiated function
            variable.assign(updated)
    else:
        raise _unsupported(backend)
    grads = [keras.ops.zeros_like(v.value) if g is None else g for g, v in zip(grads, variables)]
    return value, grads


def compiled_function(fn, variables):
    """`fn` compiled for the backend: `tf.function` on TensorFlow; on JAX `jax.jit` of a
    stateless function that takes the values of `variables` (every variable `fn` reads or
    assigns) and returns their new values, which are assigned back after each call.

    Arguments must be tensors (or nested lists of them) of fixed structure; a new shape
    compiles again.

    Example:

    ```python
    predict = compiled_function(lambda x: model(x, training=False), model.variables)
    probs = predict(keras.ops.ones((2, 8, 8, 1)))
    ```
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if backend != "jax":
        raise _unsupported(backend)
    import jax

    variables = list(variables)
    position = {id(v): i for i, v in enumerate(variables)}

    def stateless(values, args):
        with compat.nested_stateless_scope(zip(variables, values)) as scope:
            out = fn(*args)
        missing = [v.path for v in scope.assigned if id(v) not in position]
        if missing:
            raise ValueError(f"The compiled function assigns {missing}, which are not among "
                             "its `variables`: list every variable it reads or assigns.")
        # Only what it assigned comes back (a dict: its keys say which variables).
        return out, {position[id(v)]: scope.get_current_value(v) for v in scope.assigned}

    jitted = jax.jit(stateless)

    def call(*args):
        out, assigned = jitted([v.value for v in variables], args)
        for i, value in assigned.items():
            variables[i].assign(value)
        return out

    return call


def update_step(loss_fn, variables, optimizer, state=(), compiled=True):
    """A function `step(*args)` that takes one `optimizer` step on `loss_fn(*args)`.

    `loss_fn(*args)` returns `(loss, aux)`; `step(*args)` returns the same pair, after
    applying the gradient of `loss` with respect to `variables`. With `compiled=True` the step
    is compiled for the backend (`compiled_function`), so `args` must be tensors of fixed
    structure and `state` must list every other variable `loss_fn` reads or assigns (on JAX
    they are the compiled function's inputs and outputs; e.g. a network's batch-norm
    statistics); else every call runs eagerly. The optimizer is built on `variables` if it
    is not yet.

    Example:

    ```python
    step = update_step(lambda x: (keras.ops.sum(layer(x) ** 2), 0.0),
                       layer.trainable_variables, keras.optimizers.Adam(1e-3))
    loss, _ = step(keras.ops.ones((2, 3)))
    ```
    """
    variables = list(variables)
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise _unsupported(backend)
    if not optimizer.built:
        optimizer.build(variables)

    def eager(*args):
        (loss, aux), grads = value_and_gradients(lambda: loss_fn(*args), variables, has_aux=True)
        optimizer.apply(grads, variables)
        return loss, aux

    if not compiled:
        return eager
    ids = {id(v) for v in variables}
    others = [v for v in list(optimizer.variables) + list(state) if id(v) not in ids]
    return compiled_function(eager, variables + _unique(others))


def _unique(variables):
    seen, kept = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            kept.append(v)
    return kept


def fused_apply(optimizer, grads, variables):
    """`optimizer.apply(grads, variables)`, made fast for an eager caller where it can be.

    On TensorFlow, outside a traced function, Keras' own `Adam` (without `amsgrad`) and `SGD`
    (without `nesterov`) update each variable with one fused kernel (`ResourceApplyAdam`,
    `ResourceApplyKerasMomentum`, `ResourceApplyGradientDescent`) on the optimizer's own
    state, with its weight decay, `global_clipnorm`, learning rate (or schedule) and
    `iterations`: the same update as `optimizer.apply`, in a tenth to a twentieth of its
    eager time (docs/benchmarks/oneshot.md). `variables` may be any of those the optimizer
    was built for. Every other case (`can_fuse(...)` is False) calls `optimizer.apply`.

    Example:

    ```python
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    fused_apply(optimizer, grads, model.trainable_variables)
    ```
    """
    variables = list(variables)
    if not can_fuse(optimizer, variables):
        optimizer.apply(grads, variables)
        return
    import tensorflow as tf

    raw = tf.raw_ops
    dtype = variables[0].dtype
    grads = [tf.cast(g, dtype) for g in grads]
    if optimizer.global_clipnorm:
        grads, _ = tf.clip_by_global_norm(grads, optimizer.global_clipnorm)
    rate = tf.cast(optimizer.learning_rate, dtype)
    if optimizer.weight_decay is not None:
        decay = rate * tf.cast(optimizer.weight_decay, dtype)  # decoupled, before the step
        for v in variables:
            if compat.uses_weight_decay(optimizer, v):
                raw.ResourceApplyGradientDescent(var=v.handle, alpha=decay, delta=v.value)
    if isinstance(optimizer, keras.optimizers.Adam):
        step = tf.cast(optimizer.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
        shared = dict(beta1_power=beta_1 ** step, beta2_power=beta_2 ** step, lr=rate,
                      beta1=beta_1, beta2=beta_2, epsilon=tf.cast(optimizer.epsilon, dtype))
        for g, v in zip(grads, variables):
            m, u = compat.optimizer_slots(optimizer, v)
            raw.ResourceApplyAdam(var=v.handle, m=m.handle, v=u.handle, grad=g, **shared)
    elif optimizer.momentum:
        momentum = tf.cast(optimizer.momentum, dtype)
        for g, v in zip(grads, variables):
            (m,) = compat.optimizer_slots(optimizer, v)
            raw.ResourceApplyKerasMomentum(var=v.handle, accum=m.handle, lr=rate, grad=g,
                                           momentum=momentum)
    else:
        for g, v in zip(grads, variables):
            raw.ResourceApplyGradientDescent(var=v.handle, alpha=rate, delta=g)
    optimizer.iterations.assign_add(1)


def can_fuse(optimizer, variables):
    """Whether `fused_apply(optimizer, ..., variables)` takes TensorFlow's fused kernels
    (see there) rather than `optimizer.apply`."""
    if keras.backend.backend() != "tensorflow" or not optimizer.built:
        return False
    import tensorflow as tf

    if not tf.executing_eagerly() or not variables:
        return False
    if type(optimizer) is keras.optimizers.Adam:
        plain = not optimizer.amsgrad
    elif type(optimizer) is keras.optimizers.SGD:
        plain = not optimizer.nesterov
    else:
        return False
    plain = plain and not (optimizer.use_ema or optimizer.gradient_accumulation_steps
                           or optimizer.loss_scale_factor or optimizer.clipnorm
                           or optimizer.clipvalue)
    dtype = variables[0].dtype
    if not plain or any(v.constraint is not None or v.dtype != dtype
                        or getattr(v, "overwrite_with_gradient", False) for v in variables):
        return False
    try:
        compat.optimizer_slots(optimizer, variables[0])
        compat.uses_weight_decay(optimizer, variables[0])
    except (AttributeError, KeyError, IndexError, TypeError):
        return False
    return True
