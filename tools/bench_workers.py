"""Parallel trials measured: `Search(workers=1)` against `workers=2` on the mnist2500 task.

Issue 16 (item 4), and issue 13's "both cores used when that is faster". On the split of
`tools/bench_realdata.py` (1,750 / 250 / 500 MNIST digits), each seed runs keras-nas' defaults
with `max_time=T` twice, in fresh processes, one after the other (the order alternates by
seed, so neither setting always runs first on a machine whose speed drifts): once with the
trials in this process (`workers=1`: one trial at a time, TensorFlow's default threads) and
once with `workers=2` (two worker processes of `cores // 2` threads each). From each run's
`summary.json`:

- trials finished, and trials per hour of search (up to the last trial's end);
- the best validation accuracy over time, and the seconds from the call's start until it first
  reached the `workers=1` run's final best (same seed): the time to the same result;
- the returned model's test accuracy and the call's wall time.

    python tools/bench_workers.py --budget 300 --seeds 0 1 --json workers.json --markdown
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_realdata  # noqa: E402  (the split, fresh-process runs, machine and code facts)

WORKER_COUNTS = (1, 2)


def best_over_time(summary, call_started):
    """`[(seconds since the call started, best validation accuracy so far)]` at each trial end."""
    ended = sorted((t["ended"], t["metrics"].get("val_accuracy"))
                   for t in summary["trials"]
                   if t.get("status") == "COMPLETED" and t.get("ended") is not None)
    curve, best = [], None
    for when, value in ended:
        if value is not None and (best is None or value > best):
            best = value
        curve.append((round(when - call_started, 1), best))
    return curve


def seconds_to_reach(curve, target):
    """When `curve` first reached `target` (None: never)."""
    return next((when for when, best in curve if best is not None and best >= target - 1e-9),
                None)


def run(workers, budget, seed, split_path, split_info, timeout):
    """One search in a fresh process; its bench_realdata record plus the curve."""
    keep = tempfile.mkdtemp(prefix=f"bench_workers_{workers}_{seed}_")
    variant = f"keras_nas[workers={workers}]"
    record = bench_realdata.run_one(
        "keras_nas", variant, budget, seed, split_path, split_info, {"workers": workers}, [],
        timeout, keep_dir=keep)
    record["workers"] = workers
    folder = os.path.join(keep, f"{bench_realdata._slug(variant)}_T{budget}_s{seed}")
    summary_path = os.path.join(folder, "search", "search", "summary.json")
    if record["status"] == "ok" and os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        call_started = record["started_unix"] + (record.get("startup_s") or 0.0)
        record["best_over_time"] = best_over_time(summary, call_started)
        ends = [t["ended"] for t in summary["trials"] if t.get("ended") is not None]
        search_s = max(ends) - call_started if ends else None
        record["search_s"] = search_s
        record["trials_per_hour"] = (3600.0 * record["trials_completed"] / search_s
                                     if search_s else None)
        record["workers_summary"] = summary.get("workers")
        record["trials_by_worker"] = {}
        for t in summary["trials"]:
            key = t.get("worker") or "here"
            record["trials_by_worker"][key] = record["trials_by_worker"].get(key, 0) + 1
    return record


def add_time_to_target(runs):
    """Per seed: the seconds each run took to reach the `workers=1` run's final best."""
    for seed in {r["seed"] for r in runs}:
        pair = {r["workers"]: r for r in runs if r["seed"] == seed and r.get("best_over_time")}
        if 1 not in pair:
            continue
        target = pair[1]["best_over_time"][-1][1]
        for record in pair.values():
            record["target_val_accuracy"] = target
            record["seconds_to_target"] = seconds_to_reach(record["best_over_time"], target)


def markdown(runs):
    lines = ["| workers | seed | trials | trials / hour | best val acc | s to the 1-worker best "
             "| test acc | call s | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["seed"], r["workers"])):
        if r["status"] != "ok":
            lines.append(f"| {r['workers']} | {r['seed']} | failed: {r['error']} | | | | | | |")
            continue
        reach = r.get("seconds_to_target")
        lines.append(
            f"| {r['workers']} | {r['seed']} | {r['trials_completed']} | "
            f"{r['trials_per_hour']:.0f} | {r['best_val_accuracy']:.3f} | "
            f"{'not reached' if reach is None else f'{reach:.0f}'} | "
            f"{r['test_accuracy']:.3f} | {r['call_s']:.0f} | "
            f"{r['load_average_before'][0]:.1f}-{r['load_average_after'][0]:.1f} |")
    for workers in WORKER_COUNTS:
        ok = [r for r in runs if r["workers"] == workers and r["status"] == "ok"]
        if ok:
            lines.append(
                f"| {workers} | mean | {statistics.mean(r['trials_completed'] for r in ok):.1f} | "
                f"{statistics.mean(r['trials_per_hour'] for r in ok):.0f} | "
                f"{statistics.mean(r['best_val_accuracy'] for r in ok):.3f} | | "
                f"{statistics.mean(r['test_accuracy'] for r in ok):.3f} | | |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=300.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--data", default=bench_realdata.DEFAULT_DATA, help="mnist2500.npz")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="fewer images (quick checks)")
    p.add_argument("--json", default=None, help="where the results go")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    if not os.path.exists(args.data):
        p.error(f"--data {args.data!r} is not a file (see ../shared/data/mnist2500/README)")
    split_path = os.path.join(tempfile.mkdtemp(prefix="bench_workers_split_"), "split.npz")
    split_info = bench_realdata.make_split(args.data, args.split_seed, args.limit, split_path)
    runs = []
    for i, seed in enumerate(args.seeds):
        order = WORKER_COUNTS if i % 2 == 0 else tuple(reversed(WORKER_COUNTS))
        for workers in order:
            print(f"run  workers={workers} T={args.budget:g} seed={seed} ...", flush=True)
            record = run(workers, args.budget, seed, split_path, split_info,
                         timeout=3 * args.budget + 300)
            runs.append(record)
            add_time_to_target(runs)
            print(f"     {record['status']}: test accuracy {record.get('test_accuracy')}, "
                  f"{record.get('trials_completed')} trials", flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"command": " ".join(sys.argv), "split": split_info,
                               "machine": bench_realdata.machine_facts(), "runs": runs}, f,
                              indent=1)
    if args.markdown:
        print(markdown(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
