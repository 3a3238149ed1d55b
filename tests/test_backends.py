"""keras-nas on the other Keras backends (issue 18): each check runs in a fresh process with
`KERAS_BACKEND` set, since a process keeps the backend it imported Keras with."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_on(backend, code, timeout=600, without_tensorflow=False, env=None, **params):
    """Runs `code` in a new Python process on `backend`; returns what it printed last (JSON).

    The code finds `params` as the dict `PARAMS`, and may rely on the backend being `backend`.
    `without_tensorflow=True` makes `import tensorflow` fail in that process, as on a
    machine without TensorFlow; `env` adds environment variables.
    """
    pytest.importorskip(backend)
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT),
               TF_CPP_MIN_LOG_LEVEL="3", KERAS_NAS_TEST_PARAMS=json.dumps(params), **(env or {}))
    preamble = (WITHOUT_TENSORFLOW if without_tensorflow else "") + PREAMBLE
    done = subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


WITHOUT_TENSORFLOW = """import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError(f"No module named {name!r} (this test has no TensorFlow)")
sys.meta_path.insert(0, NoTensorFlow())
"""

PREAMBLE = """import json, os
import keras
PARAMS = json.loads(os.environ["KERAS_NAS_TEST_PARAMS"])
assert keras.backend.backend() == os.environ["KERAS_BACKEND"]
"""


GRADIENTS = """
    import json
    import keras
    import numpy as np
    from keras_nas.autodiff import update_step, value_and_gradients

    w = keras.Variable(np.array([1.0, -2.0, 3.0], dtype="float32"))
    unused = keras.Variable(np.zeros(2, dtype="float32"))
    value, grads = value_and_gradients(lambda: keras.ops.sum(w ** 2), [w, unused])
    out = {"value": float(value), "grads": [keras.ops.convert_to_numpy(g).tolist() for g in grads]}
    results = []
    for compiled in (False, True):
        v = keras.Variable(np.array([1.0, -2.0, 3.0], dtype="float32"))
        step = update_step(lambda x: (keras.ops.sum((v * x) ** 2), keras.ops.sum(v)), [v],
                           keras.optimizers.Adam(0.1), compiled=compiled)
        for _ in range(3):
            loss, aux = step(keras.ops.ones((3,)))
        results.append(keras.ops.convert_to_numpy(v).tolist())
    out["updated"] = results
    counter, other = keras.Variable(0.0), keras.Variable(5.0)

    def bump():
        counter.assign(counter + other)

    def bump_both():
        bump()
        other.assign(other + 1.0)

    from keras_nas.autodiff import compiled_function
    step = compiled_function(bump, [counter, other])
    step()
    step()  # reads the values the first call assigned
    out["counter"] = float(keras.ops.convert_to_numpy(counter))
    try:
        compiled_function(bump_both, [counter])()
        out["unlisted"] = None
    except ValueError as e:
        out["unlisted"] = str(e)
    print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_gradients_and_compiled_update_steps_agree_on_each_backend(backend):
    out = run_on(backend, GRADIENTS)
    assert out["value"] == pytest.approx(14.0)
    assert np.allclose(out["grads"][0], [2.0, -4.0, 6.0]) and np.allclose(out["grads"][1], 0)
    eager, compiled = np.array(out["updated"])
    # Three Adam steps of about 0.1 each towards 0, the same eagerly and compiled.
    assert np.allclose(eager, compiled, atol=1e-6)
    assert out["counter"] == 10.0
    if backend == "jax":  # a variable assigned but not listed would lose its value
        assert "not among its `variables`" in out["unlisted"]
    moved = np.abs([1.0, -2.0, 3.0]) - np.abs(eager)
    assert np.all((moved > 0.25) & (moved <= 0.3 + 1e-6)), eager


@pytest.mark.parametrize("make", [
    lambda keras: keras.optimizers.Adam(3e-3, weight_decay=1e-2),
    lambda keras: keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=1e-4, global_clipnorm=1.0),
    lambda keras: keras.optimizers.SGD(0.05),
    lambda keras: keras.optimizers.Adam(3e-3, amsgrad=True),  # not fused: optimizer.apply
], ids=["adam-decay", "sgd-momentum-decay-clip", "sgd", "adam-amsgrad"])
def test_fused_apply_updates_some_variables_as_optimizer_apply_does(make):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the fused kernels are TensorFlow's")
    from keras_nas.autodiff import fused_apply, can_fuse

    rng = np.random.default_rng(0)
    shapes = [(3, 3, 4, 1), (1, 1, 4, 4), (4,), (4,)] * 5
    start = [rng.normal(size=s).astype("float32") for s in shapes]
    ours, theirs = [[keras.Variable(a) for a in start] for _ in range(2)]
    fused, plain = make(keras), make(keras)
    fused.build(ours)
    plain.build(theirs)
    assert can_fuse(fused, ours) is not getattr(fused, "amsgrad", False)
    for _ in range(4):  # each step updates a different subset
        chosen = rng.choice(len(shapes), 8, replace=False)
        grads = [rng.normal(size=shapes[i]).astype("float32") for i in chosen]
        fused_apply(fused, grads, [ours[i] for i in chosen])
        plain.apply(grads, [theirs[i] for i in chosen])
    assert int(fused.iterations) == int(plain.iterations) == 4
    for a, b, s in zip(ours, theirs, start):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   atol=1e-6)
    assert sum(not np.allclose(keras.ops.convert_to_numpy(a), s) for a, s in zip(ours, start)) > 8


REINFORCE = """
    import json, pathlib, tempfile
    import keras
    from keras_nas.oracles import ReinforceOracle
    from tests.oracle_driver import drive, matches, new_oracle

    folder = pathlib.Path(tempfile.mkdtemp())
    oracle = new_oracle(ReinforceOracle, folder, seed=3)
    first, _ = drive(oracle, matches, 12)
    oracle.save()
    again = new_oracle(ReinforceOracle, folder, seed=3)
    again.reload()
    rest, _ = drive(again, matches, 8)
    best = max((v for _, v in first + rest), key=matches)
    fresh = new_oracle(ReinforceOracle, pathlib.Path(tempfile.mkdtemp()), seed=3)
    print(json.dumps({"updates": again.updates, "first": [v for _, v in first],
                      "rest": [v for _, v in rest], "p_best_before": fresh.probability(best),
                      "p_best_after": again.probability(best)}))
"""


@pytest.mark.slow
def test_reinforce_trains_its_controller_on_jax_as_on_tensorflow():
    runs = {b: run_on(b, REINFORCE) for b in ("tensorflow", "jax")}
    for out in runs.values():
        values = out["first"] + out["rest"]
        assert out["updates"] == 20  # learned from every trial, across the reload
        assert len({json.dumps(v, sort_keys=True) for v in values}) == 20
        # The policy learned: the best architecture found became more likely (replay).
        assert out["p_best_after"] > 2 * out["p_best_before"]


SEARCH = """
    import json, pathlib, sys, tempfile
    import keras, keras_nas
    from keras_nas import data

    (x, y), _ = data.load_digits()
    statuses = {}
    for strategy in PARAMS["strategies"]:
        folder = pathlib.Path(tempfile.mkdtemp())
        # 128 and 64 images: every batch of 32 has one shape, so each step compiles once.
        model = keras_nas.search(
            x[:128], y[:128], validation_data=(x[128:192], y[128:192]), space="cell",
            strategy=strategy, max_trials=1, epochs=1, seed=2, directory=folder,
            space_kwargs={"channels": 4, "cells_per_stage": 1}, project_name="p", verbose=0,
            final_model="checkpoint")
        summary = json.loads((folder / "p" / "summary.json").read_text())
        statuses[strategy] = [t["status"] for t in summary["trials"]]
        assert isinstance(model, keras.Model)
    print(json.dumps({"backend": keras.backend.backend(), "statuses": statuses,
                      "tensorflow_imported": "tensorflow" in sys.modules}))
"""


@pytest.mark.slow
def test_every_strategy_searches_on_jax_without_tensorflow():
    from keras_nas.oneshot import ONESHOT_STRATEGIES
    from keras_nas.oracles.registry import STRATEGIES

    # One-shot strategies train a supernet, whose best candidates become the trials.
    strategies = sorted(STRATEGIES) + sorted(ONESHOT_STRATEGIES)
    out = run_on("jax", SEARCH, strategies=strategies, without_tensorflow=True)
    assert out["backend"] == "jax" and not out["tensorflow_imported"]
    assert sorted(out["statuses"]) == sorted(strategies)
    assert out["statuses"] == {s: ["COMPLETED"] for s in strategies}


PROXIES = """
    import json
    import keras
    import numpy as np
    from keras_nas.estimation import PROXIES, score

    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.BatchNormalization(), keras.layers.Conv2D(6, 3), keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") + (
        1.0 if "variance" in w.path else 0.0) for w in model.weights])
    x = rng.normal(size=(12, 8, 8, 1)).astype("float32")
    y = np.arange(12) % 10
    before = [w.copy() for w in model.get_weights()]
    scores = {name: score(model, name, x, y) for name in sorted(PROXIES)}
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    print(json.dumps(scores))
"""


@pytest.mark.slow
def test_every_proxy_scores_the_same_on_jax_as_on_tensorflow():
    tf_scores = run_on("tensorflow", PROXIES)
    jax_scores = run_on("jax", PROXIES)
    assert set(tf_scores) == set(jax_scores) >= {"synflow", "snip", "grad_norm", "jacob_cov",
                                                 "naswot", "params", "flops"}
    for name, value in tf_scores.items():
        assert jax_scores[name] == pytest.approx(value, rel=1e-3, abs=1e-6), name


EXPORT = """
    import json, pathlib, tempfile
    import keras, numpy as np
    import keras_nas
    from keras_nas.hardware import export_tflite
    from keras_nas.spaces import NASBench201Space
    import keras_tuner

    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4,
                             cells_per_stage=1)
    model = space.build(keras_tuner.HyperParameters())
    folder = pathlib.Path(tempfile.mkdtemp())
    model.save(folder / "m.keras")
    again = keras.saving.load_model(folder / "m.keras")
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
    same = bool(np.allclose(model.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-5))
    reports = {}
    for q in (None, "int8"):
        report = export_tflite(model, folder / f"{q}.tflite", quantization=q,
                               representative_data=x)
        reports[q or "float32"] = [report.top1_agreement, report.max_abs_diff]
    print(json.dumps({"backend": keras.backend.backend(), "reloads": same,
                      "agreement": reports}))
"""


@pytest.mark.slow
def test_a_jax_model_reloads_and_exports_to_tflite_through_a_tensorflow_process():
    out = run_on("jax", EXPORT)
    assert out["backend"] == "jax" and out["reloads"]
    # The float export computes what the model does; the int8 one is close (an untrained
    # network's near-uniform outputs make its top-1 agreement meaningless, so: the values).
    assert out["agreement"]["float32"][0] == 1.0 and out["agreement"]["float32"][1] < 1e-4
    assert out["agreement"]["int8"][1] < 0.05


ONESHOT = """
    import json
    import numpy as np
    from keras_nas import data
    from keras_nas.oneshot import DartsSearch, ENASSearch, SPOSSearch
    from keras_nas.spaces import NASBench201Space

    (x, y), _ = data.load_digits()
    searches = {"spos": (SPOSSearch, {"population_size": 4, "generations": 1}),
                "darts": (DartsSearch, {}),
                "gdas": (DartsSearch, {"relaxation": "gumbel"}),
                "enas": (ENASSearch, {"controller_steps": 2, "final_samples": 4})}
    out = {}
    for name, (cls, kwargs) in searches.items():
        space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=8,
                                 cells_per_stage=1)
        search = cls(space, seed=0, **kwargs).fit(
            x[:256], y[:256], validation_data=(x[256:384], y[256:384]), epochs=3, batch_size=64)
        # The path of the trained supernet computes what its stand-alone network does (it reads
        # the variables' current values, batch-norm statistics included). SPOS and ENAS run
        # their 12 steps eagerly here (`run_eagerly="auto"`), DARTS' path is compiled.
        net, path = search.supernet, search.best_path
        compiled = keras.ops.convert_to_numpy(
            search._predict_fn()(x[:32], search._path_argument(path)))
        standalone = net.to_standalone(path).predict(x[:32], verbose=0)
        moving = [float(np.abs(np.asarray(v)).sum()) for v in net.non_trainable_variables
                  if "moving_mean" in v.path]
        out[name] = {"loss": search.history["loss"], "architecture": search.best_architecture,
                     "decoded": space.encode(space.decode(search.best_architecture)),
                     "difference": float(np.abs(compiled - standalone).max()),
                     "statistics_moved": sum(m > 0 for m in moving)}
    print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_one_shot_searches_run_on_jax():
    out = run_on("jax", ONESHOT)
    # Second-order DARTS on JAX: its gradient is checked against finite differences there
    # (`BACKEND_NEUTRAL_TESTS`); a whole search of it here cost a fifth of this test.
    assert set(out) == {"spos", "darts", "gdas", "enas"}
    for name, result in out.items():
        assert result["loss"][-1] < result["loss"][0], name  # the supernet learned
        assert result["decoded"] == result["architecture"], name
        assert result["difference"] < 1e-4, name
        assert result["statistics_moved"] > 0, name  # training wrote batch-norm statistics


BACKEND_NEUTRAL_TESTS = [  # tests that read no TensorFlow object, run here on JAX too
    "tests/test_darts.py::test_alpha_learns_from_validation_batches_and_w_from_training_batches",
    "tests/test_darts.py::test_second_order_gradient_matches_finite_differences",
    "tests/test_spos.py::test_batch_norm_recalibration_uses_the_path_statistics",
    "tests/test_spos.py::test_supernet_subnet_equals_standalone_network_with_same_weights",
    "tests/test_spos.py::test_spos_picks_the_only_op_that_solves_the_task",
    "tests/test_choice_supernet.py::test_paths_compute_the_stand_alone_networks_including_nested_choices",
]

PYTEST = """
    import sys
    import pytest

    sys.stdout = sys.stderr  # a failure's report is what `run_on` shows
    code = int(pytest.main(["-q", "-n", "0", "-p", "no:cacheprovider", *PARAMS["tests"]]))
    sys.stdout = sys.__stdout__
    if code:
        sys.exit(code)
    print(json.dumps({"exit_code": code}))
"""


@pytest.mark.slow
def test_the_one_shot_machinery_passes_its_own_tests_on_jax():
    out = run_on("jax", PYTEST, tests=BACKEND_NEUTRAL_TESTS)
    assert out["exit_code"] == 0
