"""Time per trial of the default search on JAX against TensorFlow (issue 18).

Each run is `keras-nas search` on its default data (the embedded digits) with a fixed
`--max-trials` and `--seed`, the export and figures off and (by default) `--final-model
checkpoint`, so the process does little besides its trials; it runs in a fresh process with
`KERAS_BACKEND` set (a process keeps the backend it imported Keras with). The runs alternate in
pairs, forward then backward (tensorflow, jax, jax, tensorflow, ...), so drift in the machine's
load hits every configuration alike.

Per run it reads the search's own `summary.json`: each trial's wall seconds (`duration_s`, from
KerasTuner's trial start to its end), epochs trained, steady epoch seconds and what the first
epoch took beyond them (`first_epoch_extra_s`: tracing and compiling the steps), the validation
accuracy, the architecture; and the test accuracy the command measured. On JAX the child
process also listens to `jax.monitoring`'s compile events (tracing to a jaxpr, lowering, XLA's
backend compile, persistent-cache hits), each attributed to the trial whose time it fell in.

A configuration is a backend plus an optional variant:

    tensorflow     the library's defaults on TensorFlow
    jax            the library's defaults on JAX (the steps compiled with XLA) but without
                   JAX's persistent compilation cache: every run compiles everything, as the
                   first search on a machine does
    jax-cache      the library's defaults on JAX, its compilation cache in a folder shared by
                   this invocation's jax-cache runs (the first run is cold and writes it, later
                   ones read it: a re-run or resumed search, or any later search's repeats)
    jax-eager      `jax` with `Space.jit_compile = False` (the behaviour before issue 18: Keras
                   runs the step op by op)
    jax-O0         `jax` with XLA's CPU backend optimization level 0 (cheaper compiles)

    python tools/bench_backends.py --pairs 2 --trials 6 --seed 0 --json backends.json --markdown
    python tools/bench_backends.py --configs jax jax-cache --pairs 1 --markdown
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_realdata  # noqa: E402  (its process, machine and code helpers)

ROOT = bench_realdata.ROOT

#: configuration -> (KERAS_BACKEND, what the child changes)
CONFIGS = {
    "tensorflow": ("tensorflow", {}),
    "jax": ("jax", {}),
    "jax-eager": ("jax", {"jit_compile": False}),
    "jax-cache": ("jax", {"cache": True}),
    "jax-O0": ("jax", {"xla_flags": "--xla_backend_optimization_level=0"}),
}

#: `jax.monitoring` events the child records (name -> short key).
JAX_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
    "/jax/compilation_cache/cache_hits": "cache_hit",
    "/jax/compilation_cache/compile_time_saved_sec": "saved",
    "/jax/compilation_cache/cache_retrieval_time_sec": "retrieve",
}


# -- the child: one search in this process ------------------------------------------------
def child(spec_path):
    """Runs the command described in `spec_path` here, recording JAX's compile events."""
    with open(spec_path) as f:
        spec = json.load(f)
    events = []
    if os.environ.get("KERAS_BACKEND") == "jax":
        import jax
        import jax.monitoring

        def on_duration(event, duration, **kwargs):
            if event in JAX_EVENTS:
                events.append([time.time(), JAX_EVENTS[event], float(duration),
                               kwargs.get("fun_name")])

        def on_event(event, **kwargs):
            if event in JAX_EVENTS:
                events.append([time.time(), JAX_EVENTS[event], None, None])

        jax.monitoring.register_event_duration_secs_listener(on_duration)
        jax.monitoring.register_event_listener(on_event)
        if spec.get("cache_dir"):  # as `Search(compilation_cache=FOLDER)` sets it
            from keras_nas.tuning.compile_cache import use_jax_compilation_cache

            use_jax_compilation_cache(spec["cache_dir"], backend="jax")
        else:  # every run compiles everything, as a first search on a machine does
            jax.config.update("jax_enable_compilation_cache", False)
    if spec.get("jit_compile") is not None:
        from keras_nas.spaces.base import Space

        Space.jit_compile = spec["jit_compile"]
    import keras_nas_cli

    try:
        return keras_nas_cli.main(spec["argv"])
    finally:
        with open(spec["events_path"], "w") as f:
            json.dump(events, f)


# -- the parent ---------------------------------------------------------------------------
def order(configs, pairs, once=False):
    """The runs' order: the configurations forward, then backward, `pairs` times (`once`:
    each configuration once, forward)."""
    if once:
        return list(configs)
    runs = []
    for _ in range(pairs):
        runs += list(configs) + list(reversed(configs))
    return runs


def run_config(config, index, args, work, cache_dirs):
    """One search of `config` in a fresh process; returns its record."""
    backend, change = CONFIGS[config]
    folder = os.path.join(work, f"{index:02d}_{config}")
    os.makedirs(folder)
    output = os.path.join(folder, "results")
    argv = ["search", "--output", output, "--max-trials", str(args.trials), "--seed",
            str(args.seed), "--no-export", "--no-figures", "--final-model", args.final_model,
            "--quiet", *args.extra]
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    spec = {"argv": argv, "events_path": os.path.join(folder, "jax_events.json"),
            "jit_compile": change.get("jit_compile")}
    if change.get("cache"):
        spec["cache_dir"] = cache_dirs.setdefault(config, os.path.join(work, f"cache_{config}"))
    spec_path = os.path.join(folder, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONUNBUFFERED="1", PYTHONPATH=ROOT)
    env.setdefault("OMP_NUM_THREADS", "1")
    if change.get("xla_flags"):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + change["xla_flags"]).strip()
    command = [sys.executable, os.path.abspath(__file__), "--child", spec_path]
    log = os.path.join(folder, "log.txt")
    load_before = list(os.getloadavg())
    started = time.time()
    began = time.perf_counter()
    with open(log, "wb") as out:
        try:
            rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=env, timeout=args.timeout).returncode
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    record = {"config": config, "backend": backend, "change": change, "index": index,
              "command": shlex.join(["KERAS_BACKEND=" + backend, *command]),
              "cli_argv": argv, "returncode": rc, "timed_out": timed_out,
              "process_s": time.perf_counter() - began, "started_unix": started,
              "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
              "log_tail": bench_realdata._tail(log)}
    summary_path = os.path.join(output, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        events = []
        if os.path.exists(spec["events_path"]):
            with open(spec["events_path"]) as f:
                events = json.load(f)
        record.update(read_summary(summary, events))
    return record


def _sum_events(events, key, start=None, end=None):
    chosen = [e for e in events if e[1] == key
              and (start is None or start <= e[0] <= end)]
    return len(chosen), sum(e[2] or 0.0 for e in chosen)


def read_summary(summary, events):
    """What a run's `summary.json` (and JAX compile events) say about its trials."""
    trials = []
    for t in summary["trials"]:
        row = {"number": t["number"], "status": t["status"],
               "architecture": t["architecture"], "duration_s": t.get("duration_s"),
               "epochs_trained": t.get("epochs_trained"), "epoch_s": t.get("epoch_s"),
               "first_epoch_extra_s": t.get("first_epoch_extra_s"),
               "build_s": t.get("build_s"), "fit_s": t.get("fit_s"),
               "val_accuracy": (t.get("metrics") or {}).get("val_accuracy"),
               "stopped_at_rung": t.get("stopped_at_rung")}
        if events and t.get("started") is not None and t.get("ended") is not None:
            window = (t["started"], t["ended"])
            for key in ("trace", "lower", "compile", "retrieve"):
                count, seconds = _sum_events(events, key, *window)
                row[f"jax_{key}s"], row[f"jax_{key}_s"] = count, seconds
            row["jax_cache_hits"] = _sum_events(events, "cache_hit", *window)[0]
            # The training and evaluation steps' XLA compiles (the rest: weight initializers
            # and other small operations run eagerly, compiled once per shape per process).
            row["jax_step_compile_s"] = sum(
                e[2] or 0.0 for e in events if e[1] == "compile" and "_step" in (e[3] or "")
                and window[0] <= e[0] <= window[1])
        trials.append(row)
    trials.sort(key=lambda r: (r["number"] is None, r["number"]))
    done = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    out = {"trials": trials, "best_architecture": summary.get("best_architecture"),
           "best_val_accuracy": max((t["metrics"].get("val_accuracy", 0.0) for t in done),
                                    default=None),
           "test_accuracy": (summary.get("best") or {}).get("test_accuracy"),
           "command_s": (summary.get("best") or {}).get("command_s"),
           "search_s": summary.get("elapsed_s")}
    if events:
        out["jax_totals"] = {key: dict(zip(("count", "seconds"), _sum_events(events, key)))
                             for key in ("trace", "lower", "compile", "cache_hit", "saved")}
    return out


# -- the summary --------------------------------------------------------------------------
def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def summarize(runs):
    """One row per configuration: per-trial seconds, first against later trials, the share
    of a trial spent compiling, the accuracy."""
    rows = []
    for config in dict.fromkeys(r["config"] for r in runs):
        mine = [r for r in runs if r["config"] == config and r.get("trials")]
        trials = [t for r in mine for t in r["trials"] if t["duration_s"] is not None]
        if not trials:
            rows.append({"config": config, "runs": len(mine), "ok": False})
            continue
        firsts = [r["trials"][0]["duration_s"] for r in mine if r["trials"]]
        later = [t["duration_s"] for r in mine for t in r["trials"][1:]
                 if t["duration_s"] is not None]
        total = sum(t["duration_s"] for t in trials)
        epochs = sum(t["epochs_trained"] or 0 for t in trials)
        extra = sum(t["first_epoch_extra_s"] or 0.0 for t in trials)
        row = {
            "config": config, "runs": len(mine), "ok": True, "trials": len(trials),
            "trial_s": total / len(trials), "first_trial_s": _mean(firsts),
            "later_trial_s": _mean(later), "epochs_per_trial": epochs / len(trials),
            "trial_s_per_epoch": total / epochs if epochs else None,
            # Trials of one epoch have no steady epoch (their `epoch_s` is the first one).
            "steady_epoch_s": _mean([t["epoch_s"] for t in trials
                                     if (t["epochs_trained"] or 0) >= 2]),
            "first_epoch_extra_s": extra / len(trials),
            "first_epoch_extra_share": extra / total if total else None,
            "best_val_accuracy": [r.get("best_val_accuracy") for r in mine],
            "test_accuracy": [r.get("test_accuracy") for r in mine],
            "process_s": _mean([r["process_s"] for r in mine]),
            "load_average": [min(r["load_average_before"][0] for r in mine),
                             max(r["load_average_after"][0] for r in mine)],
        }
        if all("jax_compile_s" in t for t in trials):
            compiled = sum(t["jax_compile_s"] + t["jax_trace_s"] + t["jax_lower_s"]
                           for t in trials)
            row.update(jax_compile_s=compiled / len(trials), jax_compile_share=compiled / total,
                       jax_step_compile_s=_mean([t.get("jax_step_compile_s") for t in trials]),
                       jax_traces_per_trial=_mean([t["jax_traces"] for t in trials]),
                       jax_compiles_per_trial=_mean([t["jax_compiles"] for t in trials]),
                       jax_cache_hits=sum(t["jax_cache_hits"] for t in trials))
        rows.append(row)
    return rows


def same_search(runs):
    """How many trials' architectures agree with the first run's, run by run."""
    reference = [t["architecture"] for t in runs[0].get("trials", [])] if runs else []
    return [sum(a == b for a, b in zip(reference, [t["architecture"] for t in r.get("trials",
                                                                                   [])]))
            for r in runs]


def _fmt(value, digits=1, suffix=""):
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def markdown(runs):
    """A table with a row per configuration, and one with a row per run."""
    lines = ["| configuration | runs | trials | s / trial | first trial s | later trials s "
             "| epochs / trial | steady epoch s | first epoch extra s (share) "
             "| JAX trace+compile s / trial (share) | traces / compiles per trial "
             "| best val acc | test acc | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summarize(runs):
        if not row["ok"]:
            lines.append(f"| {row['config']} | {row['runs']} | failed | | | | | | | | | | | |")
            continue
        jax_part = "-"
        counts = "-"
        if "jax_compile_s" in row:
            jax_part = (f"{row['jax_compile_s']:.1f} ({100 * row['jax_compile_share']:.0f}%; "
                        f"steps {_fmt(row['jax_step_compile_s'])})")
            counts = f"{row['jax_traces_per_trial']:.1f} / {row['jax_compiles_per_trial']:.1f}"
            if row["jax_cache_hits"]:
                counts += f", {row['jax_cache_hits']} cache hits"
        lines.append(
            f"| {row['config']} | {row['runs']} | {row['trials']} | {row['trial_s']:.1f} | "
            f"{_fmt(row['first_trial_s'])} | {_fmt(row['later_trial_s'])} | "
            f"{row['epochs_per_trial']:.1f} | {_fmt(row['steady_epoch_s'], 2)} | "
            f"{row['first_epoch_extra_s']:.1f} ({100 * row['first_epoch_extra_share']:.0f}%) | "
            f"{jax_part} | {counts} | "
            f"{', '.join(_fmt(v, 4) for v in row['best_val_accuracy'])} | "
            f"{', '.join(_fmt(v, 4) for v in row['test_accuracy'])} | "
            f"{row['load_average'][0]:.1f}-{row['load_average'][1]:.1f} |")
    lines += ["", "| run | configuration | process s | trials | s / trial | first trial s "
              "| architectures as run 1 | best val acc | load avg |",
              "|---|---|---|---|---|---|---|---|---|"]
    for run, same in zip(runs, same_search(runs)):
        trials = [t for t in run.get("trials", []) if t["duration_s"] is not None]
        per = _mean([t["duration_s"] for t in trials])
        first = trials[0]["duration_s"] if trials else None
        lines.append(
            f"| {run['index'] + 1} | {run['config']} | {run['process_s']:.0f} | "
            f"{len(trials)} | {_fmt(per)} | {_fmt(first)} | {same}/{len(trials)} | "
            f"{_fmt(run.get('best_val_accuracy'), 4)} | "
            f"{run['load_average_before'][0]:.1f}-{run['load_average_after'][0]:.1f} |")
    return "\n".join(lines)


def _machine_facts():
    """`bench_realdata.machine_facts()` with the JAX version too."""
    import importlib.metadata

    facts = bench_realdata.machine_facts()
    for name in ("jax", "jaxlib"):
        try:
            facts["versions"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            facts["versions"][name] = None
    return facts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["tensorflow", "jax"], choices=sorted(CONFIGS),
                   help="what to compare (default: tensorflow jax)")
    p.add_argument("--pairs", type=int, default=2,
                   help="each pair runs the configurations forward then backward (default 2)")
    p.add_argument("--once", action="store_true",
                   help="run each configuration once instead (a quick check, no pairs)")
    p.add_argument("--trials", type=int, default=6, help="--max-trials of each search")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None,
                   help="--epochs of each search (default: the command's, 5)")
    p.add_argument("--final-model", default="checkpoint", choices=("checkpoint", "retrain"),
                   help="checkpoint (default: no retraining after the trials) or retrain")
    p.add_argument("--extra", default="", help="more `keras-nas search` arguments")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--json", default=None, help="write the runs, machine and code here")
    p.add_argument("--markdown", action="store_true", help="print the tables")
    p.add_argument("--keep", default=None, help="keep the runs' folders here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.extra = shlex.split(args.extra)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args.child)
    work = args.keep or tempfile.mkdtemp(prefix="bench_backends_")
    os.makedirs(work, exist_ok=True)
    cache_dirs = {}
    runs = []
    try:
        for index, config in enumerate(order(args.configs, args.pairs, args.once)):
            run = run_config(config, index, args, work, cache_dirs)
            runs.append(run)
            print(f"run {index + 1}: {config} rc={run['returncode']} "
                  f"{run['process_s']:.0f} s, {len(run.get('trials', []))} trials, best val "
                  f"{_fmt(run.get('best_val_accuracy'), 4)}", flush=True)
    finally:
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"benchmark": "backends", "settings": {
                    k: v for k, v in vars(args).items() if k not in ("child", "json")},
                    "machine": _machine_facts(),
                    "code": bench_realdata.code_facts(), "summary": summarize(runs),
                    "runs": runs}, f, indent=1)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.markdown:
        print(markdown(runs))
    return 0 if runs and all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
