"""Latency of a model measured with the TFLite runtime, paired against a fixed reference.

A shared machine's speed is not steady: on a VM the core runs in slow and fast phases of
seconds, other processes take the core's sibling, memory bandwidth or the core itself, so
one model timed twice a minute apart can differ by 15-30%. The default protocol
(`protocol="paired"`) therefore never times a candidate alone: it times it interleaved
with a fixed reference model (`keras_nas.hardware.reference`) in alternating ~10 ms blocks
in one fresh process, keeps the blocks in which the reference ran at its quiet level, and
reports the candidate relative to the reference (`ratio`) and in milliseconds through the
reference's latency calibrated once per device (`calibrate_reference`). The timing itself
is `keras_nas/hardware/_runner.py`, the one file `tools/litert_server.py` runs on a device.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from keras_nas import validation
from keras_nas.hardware import _runner as timing
from keras_nas.hardware.export import is_tflite, to_tflite
from keras_nas.hardware.reference import (
    REFERENCE_FILE,
    REFERENCE_NAME,
    REFERENCE_SHA256,
    reference_tflite,
)

_RUNNER = os.path.abspath(timing.__file__)
PROTOCOLS = ("paired", "single")


@dataclasses.dataclass
class LatencyStats:
    """Summary of the batch-1 inference timings of one model.

    Attributes:
        median_ms: the latency in milliseconds. Under the paired protocol (the default) it is
            `ratio x reference["calibrated_ms"]`: the candidate on the reference's calibrated
            clock, in the moments nothing else slowed the core down (the 5% quantile of the
            quiet runs, within 1-3% of their median on a quiet core). Under `"single"`, the
            median of the run times.
        p90_ms, mean_ms, std_ms, min_ms: statistics of the run times (paired: of the quiet
            runs, each on the calibrated clock).
        runs: timed runs of the candidate; warmup: untimed runs before them.
        threads: interpreter threads; xnnpack: whether the XNNPACK delegate was applied.
        runtime: the TFLite runtime and its version, e.g. `"ai_edge_litert 2.3.0"`.
        device: `"local"` or the name of the `RemoteDevice` that measured.
        size_bytes: size of the measured flatbuffer.
        wall_s: seconds the whole measurement took (conversion, process start, runs).
        protocol: how it was timed, e.g. `{"name": "paired", "version": 1, "blocks": 90,
            "quiet_blocks": 40, ...}` (`{"name": "single", ...}` for the unpaired protocol;
            `None` in records made before protocols were recorded).
        ratio: the candidate's latency relative to the reference (paired only, else NaN).
        reference: the reference's identity and calibration (paired only): `name`,
            `sha256`, `calibrated_ms`, `calibrated_at`, `device_fingerprint`.
        raw_median_ms: the median of all the candidate's run times as measured, on the clock
            of that moment (paired only; what the unpaired protocol would have reported).
        times_ms: the run times (not part of `to_dict()` unless asked).

    Example:

    ```python
    stats = keras_nas.hardware.measure_latency(model, runs=50)
    print(stats.median_ms, stats.ratio, stats.to_dict()["reference"]["name"])
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
    protocol: dict = None
    ratio: float = float("nan")
    reference: dict = None
    raw_median_ms: float = float("nan")
    times_ms: list = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def from_times(cls, times_ms, **kwargs):
        """Builds the statistics from a list of run times in milliseconds.

        Example: `LatencyStats.from_times([1.0, 1.2, 0.9], threads=1, xnnpack=True).median_ms`.
        """
        t = np.asarray(times_ms, dtype=np.float64)
        if t.ndim != 1 or t.size == 0:
            raise ValueError("`times_ms` must be a non-empty list of run times.")
        kwargs.setdefault("runs", int(t.size))
        return cls(
            median_ms=float(np.median(t)),
            p90_ms=float(np.percentile(t, 90)),
            mean_ms=float(np.mean(t)),
            std_ms=float(np.std(t)),
            min_ms=float(np.min(t)),
            times_ms=[float(v) for v in t],
            **kwargs,
        )

    def to_dict(self, include_times=False):
        """The statistics as a JSON-ready dict (`times_ms` only with `include_times=True`).

        Example: `json.dumps(stats.to_dict())`.
        """
        d = dataclasses.asdict(self)
        if not include_times:
            d.pop("times_ms")
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of `to_dict()`; unknown keys are ignored.

        Example: `LatencyStats.from_dict(stats.to_dict()).median_ms == stats.median_ms`.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass
class Calibration:
    """The reference model's latency on one device, the clock paired results are read on.

    Attributes:
        median_ms: the reference's latency (ms) at its quiet level on this device.
        device: `"local"` or the `RemoteDevice` name it was measured on.
        fingerprint: what identifies the device: host, CPU, cores, runtime (the cache key).
        threads, xnnpack: the interpreter settings it holds for.
        runtime: the TFLite runtime that measured.
        reference, sha256: the reference model's name and digest.
        blocks, quiet_blocks: timed blocks, and those at the quiet level.
        all_blocks_median_ms, p10_ms, p90_ms, min_ms: the spread of all block medians (a
            wide p10-p90 means the device was busy or changing speed while calibrating).
        seconds: how long the reference was timed; calibrated_at: unix time.
        protocol_version: the timing protocol's version.

    Example: `keras_nas.hardware.calibrate_reference().median_ms`.
    """

    median_ms: float
    device: str
    fingerprint: dict
    threads: int
    xnnpack: bool
    runtime: str = ""
    reference: str = REFERENCE_NAME
    sha256: str = REFERENCE_SHA256
    blocks: int = 0
    quiet_blocks: int = 0
    all_blocks_median_ms: float = float("nan")
    p10_ms: float = float("nan")
    p90_ms: float = float("nan")
    min_ms: float = float("nan")
    seconds: float = 0.0
    calibrated_at: float = 0.0
    protocol_version: int = timing.PROTOCOL_VERSION

    def to_dict(self):
        """The calibration as a JSON-ready dict. Example: `json.dumps(cal.to_dict())`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of `to_dict()`; unknown keys are ignored.

        Example: `Calibration.from_dict(cal.to_dict()) == cal`.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def record(self):
        """The part recorded with every paired result (`LatencyStats.reference`).

        Example: `stats.reference == cal.record()`.
        """
        return {"name": self.reference, "sha256": self.sha256, "calibrated_ms": self.median_ms,
                "calibrated_at": self.calibrated_at, "calibration_device": self.device,
                "calibration_blocks": self.blocks, "calibration_quiet_blocks": self.quiet_blocks,
                "device_fingerprint": self.fingerprint}


def _check_protocol(protocol):
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {PROTOCOLS}, got {protocol!r}.")
    return protocol


def _check_device(device):
    if device is not None and not (hasattr(device, "measure") and hasattr(device, "calibrate")):
        raise TypeError(f"`device` must be None or a RemoteDevice, got {type(device).__name__}.")
    return device


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


# -- calibration -------------------------------------------------------------------------
_CALIBRATIONS = {}
_CALIBRATION_LOCK = threading.Lock()
_REFERENCE_CHECKED = []


def calibration_cache_path():
    """Where calibrations are kept between processes: `$KERAS_NAS_CACHE_DIR` (default
    `~/.cache/keras_nas`) / `latency_calibrations.json`.

    Example: `os.path.exists(calibration_cache_path())`.
    """
    root = os.environ.get("KERAS_NAS_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_nas")
    return os.path.join(root, "latency_calibrations.json")


def _cache_key(fingerprint, threads, xnnpack):
    return json.dumps([REFERENCE_SHA256, timing.PROTOCOL_VERSION, fingerprint, int(threads),
                       bool(xnnpack)], sort_keys=True)


def _read_cache():
    try:
        with open(calibration_cache_path()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key, calibration):
    path = calibration_cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = _read_cache()
        data[key] = calibration.to_dict()
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except OSError:  # a read-only home: the calibration still holds for this process
        pass


def _reference_path():
    if not _REFERENCE_CHECKED:
        reference_tflite()  # raises if the shipped file was changed
        _REFERENCE_CHECKED.append(True)
    return REFERENCE_FILE


def local_fingerprint():
    """What identifies this machine for a calibration (host, CPU, cores, TFLite runtime).

    Example: `local_fingerprint()["runtime"]` is e.g. `"ai_edge_litert 2.3.0"`.
    """
    return timing.fingerprint(timing.runtime()[2])


def calibrate_reference(device=None, threads=1, xnnpack=True, seconds=timing.CALIBRATION_S,
                        refresh=False, cache=True, timeout=300):
    """The reference model's latency on a device: measured once, then remembered.

    The reference is timed alone in ~10 ms blocks for `seconds`; its calibrated latency is
    the median of the blocks at its quiet level (within 6% of the fastest block). It is kept
    in this process and in `calibration_cache_path()`, by device fingerprint (host, CPU,
    cores, runtime), threads and XNNPACK, so every later measurement on the same device
    reads its ratios on the same clock, in this process and the next. A loopback
    `tools/litert_server.py` with the same runtime shares this machine's calibration.

    Args:
        device: `None` for this machine, or a `RemoteDevice`.
        threads, xnnpack: interpreter settings (as for `measure_latency`).
        seconds: how long to time the reference (0.5..600).
        refresh: measure again even when a calibration is known (and replace it).
        cache: read and write the cache file (the in-process memory is always used).
        timeout: seconds before the measuring process is killed.

    Returns:
        `Calibration`.

    Example:

    ```python
    cal = calibrate_reference(refresh=True, seconds=10)   # once, on a quiet machine
    measure_latency(model, calibration=cal).median_ms
    ```
    """
    _check_device(device)
    threads = validation.check_int(threads, "threads", minimum=1, maximum=64)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
            0.5 <= seconds <= 600):
        raise ValueError(f"`seconds` must be a number between 0.5 and 600, got {seconds!r}.")
    fingerprint = local_fingerprint() if device is None else device.fingerprint()
    key = _cache_key(fingerprint, threads, xnnpack)
    with _CALIBRATION_LOCK:
        if not refresh:
            if key in _CALIBRATIONS:
                return _CALIBRATIONS[key]
            stored = _read_cache().get(key) if cache else None
            if stored is not None:
                try:
                    _CALIBRATIONS[key] = Calibration.from_dict(stored)
                    return _CALIBRATIONS[key]
                except TypeError:
                    pass  # a record of another version: calibrate anew
        if device is None:
            result = _run_job({"protocol": "calibrate", "models": [],
                               "reference": _reference_path(), "threads": threads,
                               "xnnpack": bool(xnnpack), "seconds": float(seconds)}, timeout)[0]
            label = "local"
        else:
            result = device.calibrate(seconds=seconds, threads=threads, xnnpack=xnnpack)
            label = device.name
        if not result.get("ok"):
            raise RuntimeError(
                f"The TFLite runtime could not run the reference model: {result.get('error')}")
        calibration = Calibration(
            median_ms=float(result["median_ms"]), device=label, fingerprint=fingerprint,
            threads=threads, xnnpack=bool(xnnpack), runtime=result.get("runtime", ""),
            blocks=int(result["blocks"]), quiet_blocks=int(result["quiet_blocks"]),
            all_blocks_median_ms=float(result["all_blocks_median_ms"]),
            p10_ms=float(result["p10_ms"]), p90_ms=float(result["p90_ms"]),
            min_ms=float(result["min_ms"]), seconds=float(seconds), calibrated_at=time.time())
        _CALIBRATIONS[key] = calibration
        if cache:
            _write_cache(key, calibration)
        return calibration


def _calibration_for(calibration, device, threads, xnnpack):
    if calibration is None:
        return calibrate_reference(device, threads=threads, xnnpack=xnnpack)
    if not isinstance(calibration, Calibration):
        raise TypeError("`calibration` must be None or a Calibration (from calibrate_reference), "
                        f"got {type(calibration).__name__}.")
    if calibration.threads != threads or bool(calibration.xnnpack) != bool(xnnpack):
        raise ValueError(
            f"`calibration` holds for threads={calibration.threads}, "
            f"xnnpack={calibration.xnnpack}, not threads={threads}, xnnpack={bool(xnnpack)}.")
    if calibration.sha256 != REFERENCE_SHA256:
        raise ValueError(f"`calibration` is of reference {calibration.sha256[:12]}..., not of "
                         f"{REFERENCE_NAME} ({REFERENCE_SHA256[:12]}...).")
    return calibration


def stats_from_result(result, calibration=None, **kwargs):
    """`LatencyStats` from one answer of the timing protocol (local runner or server).

    A paired answer is put on the calibrated clock: `median_ms = ratio x calibration`,
    and each quiet run's relative time times the calibration gives `times_ms`.

    Args:
        result: one `{"ok": true, ...}` result of `_runner.run_job` or of `/measure`.
        calibration: the `Calibration` (needed for a paired result).
        **kwargs: the other `LatencyStats` fields (threads, xnnpack, warmup, device...).

    Example: `stats_from_result(answer, cal, threads=1, xnnpack=True, device="local")`.
    """
    protocol = dict(result.get("protocol") or {"name": "single"})
    kwargs.setdefault("runtime", result.get("runtime", ""))
    if protocol.get("name") != "paired":
        return LatencyStats.from_times(result["times_ms"], protocol=protocol, **kwargs)
    if calibration is None:
        raise ValueError("`calibration` is needed to read a paired result in milliseconds.")
    for key in ("blocks", "quiet_blocks", "blocks_used", "quiet_level_ms", "reached_quiet_ms",
                "seconds", "median_ratio", "reference_median_ms", "priority"):
        if key in result:
            protocol[key] = result[key]
    if result.get("quiet_blocks", 0) < 3:
        warnings.warn(
            f"The device had no quiet moment in the {result.get('seconds', 0):.0f} s paired "
            "window (the reference never ran at its calibrated level): the latency is read "
            "from the least disturbed blocks and may be off by the model's own response to "
            "the load. protocol['quiet_blocks'] records it; measure again when the device is "
            "less busy.", RuntimeWarning, stacklevel=3)
    scale = calibration.median_ms
    stats = LatencyStats.from_times([v * scale for v in result["relative_times"]],
                                    protocol=protocol, runs=int(result["runs"]), **kwargs)
    stats.median_ms = float(result["ratio"]) * scale
    stats.ratio = float(result["ratio"])
    stats.reference = calibration.record()
    stats.raw_median_ms = float(result["raw_median_ms"])
    return stats


# -- measuring ---------------------------------------------------------------------------
def measure_latency(model_or_tflite, runs=50, warmup=10, threads=1, xnnpack=True,
                    device=None, quantization=None, representative_data=None, timeout=300,
                    protocol="paired", calibration=None, max_seconds=None):
    """Measures batch-1 inference latency with the TFLite runtime, paired with a reference.

    A Keras model is converted first (see `to_tflite`). Locally the model is written to a
    temporary file and timed in a fresh Python process that loads only numpy and the
    runtime, so one measurement cannot disturb the next and a crash in the runtime cannot
    take the caller down. With `device` the flatbuffer is sent to a `RemoteDevice` (a
    `tools/litert_server.py`), which runs the same protocol in the same way.

    With `protocol="paired"` (the default) the model is timed interleaved with the fixed
    reference model in short blocks, in the moments the reference ran at its quiet level,
    and `median_ms` is its ratio to the reference times the reference's calibrated latency
    on that device (`calibrate_reference`, measured once and cached; pass `calibration=` to
    pin one). So two models measured minutes apart on a machine whose speed changes are
    compared on one clock. `protocol="single"` times the model alone, as before pairing.

    Args:
        model_or_tflite: a `keras.Model`, `.tflite` bytes, or a path to a `.tflite` file.
        runs: timed invocations (1..100000); paired: quiet ones wanted, at least 100.
        warmup: untimed invocations first (0..10000).
        threads: interpreter threads (1..64). Use 1 on a shared machine.
        xnnpack: apply the XNNPACK delegate (the runtime's default) or not.
        device: `None` for this machine, or a `RemoteDevice`.
        quantization, representative_data: passed to `to_tflite` for a Keras model.
        timeout: seconds before the measuring process is killed.
        protocol: `"paired"` or `"single"`.
        calibration: the reference's `Calibration` to read a paired ratio with (default:
            `calibrate_reference(device, threads, xnnpack)`).
        max_seconds: the longest a paired window waits for quiet blocks (default 30 s); a
            budgeted search's last measurement passes what its budget leaves.

    Returns:
        `LatencyStats` (`ratio`, `reference` and `protocol` say how it was measured).

    Example:

    ```python
    stats = measure_latency(model, runs=100, warmup=20, threads=1)
    stats.median_ms, stats.ratio, stats.reference["name"]
    ```
    """
    runs = validation.check_int(runs, "runs", minimum=1, maximum=100000)
    warmup = validation.check_int(warmup, "warmup", minimum=0, maximum=10000)
    threads = validation.check_int(threads, "threads", minimum=1, maximum=64)
    _check_protocol(protocol)
    _check_device(device)
    start = time.perf_counter()
    data = _as_tflite_bytes(model_or_tflite, quantization, representative_data)
    if protocol == "paired":
        calibration = _calibration_for(calibration, device, threads, xnnpack)
    if max_seconds is not None and not (isinstance(max_seconds, (int, float))
                                        and 0 < max_seconds <= 600):
        raise ValueError(f"`max_seconds` must be a number in (0, 600], got {max_seconds!r}.")
    if device is not None:
        stats = device.measure(data, runs=runs, warmup=warmup, threads=threads, xnnpack=xnnpack,
                               protocol=protocol, calibration=calibration,
                               max_seconds=max_seconds)
        stats.wall_s = time.perf_counter() - start
        return stats
    result = _run_local([data], protocol, runs, warmup, threads, xnnpack, timeout,
                        calibration, max_seconds)[0]
    if not result["ok"]:
        raise RuntimeError(f"The TFLite runtime could not run the model: {result['error']}")
    return stats_from_result(
        result, calibration, threads=threads, xnnpack=bool(xnnpack), warmup=warmup,
        device="local", size_bytes=len(data), wall_s=time.perf_counter() - start)


def _run_job(job, timeout):
    """Runs one job of the timing protocol in a fresh process; returns its results."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        proc = subprocess.run([sys.executable, _RUNNER], input=json.dumps(job),
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"Latency measurement took longer than `timeout`={timeout}s.") from e
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            answer = json.loads(line)
            if "error" in answer:
                raise RuntimeError(f"The latency process could not run: {answer['error']}")
            return answer["results"]
    raise RuntimeError(
        f"The latency process exited with code {proc.returncode} and no result: "
        f"{proc.stderr.strip()[-2000:]}"
    )


def _run_local(models, protocol, runs, warmup, threads, xnnpack, timeout, calibration=None,
               max_seconds=None):
    """Times flatbuffers one after the other in one fresh process; returns the raw results."""
    paths = []
    try:
        for data in models:
            fd, path = tempfile.mkstemp(suffix=".tflite")
            paths.append(path)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        job = {"protocol": protocol, "models": paths, "runs": runs, "warmup": warmup,
               "threads": threads, "xnnpack": bool(xnnpack)}
        if protocol == "paired":
            job.update(reference=_reference_path(), quiet_ms=calibration.median_ms)
            if max_seconds is not None:
                job["max_seconds"] = float(max_seconds)
        return _run_job(job, timeout)
    finally:
        for path in paths:
            os.unlink(path)


def measure_latency_many(tflite_models, runs=50, warmup=10, threads=1, xnnpack=True, timeout=600,
                         protocol="paired", calibration=None):
    """Measures several `.tflite` flatbuffers one after the other in one fresh process.

    Cheaper than one `measure_latency` call per model when there are many small models
    (the latency predictor's blocks): one process, one reference interpreter. Each model
    gets its own interpreter, warm-up and paired window.

    Args:
        tflite_models: list of `.tflite` bytes.
        runs, warmup, threads, xnnpack, timeout, protocol, calibration: as for
            `measure_latency` (`timeout` for the whole list).

    Returns:
        A list of `LatencyStats`, in order.

    Example: `[s.median_ms for s in measure_latency_many([a, b], runs=30)]`.
    """
    runs = validation.check_int(runs, "runs", minimum=1, maximum=100000)
    warmup = validation.check_int(warmup, "warmup", minimum=0, maximum=10000)
    threads = validation.check_int(threads, "threads", minimum=1, maximum=64)
    _check_protocol(protocol)
    models = [_as_tflite_bytes(m) for m in tflite_models]
    if not models:
        return []
    if protocol == "paired":
        calibration = _calibration_for(calibration, None, threads, xnnpack)
    out = []
    results = _run_local(models, protocol, runs, warmup, threads, xnnpack, timeout, calibration)
    for data, result in zip(models, results):
        if not result["ok"]:
            raise RuntimeError(f"The TFLite runtime could not run a model: {result['error']}")
        out.append(stats_from_result(result, calibration, threads=threads,
                                     xnnpack=bool(xnnpack), warmup=warmup, device="local",
                                     size_bytes=len(data)))
    return out
