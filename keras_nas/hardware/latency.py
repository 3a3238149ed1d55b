"""Latency of a model measured with the TFLite runtime, in a separate process."""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from keras_nas.hardware.export import is_tflite, to_tflite

_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_runner.py")


@dataclasses.dataclass
class LatencyStats:
    """Summary of repeated batch-1 inference timings of one model.

    Attributes:
        median_ms, p90_ms, mean_ms, std_ms, min_ms: statistics over the timed runs (ms).
        runs: number of timed runs; warmup: untimed runs before them.
        threads: interpreter threads; xnnpack: whether the XNNPACK delegate was applied.
        runtime: the TFLite runtime and its version, e.g. `"ai_edge_litert 2.1.0"`.
        device: `"local"` or the URL of the `RemoteDevice` that measured.
        size_bytes: size of the measured flatbuffer.
        wall_s: seconds the whole measurement took (conversion, process start, runs).
        times_ms: the individual run times (not part of `to_dict()` unless asked).

    Example:

    ```python
    stats = keras_nas.hardware.measure_latency(model, runs=50)
    print(stats.median_ms, stats.to_dict())
    ```
    """

    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    runs: int
    threads: int
    xnnpack: bool
    min_ms: float = float("nan")
    warmup: int = 0
    runtime: str = ""
    device: str = "local"
    size_bytes: int = 0
    wall_s: float = 0.0
    times_ms: list = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def from_times(cls, times_ms, **kwargs):
        """Builds the statistics from a list of run times in milliseconds."""
        t = np.asarray(times_ms, dtype=np.float64)
        if t.ndim != 1 or t.size == 0:
            raise ValueError("`times_ms` must be a non-empty list of run times.")
        return cls(
            median_ms=float(np.median(t)),
            p90_ms=float(np.percentile(t, 90)),
            mean_ms=float(np.mean(t)),
            std_ms=float(np.std(t)),
            min_ms=float(np.min(t)),
            runs=int(t.size),
            times_ms=[float(v) for v in t],
            **kwargs,
        )

    def to_dict(self, include_times=False):
        """The statistics as a JSON-ready dict (`times_ms` only with `include_times=True`)."""
        d = dataclasses.asdict(self)
        if not include_times:
            d.pop("times_ms")
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of `to_dict()`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _check_int(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be between {low} and {high}, got {value}.")
    return int(value)


def _as_tflite_bytes(model_or_tflite, quantization=None, representative_data=None):
    if isinstance(model_or_tflite, (bytes, bytearray, memoryview)):
        data = bytes(model_or_tflite)
        if not is_tflite(data):
            raise ValueError(
                "`model_or_tflite` bytes are not a TFLite flatbuffer (no 'TFL3' identifier)."
            )
        return data
    if isinstance(model_or_tflite, (str, os.PathLike)):
        path = os.fspath(model_or_tflite)
        if not os.path.isfile(path):
            raise ValueError(f"`model_or_tflite` path {path!r} is not a file.")
        with open(path, "rb") as f:
            return _as_tflite_bytes(f.read())
    import keras

    if isinstance(model_or_tflite, keras.Model):
        return to_tflite(model_or_tflite, quantization=quantization,
                         representative_data=representative_data)
    raise TypeError(
        "`model_or_tflite` must be a keras.Model, .tflite bytes or a path to a .tflite file, "
        f"got {type(model_or_tflite).__name__}."
    )


def measure_latency(model_or_tflite, runs=50, warmup=10, threads=1, xnnpack=True,
                    device=None, quantization=None, representative_data=None, timeout=300):
    """Measures batch-1 inference latency with the TFLite runtime.

    A Keras model is converted first (see `to_tflite`). Locally the model is written to a
    temporary file and timed in a fresh Python process that loads only numpy and the
    runtime, so one measurement cannot disturb the next (no shared allocator, caches or
    threads) and a crash in the runtime cannot take the caller down. With `device` the
    flatbuffer is sent to a `RemoteDevice` (a `tools/litert_server.py`) instead.

    Args:
        model_or_tflite: a `keras.Model`, `.tflite` bytes, or a path to a `.tflite` file.
        runs: timed invocations (1..100000).
        warmup: untimed invocations before them (0..10000).
        threads: interpreter threads (1..64). Use 1 on a shared machine.
        xnnpack: apply the XNNPACK delegate (the runtime's default) or not.
        device: `None` for this machine, or a `RemoteDevice`.
        quantization, representative_data: passed to `to_tflite` for a Keras model.
        timeout: seconds before the measuring process is killed.

    Returns:
        `LatencyStats`.

    Example:

    ```python
    stats = measure_latency(model, runs=100, warmup=20, threads=1)
    stats.median_ms
    ```
    """
    runs = _check_int(runs, "runs", 1, 100000)
    warmup = _check_int(warmup, "warmup", 0, 10000)
    threads = _check_int(threads, "threads", 1, 64)
    start = time.perf_counter()
    data = _as_tflite_bytes(model_or_tflite, quantization, representative_data)
    if device is not None:
        if not hasattr(device, "measure"):
            raise TypeError(
                f"`device` must be None or a RemoteDevice, got {type(device).__name__}."
            )
        stats = device.measure(data, runs=runs, warmup=warmup, threads=threads, xnnpack=xnnpack)
        stats.wall_s = time.perf_counter() - start
        return stats
    result = _run_local([data], runs, warmup, threads, xnnpack, timeout)[0]
    if not result["ok"]:
        raise RuntimeError(f"The TFLite runtime could not run the model: {result['error']}")
    return LatencyStats.from_times(
        result["times_ms"], threads=threads, xnnpack=bool(xnnpack), warmup=warmup,
        runtime=result["runtime"], device="local", size_bytes=len(data),
        wall_s=time.perf_counter() - start,
    )


def _run_local(models, runs, warmup, threads, xnnpack, timeout):
    """Times flatbuffers one after the other in one fresh process; returns the raw results."""
    paths = []
    try:
        for data in models:
            fd, path = tempfile.mkstemp(suffix=".tflite")
            paths.append(path)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            proc = subprocess.run(
                [sys.executable, _RUNNER, str(runs), str(warmup), str(threads),
                 "1" if xnnpack else "0", *paths],
                capture_output=True, text=True, timeout=timeout, env=env,
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"Latency measurement took longer than `timeout`={timeout}s.") from e
    finally:
        for path in paths:
            os.unlink(path)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["results"]
    raise RuntimeError(
        f"The latency process exited with code {proc.returncode} and no result: "
        f"{proc.stderr.strip()[-2000:]}"
    )


def measure_latency_many(tflite_models, runs=50, warmup=10, threads=1, xnnpack=True, timeout=600):
    """Measures several `.tflite` flatbuffers one after the other in one fresh process.

    Cheaper than one `measure_latency` call per model when there are many small models
    (the latency predictor's blocks). Each model gets its own interpreter and warm-up.

    Args:
        tflite_models: list of `.tflite` bytes.
        runs, warmup, threads, xnnpack, timeout: as for `measure_latency`.

    Returns:
        A list of `LatencyStats`, in order.

    Example: `[s.median_ms for s in measure_latency_many([a, b], runs=30)]`.
    """
    runs = _check_int(runs, "runs", 1, 100000)
    warmup = _check_int(warmup, "warmup", 0, 10000)
    threads = _check_int(threads, "threads", 1, 64)
    models = [_as_tflite_bytes(m) for m in tflite_models]
    if not models:
        return []
    out = []
    for data, result in zip(models, _run_local(models, runs, warmup, threads, xnnpack, timeout)):
        if not result["ok"]:
            raise RuntimeError(f"The TFLite runtime could not run a model: {result['error']}")
        out.append(LatencyStats.from_times(
            result["times_ms"], threads=threads, xnnpack=bool(xnnpack), warmup=warmup,
            runtime=result["runtime"], device="local", size_bytes=len(data)))
    return out
