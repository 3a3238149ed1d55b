#!/usr/bin/env python3
"""Latency-constrained search on the NAS-Bench-201 table, with `lat_pixel3` as the device.

Each seed runs a fresh KerasTuner oracle over `NASBench201Space`'s six `edge_i_j` choices,
driven as a Tuner drives it (`create_trial` -> `update_trial` -> `end_trial`), until
`--queries` candidates were trained (looked up). A trained candidate's metrics are the
cell's 12-epoch CIFAR-10 validation accuracy (`val_accuracy`, a fraction) and its latency
(`latency_ms`, the `--device` column, Pixel 3 by default); the oracle maximizes a
latency-aware reward from `keras_nas.results.objectives` over them (`--objective`: `hard`,
`mnasnet`, `mnasnet_hard` or `tunas`; random search ignores it). The result of a seed is
the trained candidate with the best `val_accuracy` among the feasible ones
(`latency_ms <= --target-ms`), and what is reported is its 200-epoch CIFAR-10 test accuracy
against the best test accuracy of any feasible cell in the table. With a hard objective
(`hard`, `mnasnet_hard`) a candidate over the target is, as in a search, reported with its
infeasible score and not trained: it costs no query (`--no-skip-infeasible` trains it too);
as the search's tuner does, every trial reports `latency_to_target` and a skipped one
`skipped_infeasible`, which a constraint-aware strategy (`gp`) models apart from the reward.
Each spelling of a cell is its own candidate here (`--architecture-key values`, the
default): the table's latency is measured per spelling, and cells that build the same network
(the space's `architecture_key`, which a search uses: they convert to the same TFLite graph)
differ in it by a median 19% (`--architecture-key space` merges them as a search does).

    python tools/nasbench201_latency.py --strategy random --target-ms 8 --queries 100 --seeds 100
    python tools/nasbench201_latency.py --strategy reinforce --objective mnasnet_hard \\
        --target-ms 8 --queries 100 --seeds 20 --max-seconds 900 --json reinforce_lat.json
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TABLE = os.path.join(REPO, "..", "shared", "data", "nasbench201", "nasbench201.csv")
sys.path.insert(0, REPO)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategy", default="random", help="a strategy name of keras_nas.search")
    parser.add_argument("--objective", default="mnasnet_hard",
                        help="reward the oracle maximizes: hard, mnasnet, mnasnet_hard, tunas")
    parser.add_argument("--target-ms", type=float, default=8.0, help="latency target T (ms)")
    parser.add_argument("--device", default="lat_pixel3", help="latency column of the table")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--reward-column", default="12ep_cifar10_val")
    parser.add_argument("--report-column", default="c10_200ep_test")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="start no new seed after this long; report the finished ones")
    parser.add_argument("--skip-infeasible", action=argparse.BooleanOptionalAction, default=True,
                        help="report a candidate over a hard target untrained, costing no query "
                             "(as the search does; needs --objective hard or mnasnet_hard)")
    parser.add_argument("--max-proposals-factor", type=int, default=20,
                        help="with skipping, at most this many proposals per query")
    parser.add_argument("--architecture-key", choices=("space", "values"), default="values",
                        help="what counts as tried: the six edges (the table's latency is per "
                             "spelling), or the space's key, as in a search")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.queries < 1 or args.seeds < 1:
        parser.error("--queries and --seeds must be positive")
    if not args.target_ms > 0:
        parser.error("--target-ms must be positive")
    return args


def run_seed(args, table, seed):
    import keras_tuner

    from keras_nas.results.objectives import make_objective
    from keras_nas.oracles import make_oracle
    from keras_nas.oracles.base import SKIPPED_METRIC, TARGET_RATIO_METRIC, NASOracle
    from keras_nas.spaces import NASBench201Space

    space = NASBench201Space()
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    objective = make_objective(args.objective, target=args.target_ms)
    max_proposals = args.queries * (args.max_proposals_factor if args.skip_infeasible else 1)
    oracle = make_oracle(args.strategy, objective=objective.keras_tuner_objective(),
                         max_trials=max_proposals, epochs=1, seed=seed, hyperparameters=hp)
    if isinstance(oracle, NASOracle) and args.architecture_key == "space":
        oracle.architecture_key = space.architecture_key  # as `NASTuner` does
    best = None  # (val, test, latency, arch) of the best feasible trial
    feasible_trials = trainings = skipped = 0
    columns = [args.reward_column, args.report_column, args.device]
    with tempfile.TemporaryDirectory() as tmp:
        oracle._set_project_dir(tmp, f"seed_{seed}")
        oracle.verbose = 0
        # A query is a training. With skipping, a candidate whose latency (known before any
        # training) is over a hard target is reported with its infeasible score, as the
        # search's tuner does, and costs no query; `max_proposals` bounds the proposals.
        while trainings < args.queries and trainings + skipped < max_proposals:
            trial = oracle.create_trial("tuner0")
            if trial.status != "RUNNING":
                break
            arch = space.encode(trial.hyperparameters.values)
            row = table.query(arch, columns)
            latency = max(row[args.device], 1e-6)
            measured = {"latency_ms": latency}
            score = objective.infeasible_score(measured) if args.skip_infeasible else None
            # as the search's tuner reports a trial
            metrics = {TARGET_RATIO_METRIC: objective.target_ratio(measured)}
            if score is not None:
                skipped += 1
                metrics[SKIPPED_METRIC] = 1.0
            else:
                score = objective({**measured, "val_accuracy": row[args.reward_column] / 100.0})
                trainings += 1
                if latency <= args.target_ms:
                    feasible_trials += 1
                    if best is None or row[args.reward_column] > best[0]:
                        best = (row[args.reward_column], row[args.report_column], latency, arch)
            oracle.update_trial(trial.trial_id, {**metrics, objective.name: score})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    return {"seed": seed, "trials": trainings, "skipped": skipped,
            "feasible_trials": feasible_trials,
            "test": None if best is None else best[1],
            "latency_ms": None if best is None else best[2],
            "architecture": None if best is None else best[3]}


def main(argv=None):
    args = parse_args(argv)
    from keras_nas.benchmarks.nasbench201 import NASBench201

    table = NASBench201(args.table)
    lat = table.column(args.device)
    test = table.column(args.report_column)
    feasible = lat <= args.target_ms
    optimum = float(test[feasible].max())
    start = time.time()
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if args.max_seconds is not None and time.time() - start > args.max_seconds:
            break
        results.append(run_seed(args, table, seed))
    found = [r["test"] for r in results if r["test"] is not None]
    summary = {
        "strategy": args.strategy, "objective": args.objective, "device": args.device,
        "target_ms": args.target_ms, "queries": args.queries, "seeds_run": len(results),
        "feasible_cells": int(feasible.sum()), "cells": int(len(lat)),
        "feasible_optimum_test": optimum, "unconstrained_optimum_test": float(test.max()),
        "seeds_without_feasible": sum(r["test"] is None for r in results),
        "test_mean": statistics.mean(found) if found else None,
        "test_std": statistics.pstdev(found) if found else None,
        "gap_mean": optimum - statistics.mean(found) if found else None,
        "skip_infeasible": args.skip_infeasible,
        "architecture_key": args.architecture_key,
        "feasible_fraction_of_trials": (sum(r["feasible_trials"] for r in results)
                                        / max(1, sum(r["trials"] for r in results))),
        "skipped_mean": statistics.mean(r["skipped"] for r in results) if results else None,
        "all_found_feasible": all(r["latency_ms"] is None or r["latency_ms"] <= args.target_ms
                                  for r in results),
        "elapsed_s": time.time() - start,
        "seeds": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "seeds"}, indent=1))


if __name__ == "__main__":
    main()
