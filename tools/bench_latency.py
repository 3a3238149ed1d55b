#!/usr/bin/env python3
"""Repeatability of `keras_nas.hardware.measure_latency` (paired protocol), export checks.

Export checks (`--skip-export-check` to leave out): a small conv net trained on sklearn's
digits (8x8x1, /16; 1400 train, 397 test) is exported with each quantization and compared
with the Keras model on the test digits (max |diff| of the softmax, top-1 agreement), with
the flatbuffer size and the latency of each export.

Repeatability: five models of different kinds and sizes are converted once (timed), then
measured `--repeats` times, each time in a fresh process with `--protocol` (default
`paired`: interleaved with the reference model, read on its calibrated latency). Reported
per model: the latency of each repetition, the spread of those ((max - min) / median,
target < 3%), the spread the unpaired median of the same windows would have had (`raw`),
and the time of one measurement.

Rank agreement: ten models of close latencies (a conv net whose last layer grows by 16
channels from one to the next, ~5% more work per step) measured in two sweeps one after the
other; Kendall tau between the two sweeps' latencies (target >= 0.95), and between their
raw medians.

The machine's state is recorded: load average before and after, CPU, the calibration.

    python tools/bench_latency.py [--repeats 5] [--runs 200] [--warmup 20] [--threads 1]
                                  [--protocol paired|single] [--recalibrate]
                                  [--skip-export-check] [--skip-rank] [--output bench_latency.json]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load():
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return list(os.getloadavg())


def spread_pct(values):
    """(max - min) / median, in percent. Example: `spread_pct([1.0, 1.02, 0.99]) == 3.0`."""
    return 100.0 * (max(values) - min(values)) / statistics.median(values)


def kendall_tau(a, b):
    """Kendall's tau-a between two equally long lists of numbers (no tie correction).

    Example: `kendall_tau([1, 2, 3], [10, 30, 20]) == 1 / 3`.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("`a` and `b` must be lists of the same length, at least 2.")
    n, score = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s = (a[i] - a[j]) * (b[i] - b[j])
            score += (s > 0) - (s < 0)
    return score / (n * (n - 1) / 2)


def close_models():
    """Ten conv nets on 32x32x3 whose last convolution has 64, 80, ..., 208 filters."""
    import keras

    out = {}
    for c in range(64, 209, 16):
        keras.utils.set_random_seed(0)
        out[f"convnet_last{c}"] = keras.Sequential([
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(c, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10)], name=f"convnet_last{c}")
    return out


def models():
    import keras
    from keras_nas.layers import MBConv

    keras.utils.set_random_seed(0)
    out = {}
    out["mlp_784_1024x2"] = keras.Sequential([
        keras.Input((784,)), keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(10)])
    out["convnet_32x32"] = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    inp = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(inp)
    for filters, k, e, s in [(24, 3, 6, 2), (24, 5, 3, 1), (40, 5, 6, 2), (40, 3, 3, 1), (80, 3, 6, 2)]:
        x = MBConv(filters, kernel_size=k, expansion=e, strides=s)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out["mbconv_stack_64x64"] = keras.Model(inp, keras.layers.Dense(10)(x))
    out["mobilenetv2_0.35_96"] = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    try:
        from keras_nas.spaces import NASBench201Space

        space = NASBench201Space(input_shape=(32, 32, 3), num_classes=10)
        arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
        out["nasbench201_cell_32x32"] = space.build_values(space.decode(arch))
    except Exception as e:  # the space may not be importable in an old checkout
        print(f"NASBench201Space unavailable ({e}); using a ResNet-like stack", file=sys.stderr)
        inp = keras.Input((32, 32, 3))
        x = keras.layers.Conv2D(16, 3, padding="same")(inp)
        for _ in range(6):
            x = keras.layers.Add()([x, keras.layers.Conv2D(16, 3, padding="same")(x)])
        x = keras.layers.GlobalAveragePooling2D()(x)
        out["resnet_like_32x32"] = keras.Model(inp, keras.layers.Dense(10)(x))
    return out


def export_check(runs, warmup, threads, protocol):
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    from keras_nas.hardware import measure_latency, to_tflite, verify_tflite

    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    y = d.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], epochs=30, batch_size=32, verbose=0)
    keras_acc = float(model.evaluate(x[1400:], y[1400:], verbose=0)[1])
    rows = []
    for q in (None, "float16", "dynamic", "int8"):
        t0 = time.perf_counter()
        data = to_tflite(model, quantization=q, representative_data=x[:200])
        convert_s = time.perf_counter() - t0
        report = verify_tflite(data, model, x[1400:], quantization=q)
        from keras_nas.hardware import run_tflite

        acc = float(np.mean(np.argmax(run_tflite(data, x[1400:]), -1) == y[1400:]))
        stats = measure_latency(data, runs=runs, warmup=warmup, threads=threads,
                                protocol=protocol)
        rows.append({"quantization": q or "float32", "size_bytes": len(data),
                     "max_abs_diff": report.max_abs_diff, "top1_agreement": report.top1_agreement,
                     "tflite_accuracy": acc, "keras_accuracy": keras_acc,
                     "convert_s": convert_s, "median_ms": stats.median_ms})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def measure(data, args):
    from keras_nas.hardware import measure_latency

    stats = measure_latency(data, runs=args.runs, warmup=args.warmup, threads=args.threads,
                            protocol=args.protocol)
    return stats


def repeatability(args):
    from keras_nas.hardware import count_macs, to_tflite

    rows = []
    for name, model in models().items():
        t0 = time.perf_counter()
        data = to_tflite(model)
        convert_s = time.perf_counter() - t0
        stats = [measure(data, args) for _ in range(args.repeats)]
        latency = [s.median_ms for s in stats]
        raw = [s.raw_median_ms if args.protocol == "paired" else s.median_ms for s in stats]
        row = {
            "model": name, "macs": count_macs(model), "size_bytes": len(data),
            "latency_ms": latency, "median_latency_ms": statistics.median(latency),
            "spread_pct": spread_pct(latency),
            "ratios": [s.ratio for s in stats],
            "raw_median_ms": raw, "raw_spread_pct": spread_pct(raw),
            "quiet_blocks": [(s.protocol or {}).get("quiet_blocks") for s in stats],
            "blocks": [(s.protocol or {}).get("blocks") for s in stats],
            "convert_s": convert_s, "measure_s": statistics.mean(s.wall_s for s in stats),
            "load": _load(),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def rank_agreement(args):
    from keras_nas.hardware import count_macs, to_tflite

    flat = {name: to_tflite(model) for name, model in close_models().items()}
    macs = {name: count_macs(model) for name, model in close_models().items()}
    sweeps = []
    for sweep in range(2):
        started = time.time()
        stats = {name: measure(data, args) for name, data in flat.items()}
        sweeps.append({"started": started, "seconds": time.time() - started, "load": _load(),
                       "latency_ms": {n: s.median_ms for n, s in stats.items()},
                       "raw_median_ms": {n: (s.raw_median_ms if args.protocol == "paired"
                                             else s.median_ms) for n, s in stats.items()}})
        print(json.dumps(sweeps[-1]), flush=True)
    names = list(flat)
    first, second = ([sw["latency_ms"][n] for n in names] for sw in sweeps)
    raw1, raw2 = ([sw["raw_median_ms"][n] for n in names] for sw in sweeps)
    steps = sorted(first)
    return {"models": names, "macs": [macs[n] for n in names], "sweeps": sweeps,
            "kendall_tau": kendall_tau(first, second), "raw_kendall_tau": kendall_tau(raw1, raw2),
            "kendall_tau_with_macs": kendall_tau(first, [macs[n] for n in names]),
            "median_step_pct": statistics.median(
                100 * (b - a) / a for a, b in zip(steps, steps[1:]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--protocol", default="paired", choices=["paired", "single"])
    parser.add_argument("--recalibrate", action="store_true",
                        help="calibrate the reference anew instead of using the cached one")
    parser.add_argument("--output", default="bench_latency.json")
    parser.add_argument("--skip-export-check", action="store_true")
    parser.add_argument("--skip-repeats", action="store_true")
    parser.add_argument("--skip-rank", action="store_true")
    args = parser.parse_args()

    from keras_nas.hardware import calibrate_reference, local_fingerprint

    started, load_before = time.time(), _load()
    calibration = None
    if args.protocol == "paired":
        calibration = calibrate_reference(threads=args.threads, refresh=args.recalibrate)
        print("calibration:", json.dumps(calibration.to_dict()), flush=True)
    exports = [] if args.skip_export_check else export_check(
        args.runs, args.warmup, args.threads, args.protocol)
    rows = [] if args.skip_repeats else repeatability(args)
    rank = None if args.skip_rank else rank_agreement(args)
    result = {"command": "python tools/bench_latency.py " + " ".join(sys.argv[1:]),
              "machine": {"platform": platform.platform(), "fingerprint": local_fingerprint(),
                          "python": platform.python_version()},
              "load_before": load_before, "load_after": _load(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
              "wall_s": time.time() - started,
              "calibration": calibration.to_dict() if calibration else None,
              "runs": args.runs, "warmup": args.warmup, "threads": args.threads,
              "protocol": args.protocol, "repeats": args.repeats, "models": rows,
              "rank": rank, "export_check": exports}
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nload average before {load_before}, after {result['load_after']}; "
          f"{result['wall_s']:.0f} s")
    if calibration:
        print(f"reference calibrated at {calibration.median_ms:.4f} ms "
              f"({calibration.quiet_blocks}/{calibration.blocks} quiet blocks, "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(calibration.calibrated_at))})")
    if rows:
        print("\n| model | MACs | size (KB) | latency of the repeats (ms) | spread | "
              "raw medians of the same windows (ms) | raw spread | measure (s) |")
        print("|---|---:|---:|---|---:|---|---:|---:|")
        for r in rows:
            print(f"| {r['model']} | {r['macs']:,} | {r['size_bytes'] / 1024:.0f} | "
                  f"{', '.join(f'{m:.4f}' for m in r['latency_ms'])} | **{r['spread_pct']:.1f}%** | "
                  f"{', '.join(f'{m:.3f}' for m in r['raw_median_ms'])} | "
                  f"{r['raw_spread_pct']:.1f}% | {r['measure_s']:.1f} |")
    if rank:
        print(f"\nrank agreement of {len(rank['models'])} close models over two sweeps: "
              f"Kendall tau {rank['kendall_tau']:.3f} (raw medians {rank['raw_kendall_tau']:.3f}; "
              f"with MACs {rank['kendall_tau_with_macs']:.3f}; median step between "
              f"neighbours {rank['median_step_pct']:.1f}%)")
        print("| model | MACs | sweep 1 (ms) | sweep 2 (ms) | raw 1 | raw 2 |")
        print("|---|---:|---:|---:|---:|---:|")
        for n, m in zip(rank["models"], rank["macs"]):
            a, b = rank["sweeps"]
            print(f"| {n} | {m:,} | {a['latency_ms'][n]:.4f} | {b['latency_ms'][n]:.4f} | "
                  f"{a['raw_median_ms'][n]:.4f} | {b['raw_median_ms'][n]:.4f} |")
    if exports:
        print("\n| export | size (KB) | max abs diff | top-1 agreement | TFLite acc | Keras acc | latency (ms) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in exports:
            print(f"| {r['quantization']} | {r['size_bytes'] / 1024:.1f} | {r['max_abs_diff']:.2e} | "
                  f"{100 * r['top1_agreement']:.1f}% | {100 * r['tflite_accuracy']:.1f}% | "
                  f"{100 * r['keras_accuracy']:.1f}% | {r['median_ms']:.4f} |")


if __name__ == "__main__":
    main()
