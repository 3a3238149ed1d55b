"""Time to build a space's supernet and to trace and compile its single-path training step.

What SPOS and ENAS pay once per search before their first supernet step: building the supernet
(`keras_nas.oneshot.build_supernet`), then the first call of `SPOSSearch`'s traced training
step (a path given as an int tensor, so one traced function serves every path; with
`--run-eagerly true` the untraced step of only the path's layers), then the median of the
next `--steps` steps (each on a new random path). Run it from two checkouts to compare two
versions of the supernet code:

    python tools/bench_supernet_compile.py --space darts --json darts_compile.json
    python tools/bench_supernet_compile.py --space darts --run-eagerly true false
    PYTHONPATH=/path/to/old/checkout python tools/bench_supernet_compile.py --space darts

The backend is Keras' (`KERAS_BACKEND=jax` times the `jax.jit` compile of the same step).
Spaces (inputs 8x8x1, 10 classes, batch 32): `darts` (DartsSpace's defaults: 5 cells, 4
nodes, the 8 DARTS ops, C=8), `darts-small` (3 cells, 2 nodes, 4 ops, C=4), `mobilenet`
(MobileNetSpace's defaults: MobileNetV2's 7 stages, widths 0.5/0.75/1.0, kernels 3/5/7,
expansions 3/6), `mobilenet-small` (2 stages of depth 1 and 2, two widths, kernels 3/5,
expansions 1/3), `nasbench201` (C=8, one cell per stage).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

SPACES = ("darts", "darts-small", "mobilenet", "mobilenet-small", "nasbench201")


def make_space(name):
    from keras_nas.spaces import DartsSpace, MobileNetSpace, NASBench201Space

    shape = dict(input_shape=(8, 8, 1), num_classes=10)
    if name == "darts":
        return DartsSpace(**shape)
    if name == "darts-small":
        return DartsSpace(channels=4, layers=3, nodes=2,
                          ops=["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"], **shape)
    if name == "mobilenet":
        return MobileNetSpace(**shape)
    if name == "mobilenet-small":
        return MobileNetSpace(stages=((8, 1, 1), (16, 2, 2)), width_multipliers=(0.5, 1.0),
                              kernel_sizes=(3, 5), expansions=(1, 3), head_channels=16, **shape)
    return NASBench201Space(channels=8, cells_per_stage=1, **shape)


def measure(space_name, steps, seed, run_eagerly=False):
    import keras

    from keras_nas.oneshot import SPOSSearch
    from keras_nas.oneshot._base import tensor

    rng = np.random.default_rng(seed)
    x = tensor(rng.normal(size=(32, 8, 8, 1)).astype("float32"))
    y = tensor(rng.integers(0, 10, size=32).astype("int32"))
    search = SPOSSearch(make_space(space_name), seed=seed, run_eagerly=run_eagerly)
    start = time.perf_counter()
    net = search.setup()
    search.supernet = net
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    search._train_step(x, y, search._path_argument(search.sample_path()))
    first_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss, _ = search._train_step(x, y, search._path_argument(search.sample_path()))
        float(loss)
        times.append(time.perf_counter() - start)
    traces = getattr(search._train_step, "experimental_get_tracing_count", None)
    return {
        "space": space_name,
        "backend": keras.backend.backend(),
        "supernet": type(net).__name__,
        "decisions": len(net.decisions),
        "candidate_layers": net.num_candidate_layers,
        "eager": search.eager_paths,
        "params": int(sum(int(np.prod(v.shape)) for v in net.weights)),
        "build_s": round(build_s, 2),
        "first_step_s": round(first_s, 2),
        "step_s_median": round(float(np.median(times)), 4) if times else None,
        "traces": traces() if traces else None,
    }


def code_facts():
    import keras_nas

    root = os.path.dirname(os.path.dirname(os.path.abspath(keras_nas.__file__)))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", root, "status", "--porcelain", "keras_nas"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {"keras_nas": root, "commit": commit, "dirty": dirty}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=SPACES, nargs="+", default=["darts-small"])
    parser.add_argument("--steps", type=int, default=5, help="steps timed after the first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-eagerly", nargs="+", choices=("false", "true", "auto"),
                        default=["false"], help="SPOSSearch's run_eagerly; several are run "
                        "one after the other per space (default: false, the traced step)")
    parser.add_argument("--json", default=None, help="append the results to this file")
    args = parser.parse_args(argv)
    if args.steps < 0:
        parser.error(f"--steps must be >= 0, got {args.steps}")
    facts = {"code": code_facts(), "machine": platform.platform(), "cpus": os.cpu_count(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    results = []
    for name in args.space:
        for mode in args.run_eagerly:
            run_eagerly = {"false": False, "true": True, "auto": "auto"}[mode]
            result = {**measure(name, args.steps, args.seed, run_eagerly),
                      "run_eagerly": run_eagerly, **facts}
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        old = json.load(open(args.json)) if os.path.exists(args.json) else []
        with open(args.json, "w") as f:
            json.dump(old + results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
