"""Does DARTS drift onto skip connections on digits, and what do the guards change?

Runs `DartsSearch` (first order) on the NAS-Bench-201 cell space for many epochs, with no
guard, with the DARTS- auxiliary skip (`collapse_guard="auxiliary_skip"`) and with P-DARTS'
`max_skip` at derivation, for each seed; records the mean softmax weight of `skip_connect`
over the 6 edges after every epoch, the derived cell, its skip edges and its stand-alone
validation accuracy (retrained from scratch).

    python tools/bench_darts_collapse.py --epochs 50 --seeds 0 1 --json collapse.json
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

GUARDS = {
    "none": {"collapse_guard": None},
    "DARTS- (auxiliary skip)": {"collapse_guard": "auxiliary_skip"},
    "P-DARTS max_skip=1": {"collapse_guard": None, "max_skip": 1},
}


def digits_split(seed):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1000], y[:1000], x[1000:], y[1000:]


def run(label, kwargs, seed, args, data):
    import keras

    from keras_nas.oneshot import DartsSearch
    from keras_nas.spaces import NASBench201Space

    xt, yt, xv, yv = data
    keras.backend.clear_session()
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=args.channels,
                             cells_per_stage=args.cells)
    search = DartsSearch(space, seed=seed, arch_learning_rate=args.arch_learning_rate, **kwargs)
    search.fit(xt, yt, validation_data=(xv, yv), epochs=args.epochs, batch_size=args.batch_size)
    names = [o for o in search.supernet.decisions[0][1]]
    skip = names.index("skip_connect")
    curve = [float(np.mean([edge[skip] for edge in epoch])) for epoch in search.history["alpha"]]
    model = search.retrain(xt, yt, epochs=args.retrain_epochs, batch_size=args.batch_size)
    accuracy = float(model.evaluate(xv, yv, verbose=0)[1])
    return {
        "guard": label, "seed": seed, "architecture": search.best_architecture,
        "skip_edges": int(sum(v == "skip_connect" for v in search.best_values.values())),
        "skip_weight_per_epoch": curve, "standalone_accuracy": accuracy,
        "supernet_val_accuracy": float(search.history["val_accuracy"][-1]),
        "search_seconds": float(search.search_seconds),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--guards", nargs="+", default=list(GUARDS), choices=list(GUARDS))
    parser.add_argument("--arch-learning-rate", type=float, default=3e-3)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--retrain-epochs", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    data = digits_split(0)
    results = []
    started = time.perf_counter()
    for seed in args.seeds:
        for label in args.guards:
            r = run(label, GUARDS[label], seed, args, data)
            results.append(r)
            curve = r["skip_weight_per_epoch"]
            print(f"seed {seed} | {label} | skip weight {curve[0]:.3f} -> {curve[-1]:.3f} | "
                  f"{r['skip_edges']} skip edges | stand-alone {r['standalone_accuracy']:.3f} | "
                  f"{r['architecture']} | {r['search_seconds']:.0f} s", flush=True)
    out = {"command": "python tools/bench_darts_collapse.py " + " ".join(argv or sys.argv[1:]),
           "settings": vars(args), "runs": results,
           "wall_s": time.perf_counter() - started}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
