"""Runs keras-nas search strategies on the NAS-Bench-201 table.

Each seed gets a fresh oracle (the same class `keras_nas.search(strategy=...)` builds, through
`keras_nas.oracles.make_oracle`) in a temporary directory, over `NASBench201Space`'s six
`edge_i_j` choices. The oracle is driven through KerasTuner's own calls, exactly as a Tuner
does: `create_trial` -> `update_trial(val_accuracy)` -> `end_trial`. A trial's reward is the
cell's 12-epoch CIFAR-10 validation accuracy (as a fraction, the way a Keras trial reports
`val_accuracy`); after `--queries` trials the result of the seed is the 200-epoch CIFAR-10 test
accuracy of the trial with the best reward. Every trial the oracle proposes costs one query,
repeated architectures included (the oracles avoid proposing repeats). As in a search, a
keras-nas oracle hashes the space's `architecture_key`, so it does not propose a cell that
computes what a tried one computes; `--architecture-key values` hashes the six edges instead.

    python tools/nasbench201.py --strategy evolution --queries 100 --seeds 100 \\
        --table ../shared/data/nasbench201/nasbench201.csv --json evolution.json

`python tools/nasbench201.py --plot OUT.png A.json B.json ...` draws the curves.

Writes a JSON with `strategy`, `queries`, `seeds`, `test_mean`, `test_std`, `curve_mean`
(mean best-so-far test accuracy after each query) and per-seed results.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TABLE = os.path.join(REPO, "..", "shared", "data", "nasbench201", "nasbench201.csv")

# name -> (type, oracle keyword)
STRATEGY_OPTIONS = {
    "learning_rate": float,
    "batch_size": int,
    "baseline_decay": float,
    "entropy_weight": float,
    "temperature": "float_or_none",
    "tanh_constant": "float_or_none",
    "units": int,
    "advantage": str,
    "replay_best": int,
    "replay_weight": float,
    "population_size": int,
    "sample_size": int,
    "num_initial_points": int,
    "alpha": float,
    "beta": float,
    "initial_samples": int,
    "full_neighbourhood": "bool",
    "restarts": "bool",
    "neighbours_of": int,
    "random_candidates": int,
    "proxy_pool": int,
}

#: `--proxy` name -> the table column that gives it for every cell.
PROXY_COLUMNS = {"params": "params_M_cifar10"}
#: The strategies that take a `proxy` (keras-nas' own oracles).
PROXY_STRATEGIES = ("evolution", "gp", "local", "reinforce")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategy", required=True,
                        help="a strategy name of keras_nas.search (random, bayesian, "
                             "reinforce, evolution, local, gp, ...)")
    parser.add_argument("--queries", type=int, default=100, help="trials per seed")
    parser.add_argument("--seeds", type=int, default=100, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="runs first..first+seeds-1 (oracle seed 10007 * (run + 1))")
    parser.add_argument("--table", default=DEFAULT_TABLE, help="path of nasbench201.csv")
    parser.add_argument("--json", default=None, help="where to write the results")
    parser.add_argument("--reward", default="12ep_cifar10_val", help="column rewarded")
    parser.add_argument("--report", default="c10_200ep_test", help="column reported")
    parser.add_argument("--architecture-key", choices=("space", "values"), default="space",
                        help="what counts as tried: the space's key, as in a search "
                             "(equivalent cells once), or the six edges (each cell once)")
    parser.add_argument("--proxy", choices=sorted(PROXY_COLUMNS), default=None,
                        help="a zero-cost proxy for strategies that take one (local): "
                             "`params`, each cell's parameter count, read from the table "
                             "(the number keras_nas.estimation.params gives for the space's "
                             "CIFAR-10 model)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop starting new seeds after this long (reports what finished)")
    for name, kind in STRATEGY_OPTIONS.items():
        if kind == "float_or_none":
            kind = _float_or_none
        elif kind == "bool":
            kind = _bool
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                            help=f"strategy option `{name}`" + (" ('none': off)" if
                                                                  kind is _float_or_none else ""))
    args = parser.parse_args(argv)
    if args.queries < 1 or args.seeds < 1:
        parser.error("--queries and --seeds must be positive")
    if args.proxy is not None and args.strategy not in PROXY_STRATEGIES:
        parser.error(f"--proxy works with {', '.join(PROXY_STRATEGIES)} (keras-nas' oracles), "
                     f"not {args.strategy}")
    return args


class _Off:
    """The value of an option given as 'none' on the command line (passed on as None)."""


def _bool(text):
    if text.lower() not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1")


def _float_or_none(text):
    return _Off if text.lower() == "none" else float(text)


def strategy_kwargs(args):
    kwargs = {k: getattr(args, k) for k in STRATEGY_OPTIONS if getattr(args, k) is not None}
    return {k: (None if v is _Off else v) for k, v in kwargs.items()}


def make_space():
    """The hyperparameters of NASBench201Space, and the space."""
    import keras_tuner

    from keras_nas.spaces import NASBench201Space

    space = NASBench201Space()
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    return hp, space


def seed_of(k):
    """The oracle seed of run `k`.

    KerasTuner's random sampling (`Oracle._random_values`, used by random search, the
    Bayesian oracle's initial points and evolution's initial population) seeds each value
    with a counter that starts at the oracle's seed and grows by one per sampled value, so
    runs with seeds 0, 1, 2, ... would draw almost the same architectures. Runs use seeds
    10007 apart (more than the values a 100-query run draws), so they are independent.
    """
    return 10007 * (k + 1)


def run_seed(strategy, seed, queries, table, reward_column, report_column, kwargs,
             architecture_key="space", proxy=None):
    """One search; returns the per-seed record. `proxy`: a key of `PROXY_COLUMNS`, given to
    the strategy as `proxy` (a function of the values reading the table)."""
    import keras_tuner

    from keras_nas.oracles import make_oracle
    from keras_nas.oracles.base import NASOracle

    hp, space = make_space()
    objective = keras_tuner.Objective("val_accuracy", "max")
    scored = []  # the architectures the proxy scored (a search builds each one's model)
    if proxy is not None:
        column = PROXY_COLUMNS[proxy]

        def proxy_of(values):
            scored.append(1)
            return table.query(space.encode(values), [column])[column]

        kwargs = dict(kwargs, proxy=proxy_of)
    oracle = make_oracle(
        strategy, objective=objective, max_trials=queries, epochs=1, seed=seed,
        hyperparameters=hp, **kwargs,
    )
    if isinstance(oracle, NASOracle) and architecture_key == "space":
        oracle.architecture_key = space.architecture_key  # as `NASTuner` does
    curve, seen, networks = [], set(), set()
    best_reward, best_report, best_arch = -math.inf, None, None
    with tempfile.TemporaryDirectory() as tmp:
        oracle._set_project_dir(tmp, f"seed_{seed}")
        oracle.verbose = 0
        for _ in range(queries):
            trial = oracle.create_trial("tuner0")
            if trial.status != "RUNNING":
                break
            arch = space.encode(trial.hyperparameters.values)
            row = table.query(arch, [reward_column, report_column])
            oracle.update_trial(trial.trial_id, {"val_accuracy": row[reward_column] / 100.0})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            seen.add(arch)
            networks.add(space.architecture_key(trial.hyperparameters.values))
            if row[reward_column] > best_reward:
                best_reward, best_report, best_arch = row[reward_column], row[report_column], arch
            curve.append(best_report)
    return {
        "seed": seed,
        "test": best_report,
        "reward": best_reward,
        "architecture": best_arch,
        "trials": len(curve),
        "distinct": len(seen),
        "distinct_networks": len(networks),
        "proxy_scored": len(scored),
        "curve": curve,
    }


def plot(json_paths, out):
    """Draws the mean best-so-far curves of result JSONs into `out` (a .png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for path in json_paths:
        with open(path) as f:
            r = json.load(f)
        ax.plot(range(1, len(r["curve_mean"]) + 1), r["curve_mean"],
                label=f"{r['strategy']} ({r['test_mean']:.2f}, {r['seeds']} seeds)")
    ax.axhline(94.37, color="gray", linestyle=":", label="optimum 94.37")
    ax.set_xlabel("queries")
    ax.set_ylabel("CIFAR-10 test accuracy (%) of best-so-far")
    ax.set_ylim(92.5, 94.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--plot":
        return plot(sys.argv[3:], sys.argv[2])
    args = parse_args(argv)
    sys.path.insert(0, REPO)
    from keras_nas.benchmarks import NASBench201

    table = NASBench201(args.table)
    kwargs = strategy_kwargs(args)
    start = time.time()
    records = []
    result = None
    for k in range(args.seeds):
        seed = seed_of(args.first_seed + k)
        if args.max_seconds is not None and time.time() - start > args.max_seconds:
            break
        records.append(
            run_seed(args.strategy, seed, args.queries, table, args.reward, args.report, kwargs,
                     args.architecture_key, args.proxy)
        )
        r = records[-1]
        print(f"seed {seed}: test {r['test']:.2f} reward {r['reward']:.3f} distinct "
              f"{r['distinct']}/{r['trials']} networks {r['distinct_networks']} "
              f"({time.time() - start:.0f}s)", flush=True)
        # Written after every seed, so a run stopped from outside still leaves its results.
        result = summarize(args, kwargs, records, start, argv, complete=k == args.seeds - 1)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
    if result is None:
        raise SystemExit("no seed finished within --max-seconds")
    print(f"{args.strategy}: {result['test_mean']:.2f} +- {result['test_std']:.2f} "
          f"over {len(records)} seeds x {args.queries} queries ({result['elapsed_s']:.0f}s)")
    return result


def summarize(args, kwargs, records, start, argv, complete):
    """The result dict of the seeds run so far."""
    import numpy as np

    tests = np.array([r["test"] for r in records])
    length = min(len(r["curve"]) for r in records)
    return {
        "strategy": args.strategy,
        "queries": args.queries,
        "seeds": len(records),
        "seeds_requested": args.seeds,
        "complete": bool(complete),
        "first_seed": args.first_seed,
        "test_mean": float(tests.mean()),
        "test_std": float(tests.std()),
        "reward_mean": float(np.mean([r["reward"] for r in records])),
        "distinct_mean": float(np.mean([r["distinct"] for r in records])),
        "distinct_networks_mean": float(np.mean([r["distinct_networks"] for r in records])),
        "architecture_key": args.architecture_key,
        "proxy": args.proxy,
        "proxy_scored_mean": float(np.mean([r.get("proxy_scored", 0) for r in records])),
        "curve_mean": [float(np.mean([r["curve"][k] for r in records])) for k in range(length)],
        "options": kwargs,
        "reward_column": args.reward,
        "report_column": args.report,
        "elapsed_s": time.time() - start,
        "command": "python tools/nasbench201.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "per_seed": records,
    }

if __name__ == "__main__":
    main()
