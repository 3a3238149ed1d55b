import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

import keras

from keras_nas import hardware
from keras_nas.hardware import _runner as timing
from keras_nas.hardware import latency as latency_lib
from keras_nas.hardware import LatencyStats, calibrate_reference, measure_latency
from keras_nas.hardware.reference import REFERENCE_NAME, REFERENCE_SHA256


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    return model, hardware.to_tflite(model)


@pytest.fixture(scope="module")
def calibration():
    """One short calibration for the module (the default one takes 4 s)."""
    return calibrate_reference(seconds=1.0, cache=False)


# -- the protocol, on a simulated machine whose speed changes ------------------------------
class Machine:
    """A simulated core: its speed changes in phases, and in 'busy' phases another process
    slows each model by its own factor (as a sibling thread or memory traffic does)."""

    def __init__(self, phases, preempt_every=0, preempt_ms=5.0):
        self.phases = phases  # [(runs, clock, busy)]: clock scales everything
        self.t = 0
        self.preempt_every = preempt_every
        self.preempt_ms = preempt_ms

    def state(self):
        t = self.t % sum(n for n, _, _ in self.phases)
        for n, clock, busy in self.phases:
            if t < n:
                return clock, busy
            t -= n


class FakeModel:
    runtime = "simulated"
    input_shapes = [[1, 4]]

    def __init__(self, machine, ms, busy_factor):
        self.machine, self.ms, self.busy_factor = machine, ms, busy_factor

    def run(self, n):
        self.machine.t += n

    def time(self, n):
        out = []
        for _ in range(n):
            clock, busy = self.machine.state()
            t = self.ms * clock * (self.busy_factor if busy else 1.0)
            self.machine.t += 1
            if self.machine.preempt_every and self.machine.t % self.machine.preempt_every == 0:
                t += self.machine.preempt_ms
            out.append(t)
        return out


def test_paired_ratio_survives_clock_phases_and_a_busy_sibling():
    # Slow/fast clock phases (1.05x / 0.85x) and busy phases in which the reference slows
    # 1.5x but the candidate only 1.2x. The window starts busy and slow; the paired protocol
    # waits for the reference's calibrated quiet level and reads the ratio there: the
    # candidate's true 2.5x. The candidate's own median over the same window is far off.
    machine = Machine([(2000, 1.05, True), (2500, 1.05, False), (2000, 0.85, True),
                       (3000, 0.85, False)])
    reference = FakeModel(machine, 0.1, 1.5)
    candidate = FakeModel(machine, 0.25, 1.2)
    result = timing.time_paired(candidate, reference, runs=100, warmup=5, quiet_ms=0.085)
    assert result["ratio"] == pytest.approx(2.5, rel=0.01)
    assert result["quiet_blocks"] >= timing.MIN_BLOCKS
    assert result["reached_quiet_ms"] is True
    assert result["quiet_level_ms"] == pytest.approx(0.085)
    assert len(result["relative_times"]) == len(result["times_ms"]) >= 100
    # Not pairing (the candidate's median over the same window) is off by more than 10%.
    assert abs(result["raw_median_ms"] / (0.25 * 0.85) - 1) > 0.1
    # Not gating: the busy blocks alone would have said 2.0.
    assert sum(abs(r - 2.0) < 0.02 for r in result["block_ratios"]) >= 5


def test_paired_ratio_ignores_runs_that_were_scheduled_out():
    machine = Machine([(10000, 1.0, False)], preempt_every=4, preempt_ms=3.0)
    result = timing.time_paired(FakeModel(machine, 0.5, 1.0), FakeModel(machine, 0.1, 1.0),
                                runs=100, warmup=0)
    assert result["ratio"] == pytest.approx(5.0, rel=0.01)
    assert result["median_ratio"] == pytest.approx(5.0, rel=0.01)  # 1 run in 4 disturbed


def test_calibration_reads_the_quiet_level():
    machine = Machine([(5000, 1.0, False), (5000, 1.0, True)])
    result = timing.calibrate(FakeModel(machine, 0.1, 1.5), seconds=0.05, block_ms=1.0)
    assert result["median_ms"] == pytest.approx(0.1, rel=0.01)
    assert result["p90_ms"] == pytest.approx(0.15, rel=0.01)
    assert result["quiet_blocks"] < result["blocks"]


def test_quantile_and_summarize():
    assert timing.quantile([1, 2, 3, 4, 5], 0.5) == 3
    assert timing.quantile([1, 2, 3, 4, 5], 0.25) == 2
    assert timing.quantile([0.0, 10.0], 0.05) == pytest.approx(0.5)
    assert timing.median([3, 1, 2, 10]) == 2.5
    s = timing.summarize([1.0, 2.0, 3.0, 4.0, 10.0])
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0
    assert s["p90_ms"] == pytest.approx(np.percentile([1.0, 2.0, 3.0, 4.0, 10.0], 90))


def test_runner_script_answers_bad_jobs_with_an_error():
    for job in ("not json", json.dumps({"protocol": "fast", "models": []})):
        out = subprocess.run([sys.executable, latency_lib._RUNNER], input=job,
                             capture_output=True, text=True, timeout=60).stdout
        assert "error" in json.loads(out.strip().splitlines()[-1])


# -- LatencyStats ------------------------------------------------------------------------
def test_stats_from_times():
    times = [1.0, 2.0, 3.0, 4.0, 10.0]
    s = LatencyStats.from_times(times, threads=1, xnnpack=True)
    assert s.median_ms == 3.0
    assert s.mean_ms == pytest.approx(4.0)
    assert s.std_ms == pytest.approx(np.std(times))
    assert s.p90_ms == pytest.approx(np.percentile(times, 90))
    assert s.min_ms == 1.0 and s.runs == 5
    d = s.to_dict()
    assert {"median_ms", "p90_ms", "mean_ms", "std_ms", "runs", "threads", "xnnpack",
            "protocol", "ratio", "reference"} <= set(d)
    assert "times_ms" not in d and s.to_dict(include_times=True)["times_ms"] == times
    assert LatencyStats.from_dict(s.to_dict(include_times=True)) == s
    # A record written before protocols were recorded still loads.
    old = {k: v for k, v in d.items() if k not in ("protocol", "ratio", "reference")}
    assert LatencyStats.from_dict(old).protocol is None
    with pytest.raises(ValueError, match="times_ms"):
        LatencyStats.from_times([], threads=1, xnnpack=True)


def _paired_result(quiet_blocks):
    return {"ok": True, "protocol": {"name": "paired", "version": timing.PROTOCOL_VERSION},
            "ratio": 2.0, "relative_times": [2.0, 2.1, 2.4], "runs": 3, "raw_median_ms": 0.3,
            "quiet_blocks": quiet_blocks, "blocks": 50, "seconds": 30.0, "runtime": "x 1"}


def test_stats_from_a_paired_result_and_the_no_quiet_warning():
    cal = hardware.Calibration(median_ms=0.1, device="local", fingerprint={}, threads=1,
                               xnnpack=True)
    s = latency_lib.stats_from_result(_paired_result(40), cal, threads=1, xnnpack=True)
    assert s.median_ms == pytest.approx(0.2) and s.ratio == 2.0 and s.raw_median_ms == 0.3
    assert s.times_ms == pytest.approx([0.2, 0.21, 0.24]) and s.min_ms == pytest.approx(0.2)
    assert s.protocol["quiet_blocks"] == 40 and s.reference == cal.record()
    with pytest.warns(RuntimeWarning, match="no quiet moment"):
        s = latency_lib.stats_from_result(_paired_result(0), cal, threads=1, xnnpack=True)
    assert s.protocol["quiet_blocks"] == 0
    with pytest.raises(ValueError, match="calibration"):
        latency_lib.stats_from_result(_paired_result(40), None, threads=1, xnnpack=True)


# -- measuring -----------------------------------------------------------------------------
def test_paired_is_the_default_and_records_reference_and_protocol(tiny, calibration):
    _, data = tiny
    s = measure_latency(data, runs=30, warmup=3, calibration=calibration)
    assert s.protocol["name"] == "paired" and s.protocol["version"] == timing.PROTOCOL_VERSION
    assert s.protocol["blocks"] >= 3 and s.protocol["quiet_blocks"] <= s.protocol["blocks"]
    assert s.reference["name"] == REFERENCE_NAME and s.reference["sha256"] == REFERENCE_SHA256
    assert s.reference["calibrated_ms"] == calibration.median_ms
    assert s.median_ms == pytest.approx(s.ratio * calibration.median_ms)
    assert 0 < s.min_ms <= s.median_ms <= s.p90_ms
    assert s.runs >= 30 and s.raw_median_ms > 0 and s.warmup == 3
    assert s.device == "local" and s.size_bytes == len(data)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["reference"]["name"] == REFERENCE_NAME and d["protocol"]["name"] == "paired"


def test_reference_measured_against_itself_is_one(calibration):
    s = measure_latency(hardware.reference_tflite(), runs=100, calibration=calibration)
    assert s.ratio == pytest.approx(1.0, abs=0.1)


def test_single_protocol_records_settings(tiny):
    _, data = tiny
    s = measure_latency(data, runs=30, warmup=3, threads=1, xnnpack=False, protocol="single")
    assert s.runs == 30 and len(s.times_ms) == 30
    assert s.threads == 1 and s.xnnpack is False and s.warmup == 3
    assert s.protocol == {"name": "single", "version": timing.PROTOCOL_VERSION}
    assert s.reference is None and np.isnan(s.ratio)
    assert 0 < s.min_ms <= s.median_ms <= s.p90_ms
    assert s.device == "local" and s.size_bytes == len(data)
    assert "ai_edge_litert" in s.runtime or "tflite_runtime" in s.runtime
    assert s.wall_s > 0


def test_measure_keras_model_and_path(tiny, tmp_path, calibration):
    model, data = tiny
    s = measure_latency(model, runs=5, warmup=1, protocol="single")
    assert s.runs == 5 and s.xnnpack is True
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert measure_latency(str(path), runs=3, warmup=0, calibration=calibration).ratio > 0


def test_runtime_failure_is_reported(tiny, calibration):
    _, data = tiny
    broken = data[:8] + bytes(64)  # right identifier, nothing behind it
    for protocol in ("paired", "single"):
        with pytest.raises(RuntimeError, match="could not run"):
            measure_latency(broken, runs=2, warmup=0, protocol=protocol,
                            calibration=calibration if protocol == "paired" else None)


def test_bad_arguments(tiny, calibration):
    _, data = tiny
    with pytest.raises(ValueError, match="TFLite"):
        measure_latency(b"0123456789abcdef")
    with pytest.raises(ValueError, match="runs"):
        measure_latency(data, runs=0)
    with pytest.raises(TypeError, match="threads"):
        measure_latency(data, threads=1.5)
    with pytest.raises(ValueError, match="warmup"):
        measure_latency(data, warmup=-1)
    with pytest.raises(TypeError, match="model_or_tflite"):
        measure_latency(12)
    with pytest.raises(ValueError, match="path"):
        measure_latency("/nonexistent/model.tflite")
    with pytest.raises(TypeError, match="device"):
        measure_latency(data, device="phone")
    with pytest.raises(ValueError, match="protocol"):
        measure_latency(data, protocol="fast")
    with pytest.raises(TypeError, match="calibration"):
        measure_latency(data, calibration=0.1)
    with pytest.raises(ValueError, match="calibration"):
        measure_latency(data, threads=2, calibration=calibration)
    with pytest.raises(ValueError, match="seconds"):
        calibrate_reference(seconds=0)


@pytest.mark.slow
def test_measure_many_in_one_process(tiny, calibration):
    model, data = tiny
    bigger = hardware.to_tflite(keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(64, 3, padding="same"),
        keras.layers.Conv2D(64, 3, padding="same"), keras.layers.Flatten(), keras.layers.Dense(10)]))
    small, large = hardware.measure_latency_many([data, bigger], runs=40, warmup=5,
                                                 calibration=calibration)
    assert small.runs >= 40 and large.runs >= 40
    assert small.size_bytes == len(data) and large.size_bytes == len(bigger)
    assert large.median_ms > small.median_ms and large.ratio > small.ratio  # ~75x the MACs
    assert small.reference == large.reference == calibration.record()
    single = hardware.measure_latency_many([data], runs=10, protocol="single")
    assert single[0].runs == 10 and single[0].protocol["name"] == "single"
    assert hardware.measure_latency_many([]) == []


# -- calibration and the reference ----------------------------------------------------------
def test_calibration_is_kept_and_reused(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("KERAS_NAS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(latency_lib, "_CALIBRATIONS", {})
    first = calibrate_reference(seconds=0.5)
    assert first.median_ms > 0 and first.quiet_blocks >= 1 and first.device == "local"
    assert first.fingerprint == hardware.local_fingerprint()
    stored = json.loads((tmp_path / "latency_calibrations.json").read_text())
    assert [v["calibrated_at"] for v in stored.values()] == [first.calibrated_at]
    # Another process (an empty memory) reads the same calibration back, unmeasured.
    monkeypatch.setattr(latency_lib, "_CALIBRATIONS", {})
    again = calibrate_reference()
    assert again == first
    s = measure_latency(tiny[1], runs=10)
    assert s.reference["calibrated_at"] == first.calibrated_at
    fresh = calibrate_reference(seconds=0.5, refresh=True)
    assert fresh.calibrated_at > first.calibrated_at
    assert calibrate_reference() == fresh
    assert hardware.Calibration.from_dict(json.loads(json.dumps(fresh.to_dict()))) == fresh


def test_reference_model_is_fixed():
    data = hardware.reference_tflite()
    assert hashlib.sha256(data).hexdigest() == REFERENCE_SHA256
    rebuilt = hardware.to_tflite(hardware.build_reference_model())
    import tensorflow as tf

    if tf.__version__.startswith("2.21."):  # the converter the shipped file was made with
        assert rebuilt == data
    else:
        assert abs(len(rebuilt) - len(data)) < 2000


def test_hardware_metrics_record_the_protocol(tiny, calibration):
    model, _ = tiny
    m = hardware.hardware_metrics(model, runs=10, warmup=1, calibration=calibration)
    assert m["latency_ms"] == pytest.approx(m["latency_ratio"] * calibration.median_ms)
    assert m["latency_reference_ms"] == calibration.median_ms
    assert m["latency_protocol"]["protocol"]["name"] == "paired"
    assert m["latency_protocol"]["reference"]["name"] == REFERENCE_NAME
    single = hardware.hardware_metrics(model, runs=10, warmup=1, protocol="single")
    assert "latency_ratio" not in single
    assert single["latency_protocol"]["protocol"]["name"] == "single"
