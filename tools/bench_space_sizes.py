"""Measures the ladder of `keras_nas.spaces.sizing`: what each network size costs and learns.

For each rung of `keras_nas.spaces.sizing.LADDER` (cells' resolution cap, channels, cells per
stage), three fixed NAS-Bench-201 cells (convolution-heavy, mixed, light) are trained on the
`../shared/data/mnist2500/` split of `tools/bench_realdata.py` (1,750 / 250 / 500, seed 0)
for `--epochs` epochs with the search's recipe (Adam 1e-3, cosine decay to 0, batch 32), and
the script reports the milliseconds per training example of a steady epoch, the extra time
of the first epoch (tracing), and validation and test accuracy. The cost column is what
`LADDER["ms_per_example"]` records.

    python tools/bench_space_sizes.py --epochs 10 --json sizes.json
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench_realdata import DEFAULT_DATA, stratified_split  # noqa: E402
from keras_nas.tuning import trial_memory
from keras_nas.tuning.budget import EpochTimer  # noqa: E402
from keras_nas.tuning.schedules import CosineLearningRate  # noqa: E402
from keras_nas.spaces.sizing import LADDER  # noqa: E402
from keras_nas.spaces import NASBench201Space  # noqa: E402
from keras_nas.tuning.training_state import BuildTrainingState  # noqa: E402

CELLS = {
    "conv": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "mixed": "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "light": "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
}


def load_split(path):
    data = np.load(path)
    x = (data["x"] / 255.0).astype("float32")[..., None]
    y = data["y"].astype("int32")
    train, val, test = stratified_split(y, 0)
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


def measure(rung, arch, splits, epochs, seed):
    (x, y), val, test = splits
    trial_memory.release_previous_trial()
    keras.utils.set_random_seed(seed)
    space = NASBench201Space(input_shape=x.shape[1:], num_classes=10,
                             max_resolution=rung["max_resolution"], channels=rung["channels"],
                             cells_per_stage=rung["cells"])
    model = space.build_architecture(arch)
    timer = EpochTimer()
    with trial_memory.forget_new_custom_gradients():
        history = model.fit(x, y, validation_data=val, epochs=epochs, batch_size=32, verbose=0,
                            callbacks=[BuildTrainingState(x, y), timer, CosineLearningRate()])
    return {"params": int(model.count_params()),
            "ms_per_example": 1000 * timer.steady_epoch_s() / len(x),
            "first_epoch_extra_s": timer.first_epoch_extra_s(),
            "val_accuracy": float(history.history["val_accuracy"][-1]),
            "test_accuracy": float(model.evaluate(*test, verbose=0)[1])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--rungs", type=int, nargs="+", default=list(range(len(LADDER))))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    splits = load_split(args.data)
    rows = []
    for index in args.rungs:
        rung = LADDER[index]
        for name, arch in CELLS.items():
            started = time.time()
            row = {"rung": index, **{k: rung[k] for k in ("max_resolution", "channels", "cells")},
                   "cell": name, **measure(rung, arch, splits, args.epochs, args.seed)}
            row["wall_s"] = time.time() - started
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"epochs": args.epochs, "load": os.getloadavg(), "rows": rows}, f,
                              indent=1)
    print("\n| rung | cells at | channels | cells/stage | cell | params | ms/example/epoch | "
          "first-epoch extra s | val acc | test acc |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rung']} | {r['max_resolution']} | {r['channels']} | {r['cells']} | "
              f"{r['cell']} | {r['params']:,} | {r['ms_per_example']:.2f} | "
              f"{r['first_epoch_extra_s']:.1f} | {r['val_accuracy']:.3f} | "
              f"{r['test_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
