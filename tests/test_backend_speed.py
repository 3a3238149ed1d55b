"""How a search's training step is compiled on each backend (issue 18): with XLA on JAX,
where Keras otherwise runs the step op by op, and without it on TensorFlow; traced once per
batch shape in a trial."""

import keras_tuner
import pytest

from keras_nas.spaces import NASBench201Space
from keras_nas.spaces.base import jit_compile_for
from tests.test_backends import run_on


def test_the_step_is_compiled_with_xla_on_jax_only_unless_the_space_says():
    assert jit_compile_for(None, "jax") is True
    assert jit_compile_for(None, "tensorflow") is False
    assert jit_compile_for(False, "jax") is False
    assert jit_compile_for(True, "tensorflow") is True


def test_a_space_compiles_without_xla_on_tensorflow_and_its_setting_wins():
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4,
                             cells_per_stage=1)
    assert space.build(keras_tuner.HyperParameters()).jit_compile is False
    space.jit_compile = True
    assert space.build(keras_tuner.HyperParameters()).jit_compile is True


TRACES = """
    import collections, json, pathlib, tempfile
    import jax, jax.monitoring

    traces = collections.Counter()

    def on_duration(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traces[kwargs.get("fun_name")] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    import keras, keras_nas
    from keras_nas import data

    (x, y), _ = data.load_digits()
    folder = pathlib.Path(tempfile.mkdtemp())
    search = keras_nas.Search(
        space="cell", strategy="random", max_trials=2, epochs=2, seed=1, directory=folder,
        project_name="p", verbose=0, final_model="checkpoint",
        space_kwargs={"channels": 4, "cells_per_stage": 1})
    # 64 training and 32 validation images: every batch of 32 has the same shape.
    search.fit(x[:64], y[:64], validation_data=(x[64:96], y[64:96]))
    print(json.dumps({"backend": keras.backend.backend(),
                      "jit_compile": search.best_model.jit_compile,
                      "traces": dict(traces),
                      "statuses": [t["status"] for t in search.trials],
                      "epochs": [t["epochs_trained"] for t in search.trials]}))
"""


@pytest.mark.slow
def test_a_jax_trial_compiles_its_step_and_traces_it_once_per_batch_shape():
    out = run_on("jax", TRACES)
    assert out["backend"] == "jax" and out["jit_compile"] is True
    assert out["statuses"] == ["COMPLETED", "COMPLETED"] and all(out["epochs"])
    # One batch shape: each trial's training step is traced once, whatever its epochs
    # (op by op, `jit_compile=False`, Keras traces no `train_step` at all).
    assert out["traces"].get("train_step") == 2, out["traces"]
    assert 2 <= out["traces"].get("test_step", 0) <= 3, out["traces"]


def test_the_compilation_cache_setting_is_checked_and_left_alone_off_jax(tmp_path, monkeypatch):
    from keras_nas import Search
    from keras_nas.tuning import compile_cache

    assert compile_cache.check_setting("auto") == "auto"
    assert compile_cache.check_setting(None) is None and compile_cache.check_setting(False) is None
    assert compile_cache.check_setting(tmp_path) == str(tmp_path)
    for bad in (3, "", True):
        with pytest.raises(ValueError, match="compilation_cache"):
            Search(compilation_cache=bad)
    assert compile_cache.use_jax_compilation_cache(tmp_path / "c", backend="tensorflow") is None
    assert not (tmp_path / "c").exists()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_directory() == str(tmp_path / "keras_nas" / "jax")


CACHED = """
    import json, os, pathlib, tempfile
    import jax, jax.monitoring

    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kwargs: hits.append(1)
        if event == "/jax/compilation_cache/cache_hits" else None)
    import keras, keras_nas
    from keras_nas import data

    (x, y), _ = data.load_digits()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])  # compiles before
    folder = pathlib.Path(tempfile.mkdtemp())
    search = keras_nas.Search(
        space="cell", strategy="random", max_trials=1, epochs=1, seed=1, directory=folder,
        project_name="p", verbose=0, final_model="checkpoint", compilation_cache=PARAMS["cache"],
        space_kwargs={"channels": 4, "cells_per_stage": 1})
    search.fit(x[:64], y[:64], validation_data=(x[64:96], y[64:96]))
    summary = json.loads((folder / "p" / "summary.json").read_text())
    print(json.dumps({"dir": summary["compilation_cache"], "hits": len(hits)}))
"""


@pytest.mark.slow
def test_a_search_on_jax_reads_what_an_earlier_one_compiled(tmp_path):
    cache = str(tmp_path / "cache")
    first = run_on("jax", CACHED, cache=cache)
    assert first["dir"] == cache and any((tmp_path / "cache").iterdir())
    # The same search again, with the folder given to JAX itself (that choice wins over
    # "auto"): its steps and initializers come from the cache.
    again = run_on("jax", CACHED, cache="auto", env={"JAX_COMPILATION_CACHE_DIR": cache})
    assert again["dir"] == cache and again["hits"] >= 2, again
    off = run_on("jax", CACHED, cache=None)
    assert off == {"dir": None, "hits": 0}
