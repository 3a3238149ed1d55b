"""Does a long search keep its memory flat? Resident memory after every trial of a real search.

A 30-trial random search over the cell space on digits (1 epoch per trial); after each trial
(sessions cleared by the tuner) the process's resident set size is read from /proc. Reports the
growth per trial after the first `--skip` trials (least-squares slope), target < 5 MB/trial.

    python tools/bench_memory.py --trials 30 --json memory.json
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_nas  # noqa: E402
from keras_nas import data  # noqa: E402


def rss_mb():
    """Resident set size of this process in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--skip", type=int, default=5, help="warm-up trials left out of the slope")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    (x, y), _ = data.load_digits()
    x, y = x[: args.samples], y[: args.samples]
    readings = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        search = keras_nas.Search(
            space="cell", strategy="random", max_trials=args.trials, epochs=1, seed=0,
            directory=tmp, project_name="memory", final_model="checkpoint", verbose=0,
            space_kwargs=dict(channels=args.channels, cells_per_stage=args.cells),
            on_trial_end=lambda record: readings.append(rss_mb()))
        search._finish = lambda: None  # only the search loop is measured
        search.fit(x, y, validation_split=0.2)
    tail = np.asarray(readings[args.skip:])
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) if len(tail) > 1 else float("nan")
    result = {
        "command": "python tools/bench_memory.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "settings": vars(args),
        "rss_mb_after_each_trial": [round(r, 1) for r in readings],
        "growth_mb_per_trial_after_skip": slope,
        "rss_mb_first": readings[0], "rss_mb_last": readings[-1],
        "wall_s": time.time() - started,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
