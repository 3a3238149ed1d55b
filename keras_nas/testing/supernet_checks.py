"""`check_supernet`: a space's weight-sharing supernet computes what its architectures compute.

The one-shot searches (DARTS, SPOS, ENAS) rank architectures by the paths of a supernet, so a
path must be the architecture: same decisions, and with the same weights the same outputs as
the stand-alone network the space builds. A broken rule raises an `AssertionError` naming the
space, the path and the rule.
"""

import keras
import numpy as np

from keras_nas.spaces.choices import decision_options
from keras_nas.testing.checks import _check_arguments, _describe, _label, configured_for_check

SUPERNET_RULES = {
    "decisions": "the supernet has one decision per declared decision of two or more options, "
    "with the same options in the same order",
    "arch_weights": "the architecture weights are never in `trainable_weights` (the network's "
    "optimizer must not update them)",
    "relaxed": "the relaxed supernet maps a batch to finite `(batch, num_classes)` outputs",
    "subnet": "`to_standalone(path)` gives the space's network of that path, and it computes "
    "the same outputs as the supernet run on the path (inference and training mode)",
}
"""Rule name -> what `check_supernet` checks; the names appear in its failure messages."""

_BATCH = 4
_ATOL = 1e-5


def _fail(space, rule, path, detail):
    raise AssertionError(
        f"The supernet of {_label(space)} breaks the rule '{rule}' ({SUPERNET_RULES[rule]})"
        f"{'' if path is None else f' for the path {path}'}: {detail}"
    )


def _paths(net, samples, rng):
    """`samples` distinct paths: all first options, then random ones."""
    paths = [[0] * len(net.decisions)]
    total = int(np.prod(net.num_options))
    for _ in range(samples * 20):
        if len(paths) >= min(samples, total):
            break
        path = net.canonical_path(net.random_path(rng))
        if path not in paths:
            paths.append(path)
    return paths


def _check_subnet(space, net, path, x):
    try:
        model = net.to_standalone(path)
    except Exception as error:  # noqa: BLE001 - reported as the broken rule
        _fail(space, "subnet", path, f"`to_standalone` raised {_describe(error)}")
    arch = space.encode(net.values_of(path))
    expected = space.build_values(space.decode(arch))
    if len(expected.weights) != len(model.weights):
        _fail(space, "subnet", path, f"the stand-alone network of {arch!r} has "
              f"{len(expected.weights)} weights, `to_standalone` gave {len(model.weights)}")
    for training in (False, True):
        want = keras.ops.convert_to_numpy(net(x, training=training, path=path))
        got = keras.ops.convert_to_numpy(model(x, training=training))
        gap = float(np.max(np.abs(want - got)))
        if not gap <= _ATOL:
            _fail(space, "subnet", path, f"outputs differ by {gap:.3g} in "
                  f"{'training' if training else 'inference'} mode (architecture {arch!r})")
    return arch


def check_supernet(space, input_shape=(8, 8, 1), num_classes=3, samples=3, seed=0):
    """Checks the supernet `keras_nas.oneshot.build_supernet` makes of `space`; raises if not.

    Rules (`SUPERNET_RULES`): `decisions` as declared, `arch_weights` out of
    `trainable_weights`, a finite `relaxed` forward pass, and per path (the all-first-options
    path and random ones, `samples` in all) the `subnet` rule: `to_standalone(path)` is the
    space's own network of that architecture, and with the supernet's weights it computes the
    supernet's outputs on that path, in inference and in training mode (batch-norm statistics
    moved away from their initial values first).

    Args:
        space: a `keras_nas.spaces.Space` with `build_network(choose)` (or a registered or
            own supernet that has `to_standalone`).
        input_shape, num_classes: what the space is configured with for the check (it gets its
            own values back afterwards).
        samples: how many paths to check.
        seed: seed of the supernet, the paths and the test batch.

    Returns:
        A dict: `space`, `supernet` (its class name), `decisions`, `architectures` (of the
        paths checked) and `params` (the supernet's parameter count).

    Example:

    ```python
    from keras_nas.spaces import NASBench201Space
    from keras_nas.testing import check_supernet

    report = check_supernet(NASBench201Space(channels=4, cells_per_stage=1), samples=2)
    ```
    """
    from keras_nas.oneshot.supernet import build_supernet

    samples, seed = _check_arguments(space, samples, seed)
    with configured_for_check(space, input_shape, num_classes):
        net = build_supernet(space, seed=seed)
        declared = [(n, list(o)) for n, o in decision_options(space) if len(o) > 1]
        if [(n, list(o)) for n, o in net.decisions] != declared:
            _fail(space, "decisions", None, f"the supernet has {net.decisions}, the space "
                  f"declares {declared}")
        trainable = {id(w) for w in net.trainable_weights}
        if any(id(v) in trainable for v in net.arch_variables):
            _fail(space, "arch_weights", None, "an `alpha` is in `trainable_weights`")
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(_BATCH,) + tuple(space.input_shape)).astype("float32")
        relaxed = keras.ops.convert_to_numpy(net(x))
        if relaxed.shape != (_BATCH, space.num_classes) or not np.all(np.isfinite(relaxed)):
            _fail(space, "relaxed", None, f"output of shape {relaxed.shape}, "
                  f"finite: {bool(np.all(np.isfinite(relaxed)))}")
        for _ in range(2):  # batch-norm statistics away from their initial values
            net(x, training=True, path=net.random_path(rng))
        archs = [_check_subnet(space, net, path, x) for path in _paths(net, samples, rng)]
        params = int(net.count_params())
    return {
        "space": _label(space),
        "supernet": type(net).__name__,
        "decisions": len(net.decisions),
        "architectures": archs,
        "params": params,
    }
