#!/usr/bin/env python3
"""Latency predictor vs measurement on random architectures of the macro or cell space.

Builds the lookup table (`keras_nas.hardware.LatencyPredictor.fit`) for `--archs` random
architectures of a `MobileNetSpace` (`--space macro`) or `NASBench201Space` (`--space cell`,
`--channels`, `--cells-per-stage`), then converts and measures every whole network with
`measure_latency` and compares: Spearman rank correlation (target >= 0.9), mean relative
error |predicted - measured| / measured, and the time spent on table and measurements.

    python tools/bench_predictor.py --space cell --archs 30 --input-size 16 --channels 8 \
        --cells-per-stage 2
    python tools/bench_predictor.py --archs 30 --input-size 32 [--runs 50] [--threads 1]
        [--widths 0.5 1.0] [--kernels 3 5] [--expansions 3 6] [--max-depths 1 2 3 2]
        [--table latency_table.json] [--output bench_predictor.json] [--max-seconds 1500]
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=["macro", "cell"], default="macro")
    parser.add_argument("--channels", type=int, default=8, help="cell space: C")
    parser.add_argument("--cells-per-stage", type=int, default=2, help="cell space: N")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--kernels", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--expansions", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--max-depths", type=int, nargs="+", default=[1, 2, 3, 2],
                        help="max depth of each MobileNetV2 stage used (the first len() stages)")
    parser.add_argument("--head-channels", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", default=None, help="save the lookup table here")
    parser.add_argument("--output", default="bench_predictor.json")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop measuring whole networks after this long")
    args = parser.parse_args()

    from keras_nas.hardware import LatencyPredictor, measure_latency, spearman, to_tflite
    from keras_nas.spaces import MobileNetSpace, NASBench201Space
    from keras_nas.spaces.mobilenet import MOBILENETV2_STAGES

    stages = [(f, d, s) for (f, _, s), d in zip(MOBILENETV2_STAGES, args.max_depths)]
    shape = (args.input_size, args.input_size, 3)
    if args.space == "macro":
        space = MobileNetSpace(input_shape=shape, num_classes=10, stages=stages,
                               width_multipliers=args.widths, kernel_sizes=args.kernels,
                               expansions=args.expansions, head_channels=args.head_channels)
        described = {"space": "macro", "input_size": args.input_size, "stages": stages,
                     "widths": args.widths, "kernels": args.kernels,
                     "expansions": args.expansions, "head_channels": args.head_channels}
    else:
        space = NASBench201Space(input_shape=shape, num_classes=10, channels=args.channels,
                                 cells_per_stage=args.cells_per_stage)
        described = {"space": "cell", "input_size": args.input_size, "channels": args.channels,
                     "cells_per_stage": args.cells_per_stage}
    archs, seen, seed = [], set(), args.seed
    while len(archs) < args.archs:
        arch = space.random_architecture(seed)
        seed += 1
        if arch not in seen:
            seen.add(arch)
            archs.append(arch)
    predictor = LatencyPredictor(space, runs=args.runs, warmup=args.warmup, threads=args.threads)
    t0 = time.time()
    blocks = len(predictor.missing(archs))
    predictor.fit(archs)
    table_s = time.time() - t0
    if args.table:
        predictor.save(args.table)
    print(f"table: {blocks} blocks in {table_s:.0f}s, overhead {predictor.overhead_ms:.4f} ms",
          flush=True)
    rows, start = [], time.time()
    import keras

    for arch in archs:
        if args.max_seconds is not None and time.time() - start > args.max_seconds:
            break
        t = time.time()
        data = to_tflite(space.build_values(space.decode(arch)))
        measured = measure_latency(data, runs=args.runs, warmup=args.warmup,
                                   threads=args.threads).median_ms
        keras.backend.clear_session()
        row = {"architecture": arch, "predicted_ms": predictor.predict(arch),
               "measured_ms": measured, "seconds": time.time() - t}
        rows.append(row)
        print(json.dumps(row), flush=True)
    pred = [r["predicted_ms"] for r in rows]
    meas = [r["measured_ms"] for r in rows]
    rel = [abs(p - m) / m for p, m in zip(pred, meas)]
    summary = {
        "space": described,
        "runs": args.runs, "warmup": args.warmup, "threads": args.threads,
        "architectures": len(rows), "blocks_measured": blocks, "table_seconds": table_s,
        "overhead_ms": predictor.overhead_ms,
        "spearman": spearman(pred, meas) if len(rows) > 1 else None,
        "mean_relative_error": statistics.mean(rel) if rel else None,
        "max_relative_error": max(rel) if rel else None,
        "measured_ms_range": [min(meas), max(meas)] if meas else None,
        "seconds_per_whole_network": statistics.mean(r["seconds"] for r in rows) if rows else None,
        "rows": rows,
    }
    with open(args.output, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
