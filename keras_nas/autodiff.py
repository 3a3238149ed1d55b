"""Gradients on TensorFlow and JAX: the one place keras-nas differentiates by hand.

Keras' `fit` differentiates for itself; a strategy that trains something else (REINFORCE's
controller) needs the gradient of its own loss with respect to some Keras variables.
`value_and_gradients` computes it with the backend's own machinery: `tf.GradientTape` on
TensorFlow, `jax.value_and_grad` over the variables' values (read through a
`keras.StatelessScope`) on JAX;
`value_and_input_gradients` differentiates a function of tensors (the zero-cost proxies'
gradients with respect to weights passed to `stateless_call`, or to the input), and
`update_step` makes a compiled optimizer step. PyTorch is not supported yet: its wheel (555 MB,
plus the CUDA libraries it pulls) is too large for this project's CI, so no test could run it.

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
        variables: a list of `keras.Variable`.
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
            value = fn()
        grads = tape.gradient(value[0] if has_aux else value, variables)
    elif backend == "jax":
        import jax

        def of(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn()

        value, grads = jax.value_and_grad(of, has_aux=has_aux)([v.value for v in variables])
    else:
        raise _unsupported(backend)
    grads = [keras.ops.zeros_like(v.value) if g is None else g for g, v in zip(grads, variables)]
    return value, grads


def update_step(loss_fn, variables, optimizer, compiled=True):
    """A function `step(*args)` that takes one `optimizer` step on `loss_fn(*args)`.

    `loss_fn(*args)` returns `(loss, aux)`; `step(*args)` returns the same pair, after
    applying the gradient of `loss` with respect to `variables`. With `compiled=True` the step
    is compiled for the backend (`tf.function` on TensorFlow; on JAX `jax.jit` of a stateless
    step whose new variable and optimizer values are assigned back), so `args` must be
    tensors of fixed structure; else every call runs eagerly.

    Example:

    ```python
    step = update_step(lambda x: (keras.ops.sum(layer(x) ** 2), 0.0),
                       layer.trainable_variables, keras.optimizers.Adam(1e-3))
    loss, _ = step(keras.ops.ones((2, 3)))
    ```
    """
    variables = list(variables)

    def eager(*args):
        (loss, aux), grads = value_and_gradients(lambda: loss_fn(*args), variables, has_aux=True)
        optimizer.apply(grads, variables)
        return loss, aux

    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise _unsupported(backend)
    if not compiled:
        return eager
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(eager)
    import jax

    def stateless(values, optimizer_values, *args):
        def of(inner):
            with keras.StatelessScope(state_mapping=list(zip(variables, inner))):
                return loss_fn(*args)

        (loss, aux), grads = jax.value_and_grad(of, has_aux=True)(values)
        values, optimizer_values = optimizer.stateless_apply(optimizer_values, grads, values)
        return loss, aux, values, optimizer_values

    jitted = jax.jit(stateless)

    def step(*args):
        if not optimizer.built:
            optimizer.build(variables)
        loss, aux, values, optimizer_values = jitted(
            [v.value for v in variables], [v.value for v in optimizer.variables], *args)
        for variable, value in zip(variables, values):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, optimizer_values):
            variable.assign(value)
        return loss, aux

    return step
