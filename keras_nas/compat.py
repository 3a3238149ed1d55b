"""Every access keras-nas makes to a private internal of Keras, TensorFlow or KerasTuner.

Each function says why the private path is used (no public one does the job) and what happens
if it disappears in a later release, so an upgrade breaks in one place with a clear effect.
Everything else in keras-nas uses public APIs only. The versions these were checked against
are pinned in setup.cfg (Keras 3.15, TensorFlow 2.21, KerasTuner 1.4.8).

```python
from keras_nas import compat
layers = compat.all_layers(model)            # every nested layer, depth first
```
"""

import copy

import keras


def all_layers(layer, include_self=False, recursive=True):
    """Every layer inside `layer` (a model or a composite layer), depth first.

    Why private: `Model.layers` lists only the top level, and Keras has no public walk over
    the layers nested in custom layers (a `Cell`'s edge ops, an `MBConv`'s convolutions);
    `Layer._flatten_layers` is what Keras itself uses for that. If it disappears: the same
    walk over each layer's attributes that are layers or lists of layers, which finds the
    layers keras-nas' own layers hold (they keep them in attributes).

    Example: `[l for l in all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]`.
    """
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=include_self, recursive=recursive))
    found, seen = [], set()

    def visit(item, depth):
        if id(item) in seen:
            return
        seen.add(id(item))
        if depth > 0 or include_self:
            found.append(item)
        if depth > 0 and not recursive:
            return
        for value in vars(item).values():
            children = value if isinstance(value, (list, tuple)) else [value]
            for child in children:
                if isinstance(child, keras.layers.Layer):
                    visit(child, depth + 1)

    visit(layer, 0)
    return found


def compute_output_spec(fn, *args, **kwargs):
    """Runs `fn` on symbolic tensors (`KerasTensor`s) to create the variables it needs.

    Why private: `keras.src.backend.compute_output_spec` is what `Model.fit` uses to build
    compiled metrics and losses before tracing (`training_state.py`); there is no public
    equivalent in Keras 3.15. If it disappears: this raises ImportError, which
    `build_training_state` treats like any failure: it leaves the work to `fit`, which then
    traces the training step twice, as plain Keras does (slower, same numbers).
    """
    from keras.src import backend

    return backend.compute_output_spec(fn, *args, **kwargs)


def compiled_loss_and_metrics(model):
    """`(loss container, metrics container)` of a compiled model (either may be None).

    Why private: Keras keeps what `compile(loss=..., metrics=...)` made in `_compile_loss`
    and `_compile_metrics`, and builds them on the first training step; keras-nas builds them
    before tracing (`training_state.py`). If they disappear: both are None, and
    `build_training_state` leaves their creation to `fit` (slower, same numbers).
    """
    return getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None)


def compute_loss(model):
    """The model's bound `_compute_loss` (None if absent), for building the loss state.

    Why private: see `compiled_loss_and_metrics`; `Model.compute_loss` is public but wraps
    it with the training flag handling Keras' own build step bypasses. If it disappears:
    None, and the loss state is built by `fit`.
    """
    return getattr(model, "_compute_loss", None)


def gradient_registry():
    """TensorFlow's process-wide gradient registry (a dict by name), or None.

    Why private: every traced Keras training step registers a `CustomGradient-<n>` function
    there that keeps its whole graph alive after `clear_session()` (38.7 MB per trial,
    `trial_memory.py`); TensorFlow offers no public way to unregister it. If it disappears
    (or is no longer a dict): None, and keras-nas removes nothing, so memory grows per
    trial as in plain Keras loops, and `tests/test_trial_memory.py` fails to say so.
    """
    try:
        from tensorflow.python.framework import ops
    except ImportError:  # pragma: no cover - keras-nas requires TensorFlow
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def hp_grid(hp):
    """`(count, value_at_index)` of a KerasTuner `Int` / `Float` with a `step`.

    Why private: KerasTuner 1.4.8 has no public way to list the values of a stepped range
    (its `Int` / `Float` keep `_get_n_values` and `_get_value_by_index` for their own
    sampling). If they disappear: this raises AttributeError at the first binned range, and
    `tests/test_oracle_contract.py` fails to say so.
    """
    return hp._get_n_values(), hp._get_value_by_index


def hp_value_at_quantile(hp, quantile):
    """The value of a KerasTuner `Int` / `Float` at `quantile` (0..1) of its own sampling
    (linear, log, reverse log). Why private: as `hp_grid` (`_sample_numerical_value`)."""
    return hp._sample_numerical_value(quantile)


def keras_tuner_oracle_service():
    """KerasTuner's gRPC oracle service: `(OracleServicer, messages, add_to_server)`.

    Why private: KerasTuner's distributed mode is public only as environment variables and
    a chief whose `Tuner.search` blocks in `oracle_chief.start_server` (which checks its
    workers every 20 s and runs none of the search's own work between trials); the servicer
    class and its generated messages live under `keras_tuner.src`. If they disappear:
    `Search(workers=N)` fails with this ImportError at its start (`tests/test_workers.py`
    says so); one-process searches are unaffected.
    """
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    return (OracleServicer, protos.get_service(),
            protos.get_service_grpc().add_OracleServicer_to_server)


def send_oracle_calls_through(oracle_client, channel):
    """Makes a KerasTuner `OracleClient` call the chief over `channel` (one that adds the
    search's token to every call).

    Why private: `OracleClient` opens its own channel from environment variables, with no way
    to add call metadata; its `stub` attribute is what it calls through. If it disappears:
    workers' oracle calls carry no token, the chief refuses them, and `tests/test_workers.py`
    fails to say so.
    """
    from keras_tuner.src import protos

    oracle_client.stub = protos.get_service_grpc().OracleStub(channel)


def requeue_trial(oracle, tuner_id):
    """Takes the trial that worker `tuner_id` was running from it and queues it for the next
    worker that asks (its worker died). Returns the trial, or None if it ran none.

    Why private: KerasTuner queues trials again only when an oracle reloads (`Oracle.reload`)
    or for an INVALID trial's retries; `ongoing_trials` is public, the queue (`_retry_queue`,
    which `create_trial` serves first) is not. If it disappears: this raises AttributeError
    when a worker dies mid-trial, and `tests/test_workers.py` fails to say so.
    """
    trial = oracle.ongoing_trials.pop(tuner_id, None)
    if trial is not None:
        oracle._retry_queue.append(trial.trial_id)
        oracle.save()
    return trial


def without_graph_optimizer(traced):
    """`traced` (a `tf.function`) wrapped so that every call of it runs with TensorFlow's graph
    optimizer (Grappler) off; other attributes (`get_concrete_function`, ...) are `traced`'s.

    Why: a supernet's single-path step holds every option of every decision as a `switch`
    branch, and Grappler's passes over that graph cost more than half of the step's first
    call; the step times after it measured within the run-to-run noise either way
    (docs/benchmarks/oneshot.md, issue 17).
    Why private: TensorFlow's public switch, `tf.config.optimizer.set_experimental_options`,
    is process-wide; the options a function call runs with are the eager context's
    thread-local `function_call_options` (which `tensorflow.python.eager.context.
    function_executor_type` sets the same way). They are set on every call, not just the
    first, because the runtime keys a function's compiled form by them. If they disappear:
    `traced` is returned unchanged, so it compiles with Grappler as plain TensorFlow does
    (a slower first call, the same numbers), and `tests/test_spos.py` fails to say so.
    """
    try:
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context
    except ImportError:  # pragma: no cover - keras-nas requires TensorFlow
        return traced
    if not hasattr(context.context(), "function_call_options"):
        return traced
    return _WithoutGraphOptimizer(traced, context.context, config_pb2.ConfigProto)


class _WithoutGraphOptimizer:
    """A `tf.function` whose calls run with Grappler off (see `without_graph_optimizer`)."""

    def __init__(self, traced, eager_context, config_proto):
        self.traced = traced
        self._eager_context = eager_context
        self._config_proto = config_proto
        self._configs = {}  # the caller's config (serialized) -> the same with Grappler off

    def _config_without_grappler(self, serialized):
        if serialized not in self._configs:
            config = self._config_proto.FromString(serialized)
            config.graph_options.rewrite_options.disable_meta_optimizer = True
            self._configs[serialized] = config
        return self._configs[serialized]

    def __call__(self, *args, **kwargs):
        ctx = self._eager_context()
        saved = ctx.function_call_options
        options = copy.copy(saved)
        options.config_proto_serialized = self._config_without_grappler(
            saved.config_proto_serialized)
        ctx.function_call_options = options
        try:
            return self.traced(*args, **kwargs)
        finally:
            ctx.function_call_options = saved

    def __getattr__(self, name):  # what this wrapper lacks is the tf.function's
        if name == "traced":
            raise AttributeError(name)
        return getattr(self.traced, name)


def nested_stateless_scope(state_mapping=()):
    """A `keras.StatelessScope` that reads what it does not map through the scope around it,
    and lists the variables assigned inside it (`scope.assigned`).

    Why: on JAX a function that runs under one stateless scope (a compiled step whose
    variables are its arguments) may need a second one inside: to differentiate with respect
    to some variables (`jax.value_and_grad` of their values), or to run a `switch` branch
    whose variable writes must leave the branch as its outputs. Keras' own scope falls back to
    a variable's stored value, not to the enclosing scope's, so weights read inside would be
    stale constants.
    Why private: the enclosing scope is the `original_scope` attribute that
    `StatelessScope.__enter__` sets (no public getter in Keras 3.15). If it disappears: reads
    fall back to the stored values as in Keras' own scope, and `tests/test_backends.py`
    (one-shot searches on JAX) fails to say so.

    Example:

    ```python
    with nested_stateless_scope([(w, new_w)]) as scope:
        y = layer(x, training=True)      # reads new_w, and the outer scope's other values
    [scope.get_current_value(v) for v in scope.assigned]
    ```
    """
    return _NestedStatelessScope(list(state_mapping))


class _NestedStatelessScope(keras.StatelessScope):
    def __init__(self, state_mapping):
        super().__init__(state_mapping)
        self.assigned = []

    def add_update(self, update):
        super().add_update(update)
        if not any(update[0] is v for v in self.assigned):
            self.assigned.append(update[0])

    def get_current_value(self, variable):
        value = super().get_current_value(variable)
        outer = getattr(self, "original_scope", None)
        if value is None and outer is not None:
            return outer.get_current_value(variable)
        return value


def optimizer_slots(optimizer, variable):
    """The variables Keras' `Adam` (`[m, v]`) or `SGD` (`[momentum]`, or `[]` without
    momentum) keeps for `variable`, one of those it was built for.

    Why: `autodiff.fused_apply` updates a supernet path's weights with TensorFlow's fused
    kernels on the optimizer's own state, so the optimizer stays the one source of truth.
    Why private: Keras names no public accessor of an optimizer's per-variable state; its own
    `update_step`s read `_get_variable_index`, `_momentums`, `_velocities` and `momentums`.
    If they disappear: `AttributeError`, which `fused_apply` answers by calling
    `optimizer.apply` (the same numbers, slower), and `tests/test_backends.py` fails to say so.
    """
    index = optimizer._get_variable_index(variable)
    if isinstance(optimizer, keras.optimizers.Adam):
        return [optimizer._momentums[index], optimizer._velocities[index]]
    return [optimizer.momentums[index]] if optimizer.momentum else []


def uses_weight_decay(optimizer, variable):
    """Whether `optimizer`'s weight decay applies to `variable` (not excluded by
    `exclude_from_weight_decay`).

    Why private: the rule is Keras' `_use_weight_decay`, with no public name; `fused_apply`
    must decay exactly the variables `optimizer.apply` would. If it disappears:
    `AttributeError`, answered as for `optimizer_slots`.
    """
    return optimizer._use_weight_decay(variable)
