"""keras-nas's defaults against KerasTuner on a real task: 28x28 MNIST digits, a wall-clock budget.

Issue 13 (item 4). On `../shared/data/mnist2500/mnist2500.npz` (2,500 MNIST digits, 250 per
class), split once, stratified, with a stated seed into 1,750 training / 250 validation / 500
test images (x scaled to [0, 1] float32), each method gets a wall-clock budget of T seconds and
returns one model, which is evaluated on the 500 test images:

- `keras_nas`: what a user writes, nothing pinned (the defaults are what is measured):
  `keras_nas.search(x_train, y_train, validation_data=(x_val, y_val), max_time=T, seed=S,
  directory=<fresh folder>)`. `--keras-nas-kwargs '{"epochs": 5}'` tries a variant (its
  method name gets the settings as a suffix).
- `keras_nas_cli`: `keras-nas search --dataset split.npz --max-time T --seed S --output DIR`,
  the command's own defaults (figures and TFLite export included: the budget bounds them too);
  its `best_model.keras` is evaluated here as well. `--cli-args "--epochs 5"` tries a variant.
- `kt_bayesian`, `kt_random`: KerasTuner `BayesianOptimization` / `RandomSearch` over a CNN
  hypermodel written as KerasTuner's own tutorials write one (`build_cnn` in `_kt_run`),
  `tuner.search(..., epochs=5)`, no new trial after T seconds (a small subclass, see
  `_kt_run`), and `tuner.get_best_models(1)[0]` as the returned model.

Every run is its own fresh Python process (no graph, memory or thread state leaks from one
method into the next; TensorFlow's thread settings are left at their defaults for all).
`call_s` is the time from the call's start to the returned model, measured inside that process;
`process_s` is the whole process, imports and test evaluation included. For the command line
the process is the command itself, so its `call_s` is its whole wall time.

Results go to `--json` after every run; running the same command again skips the runs already
there (and retries the failed ones), so a crash loses nothing.

    python tools/bench_realdata.py --methods keras_nas,keras_nas_cli,kt_bayesian,kt_random \\
        --budgets 300 600 --seeds 0 1 2 --json realdata.json --markdown
"""

import argparse
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "mnist2500",
                                             "mnist2500.npz"))
METHODS = ("keras_nas", "keras_nas_cli", "kt_bayesian", "kt_random")
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # 1,750 / 250 / 500 of 2,500
SCHEMA = 1
#: Epochs per KerasTuner trial, as in the issue's baseline ("51 trials of about 12 s").
KT_EPOCHS = 5
#: KerasTuner stops at `max_trials`; the budget, not this, ends a baseline search.
KT_MAX_TRIALS = 1000


# -- the data -----------------------------------------------------------------------------------
def stratified_split(y, seed, limit=None, fractions=SPLIT_FRACTIONS):
    """Indices `(train, validation, test)`: per class, a seeded permutation cut by `fractions`.

    With `limit`, each class first keeps its share of `limit` examples (a smaller task with the
    same class balance, for quick checks). Indices are sorted within each part.
    """
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    classes = np.unique(y)
    for c in classes:
        members = rng.permutation(np.flatnonzero(y == c))
        if limit is not None:
            members = members[:max(3, int(round(limit * len(members) / len(y))))]
        n_train = int(round(fractions[0] * len(members)))
        n_val = int(round(fractions[1] * len(members)))
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train:n_train + n_val])
        parts[2].append(members[n_train + n_val:])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def make_split(data_path, split_seed, limit, path):
    """Writes the split as `.npz` (`x_train, y_train, x_val, y_val, x_test, y_test`, x float32
    in [0, 1] of shape (n, 28, 28), y int64) and returns a description of it."""
    with np.load(data_path) as f:
        x, y = f["x"], f["y"]
    train, val, test = stratified_split(y, split_seed, limit)
    arrays = {}
    for name, idx in (("train", train), ("val", val), ("test", test)):
        arrays[f"x_{name}"] = (x[idx].astype("float32") / 255.0)
        arrays[f"y_{name}"] = y[idx].astype("int64")
    np.savez(path, **arrays)
    digest = hashlib.sha256()
    for idx in (train, val, test):
        digest.update(np.asarray(idx, dtype="int64").tobytes())
    return {
        "data": os.path.abspath(data_path),
        "data_sha256": _sha256_file(data_path),
        "split_seed": split_seed,
        "limit": limit,
        "fractions": list(SPLIT_FRACTIONS),
        "stratified": True,
        "sizes": {"train": len(train), "validation": len(val), "test": len(test)},
        "indices_sha256": digest.hexdigest(),
        "x": "float32 in [0, 1], shape (n, 28, 28)",
    }


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- machine and code facts ---------------------------------------------------------------------
def machine_facts():
    facts = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": None,
        "memory_gib": None,
        "load_average": list(os.getloadavg()),
        "versions": {},
        "thread_env": {k: os.environ[k] for k in (
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
            if k in os.environ},
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            facts["memory_gib"] = round(kib / 2 ** 20, 1)
    except OSError:
        pass
    for package in ("tensorflow", "keras", "keras-tuner", "numpy", "scikit-learn", "keras-nas",
                    "ai-edge-litert"):
        try:
            facts["versions"][package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            facts["versions"][package] = None
    return facts


def code_facts():
    """The keras-nas code a run used: git commit, whether keras_nas/ differs from it, and a hash
    of keras_nas/*.py as it is now (others edit the checkout while benchmarks run)."""
    facts = {"commit": None, "keras_nas_dirty": None, "keras_nas_sha256": None}
    try:
        facts["commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            timeout=30).stdout.strip() or None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "keras_nas"], cwd=ROOT,
            capture_output=True, text=True, timeout=30)
        facts["keras_nas_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(ROOT, "keras_nas", "**", "*.py"), recursive=True)):
        digest.update(os.path.relpath(path, ROOT).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    facts["keras_nas_sha256"] = digest.hexdigest()[:16]
    return facts


# -- the runs (parent side) ---------------------------------------------------------------------
def variant_name(method, keras_nas_kwargs, cli_args):
    """The method's name in the results: a variant's settings become a suffix."""
    if method == "keras_nas" and keras_nas_kwargs:
        settings = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(keras_nas_kwargs.items()))
        return f"keras_nas[{settings}]"
    if method == "keras_nas_cli" and cli_args:
        return f"keras_nas_cli[{' '.join(cli_args)}]"
    return method


def run_key(run):
    return (run["method"], run["budget_s"], run["seed"], run["split"]["split_seed"],
            run["split"]["limit"])


def _subprocess_env():
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli_command():
    script = os.path.join(os.path.dirname(sys.executable), "keras-nas")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "keras_nas.cli"]


def _tail(path, limit=3000):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[-limit:]


def _spawn(command, log_path, timeout):
    """Runs `command` as a fresh process, its output to `log_path`; returns (rc, seconds,
    start unix time, timed out)."""
    started_unix = time.time()
    started = time.perf_counter()
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env=_subprocess_env(), timeout=timeout)
            rc, timed_out = proc.returncode, False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    return rc, time.perf_counter() - started, started_unix, timed_out


def run_one(method, variant, budget, seed, split_path, split_info, keras_nas_kwargs, cli_args,
            timeout, keep_dir=None):
    """One run in fresh processes; returns its record (status "ok" or "failed")."""
    work = tempfile.mkdtemp(prefix=f"bench_realdata_{method}_{budget}_{seed}_")
    log_path = os.path.join(work, "run.log")
    spec = {"method": method, "budget_s": budget, "seed": seed, "split_path": split_path,
            "directory": os.path.join(work, "search"), "keras_nas_kwargs": keras_nas_kwargs,
            "result_path": os.path.join(work, "result.json")}
    record = {
        "method": variant, "base_method": method, "budget_s": budget, "seed": seed,
        "split": {"split_seed": split_info["split_seed"], "limit": split_info["limit"]},
        "keras_nas_kwargs": keras_nas_kwargs if method == "keras_nas" else None,
        "cli_args": cli_args if method == "keras_nas_cli" else None,
        "code": code_facts(), "load_average_before": list(os.getloadavg()),
        "started_unix": time.time(), "status": "failed", "error": None,
    }
    try:
        if method == "keras_nas_cli":
            output = os.path.join(work, "results")
            command = _cli_command() + ["search", "--dataset", split_path, "--max-time",
                                        str(budget), "--seed", str(seed), "--output", output]
            command += list(cli_args)
            record["command"] = " ".join(shlex.quote(c) for c in command)
            rc, seconds, started_unix, timed_out = _spawn(command, log_path, timeout)
            record.update(returncode=rc, timed_out=timed_out, process_s=seconds,
                          call_s=seconds, startup_s=None)
            record["load_average_after"] = list(os.getloadavg())
            if rc != 0:
                raise RuntimeError(f"the command exited with {rc}"
                                   + (" (timed out)" if timed_out else ""))
            # The test evaluation is a process of its own, outside the command's time.
            spec.update(method="evaluate", results_dir=output)
        spec_path = os.path.join(work, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        command = [sys.executable, os.path.abspath(__file__), "--worker", spec_path]
        rc, seconds, started_unix, timed_out = _spawn(command, log_path, timeout)
        if method == "keras_nas_cli":
            record["evaluate_process_s"] = seconds
        else:
            record.update(returncode=rc, timed_out=timed_out, process_s=seconds)
            record["load_average_after"] = list(os.getloadavg())
        if rc != 0 or not os.path.exists(spec["result_path"]):
            raise RuntimeError(f"the worker process exited with {rc}"
                               + (" (timed out)" if timed_out else ""))
        with open(spec["result_path"]) as f:
            result = json.load(f)
        if method != "keras_nas_cli":
            result["startup_s"] = result.pop("call_started_unix") - started_unix
        else:
            result.pop("call_started_unix", None)
        record.update(result)
        record["status"] = "ok"
    except Exception as e:  # a failed run is recorded, and retried by the next invocation
        record["error"] = f"{type(e).__name__}: {e}"
    record["log_tail"] = _tail(log_path)
    record.setdefault("load_average_after", list(os.getloadavg()))
    if record.get("call_s") is not None:
        record["within_budget_plus_5pct"] = record["call_s"] <= 1.05 * budget
    if keep_dir:
        os.makedirs(keep_dir, exist_ok=True)
        target = os.path.join(keep_dir, f"{_slug(variant)}_T{budget}_s{seed}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(work, target, ignore=shutil.ignore_patterns("*.weights.*", "*.h5"))
    shutil.rmtree(work, ignore_errors=True)
    return record


def _slug(text):
    return "".join(c if c.isalnum() or c in "-_=" else "_" for c in text)[:80]


# -- the runs (worker side: a fresh process per run) --------------------------------------------
def worker(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    with np.load(spec["split_path"]) as f:
        data = {k: f[k] for k in f.files}
    method = spec["method"]
    if method == "keras_nas":
        result = _keras_nas_run(spec, data)
    elif method in ("kt_bayesian", "kt_random"):
        result = _kt_run(spec, data)
    elif method == "evaluate":
        result = _evaluate_cli_results(spec, data)
    else:
        raise ValueError(f"unknown method {method!r}")
    with open(spec["result_path"], "w") as f:
        json.dump(result, f, indent=1)


def _test_accuracy(model, x_test, y_test):
    """Top-1 accuracy from the model's predictions (independent of how it was compiled)."""
    if len(model.input_shape) == 4 and x_test.ndim == 3:
        x_test = x_test[..., None]
    probabilities = model.predict(x_test, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == y_test))


def _user_evaluate(model, x_test, y_test):
    """What the README tells a user to write, `model.evaluate(x_test, y_test)`: its metrics,
    or the error it raised."""
    try:
        values = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        return {k: float(v) for k, v in values.items()}, None
    except Exception as e:
        return None, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"


def _summary_facts(summary):
    """What a keras-nas summary.json says about the search and the returned model."""
    trials = summary.get("trials") or []
    completed = [t for t in trials if t.get("status") == "COMPLETED"]
    best_id = summary.get("best_trial_id")
    best = next((t for t in trials if t.get("trial_id") == best_id), None)
    durations = [t["duration_s"] for t in trials if t.get("duration_s") is not None]
    return {
        "trials": len(trials),
        "trials_completed": len(completed),
        "trial_duration_s_mean": statistics.mean(durations) if durations else None,
        "best_val_accuracy": (best or {}).get("metrics", {}).get("val_accuracy"),
        "best_params": (best or {}).get("params"),
        "best_architecture": summary.get("best_architecture"),
        "summary_best": summary.get("best"),
        "search_settings": {k: summary.get(k) for k in (
            "space", "strategy", "max_trials", "epochs", "objective", "seed")},
        "search_elapsed_s": summary.get("elapsed_s"),
        "workers": summary.get("workers"),
        "trial_errors": sorted({t["error"] for t in trials if t.get("error")})[:5],
    }


def _keras_nas_run(spec, data):
    import keras_nas

    x_train, y_train = data["x_train"], data["y_train"]
    x_val, y_val = data["x_val"], data["y_val"]
    kwargs = dict(spec["keras_nas_kwargs"] or {})
    call_started_unix = time.time()
    started = time.perf_counter()
    # Exactly what a user writes; every other setting is keras-nas' default.
    model = keras_nas.search(x_train, y_train, validation_data=(x_val, y_val),
                             max_time=spec["budget_s"], seed=spec["seed"],
                             directory=spec["directory"], **kwargs)
    call_s = time.perf_counter() - started
    summary_path = os.path.join(spec["directory"], kwargs.get("project_name", "search"),
                                "summary.json")
    with open(summary_path) as f:
        summary = json.load(f)
    result = {"call_started_unix": call_started_unix, "call_s": call_s,
              "test_accuracy": _test_accuracy(model, data["x_test"], data["y_test"]),
              "params": int(model.count_params())}
    result["user_evaluate"], result["user_evaluate_error"] = _user_evaluate(
        model, data["x_test"], data["y_test"])
    result.update(_summary_facts(summary))
    return result


def _evaluate_cli_results(spec, data):
    import keras

    import keras_nas  # noqa: F401  (registers the layers a saved model uses)

    with open(os.path.join(spec["results_dir"], "summary.json")) as f:
        summary = json.load(f)
    model = keras.saving.load_model(os.path.join(spec["results_dir"], "best_model.keras"))
    result = {"call_started_unix": None,
              "test_accuracy": _test_accuracy(model, data["x_test"], data["y_test"]),
              "params": int(model.count_params()),
              "cli_test_accuracy": (summary.get("best") or {}).get("test_accuracy"),
              "outputs": sorted(os.path.relpath(p, spec["results_dir"]) for p in glob.glob(
                  os.path.join(spec["results_dir"], "**", "*"), recursive=True)
                  if os.path.isfile(p) and "trial_" not in p)[:40]}
    result.update(_summary_facts(summary))
    return result


def _kt_run(spec, data):
    """The baseline, written as KerasTuner's own tutorials write a search.

    Why this is the honest configuration: the hypermodel is the "Getting started with
    KerasTuner" pattern (a `build(hp)` function returning a compiled Sequential model, a loop
    over `hp.Int` layers with per-layer `hp.Choice`/`hp.Int` sizes, `hp.Float` dropout, a log
    sampled learning rate), the tuner gets the objective, a trial count it will not reach, a
    seed and a folder, and `tuner.search` gets the same data and validation split as keras-nas;
    the returned model is `tuner.get_best_models(1)[0]`, the docs' way. Nothing is tuned for
    this task beyond what a user would type in 15 lines.

    The budget: KerasTuner has no wall-clock limit, so a user adds one in a few lines: a
    subclass that, when a trial ends after the deadline, sets the oracle's `max_trials` to the
    trials it has, so the oracle stops (the trial running at the deadline finishes; the
    measured wall time shows any overrun). The clock starts before the tuner is built, as for
    `keras_nas.search`.
    """
    import keras
    import keras_tuner
    from keras import layers

    def build_cnn(hp):
        model = keras.Sequential([keras.Input(shape=(28, 28, 1))])
        for i in range(hp.Int("conv_blocks", 1, 3)):
            model.add(layers.Conv2D(hp.Choice(f"filters_{i}", [16, 32, 64]),
                                    hp.Choice(f"kernel_{i}", [3, 5]), padding="same",
                                    activation="relu"))
            model.add(layers.MaxPooling2D())
        model.add(layers.Flatten())
        model.add(layers.Dense(hp.Int("units", 32, 256, step=32), activation="relu"))
        model.add(layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1)))
        model.add(layers.Dense(10, activation="softmax"))
        learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner_class = {"kt_bayesian": keras_tuner.BayesianOptimization,
                   "kt_random": keras_tuner.RandomSearch}[spec["method"]]

    class Deadline(tuner_class):
        """Starts no trial after `max_time` seconds; the running one finishes."""

        def __init__(self, *args, max_time, **kwargs):
            self.deadline = time.time() + max_time
            super().__init__(*args, **kwargs)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if time.time() >= self.deadline:
                self.oracle.max_trials = len(self.oracle.trials)

    seed = spec["seed"]
    # One global seed for weights and shuffling; KerasTuner's oracles treat seed=0 as "no seed"
    # (`seed or random.randint(...)`), hence seed + 1 for the oracle. Bayesian optimization
    # starts with 3 x 10 random trials, which with the same oracle seed are exactly random
    # search's: random search gets seed + 1001, so the two baselines are independent runs.
    keras.utils.set_random_seed(seed)
    oracle_seed = seed + (1 if spec["method"] == "kt_bayesian" else 1001)
    # A channel axis, as a Keras user adds for Conv2D.
    x_train, x_val = data["x_train"][..., None], data["x_val"][..., None]
    call_started_unix = time.time()
    started = time.perf_counter()
    tuner = Deadline(build_cnn, objective="val_accuracy", max_trials=KT_MAX_TRIALS,
                     seed=oracle_seed, directory=spec["directory"], project_name="kt",
                     overwrite=True, max_time=spec["budget_s"])
    tuner.search(x_train, data["y_train"], validation_data=(x_val, data["y_val"]),
                 epochs=KT_EPOCHS, verbose=0)
    model = tuner.get_best_models(1)[0]
    call_s = time.perf_counter() - started

    trials = list(tuner.oracle.trials.values())
    completed = [t for t in trials if t.status == "COMPLETED"]
    best = tuner.oracle.get_best_trials(1)[0]
    x_test = data["x_test"][..., None]
    result = {"call_started_unix": call_started_unix, "call_s": call_s,
              "test_accuracy": _test_accuracy(model, x_test, data["y_test"]),
              "params": int(model.count_params()),
              "trials": len(trials), "trials_completed": len(completed),
              "best_val_accuracy": float(best.score) if best.score is not None else None,
              "best_hyperparameters": dict(best.hyperparameters.values),
              "search_settings": {"tuner": tuner_class.__name__, "max_trials": KT_MAX_TRIALS,
                                  "epochs": KT_EPOCHS, "oracle_seed": oracle_seed}}
    result["user_evaluate"], result["user_evaluate_error"] = _user_evaluate(
        model, x_test, data["y_test"])
    return result


# -- results file -------------------------------------------------------------------------------
def load_results(path):
    if path and os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
        if results.get("schema") != SCHEMA:
            raise SystemExit(f"{path}: not a bench_realdata results file (schema "
                             f"{results.get('schema')!r}, expected {SCHEMA})")
        return results
    return {"schema": SCHEMA, "benchmark": "tools/bench_realdata.py", "invocations": [],
            "runs": []}


def save_results(path, results):
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-bench-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


# -- the summary table --------------------------------------------------------------------------
def _mean_std(values):
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(runs):
    """One row per (method, budget) of the successful runs: means over seeds."""
    groups = {}
    for run in runs:
        if run.get("status") == "ok":
            groups.setdefault((run["method"], run["budget_s"]), []).append(run)
    rows = []
    for (method, budget), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        accuracy = [100 * r["test_accuracy"] for r in group]
        trials = [r["trials"] for r in group if r.get("trials") is not None]
        call = [r["call_s"] for r in group]
        process = [r["process_s"] for r in group if r.get("process_s") is not None]
        rows.append({
            "method": method, "budget_s": budget, "seeds": sorted(r["seed"] for r in group),
            "test_accuracy_mean": _mean_std(accuracy)[0],
            "test_accuracy_std": _mean_std(accuracy)[1],
            "test_accuracy_each": accuracy,
            "trials_mean": statistics.mean(trials) if trials else None,
            "trials_min": min(trials) if trials else None,
            "trials_max": max(trials) if trials else None,
            "call_s_mean": statistics.mean(call), "call_s_max": max(call),
            "process_s_mean": statistics.mean(process) if process else None,
            "within_budget": sum(r["call_s"] <= 1.05 * budget for r in group),
            "load_average_1min": [r["load_average_before"][0] for r in group]
            + [r["load_average_after"][0] for r in group],
        })
    return rows


def markdown_table(results):
    rows = summarize(results["runs"])
    split = results.get("split", {})
    sizes = split.get("sizes", {})
    lines = [
        f"Split: {sizes.get('train')} train / {sizes.get('validation')} validation / "
        f"{sizes.get('test')} test, stratified, seed {split.get('split_seed')}"
        + (f", limit {split['limit']}" if split.get("limit") else "") + ".",
        "",
        "| method | budget (s) | seeds | test accuracy % (mean ± std) | each seed | trials "
        "(mean, min-max) | call wall s (mean / max) | process wall s (mean) | within budget + 5% "
        "| load avg 1 min (min-max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        loads = r["load_average_1min"]
        trials = ("-" if r["trials_mean"] is None else
                  f"{r['trials_mean']:.1f} ({r['trials_min']}-{r['trials_max']})")
        process = "-" if r["process_s_mean"] is None else f"{r['process_s_mean']:.0f}"
        lines.append(
            f"| {r['method']} | {r['budget_s']:g} | {len(r['seeds'])} | "
            f"{r['test_accuracy_mean']:.1f} ± {r['test_accuracy_std']:.1f} | "
            f"{', '.join(f'{a:.1f}' for a in r['test_accuracy_each'])} | {trials} | "
            f"{r['call_s_mean']:.0f} / {r['call_s_max']:.0f} | {process} | "
            f"{r['within_budget']}/{len(r['seeds'])} | {min(loads):.1f}-{max(loads):.1f} |")
    lines += ["", "Mean ± sample standard deviation over seeds; call wall time from the call's "
              "start to the returned model (for `keras_nas_cli` the whole command); within budget "
              "+ 5%: runs whose call wall time is at most 1.05 x the budget."]
    commands = sorted({" ".join(shlex.quote(a) for a in inv["argv"])
                       for inv in results.get("invocations", []) if inv.get("argv")})
    if commands:
        lines += ["", "Command(s):", ""] + [f"    python {c}" for c in commands]
    failed = [r for r in results["runs"] if r.get("status") != "ok"]
    if failed:
        lines += ["", f"Failed runs ({len(failed)}):"]
        lines += [f"- {r['method']} T={r['budget_s']:g} seed {r['seed']}: {r.get('error')}"
                  for r in failed]
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated, from {', '.join(METHODS)} (default: all)")
    p.add_argument("--budgets", type=float, nargs="+", default=[300.0, 600.0],
                   help="wall-clock budgets in seconds (default: 300 600)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data", default=DEFAULT_DATA, help="mnist2500.npz")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the stratified 70/10/20 split (default: 0)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only this many of the 2,500 images (stratified; quick checks)")
    p.add_argument("--keras-nas-kwargs", default=None,
                   help="JSON object of extra keras_nas.search settings (a variant)")
    p.add_argument("--cli-args", default="", help="extra `keras-nas search` arguments (a variant)")
    p.add_argument("--json", default=None, help="results file (appended to, resumable)")
    p.add_argument("--markdown", action="store_true", help="print the summary table")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing; print the table of --json")
    p.add_argument("--run-timeout", type=float, default=None,
                   help="kill a run after this many seconds (default: 2 x budget + 600)")
    p.add_argument("--keep-dir", default=None,
                   help="keep each run's folder (logs, summary, models; no trial weights) here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        p.error(f"unknown --methods {unknown}; expected some of {list(METHODS)}")
    if any(b <= 0 for b in args.budgets):
        p.error("--budgets must be positive")
    try:
        args.keras_nas_kwargs = json.loads(args.keras_nas_kwargs) if args.keras_nas_kwargs else {}
    except json.JSONDecodeError as e:
        p.error(f"--keras-nas-kwargs is not JSON: {e}")
    if not isinstance(args.keras_nas_kwargs, dict):
        p.error("--keras-nas-kwargs must be a JSON object")
    fixed = {"max_time", "seed", "directory"} & set(args.keras_nas_kwargs)
    if fixed:
        p.error(f"--keras-nas-kwargs cannot set {sorted(fixed)}: the driver sets them")
    args.cli_args = shlex.split(args.cli_args)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    results = load_results(args.json)
    if args.report_only:
        print(markdown_table(results))
        return 0
    if not os.path.exists(args.data):
        raise SystemExit(f"--data {args.data!r} does not exist")

    split_dir = tempfile.mkdtemp(prefix="bench_realdata_split_")
    try:
        split_path = os.path.join(split_dir, "split.npz")
        split_info = make_split(args.data, args.split_seed, args.limit, split_path)
        if results.get("split") and any(
                results["split"][k] != split_info[k] for k in ("indices_sha256", "data_sha256")):
            raise SystemExit(f"{args.json} holds runs on another split; use another --json")
        results["split"] = split_info
        results["invocations"].append({
            "argv": [os.path.relpath(__file__, ROOT)] + list(sys.argv[1:] if argv is None
                                                            else argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine_facts(),
            "code": code_facts(),
        })
        save_results(args.json, results)
        done = {run_key(r) for r in results["runs"] if r.get("status") == "ok"}
        plan = [(b, s, m) for b in args.budgets for s in args.seeds for m in args.methods]
        for budget, seed, method in plan:
            budget = int(budget) if float(budget).is_integer() else budget
            variant = variant_name(method, args.keras_nas_kwargs, args.cli_args)
            key = (variant, budget, seed, split_info["split_seed"], split_info["limit"])
            if key in done:
                print(f"skip {variant} T={budget} seed={seed} (in {args.json})", flush=True)
                continue
            timeout = args.run_timeout or 2 * budget + 600
            print(f"run  {variant} T={budget} seed={seed} ...", flush=True)
            record = run_one(method, variant, budget, seed, split_path, split_info,
                             args.keras_nas_kwargs, args.cli_args, timeout, args.keep_dir)
            results["runs"] = [r for r in results["runs"] if run_key(r) != key] + [record]
            save_results(args.json, results)
            if record["status"] == "ok":
                print(f"     test accuracy {record['test_accuracy']:.4f}, "
                      f"{record.get('trials')} trials, call {record['call_s']:.0f} s, process "
                      f"{record['process_s']:.0f} s, load {record['load_average_before'][0]:.1f}"
                      f" -> {record['load_average_after'][0]:.1f}", flush=True)
            else:
                print(f"     FAILED: {record['error']}\n{(record.get('log_tail') or '')[-1500:]}",
                      flush=True)
        results["invocations"][-1]["ended"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        results["invocations"][-1]["load_average_end"] = list(os.getloadavg())
        save_results(args.json, results)
    finally:
        shutil.rmtree(split_dir, ignore_errors=True)
    if args.markdown:
        print(markdown_table(results))
    return 0 if all(r.get("status") == "ok" for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
