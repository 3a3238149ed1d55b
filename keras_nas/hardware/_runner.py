"""The latency timing protocol of keras-nas, written once for every place that times a model.

This one file is what times TFLite models: `keras_nas.hardware.measure_latency` runs it as a
script in a fresh process on this machine, and `tools/litert_server.py` loads it (from beside
itself, from the keras-nas checkout it sits in, or embedded by `litert_server.py --bundle`)
and runs it in a fresh process on a device. It needs only the Python standard library, numpy
and a TFLite runtime (`ai_edge_litert`, else `tflite_runtime`): no TensorFlow, no keras_nas.

Protocols (`job["protocol"]`):

- `"paired"` (the default of `measure_latency`): the candidate is timed interleaved with a
  fixed reference model in one process, in alternating short blocks,
  `R0 C0 R1 C1 ... C(n-1) Rn`. Each block starts with one untimed run (the other model has
  just used the caches), then times `k` runs; `k` is chosen per model so that a block lasts
  about `block_ms` (10 ms). Each candidate run is divided by the mean of the medians of the
  reference blocks on either side of its block, so the two are compared under the same
  clock and load (a drift between blocks cancels to first order). Only *quiet* blocks
  count: those whose bracketing reference blocks ran at the reference's quiet level (within
  `tolerance`, 6%), i.e. while nothing else slowed the core down; the window grows until
  `min_blocks` quiet blocks are in (at most `max_seconds`). The result is `ratio`, the
  5% quantile of the quiet runs' relative times: how many times slower than the reference
  the candidate is. The caller turns it into milliseconds with the reference's calibrated
  latency on that device (`ms = ratio x calibrated ms`).
  Where the window never reaches the quiet level, the least disturbed blocks are used
  and the answer says so (`quiet_blocks` < `min_blocks`).
- `"calibrate"`: the reference alone, in blocks of about `block_ms`, for `seconds`; its
  calibrated latency is the median of the block medians at its quiet level.
- `"single"` (the protocol before pairing): `warmup` runs, then `runs` timed runs back to back.

Every protocol first asks the OS to run the measuring process ahead of ordinary work
(`os.nice(-10)`, where allowed; the niceness reached is recorded as `priority`): being
scheduled out mid-run is the largest disturbance of a millisecond-long run on a busy machine.

Usage as a script: one JSON job on standard input,

    {"protocol": "paired", "models": ["a.tflite", ...], "reference": "ref.tflite",
     "runs": 50, "warmup": 10, "threads": 1, "xnnpack": true, "quiet_ms": 0.092,
     "block_ms": 10.0, "min_blocks": 40, "tolerance": 0.06, "max_seconds": 30.0,
     "quantile": 0.05, "seconds": 4.0}

answered by one JSON line on standard output, `{"results": [r, ...]}`, one `r` per model in
order: `{"ok": true, ...}` or `{"ok": false, "stage": "allocate" | "invoke" | "runtime",
"error": ...}` (`"calibrate"` answers one result, the reference's; a job that cannot be read
answers `{"error": ...}`).
"""

import gc
import json
import math
import os
import platform
import sys
import time

PROTOCOL_VERSION = 1
PROTOCOLS = ("paired", "single", "calibrate")
# Defaults of the paired protocol, shared by the local runner and the server.
BLOCK_MS = 10.0          # target duration of one timed block
MIN_BLOCKS = 40          # quiet candidate blocks wanted (the ratio is read over these)
TOLERANCE = 0.06         # a reference block within 6% of the quiet level is quiet
MAX_SECONDS = 30.0       # the paired window ends after this even with fewer quiet blocks
QUANTILE = 0.05          # the ratio is this quantile of the quiet runs' relative times
MIN_QUIET_RUNS = 100     # quiet candidate runs wanted at least (whatever `runs` says)
PRIORITY = -10           # niceness the measuring process asks for (kept if not allowed)
MAX_BLOCK_RUNS = 100     # timed runs in one block at most (very small models)
CALIBRATION_S = 4.0      # seconds the reference is timed alone to calibrate it


class ModelError(Exception):
    """A model the runtime cannot load, allocate or run; `stage` says which."""

    def __init__(self, stage, error):
        super().__init__(f"{type(error).__name__}: {error}")
        self.stage = stage


def runtime():
    """The TFLite runtime: `(Interpreter, OpResolverType, "name version")`.

    Example: `runtime()[2]` is e.g. `"ai_edge_litert 2.3.0"` or `"tflite_runtime 2.14.0"`.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        import ai_edge_litert as mod
    except ImportError:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
        import tflite_runtime as mod
    return Interpreter, OpResolverType, f"{mod.__name__} {getattr(mod, '__version__', '?')}"


def cpu_name():
    """The CPU's model name as the OS reports it (or `platform.processor()`).

    Example: `cpu_name()` is e.g. `"AMD EPYC"`.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint(runtime_name):
    """What identifies this device for a calibration: host, CPU, cores and runtime.

    Example: `fingerprint("ai_edge_litert 2.3.0")["cpus"]`.
    """
    return {"host": platform.node(), "machine": platform.machine(), "cpu": cpu_name(),
            "cpus": os.cpu_count(), "runtime": runtime_name}


class Timed:
    """One model loaded in an interpreter for batch 1, its inputs set, ready to time."""

    def __init__(self, path, threads, xnnpack):
        import numpy as np

        Interpreter, OpResolverType, self.runtime = runtime()
        try:
            resolver = (OpResolverType.AUTO if xnnpack
                        else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            interp = Interpreter(model_path=path, num_threads=threads,
                                 experimental_op_resolver_type=resolver)
            shapes = []
            for d in interp.get_input_details():
                shape = [1 if s < 1 else int(s) for s in d["shape"]]
                if list(d["shape"]) != shape:
                    interp.resize_tensor_input(d["index"], shape)
                shapes.append(shape)
            interp.allocate_tensors()
        except Exception as e:
            raise ModelError("allocate", e) from e
        try:
            rng = np.random.default_rng(0)
            for d, shape in zip(interp.get_input_details(), shapes):
                if d["dtype"] == np.bool_:
                    value = rng.integers(0, 1, size=shape, endpoint=True)
                elif np.issubdtype(d["dtype"], np.integer):
                    info = np.iinfo(d["dtype"])
                    value = rng.integers(info.min, info.max, size=shape, endpoint=True)
                else:
                    value = rng.standard_normal(shape)
                interp.set_tensor(d["index"], value.astype(d["dtype"]))
        except Exception as e:
            raise ModelError("allocate", e) from e
        self.interp = interp
        self.input_shapes = shapes

    def run(self, n):
        """Invokes `n` times untimed."""
        invoke = self.interp.invoke
        try:
            for _ in range(n):
                invoke()
        except Exception as e:
            raise ModelError("invoke", e) from e

    def time(self, n):
        """Invokes `n` times; returns the run times in milliseconds."""
        invoke, clock = self.interp.invoke, time.perf_counter_ns
        times = [0.0] * n
        try:
            for i in range(n):
                t0 = clock()
                invoke()
                times[i] = (clock() - t0) / 1e6
        except Exception as e:
            raise ModelError("invoke", e) from e
        return times


def median(values):
    """The median of a non-empty list of numbers.

    Example: `median([3, 1, 2]) == 2`.
    """
    t = sorted(values)
    n = len(t)
    return t[n // 2] if n % 2 else (t[n // 2 - 1] + t[n // 2]) / 2


def summarize(times):
    """Median, p90 (linear interpolation), mean, population std and min of a list of numbers.

    Example: `summarize([1.0, 2.0, 3.0])["median_ms"] == 2.0`.
    """
    t = sorted(times)
    n = len(t)

    def pct(q):
        pos = (n - 1) * q
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        return t[lo] + (t[hi] - t[lo]) * (pos - lo)

    mean = sum(t) / n
    std = (sum((v - mean) ** 2 for v in t) / n) ** 0.5
    return {"median_ms": pct(0.5), "p90_ms": pct(0.9), "mean_ms": mean, "std_ms": std,
            "min_ms": t[0]}


_PRIORITY = []


def raise_priority(niceness=PRIORITY):
    """Asks the OS to run this process ahead of ordinary work (`os.nice`, best effort).

    Being scheduled out mid-run is the largest disturbance of a millisecond-long run on a
    busy machine; a measuring process lasts seconds. Without the privilege to raise its
    priority it stays as it was. Returns the niceness it runs at (None where unknown).

    Example: `raise_priority(-10)` as root gives `-10`.
    """
    if not _PRIORITY:
        try:
            current = os.nice(0)
            if niceness < current:
                os.nice(niceness - current)
        except (OSError, AttributeError):
            pass
        try:
            _PRIORITY.append(os.nice(0))
        except (OSError, AttributeError):
            _PRIORITY.append(None)
    return _PRIORITY[0]


def _block_runs(model, block_ms, estimate_runs):
    """Timed runs per block so that a block lasts about `block_ms` (1..MAX_BLOCK_RUNS)."""
    per_run = median(model.time(estimate_runs))
    return max(1, min(MAX_BLOCK_RUNS, int(round(block_ms / max(per_run, 1e-6)))))


def time_single(path, runs, warmup, threads, xnnpack):
    """The unpaired protocol: `warmup` untimed runs, then `runs` timed runs back to back.

    Example: `time_single("m.tflite", 50, 10, 1, True)["times_ms"]`.
    """
    model = Timed(path, threads, xnnpack)
    model.run(warmup)
    gc.disable()
    try:
        times = model.time(runs)
    finally:
        gc.enable()
    return {"ok": True, "protocol": {"name": "single", "version": PROTOCOL_VERSION},
            "times_ms": times, "runs": runs, "runtime": model.runtime,
            "input_shapes": model.input_shapes}


def _quiet(ref_medians, level, tolerance):
    """Indices of candidate blocks whose reference on both sides ran at `level` (+ tolerance)."""
    limit = level * (1 + tolerance)
    return [b for b in range(len(ref_medians) - 1)
            if ref_medians[b] <= limit and ref_medians[b + 1] <= limit]


def quantile(values, q):
    """The `q`-quantile (0..1, linear interpolation) of a non-empty list of numbers.

    Example: `quantile([1, 2, 3, 4, 5], 0.5) == 3`.
    """
    t = sorted(values)
    pos = (len(t) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(t) - 1)
    return t[lo] + (t[hi] - t[lo]) * (pos - lo)


def time_paired(candidate, reference, runs, warmup, block_ms=BLOCK_MS, min_blocks=MIN_BLOCKS,
                tolerance=TOLERANCE, max_seconds=MAX_SECONDS, quantile_q=QUANTILE,
                quiet_ms=None):
    """The paired protocol: `candidate` interleaved with `reference` (both `Timed`).

    Blocks alternate `R C R C ... R`. A candidate block is *quiet* when the reference blocks
    on both sides of it ran within `tolerance` of the reference's quiet level: the fastest
    reference block of the window, once the window has reached the reference's calibrated
    latency `quiet_ms` (when given). Blocks go on until `min_blocks` quiet blocks holding at
    least `max(runs, MIN_QUIET_RUNS)` candidate runs are in, or for `max_seconds` at most.

    Each candidate run time is divided by the mean of the medians of the two reference
    blocks around it (its *relative time*: how many references long it took, on the clock
    of that moment). The answer's `ratio` is the `quantile_q`-quantile of the relative
    times of the quiet blocks (when fewer than 3 are quiet, of the `min_blocks` blocks
    whose reference was least slowed; `quiet_blocks` says which happened): the candidate's
    speed when nothing else slowed the core down. Disturbances (another process on the
    core's sibling, memory traffic, being scheduled out mid-run) only ever make a run
    slower, and interleaving puts both models in the same moments, so a low quantile of the
    quiet runs is what repeats.

    Example: `time_paired(Timed("m.tflite", 1, True), Timed("ref.tflite", 1, True), 50, 10)["ratio"]`.
    """
    for model in (reference, candidate):
        model.run(max(warmup, 1))
    k_ref = _block_runs(reference, block_ms, 3)
    k_cand = _block_runs(candidate, block_ms, 3)
    min_blocks = max(1, int(min_blocks))
    want_runs = max(int(runs), MIN_QUIET_RUNS)
    ref_medians, cand_times = [], []
    started = time.perf_counter()
    gc.disable()
    try:
        reference.run(1)
        ref_medians.append(median(reference.time(k_ref)))
        while True:
            candidate.run(1)
            cand_times.append(candidate.time(k_cand))
            reference.run(1)
            ref_medians.append(median(reference.time(k_ref)))
            if time.perf_counter() - started >= max_seconds and len(cand_times) >= 3:
                break
            if len(cand_times) < min_blocks:
                continue
            level = min(ref_medians)
            if quiet_ms is not None and level > quiet_ms * (1 + tolerance):
                continue  # the reference has not reached its calibrated level yet
            quiet = _quiet(ref_medians, level, tolerance)
            if len(quiet) >= min_blocks and len(quiet) * k_cand >= want_runs:
                break
    finally:
        gc.enable()
    elapsed = time.perf_counter() - started
    level = min(ref_medians)
    quiet = _quiet(ref_medians, level, tolerance)
    used = quiet
    if len(quiet) < 3:  # no quiet moment in the window: the least disturbed blocks there were
        calmest = sorted(range(len(cand_times)),
                         key=lambda b: max(ref_medians[b], ref_medians[b + 1]))
        used = sorted(calmest[:max(3, min_blocks)])
    block_ratios, relative, raw = [], [], []
    for b, times in enumerate(cand_times):
        bracket = (ref_medians[b] + ref_medians[b + 1]) / 2
        block_ratios.append(median(times) / bracket)
    for b in used:
        bracket = (ref_medians[b] + ref_medians[b + 1]) / 2
        relative.extend(t / bracket for t in cand_times[b])
        raw.extend(cand_times[b])
    every = [t for times in cand_times for t in times]
    return {
        "ok": True,
        "protocol": {"name": "paired", "version": PROTOCOL_VERSION, "block_ms": block_ms,
                     "min_blocks": min_blocks, "tolerance": tolerance,
                     "max_seconds": max_seconds, "quantile": quantile_q, "quiet_ms": quiet_ms,
                     "warmup": warmup, "candidate_block_runs": k_cand,
                     "reference_block_runs": k_ref},
        "ratio": quantile(relative, quantile_q),
        "median_ratio": median(relative),
        "blocks": len(cand_times),
        "quiet_blocks": len(quiet),
        "blocks_used": len(used),
        "priority": _PRIORITY[0] if _PRIORITY else None,
        "quiet_level_ms": level,
        "reached_quiet_ms": quiet_ms is None or level <= quiet_ms * (1 + tolerance),
        "seconds": elapsed,
        "relative_times": [round(v, 6) for v in relative],
        "times_ms": [round(v, 6) for v in raw],
        "runs": len(every),
        "raw_median_ms": median(every),
        "reference_median_ms": median(ref_medians),
        "block_ratios": [round(v, 5) for v in block_ratios],
        "reference_block_ms": [round(v, 6) for v in ref_medians],
        "runtime": candidate.runtime,
        "input_shapes": candidate.input_shapes,
    }


def calibrate(reference, seconds=CALIBRATION_S, block_ms=BLOCK_MS, warmup=10,
              tolerance=TOLERANCE):
    """The reference (`Timed`) alone for `seconds`: its latency at its quiet level, in ms.

    The reference is timed in blocks of about `block_ms`; its calibrated latency is the
    median of the block medians within `tolerance` of the fastest block (the moments no
    other work slowed the core down), the level the paired protocol gates on.

    Example: `calibrate(Timed("ref.tflite", 1, True), seconds=2)["median_ms"]`.
    """
    reference.run(max(warmup, 1))
    k = _block_runs(reference, block_ms, 3)
    medians = []
    deadline = time.perf_counter() + seconds
    gc.disable()
    try:
        while time.perf_counter() < deadline or len(medians) < 3:
            reference.run(1)
            medians.append(median(reference.time(k)))
    finally:
        gc.enable()
    level = min(medians)
    quiet = [m for m in medians if m <= level * (1 + tolerance)]
    t = sorted(medians)
    return {"ok": True,
            "protocol": {"name": "calibrate", "version": PROTOCOL_VERSION, "block_ms": block_ms,
                         "block_runs": k, "seconds": seconds, "tolerance": tolerance},
            "median_ms": median(quiet), "blocks": len(medians), "quiet_blocks": len(quiet),
            "all_blocks_median_ms": median(medians), "p10_ms": t[int(0.1 * (len(t) - 1))],
            "p90_ms": t[int(math.ceil(0.9 * (len(t) - 1)))], "min_ms": level,
            "priority": _PRIORITY[0] if _PRIORITY else None,
            "runtime": reference.runtime, "fingerprint": fingerprint(reference.runtime)}


def _failure(e):
    if isinstance(e, ModelError):
        return {"ok": False, "stage": e.stage, "error": str(e)}
    return {"ok": False, "stage": "runtime", "error": f"{type(e).__name__}: {e}"}


def run_job(job):
    """Runs one job dict (see the module docstring); returns `{"results": [...]}`.

    Example: `run_job({"protocol": "single", "models": ["m.tflite"], "runs": 20})`.
    """
    protocol = job.get("protocol", "paired")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if job.get("priority", True):
        raise_priority()
    runs, warmup = int(job.get("runs", 50)), int(job.get("warmup", 10))
    threads, xnnpack = int(job.get("threads", 1)), bool(job.get("xnnpack", True))
    block_ms = float(job.get("block_ms", BLOCK_MS))
    tolerance = float(job.get("tolerance", TOLERANCE))
    models = list(job.get("models", []))
    if protocol == "single":
        results = []
        for path in models:
            try:
                results.append(time_single(path, runs, warmup, threads, xnnpack))
            except Exception as e:  # reported to the caller, which raises
                results.append(_failure(e))
        return {"results": results}
    try:
        reference = Timed(job["reference"], threads, xnnpack)
        if protocol == "calibrate":
            return {"results": [calibrate(reference, float(job.get("seconds", CALIBRATION_S)),
                                          block_ms, warmup, tolerance)]}
        reference.run(1)
    except Exception as e:
        failure = _failure(e)
        failure["error"] = "the reference model: " + failure["error"]
        return {"results": [failure] * max(1, len(models))}
    quiet_ms = job.get("quiet_ms")
    results = []
    for path in models:
        try:
            candidate = Timed(path, threads, xnnpack)
            results.append(time_paired(
                candidate, reference, runs, warmup, block_ms,
                int(job.get("min_blocks", MIN_BLOCKS)), tolerance,
                float(job.get("max_seconds", MAX_SECONDS)),
                float(job.get("quantile", QUANTILE)),
                None if quiet_ms is None else float(quiet_ms)))
            del candidate
        except Exception as e:
            results.append(_failure(e))
    return {"results": results}


def main(stdin=None, stdout=None):
    """Reads one JSON job from standard input and writes `run_job`'s answer as one line."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    try:
        answer = run_job(json.loads(stdin.read()))
    except Exception as e:  # a malformed job or no runtime: one answer the parent reads
        answer = {"error": f"{type(e).__name__}: {e}"}
    stdout.write(json.dumps(answer) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
