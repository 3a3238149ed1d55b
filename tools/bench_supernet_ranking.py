"""Supernet ranking benchmark (issue 17): Kendall tau of one-shot subnets against stand-alone training.

On the NAS-Bench-201 cell space (small: `--channels`, `--cells-per-stage`), `--cells` random
cells are trained stand-alone from scratch with each of `--seeds` (the reference: the mean
validation accuracy over the seeds; the seed-to-seed Kendall tau of the first two seeds, and
with 4 or more seeds that of the means of the two halves, say how well the reference
repeats). Then each one-shot configuration given on the command line trains a supernet (SPOS
or ENAS) and scores the same cells with inherited weights (batch norm recalibrated per cell);
Kendall tau and Spearman rho against the stand-alone reference are recorded.

Stand-alone results are cached in the `--json` file (keyed by data, model size, epochs, seed
and cell), so a rerun trains only what is missing; each configuration's result is added to the
same file under its label. `--report` prints the Markdown table of every configuration there,
each read against the reference of the `--seeds` given now (adding stand-alone seeds later
re-reads the supernets already trained, without training them again).

    OMP_NUM_THREADS=1 python tools/bench_supernet_ranking.py --data mnist14 --cells 30 \\
        --config spos:sampling=fair,optimizer=adam,epochs=80 --config enas:epochs=20 \\
        --json docs/benchmarks/supernet_ranking.json --report

A configuration is `method:key=value,...` with `method` `spos` or `enas` and keys `epochs`
(supernet epochs), `sampling` (`uniform` or `fair`, SPOS only), `optimizer` (`sgd`: SGD 0.05,
momentum 0.9, cosine decay, ENAS' default and SPOS' until 2026-12-07; `adam`: Adam 3e-3,
constant, SPOS' default since), `learning_rate` (of that optimizer), `run_eagerly` (`true`:
untraced path steps, the same updates; default `false`, the traced step), `seed`, and
`label` (defaults to the configuration text). The stand-alone cache key leaves out
`--batch-size`: keep it fixed within one file.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = {
    "digits": "sklearn digits 8x8x1: 1,000 training / 797 validation images (fixed shuffle, seed 0)",
    "mnist14": "../shared/data/mnist2500 downsampled to 14x14x1 (2x2 mean): 1,500 training / "
               "1,000 validation images (fixed shuffle, seed 0)",
    "mnist28": "../shared/data/mnist2500 at 28x28x1: 1,500 training / 1,000 validation images "
               "(fixed shuffle, seed 0)",
}
MNIST2500 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist2500" / "mnist2500.npz"


def _true_or_false(text):
    if text not in ("true", "false"):
        raise ValueError(f"`--config` run_eagerly must be 'true' or 'false', got {text!r}.")
    return text == "true"


CONFIG_KEYS = {"epochs": int, "sampling": str, "optimizer": str, "learning_rate": float,
               "run_eagerly": _true_or_false, "seed": int, "label": str}


def load_data(name, mnist_path=MNIST2500):
    """`(x_train, y_train, x_val, y_val)` of data set `name` (a key of `DATA`), float32 in [0, 1]."""
    if name not in DATA:
        raise ValueError(f"`--data` must be one of {sorted(DATA)}, got {name!r}.")
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images / 16.0).astype("float32")[..., None]
        y = digits.target.astype("int32")
        n_train, n_val = 1000, len(x) - 1000
    else:
        with np.load(mnist_path) as f:
            x = (f["x"] / 255.0).astype("float32")
            y = f["y"].astype("int32")
        if name == "mnist14":
            x = x.reshape(len(x), 14, 2, 14, 2).mean(axis=(2, 4))
        x = x[..., None]
        n_train, n_val = 1500, 1000
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:n_train], y[:n_train], x[n_train:n_train + n_val], y[n_train:n_train + n_val]


def parse_config(text):
    """`"spos:sampling=fair,epochs=30"` -> `{"method": "spos", "sampling": "fair", ...}`."""
    method, _, rest = text.partition(":")
    if method not in ("spos", "enas"):
        raise ValueError(f"`--config` method must be 'spos' or 'enas', got {method!r} in {text!r}.")
    config = {"method": method, "epochs": 20, "sampling": "uniform", "optimizer": "sgd", "learning_rate": None,
              "run_eagerly": False, "seed": 0, "label": text}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in CONFIG_KEYS:
            raise ValueError(f"`--config` key must be one of {sorted(CONFIG_KEYS)} as key=value, "
                             f"got {item!r} in {text!r}.")
        config[key] = CONFIG_KEYS[key](value)
    if config["optimizer"] not in ("sgd", "adam"):
        raise ValueError(f"`--config` optimizer must be 'sgd' or 'adam', got {config['optimizer']!r}.")
    if method == "enas" and config["sampling"] != "uniform":
        raise ValueError("`--config` sampling applies to spos only (ENAS's controller samples paths).")
    return config


def scoring(text):
    """`"4:1000"` -> `(4, 1000)` (an argparse type; both parts integers, IMAGES >= 1)."""
    try:
        batches, images = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scoring takes BATCHES:IMAGES, got {text!r}") from None
    if batches < 1 or images < 1:
        raise argparse.ArgumentTypeError(f"--scoring needs BATCHES >= 1, IMAGES >= 1, got {text!r}")
    return batches, images


def random_cells(space, n, seed):
    """`n` distinct random architecture strings of `space` (not every edge `none`)."""
    rng = np.random.default_rng(seed)
    cells = []
    while len(cells) < n:
        arch = space.random_architecture(int(rng.integers(2**31 - 1)))
        values = space.decode(arch)
        if arch not in cells and any(v != "none" for v in values.values()):
            cells.append(arch)
    return cells


def standalone_key(args, seed, arch):
    return f"{args.data}|C{args.channels}|N{args.cells_per_stage}|e{args.epochs}|s{seed}|{arch}"


def train_standalone(space, arch, data, epochs, batch_size, seed):
    """Validation accuracy of `arch` trained from scratch (the space's Adam, `epochs` epochs)."""
    import keras

    xt, yt, xv, yv = data
    keras.utils.set_random_seed(seed)
    model = space.build_architecture(arch)
    model.fit(xt, yt, epochs=epochs, batch_size=batch_size, verbose=0)
    acc = float(model.evaluate(xv, yv, verbose=0, batch_size=500)[1])
    keras.backend.clear_session()
    return acc


def make_search(space, config):
    """The SPOS or ENAS search of `config` (evolution/final sampling kept minimal: only the
    trained supernet is used here)."""
    from keras_nas.oneshot import ENASSearch, SPOSSearch

    lr = config["learning_rate"]
    kwargs = dict(optimizer=config["optimizer"], seed=config["seed"],
                  run_eagerly=config["run_eagerly"],
                  **({"learning_rate": lr} if lr else {}))
    if config["method"] == "enas":
        return ENASSearch(space, final_samples=1, **kwargs)
    return SPOSSearch(space, population_size=2, generations=0, sampling=config["sampling"],
                      **kwargs)


class Store:
    """The `--json` record: `standalone` (cache key -> result) and `runs` (a list). Every write
    re-reads the file and merges, so two runs of this script may share one file."""

    def __init__(self, path):
        self.path = Path(path)
        self.standalone, self.runs = {}, []
        self._merge({}, [])

    def _merge(self, standalone, runs):
        record = json.loads(self.path.read_text()) if self.path.exists() else {}
        record.setdefault("standalone", {}).update(standalone)
        record["runs"] = record.get("runs", []) + runs
        if standalone or runs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=1))
            tmp.replace(self.path)
        self.standalone, self.runs = record["standalone"], record["runs"]

    def add_standalone(self, key, result):
        self._merge({key: result}, [])

    def add_run(self, run):
        self._merge({}, [run])


def without_seeds(setting):
    """A run's setting without the stand-alone seeds (its scores do not depend on them)."""
    return {k: v for k, v in setting.items() if k != "seeds"}


def rank_correlations(a, b):
    """`{"kendall_tau", "kendall_p", "spearman"}` of two equal-length score lists."""
    from scipy.stats import kendalltau, spearmanr

    tau = kendalltau(a, b)
    return {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
            "spearman": float(spearmanr(a, b).statistic)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist14", choices=sorted(DATA))
    parser.add_argument("--cells", type=int, default=30, help="random NAS-Bench-201 cells ranked")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10, help="stand-alone training epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="stand-alone training seeds (reference: their mean accuracy)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cell-seed", type=int, default=1, help="seed of the random cells")
    parser.add_argument("--config", action="append", default=[],
                        help="one-shot configuration method:key=value,... (repeatable)")
    parser.add_argument("--scoring", type=scoring, nargs="+", default=[(4, 1000)],
                        help="how each trained supernet scores the cells, BATCHES:IMAGES: batch "
                             "norm recalibrated on BATCHES training batches, accuracy on "
                             "the first IMAGES validation images; one result per entry")
    parser.add_argument("--json", default="docs/benchmarks/supernet_ranking.json",
                        help="cache of stand-alone results and record of configurations")
    parser.add_argument("--nasbench201", default=None,
                        help="NAS-Bench-201 CSV (../shared/data/nasbench201/nasbench201.csv): "
                             "also report tau of the reference vs its CIFAR-10 test accuracy")
    parser.add_argument("--skip-standalone", action="store_true",
                        help="train no missing stand-alone result (e.g. while another run does)")
    parser.add_argument("--report", action="store_true", help="print the Markdown table")
    args = parser.parse_args(argv)
    for name in ("cells", "channels", "cells_per_stage", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if len(args.seeds) != len(set(args.seeds)):
        parser.error("--seeds must be distinct")
    try:
        configs = [parse_config(c) for c in args.config]
    except ValueError as e:
        parser.error(str(e))

    from keras_nas.spaces import NASBench201Space

    data = load_data(args.data)
    space = NASBench201Space(input_shape=data[0].shape[1:], num_classes=10,
                             channels=args.channels, cells_per_stage=args.cells_per_stage)
    cells = random_cells(space, args.cells, args.cell_seed)
    store = Store(args.json)
    setting = {"data": args.data, "cells": args.cells, "channels": args.channels,
               "cells_per_stage": args.cells_per_stage, "epochs": args.epochs,
               "seeds": args.seeds, "batch_size": args.batch_size, "cell_seed": args.cell_seed}
    for config in configs:
        search = make_search(space, config)
        search.fit(data[0], data[1], validation_data=data[2:], epochs=config["epochs"],
                   batch_size=args.batch_size)
        for batches, samples in args.scoring:
            start = time.perf_counter()
            calibration = [xb for xb, _ in search._batches(data[0], data[1], args.batch_size)]
            calibration = calibration[:batches] or None
            inherited = [search.evaluate_architecture(a, data[2][:samples], data[3][:samples],
                                                      calibration=calibration) for a in cells]
            store.add_run({"config": config, "setting": setting, "cells": cells,
                           "calibration_batches": batches, "eval_samples": samples,
                           "inherited": inherited,
                           "supernet_seconds": float(sum(search.history["seconds"])),
                           "scoring_seconds": time.perf_counter() - start,
                           "final_supernet_train_accuracy": search.history["accuracy"][-1],
                           "load_average": os.getloadavg()[0]})
        print(f"{config['label']}: supernet {sum(search.history['seconds']):.0f}s, "
              f"train accuracy {search.history['accuracy'][-1]:.3f}", flush=True)

    for seed in args.seeds if not args.skip_standalone else ():
        for i, arch in enumerate(cells):
            key = standalone_key(args, seed, arch)
            if key in store.standalone:
                continue
            start = time.perf_counter()
            acc = train_standalone(space, arch, data, args.epochs, args.batch_size, seed)
            seconds = time.perf_counter() - start
            store.add_standalone(key, {"val_accuracy": acc, "seconds": seconds})
            print(f"stand-alone seed {seed} cell {i + 1}/{len(cells)}: {acc:.4f} "
                  f"({seconds:.1f}s) {arch}", flush=True)
    keys = [[standalone_key(args, s, a) for a in cells] for s in args.seeds]
    if not all(k in store.standalone for row in keys for k in row):
        print("stand-alone results incomplete: no rank correlations yet", flush=True)
        return None
    per_seed = [[store.standalone[k]["val_accuracy"] for k in row] for row in keys]
    reference = [float(v) for v in np.mean(per_seed, axis=0)]
    # A supernet's scores do not depend on the stand-alone seeds: read every run of these
    # cells against the reference of the seeds asked for now.
    runs = [r for r in store.runs
            if without_seeds(r["setting"]) == without_seeds(setting) and r["cells"] == cells]
    for r in runs:
        r.update(rank_correlations(r["inherited"], reference))
        print(f"{r['config']['label']}: Kendall tau {r['kendall_tau']:.3f}, "
              f"Spearman {r['spearman']:.3f}", flush=True)

    summary = {"setting": setting, "cells": cells, "reference": reference, "per_seed": per_seed}
    if len(args.seeds) >= 2:
        summary["seed_to_seed"] = rank_correlations(per_seed[0], per_seed[1])
    if len(args.seeds) >= 4:  # how well a reference of half the seeds repeats
        half = len(args.seeds) // 2
        summary["half_to_half"] = rank_correlations(list(np.mean(per_seed[:half], axis=0)),
                                                    list(np.mean(per_seed[half:], axis=0)))
    if args.nasbench201:
        from keras_nas.benchmarks.nasbench201 import NASBench201

        table = NASBench201(args.nasbench201)
        summary["table"] = [table.query(a, ["c10_200ep_test"])["c10_200ep_test"] for a in cells]
    summary["runs"] = runs
    if args.report:
        print(report(summary, runs))
    return summary


def report(summary, runs):
    """Markdown: the setting, the stand-alone ceiling and one row per configuration run."""
    s = summary["setting"]
    ref = summary["reference"]
    connected = [i for i, acc in enumerate(ref) if acc > 0.2]
    lines = [
        f"Data: {DATA[s['data']]}. {s['cells']} random NAS-Bench-201 cells (cell seed "
        f"{s['cell_seed']}), channels {s['channels']}, {s['cells_per_stage']} cell per stage. "
        f"Stand-alone: {s['epochs']} epochs, Adam 1e-3, batch {s['batch_size']}, seeds "
        f"{s['seeds']}; reference = mean validation accuracy over the seeds "
        f"(range {min(ref):.3f}-{max(ref):.3f}; {len(ref) - len(connected)} cells at or below "
        f"0.2, i.e. no path from input to output).",
        "",
    ]
    if "seed_to_seed" in summary:
        c = summary["seed_to_seed"]
        lines += [f"Stand-alone seed {s['seeds'][0]} vs seed {s['seeds'][1]} (the ceiling): "
                  f"Kendall tau **{c['kendall_tau']:.3f}**, Spearman {c['spearman']:.3f}.", ""]
    if "half_to_half" in summary:
        c, half = summary["half_to_half"], len(s["seeds"]) // 2
        lines += [f"Mean of seeds {s['seeds'][:half]} vs mean of seeds {s['seeds'][half:]} (how "
                  f"well a reference of {half} seeds repeats): Kendall tau "
                  f"**{c['kendall_tau']:.3f}**, Spearman {c['spearman']:.3f}.", ""]
    if "table" in summary:
        c = rank_correlations(ref, summary["table"])
        lines += [f"Stand-alone reference vs the NAS-Bench-201 table's CIFAR-10 test accuracy "
                  f"(200 epochs, `c10_200ep_test`): "
                  f"Kendall tau {c['kendall_tau']:.3f}, Spearman {c['spearman']:.3f}.", ""]
    lines += [
        "| configuration | supernet epochs | BN batches | eval images | Kendall tau | Spearman | tau, connected cells only "
        "| supernet train acc | supernet s | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        sub = rank_correlations([r["inherited"][i] for i in connected], [ref[i] for i in connected])
        lines.append(
            f"| `{r['config']['label']}` | {r['config']['epochs']} | {r['calibration_batches']} | "
            f"{r['eval_samples']} | **{r['kendall_tau']:.3f}** | "
            f"{r['spearman']:.3f} | {sub['kendall_tau']:.3f} | "
            f"{r['final_supernet_train_accuracy']:.3f} | {r['supernet_seconds']:.0f} | "
            f"{r['load_average']:.1f} |")
    groups = {}
    for r in runs:
        key = json.dumps({**{k: v for k, v in r["config"].items() if k not in ("seed", "label")},
                          "scoring": [r["calibration_batches"], r["eval_samples"]]}, sort_keys=True)
        groups.setdefault(key, []).append(r)
    for group in (g for g in groups.values() if len(g) >= 2):
        a, b = group[:2]
        c = rank_correlations(a["inherited"], b["inherited"])
        mean = rank_correlations(list(np.mean([a["inherited"], b["inherited"]], axis=0)), ref)
        lines += ["", f"Supernet seed {a['config']['seed']} vs seed {b['config']['seed']} of "
                  f"`{a['config']['label']}` (BN batches {a['calibration_batches']}): Kendall tau "
                  f"{c['kendall_tau']:.3f} between their inherited accuracies; their mean against "
                  f"the reference: Kendall tau {mean['kendall_tau']:.3f}, Spearman "
                  f"{mean['spearman']:.3f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
