#!/usr/bin/env python3
"""Repeatability of `keras_nas.hardware.measure_latency`, time per measurement, export checks.

Export checks (`--skip-export-check` to leave out): a small conv net trained on sklearn's
digits (8x8x1, /16; 1400 train, 397 test) is exported with each quantization and compared
with the Keras model on the test digits (max |diff| of the softmax, top-1 agreement), with
the flatbuffer size and the latency of each export.

For each of five models of different kinds and sizes: convert to TFLite (timed), then
measure the latency `--repeats` times in fresh processes. Reported per model: the median of
each repetition, the spread of those medians ((max - min) / median of medians, target
< 3%), and the wall time of one measurement including conversion.

    python tools/bench_latency.py [--repeats 5] [--runs 200] [--warmup 20] [--threads 1]
                                  [--output bench_latency.json]
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def export_check(runs, warmup, threads):
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
        stats = measure_latency(data, runs=runs, warmup=warmup, threads=threads)
        rows.append({"quantization": q or "float32", "size_bytes": len(data),
                     "max_abs_diff": report.max_abs_diff, "top1_agreement": report.top1_agreement,
                     "tflite_accuracy": acc, "keras_accuracy": keras_acc,
                     "convert_s": convert_s, "median_ms": stats.median_ms})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="bench_latency.json")
    parser.add_argument("--skip-export-check", action="store_true")
    args = parser.parse_args()
    exports = [] if args.skip_export_check else export_check(args.runs, args.warmup, args.threads)

    from keras_nas.hardware import count_macs, measure_latency, to_tflite

    rows = []
    for name, model in models().items():
        t0 = time.perf_counter()
        data = to_tflite(model)
        convert_s = time.perf_counter() - t0
        medians, mins, walls = [], [], []
        for _ in range(args.repeats):
            stats = measure_latency(data, runs=args.runs, warmup=args.warmup, threads=args.threads)
            medians.append(stats.median_ms)
            mins.append(stats.min_ms)
            walls.append(stats.wall_s)
        center = statistics.median(medians)
        row = {
            "model": name, "macs": count_macs(model), "size_bytes": len(data),
            "medians_ms": medians, "median_of_medians_ms": center,
            "spread_pct": 100 * (max(medians) - min(medians)) / center,
            "mins_ms": mins,
            "spread_min_pct": 100 * (max(mins) - min(mins)) / statistics.median(mins),
            "convert_s": convert_s, "measure_s": statistics.mean(walls),
            "time_per_measurement_s": convert_s + statistics.mean(walls),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"runs": args.runs, "warmup": args.warmup, "threads": args.threads,
              "repeats": args.repeats, "models": rows, "export_check": exports}
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print("\n| model | MACs | size (KB) | medians of the repeats (ms) | spread of medians | "
          "spread of minima | convert (s) | measure (s) | total (s) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['macs']:,} | {r['size_bytes'] / 1024:.0f} | "
              f"{', '.join(f'{m:.3f}' for m in r['medians_ms'])} | {r['spread_pct']:.1f}% | "
              f"{r['spread_min_pct']:.1f}% | "
              f"{r['convert_s']:.2f} | {r['measure_s']:.2f} | {r['time_per_measurement_s']:.2f} |")
    if exports:
        print("\n| export | size (KB) | max abs diff | top-1 agreement | TFLite acc | Keras acc | median (ms) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in exports:
            print(f"| {r['quantization']} | {r['size_bytes'] / 1024:.1f} | {r['max_abs_diff']:.2e} | "
                  f"{100 * r['top1_agreement']:.1f}% | {100 * r['tflite_accuracy']:.1f}% | "
                  f"{100 * r['keras_accuracy']:.1f}% | {r['median_ms']:.4f} |")


if __name__ == "__main__":
    main()
