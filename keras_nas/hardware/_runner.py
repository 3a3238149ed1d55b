"""Times one TFLite model; run as a script in a fresh process by `measure_latency`.

It needs only numpy and a TFLite runtime (no TensorFlow, no keras_nas) so the process
starts fast and nothing else shares it. Usage:

    python _runner.py RUNS WARMUP THREADS XNNPACK(0|1) MODEL.tflite [MODEL.tflite ...]

It prints one JSON line: {"results": [r, ...]}, one `r` per model, in order:
{"ok": true, "times_ms": [...], ...} or {"ok": false, "error": ...}. Models are timed one
after the other, each with its own interpreter and warm-up.
"""

import gc
import json
import sys
import time


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        import ai_edge_litert

        return Interpreter, OpResolverType, "ai_edge_litert " + getattr(ai_edge_litert, "__version__", "?")
    except ImportError:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
        import tflite_runtime

        return Interpreter, OpResolverType, "tflite_runtime " + getattr(tflite_runtime, "__version__", "?")


def time_model(path, runs, warmup, threads, xnnpack):
    """Returns a dict with the per-run invoke times (ms) of the model at `path`, batch 1."""
    import numpy as np

    Interpreter, OpResolverType, runtime = _interpreter_class()
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_path=path, num_threads=threads,
                         experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    shapes = []
    for d in interp.get_input_details():
        shape = [1 if s < 1 else int(s) for s in d["shape"]]
        if list(d["shape"]) != shape:
            interp.resize_tensor_input(d["index"], shape)
        shapes.append(shape)
    interp.allocate_tensors()
    for d, shape in zip(interp.get_input_details(), shapes):
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            value = rng.integers(info.min, info.max, size=shape, endpoint=True)
        else:
            value = rng.standard_normal(shape)
        interp.set_tensor(d["index"], value.astype(d["dtype"]))
    for _ in range(warmup):
        interp.invoke()
    times = []
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            interp.invoke()
            times.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        gc.enable()
    return {"ok": True, "times_ms": times, "runtime": runtime, "input_shapes": shapes}


def main(argv):
    runs, warmup, threads, xnnpack = int(argv[1]), int(argv[2]), int(argv[3]), argv[4] == "1"
    results = []
    for path in argv[5:]:
        try:
            results.append(time_model(path, runs, warmup, threads, xnnpack))
        except Exception as e:  # reported to the parent, which raises
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    sys.stdout.write(json.dumps({"results": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
