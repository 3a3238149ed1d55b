import numpy as np
import pytest

import keras

from keras_nas import hardware
from keras_nas.hardware import LatencyStats, measure_latency


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


def test_stats_from_times():
    times = [1.0, 2.0, 3.0, 4.0, 10.0]
    s = LatencyStats.from_times(times, threads=1, xnnpack=True)
    assert s.median_ms == 3.0
    assert s.mean_ms == pytest.approx(4.0)
    assert s.std_ms == pytest.approx(np.std(times))
    assert s.p90_ms == pytest.approx(np.percentile(times, 90))
    assert s.min_ms == 1.0 and s.runs == 5
    d = s.to_dict()
    assert {"median_ms", "p90_ms", "mean_ms", "std_ms", "runs", "threads", "xnnpack"} <= set(d)
    assert "times_ms" not in d and s.to_dict(include_times=True)["times_ms"] == times
    assert LatencyStats.from_dict(s.to_dict(include_times=True)) == s
    with pytest.raises(ValueError, match="times_ms"):
        LatencyStats.from_times([], threads=1, xnnpack=True)


def test_measure_bytes_records_settings(tiny):
    _, data = tiny
    s = measure_latency(data, runs=30, warmup=3, threads=1, xnnpack=False)
    assert s.runs == 30 and len(s.times_ms) == 30
    assert s.threads == 1 and s.xnnpack is False and s.warmup == 3
    assert 0 < s.min_ms <= s.median_ms <= s.p90_ms
    assert s.device == "local" and s.size_bytes == len(data)
    assert "ai_edge_litert" in s.runtime or "tflite_runtime" in s.runtime
    assert s.wall_s > 0


def test_measure_keras_model_and_path(tiny, tmp_path):
    model, data = tiny
    s = measure_latency(model, runs=5, warmup=1)
    assert s.runs == 5 and s.xnnpack is True
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert measure_latency(str(path), runs=3, warmup=0).runs == 3


def test_runtime_failure_is_reported(tiny):
    _, data = tiny
    broken = data[:8] + bytes(64)  # right identifier, nothing behind it
    with pytest.raises(RuntimeError, match="could not run"):
        measure_latency(broken, runs=2, warmup=0)


def test_bad_arguments(tiny):
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


def test_measure_many_in_one_process(tiny):
    model, data = tiny
    bigger = hardware.to_tflite(keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(64, 3, padding="same"),
        keras.layers.Conv2D(64, 3, padding="same"), keras.layers.Flatten(), keras.layers.Dense(10)]))
    small, large = hardware.measure_latency_many([data, bigger], runs=40, warmup=5)
    assert small.runs == large.runs == 40
    assert small.size_bytes == len(data) and large.size_bytes == len(bigger)
    assert large.median_ms > small.median_ms  # ~75x the MACs
    assert hardware.measure_latency_many([]) == []
