"""The README's main job, measured: `keras-nas search --output DIR --seed S` on the embedded digits.

Issue 13's target: the model the main job returns scores at least 0.97 on the digits' test
images (the last 20% of scikit-learn's `digits`, written by other people than the training
images) in under two minutes. Each seed runs the command as a fresh process, exactly as the
README writes it (plus `--seed`), and reads back its `summary.json`: the test accuracy the command
measured, the trials, the final model, the command's own seconds; the process' wall time
(imports included) is measured here.

    python tools/bench_main_job.py --seeds 0 1 2 --json main_job.json --markdown
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_realdata  # noqa: E402  (its process, machine and code helpers)


def run_seed(seed, extra_args, timeout):
    """Runs the main job with `seed` in a fresh folder; returns what it measured."""
    folder = tempfile.mkdtemp(prefix=f"bench_main_job_{seed}_")
    output = os.path.join(folder, "results")
    command = [*bench_realdata._cli_command(), "search", "--output", output,
               "--seed", str(seed), *extra_args]
    log = os.path.join(folder, "log.txt")
    load_before = list(os.getloadavg())
    rc, seconds, started, timed_out = bench_realdata._spawn(command, log, timeout)
    run = {"seed": seed, "command": shlex.join(command), "returncode": rc,
           "timed_out": timed_out, "process_s": seconds, "started_unix": started,
           "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
           "log_tail": bench_realdata._tail(log)}
    summary_path = os.path.join(output, "summary.json")
    if rc == 0 and os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        final = summary.get("final_model") or {}
        run.update(test_accuracy=summary["best"].get("test_accuracy"),
                   command_s=summary["best"].get("command_s"),
                   max_time=summary.get("max_time"),
                   trials=len(summary.get("trials") or []),
                   best_architecture=summary.get("best_architecture"),
                   search_validation_accuracy=final.get("search_validation_accuracy"),
                   final_model={k: final.get(k) for k in (
                       "policy", "epochs", "augmentation", "shortened", "fallback", "seconds")})
    return run


def markdown(runs):
    """A row per seed and a mean row."""
    lines = ["| seed | test accuracy | process s | command s | trials | final model | load avg |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        final = run.get("final_model") or {}
        epochs = f"{final.get('policy')}, {final.get('epochs')} epochs" if final else "-"
        lines.append(
            f"| {run['seed']} | {_fmt(run.get('test_accuracy'), 4)} | {run['process_s']:.0f} | "
            f"{_fmt(run.get('command_s'), 0)} | {run.get('trials', '-')} | {epochs} | "
            f"{run['load_average_before'][0]:.1f}-{run['load_average_after'][0]:.1f} |")
    accuracies = [r["test_accuracy"] for r in runs if r.get("test_accuracy") is not None]
    if accuracies:
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        lines.append(f"| mean | **{statistics.mean(accuracies):.4f} ± {spread:.4f}** | "
                     f"{max(r['process_s'] for r in runs):.0f} (max) | | | | |")
    return "\n".join(lines)


def _fmt(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--extra", default="", help="more `keras-nas search` arguments (a variant)")
    p.add_argument("--json", default=None, help="write the runs, machine and code here")
    p.add_argument("--markdown", action="store_true", help="print the table")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = p.parse_args(argv)
    args.extra = shlex.split(args.extra)
    return args


def main(argv=None):
    args = parse_args(argv)
    runs = [run_seed(seed, args.extra, args.timeout) for seed in args.seeds]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "main_job", "machine": bench_realdata.machine_facts(),
                       "code": bench_realdata.code_facts(), "runs": runs}, f, indent=1)
    if args.markdown:
        print(markdown(runs))
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
