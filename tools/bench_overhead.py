"""How much a keras-nas search costs beyond training, and what its layers cost against plain Keras.

(a) Trial overhead: a real `keras_nas.Search` of 1-epoch trials on digits; per trial, the share
    of its wall time spent outside `model.fit` (oracle, build, compile, saving, bookkeeping).
    The search's whole wall time is counted, so time between trials counts too. Then the same
    architectures are trained again in a plain Keras loop (`clear_session`, build, `fit`, as a
    user would write it), and the search's wall time per trial is compared with that loop's
    build + `fit` time per architecture (its own clearing left out, in its favour).
(b) Layer overhead: training throughput (examples/s) of a network built by
    `NASBench201Space.build_architecture` against the same network written by hand with plain
    Keras layers, measured side by side in one run: each round times both, back to back in
    alternating order; the result is the median of the per-round ratios.

    python tools/bench_overhead.py --trials 10 --json overhead.json
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_nas  # noqa: E402
from keras_nas import data  # noqa: E402
from keras_nas.tuning import trial_memory
from keras_nas.spaces import NASBench201Space  # noqa: E402

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def trial_overhead(trials, channels, cells, seed):
    (x, y), _ = data.load_digits()
    split = int(0.8 * len(x))
    train, validation = (x[:split], y[:split]), (x[split:], y[split:])
    space_kwargs = dict(channels=channels, cells_per_stage=cells)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        search = keras_nas.Search(
            space="cell", strategy="random", max_trials=trials, epochs=1, seed=seed,
            directory=tmp, project_name="overhead", final_model="checkpoint", verbose=0,
            space_kwargs=space_kwargs)
        # Only the search loop counts: stop the clock before the final model is saved.
        search._finish = lambda: None
        search.fit(*train, validation_data=validation)
        wall = time.perf_counter() - started
        records = search.trials
        space = search.space
    plain = _plain_keras_loop(space, [r["architecture"] for r in records], train, validation,
                              seed)
    fit = [r["fit_s"] for r in records]
    per_trial = [1 - r["fit_s"] / r["duration_s"] for r in records]
    inside = sum(r[k] for r in records for k in ("build_s", "release_s", "checkpoint_s"))
    return {
        "trials": len(records),
        "search_wall_s": wall,
        "fit_s_total": sum(fit),
        "share_outside_fit_whole_search": 1 - sum(fit) / wall,
        "share_outside_fit_per_trial_median": statistics.median(per_trial),
        "share_outside_fit_after_first_3_median": statistics.median(per_trial[3:] or per_trial),
        # Freeing the previous trial's model and traced graphs (garbage collection).
        "release_s_median": statistics.median(r["release_s"] for r in records),
        "build_s_median": statistics.median(r["build_s"] for r in records),
        "fit_s_median": statistics.median(fit),
        # Writing the best epoch's weights after `fit`.
        "checkpoint_s_median": statistics.median(r["checkpoint_s"] for r in records),
        # Everything else a trial costs: oracle, saving state, summary.json, between trials.
        "other_s_per_trial": (wall - sum(fit) - inside) / len(records),
        "search_wall_s_per_trial": wall / len(records),
        "plain_keras_build_plus_fit_s_per_architecture": statistics.mean(plain),
        "plain_keras_build_plus_fit_s_median": statistics.median(plain),
        "search_trial_relative_to_plain_keras": (wall / len(records)) / statistics.mean(plain),
    }


def _plain_keras_loop(space, architectures, train, validation, seed):
    """Seconds to build and fit each architecture the way a plain Keras loop would. In its
    favour, the loop gets the search's memory fixes (no leaked graphs, garbage collection of
    new objects only) and its clearing is not timed."""
    seconds = []
    with trial_memory.collect_only_new_objects():
        for number, architecture in enumerate(architectures):
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed + number)
            with trial_memory.forget_new_custom_gradients():
                started = time.perf_counter()
                model = space.build_architecture(architecture)
                model.fit(*train, validation_data=validation, epochs=1, batch_size=32,
                          verbose=0)
                seconds.append(time.perf_counter() - started)
            del model
    return seconds


def _relu_conv_bn(x, channels, kernel, stride=1):
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(channels, kernel, strides=stride, padding="same", use_bias=False)(x)
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)


def hand_written_network(input_shape, num_classes, channels, cells):
    """NAS-Bench-201's network with the cell `ARCH`, from plain Keras layers only."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    size = min(input_shape[:2])
    for stage in range(3):
        c = channels * 2 ** stage
        if stage > 0:  # ResNet basic block with an avg-pool + 1x1 shortcut
            stride = 2 if size >= 2 else 1
            main = _relu_conv_bn(_relu_conv_bn(x, c, 3, stride), c, 3)
            if stride == 2:
                short = keras.layers.AveragePooling2D(2, strides=2, padding="same")(x)
                short = keras.layers.Conv2D(c, 1, use_bias=False)(short)
            else:
                short = _relu_conv_bn(x, c, 1)
            x = keras.layers.Add()([main, short])
            size = -(-size // stride)
        for _ in range(cells):
            n1 = _relu_conv_bn(x, c, 3)
            n2 = keras.layers.Add()([
                _relu_conv_bn(x, c, 3),
                keras.layers.AveragePooling2D(3, strides=1, padding="same")(n1)])
            n3 = keras.layers.Add()([x, _relu_conv_bn(n1, c, 3), n2])
            x = n3
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _throughput(model, x, y, batch_size):
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return len(x) / (time.perf_counter() - start)


def layer_overhead(channels, cells, rounds, batch_size, seed):
    (x, y), _ = data.load_digits()
    keras.utils.set_random_seed(seed)
    space = NASBench201Space(input_shape=x.shape[1:], num_classes=10, channels=channels,
                             cells_per_stage=cells)
    ours = space.build_architecture(ARCH)
    plain = space.compile_model(hand_written_network(x.shape[1:], 10, channels, cells))
    if ours.count_params() != plain.count_params():
        raise AssertionError(
            f"The two networks differ: {ours.count_params()} vs {plain.count_params()} params.")
    build_s = {"keras_nas": [], "plain_keras": []}
    for _ in range(4):  # how long Keras takes to build each (alternating; session cleared)
        for name in build_s:
            keras.backend.clear_session()
            started = time.perf_counter()
            if name == "keras_nas":
                space.build_architecture(ARCH)
            else:
                space.compile_model(hand_written_network(x.shape[1:], 10, channels, cells))
            build_s[name].append(time.perf_counter() - started)
    keras.utils.set_random_seed(seed)
    ours = space.build_architecture(ARCH)
    plain = space.compile_model(hand_written_network(x.shape[1:], 10, channels, cells))
    for model in (ours, plain):  # trace and warm up
        _throughput(model, x[:256], y[:256], batch_size)
    # The machine's speed drifts over seconds (docs/benchmarks/hardware.md), so each round
    # times both models back to back, in alternating order, and the ratio is taken per round.
    results = {"keras_nas": [], "plain_keras": []}
    ratios = []
    for r in range(rounds):
        order = ("keras_nas", "plain_keras") if r % 2 == 0 else ("plain_keras", "keras_nas")
        speed = {name: _throughput(ours if name == "keras_nas" else plain, x, y, batch_size)
                 for name in order}
        for name in order:
            results[name].append(speed[name])
        ratios.append(speed["keras_nas"] / speed["plain_keras"])
    a, b = (statistics.median(results[k]) for k in ("keras_nas", "plain_keras"))
    return {
        "architecture": ARCH, "params": int(ours.count_params()), "rounds": rounds,
        "examples_per_s_keras_nas": a, "examples_per_s_plain_keras": b,
        "ratio_per_round": ratios,
        "build_s_median_keras_nas": statistics.median(build_s["keras_nas"]),
        "build_s_median_plain_keras": statistics.median(build_s["plain_keras"]),
        "keras_nas_relative_to_plain": statistics.median(ratios),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=2, help="cells per stage (N)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--part", choices=("all", "trials", "layers"), default="all")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = {
        "command": "python tools/bench_overhead.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "settings": vars(args),
        "trial_overhead": (trial_overhead(args.trials, args.channels, args.cells, args.seed)
                           if args.part in ("all", "trials") else None),
        "layer_overhead": (layer_overhead(args.channels, args.cells, args.rounds,
                                          args.batch_size, args.seed)
                           if args.part in ("all", "layers") else None),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
