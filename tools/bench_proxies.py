"""Validate zero-cost proxies on NAS-Bench-201: Spearman rank correlation with 200-epoch accuracy.

Samples `--cells` distinct cells from the NAS-Bench-201 table with `--seed`, builds each with
`NASBench201Space(input_shape=(32, 32, 3), num_classes=10, channels=16, cells_per_stage=5)`
(the benchmark's real size), computes every proxy on one fixed stand-in batch, and reports the
Spearman correlation of each proxy with `c10_200ep_test`, against the published values, and the
seconds per cell of each proxy.

The stand-in batch: there is no CIFAR-10 on disk, so data-dependent proxies see `--batch`
(default 64) images of i.i.d. standard-normal pixels with uniform random labels in 0..9, drawn
with `numpy.random.default_rng(seed)`. Weights of cell `i` are initialized after
`keras.utils.set_random_seed(seed + table index)`, so reruns give the same scores.

Results are checkpointed to `--json` after every cell (a partial run still gives numbers;
`--resume` continues one). `--report` prints the markdown table of an existing JSON.

    python tools/bench_proxies.py --cells 300 --seed 0 --json proxies.json
    python tools/bench_proxies.py --report --json proxies.json
    python tools/bench_proxies.py --cells 300 --seed 0 --stand-in smooth \
        --proxies jacob_cov,naswot,params --json proxies_smooth.json
"""

import argparse
import csv
import gc
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_TABLE = ROOT / ".." / "shared" / "data" / "nasbench201" / "nasbench201.csv"
TARGET = "c10_200ep_test"
CHANCE = 10.5  # accuracy (%) at or below which a cell learned nothing (10 classes)
PROXY_ORDER = ["synflow", "snip", "grad_norm", "jacob_cov", "naswot", "params", "flops"]
PUBLISHED = {"synflow": 0.74, "jacob_cov": 0.73, "snip": 0.60, "grad_norm": 0.59}
"""Spearman rho on NAS-Bench-201 CIFAR-10 (Abdelfattah et al., ICLR 2021)."""


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "arch_str" not in rows[0] or TARGET not in rows[0]:
        raise ValueError(f"`--table` {path} lacks the columns arch_str and {TARGET}.")
    return rows


def spearman(a, b):
    """Spearman rho with average ranks; NaN scores count as the worst (lowest)."""
    import numpy as np
    from scipy.stats import rankdata

    a = np.asarray(a, dtype="float64")
    a = np.where(np.isnan(a), -np.inf, a)
    ra, rb = rankdata(a), rankdata(np.asarray(b, dtype="float64"))
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def kendall(a, b):
    import numpy as np
    from scipy.stats import kendalltau

    a = np.asarray(a, dtype="float64")
    tau = kendalltau(np.where(np.isnan(a), -np.inf, a), b).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def top_overlap(a, b, fraction=0.1):
    """How many of the best `fraction` cells by accuracy `b` are also in the best by score `a`."""
    import numpy as np

    a = np.asarray(a, dtype="float64")
    a = np.where(np.isnan(a), -np.inf, a)
    k = max(1, int(round(fraction * len(a))))
    best_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    best_b = set(np.argsort(-np.asarray(b, dtype="float64"), kind="stable")[:k].tolist())
    return len(best_a & best_b), k


def summarize(records):
    import numpy as np

    out = {}
    acc = [r["accuracy"] for r in records]
    # Cells at chance accuracy (10%) have no path from input to output.
    trained = [i for i, a in enumerate(acc) if a > CHANCE]
    for name in PROXY_ORDER:
        vals = [r["scores"].get(name) for r in records if name in r["scores"]]
        secs = [r["seconds"][name] for r in records if name in r["seconds"]]
        if len(vals) != len(records):
            continue
        vals = [math.nan if v is None else v for v in vals]
        hit, k = top_overlap(vals, acc)
        sizes = [r["scores"].get("params") for r in records]
        out[name] = {
            "spearman_with_params": None if None in sizes else spearman(vals, sizes),
            "spearman": spearman(vals, acc),
            "kendall": kendall(vals, acc),
            "spearman_above_chance": spearman([vals[i] for i in trained],
                                              [acc[i] for i in trained]),
            "top10pct_overlap": hit,
            "top10pct_size": k,
            "published": PUBLISHED.get(name),
            "seconds_per_cell_mean": float(np.mean(secs)) if secs else None,
            "seconds_per_cell_median": float(np.median(secs)) if secs else None,
            "non_finite": int(sum(1 for v in vals if not math.isfinite(v))),
        }
    builds = [r["seconds"]["build"] for r in records if "build" in r["seconds"]]
    out["_build"] = {"seconds_per_cell_mean": float(np.mean(builds)) if builds else None}
    out["_cells"] = {"total": len(records), "at_chance": len(records) - len(trained)}
    return out


def markdown(result):
    lines = [
        f"Cells scored: {result['cells_done']} of {result['config']['cells']} "
        f"(seed {result['config']['seed']}, batch {result['config']['batch']}, "
        f"stand-in batch: {result['config'].get('stand_in', 'noise')}).",
        "",
        "| proxy | Spearman rho vs c10_200ep_test (ours) | published (CIFAR-10) "
        "| s/cell mean | s/cell median | non-finite scores |",
        "|---|---|---|---|---|---|",
    ]
    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    for name in PROXY_ORDER:
        s = result["summary"].get(name)
        if s is None:
            continue
        pub = "-" if s["published"] is None else f"{s['published']:.2f}"
        lines.append(
            f"| {name} | {fmt(s['spearman'])} | {pub} | {s['seconds_per_cell_mean']:.3f} "
            f"| {s['seconds_per_cell_median']:.3f} | {s['non_finite']} |"
        )
    b = result["summary"].get("_build", {}).get("seconds_per_cell_mean")
    if b is not None:
        lines += ["", f"Building a cell network (Keras, `build_architecture`): {b:.2f} s/cell mean."]
    cells = result["summary"].get("_cells", {})
    lines += [
        "",
        f"Other views of the same scores ({cells.get('at_chance', '?')} of the cells sit at "
        f"chance accuracy, <= {CHANCE}%: no path from input to output):",
        "",
        "| proxy | Kendall tau | Spearman rho, cells above chance only "
        "| best 10% by accuracy also in best 10% by proxy | Spearman rho with params |",
        "|---|---|---|---|---|",
    ]
    for name in PROXY_ORDER:
        s = result["summary"].get(name)
        if s is None:
            continue
        lines.append(
            f"| {name} | {fmt(s['kendall'])} | {fmt(s['spearman_above_chance'])} "
            f"| {s['top10pct_overlap']} of {s['top10pct_size']} "
            f"| {fmt(s.get('spearman_with_params'))} |"
        )
    return "\n".join(lines)


def _jsonable(record):
    """JSON has no inf/NaN: non-finite scores are stored as the strings "inf", "-inf", "nan"."""
    scores = {k: (v if math.isfinite(v) else str(v)) for k, v in record["scores"].items()}
    return {**record, "scores": scores}


def _from_json(record):
    return {**record, "scores": {k: float(v) for k, v in record["scores"].items()}}


def write_json(path, result):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--table", default=str(DEFAULT_TABLE))
    parser.add_argument("--json", required=True, help="results file (checkpointed per cell)")
    parser.add_argument("--proxies", default=",".join(PROXY_ORDER))
    parser.add_argument(
        "--stand-in", default="noise", choices=["noise", "smooth"],
        help="noise: i.i.d. N(0,1) pixels; smooth: the same noise blurred spatially "
             "(Gaussian, sigma 2 px) and re-standardized per image and channel",
    )
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--resume", action="store_true", help="continue the run in --json")
    parser.add_argument("--report", action="store_true", help="print the table of --json")
    args = parser.parse_args(argv)

    if args.report:
        result = json.loads(Path(args.json).read_text())
        result["summary"] = summarize([_from_json(r) for r in result["records"]])
        print(markdown(result))
        return 0
    if args.cells < 3:
        parser.error("--cells must be at least 3")
    proxies = [p for p in args.proxies.split(",") if p]
    unknown = sorted(set(proxies) - set(PROXY_ORDER))
    if unknown:
        parser.error(f"unknown --proxies {unknown}; choose from {PROXY_ORDER}")

    import keras
    import numpy as np

    from keras_nas.estimation import proxies as P
    from keras_nas.spaces.nasbench201 import NASBench201Space

    rows = read_table(args.table)
    picked = random.Random(args.seed).sample(range(len(rows)), args.cells)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=args.batch)
    if args.stand_in == "smooth":
        from scipy.ndimage import gaussian_filter

        x = gaussian_filter(x, sigma=(0, 2, 2, 0), mode="wrap")
        x = (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)
        x = x.astype("float32")
    space = NASBench201Space(
        input_shape=(32, 32, 3), num_classes=10, channels=16, cells_per_stage=5
    )
    config = {
        "cells": args.cells, "seed": args.seed, "batch": args.batch, "proxies": proxies,
        "table": str(args.table), "target": TARGET,
        "stand_in_batch": ("i.i.d. N(0,1) pixels" if args.stand_in == "noise" else
                           "N(0,1) pixels blurred by a sigma-2 Gaussian, re-standardized")
                          + ", shape (batch,32,32,3), uniform labels 0..9, "
                          "numpy.random.default_rng(seed)",
        "stand_in": args.stand_in,
        "space": "NASBench201Space(input_shape=(32,32,3), num_classes=10, channels=16, "
                 "cells_per_stage=5)",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}, "
                   f"keras {keras.__version__}",
    }
    records = []
    if args.resume and Path(args.json).exists():
        old = json.loads(Path(args.json).read_text())
        keys = ("cells", "seed", "batch", "proxies")
        if {k: old["config"].get(k) for k in keys} != {k: config[k] for k in keys} or old[
            "config"
        ].get("stand_in", "noise") != args.stand_in:
            parser.error("--resume: --json holds a run with other --cells/--seed/--batch/"
                         "--proxies/--stand-in")
        records = [_from_json(r) for r in old["records"]]
    done = {r["index"] for r in records}
    started = time.time()

    for position, row_i in enumerate(picked):
        row = rows[row_i]
        index = int(row["index"])
        if index in done:
            continue
        if args.max_minutes is not None and time.time() - started > 60 * args.max_minutes:
            print(f"stopping: --max-minutes {args.max_minutes} reached", flush=True)
            break
        keras.utils.set_random_seed(args.seed + index)
        t = time.perf_counter()
        model = space.build_architecture(row["arch_str"])
        seconds = {"build": time.perf_counter() - t}
        scores = {}

        def timed(name, fn):
            t0 = time.perf_counter()
            value = fn()
            seconds[name] = time.perf_counter() - t0
            return value

        for name in proxies:
            if name == "grad_norm" and "snip" in proxies:
                continue  # computed with snip below
            if name == "snip" and "grad_norm" in proxies:
                s, g = timed("snip", lambda: P.snip_and_grad_norm(model, x, y))
                # one shared backward pass: each proxy alone costs that pass.
                scores["snip"], scores["grad_norm"] = s, g
                seconds["grad_norm"] = seconds["snip"]
                continue
            try:
                scores[name] = float(timed(name, lambda: P.score(model, name, x, y)))
            except FloatingPointError:
                scores[name] = math.nan
        records.append({
            "index": index, "arch_str": row["arch_str"], "accuracy": float(row[TARGET]),
            "scores": scores, "seconds": seconds,
        })
        del model
        keras.backend.clear_session()
        gc.collect()
        result = {"config": config, "cells_done": len(records), "published": PUBLISHED,
                  "summary": summarize(records), "elapsed_s": time.time() - started,
                  "records": [_jsonable(r) for r in records]}
        write_json(args.json, result)
        msg = " ".join(f"{k}={v['spearman']:.3f}" for k, v in result["summary"].items()
                       if k != "_build" and v.get("spearman") is not None)
        print(f"[{len(records)}/{args.cells}] index {index} {time.time() - started:.0f}s {msg}",
              flush=True)

    final = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else None
    if final is not None:
        print(markdown(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
