"""tools/litert_server.py on loopback: answers, errors, one measurement at a time, the
paired protocol, a one-file bundle, and the server under `tflite-runtime` (numpy < 2) in its
own virtual environment, as on a device."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import keras

from keras_nas import hardware
from keras_nas.hardware import RemoteDevice, RemoteDeviceError, measure_latency
from keras_nas.hardware.reference import REFERENCE_NAME

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tools" / "litert_server.py"
TOKEN = "s3cret-token"
# The Python of a virtual environment holding `tflite-runtime` and numpy < 2 and no
# ai-edge-litert (.ci/run makes one and sets this variable).
TFLITE_RUNTIME_PYTHON = "KERAS_NAS_TFLITE_RUNTIME_PYTHON"


def _start(*args, python=sys.executable, server=SERVER, cwd=None):
    proc = subprocess.Popen(
        [python, str(server), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
    )
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()[-2000:]}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain the request log
    return proc, line.strip().rsplit(" ", 1)[1]


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server():
    proc, url = _start("--token", TOKEN, "--max-bytes", "200000")
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def tflite():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    return hardware.to_tflite(model)


@pytest.fixture(scope="module")
def unallocatable():
    """A valid flatbuffer with a custom op no runtime resolves: fails at allocation."""
    import tensorflow as tf

    def igamma(x):
        return tf.math.igamma(x + 1.0, x + 2.0)

    f = tf.function(igamma, input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.allow_custom_ops = True
    return conv.convert()


def _post(url, body, token=TOKEN, query="runs=5&warmup=1", headers=None):
    h = {"Content-Type": "application/octet-stream", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{url}/measure?{query}", data=body, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _healthy(url):
    with urllib.request.urlopen(f"{url}/health", timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def calibration():
    return hardware.calibrate_reference(seconds=1.0, cache=False)


def test_health_and_measure(server, tflite):
    h = _healthy(server)
    assert h["status"] == "ok" and h["busy"] is False and h["max_bytes"] == 200000
    assert h["fingerprint"] == hardware.local_fingerprint()  # same machine, same runtime
    assert h["protocols"] == ["single", "paired", "calibrate"] and h["protocol_version"] == 1
    status, answer = _post(server, tflite, query="runs=7&warmup=2&threads=1&xnnpack=0")
    assert status == 200
    assert answer["runs"] == 7 and len(answer["times_ms"]) == 7
    assert answer["warmup"] == 2 and answer["threads"] == 1 and answer["xnnpack"] is False
    assert answer["min_ms"] <= answer["median_ms"] <= answer["p90_ms"]
    assert answer["size_bytes"] == len(tflite) and answer["protocol"]["name"] == "single"


def test_paired_and_calibrate_over_http(server, tflite):
    reference = hardware.reference_tflite()
    query = f"protocol=paired&reference_bytes={len(reference)}&quiet_ms=0.1&runs=20&warmup=2"
    status, answer = _post(server, reference + tflite, query=query)
    assert status == 200 and answer["protocol"]["name"] == "paired"
    assert answer["ratio"] > 0 and answer["quiet_blocks"] >= 0 and answer["runs"] >= 20
    assert answer["latency_ms"] == pytest.approx(answer["ratio"] * 0.1)
    assert answer["size_bytes"] == len(tflite)
    status, answer = _post(server, reference, query="protocol=calibrate&seconds=0.5")
    assert status == 200 and answer["median_ms"] > 0 and answer["blocks"] >= 3
    # The two models must both be there, and be TFLite.
    assert _post(server, reference, query=f"reference_bytes={len(reference)}")[0] == 400
    assert _post(server, reference + tflite, query="protocol=paired")[0] == 400
    assert _post(server, b"junk" * 4 + tflite, query="reference_bytes=16")[0] == 400
    assert _post(server, tflite, query="protocol=single&reference_bytes=8")[0] == 400
    assert _post(server, tflite, query="protocol=fast")[0] == 400
    assert _post(server, tflite, query="quiet_ms=abc")[0] == 400


def test_remote_device_client(server, tflite, calibration):
    device = RemoteDevice(server, token=TOKEN, timeout=120)
    assert device.health()["status"] == "ok"
    assert device.fingerprint() == hardware.local_fingerprint()
    stats = device.measure(tflite, runs=6, warmup=1, threads=1, calibration=calibration)
    assert stats.protocol["name"] == "paired" and stats.ratio > 0 and stats.runs >= 6
    assert stats.reference["name"] == REFERENCE_NAME
    assert stats.median_ms == pytest.approx(stats.ratio * calibration.median_ms)
    assert stats.device == server and stats.size_bytes == len(tflite)
    stats = measure_latency(tflite, runs=4, warmup=0, device=device, protocol="single")
    assert stats.runs == 4 and stats.device == server and stats.wall_s > 0
    assert stats.protocol["name"] == "single" and stats.reference is None
    with pytest.raises(RemoteDeviceError) as e:
        RemoteDevice(server, token="wrong").measure(tflite, runs=1, protocol="single")
    assert e.value.status == 401
    with pytest.raises(ValueError, match="url"):
        RemoteDevice("localhost:8765")


def test_missing_or_wrong_token_is_401(server, tflite):
    assert _post(server, tflite, token=None)[0] == 401
    assert _post(server, tflite, token="not-it")[0] == 401
    assert _post(server, tflite, token=None, headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert _healthy(server)["status"] == "ok"


def test_oversized_body_is_413(server):
    status, answer = _post(server, b"\x00\x00\x00\x00TFL3" + bytes(250000))
    assert status == 413 and "limit" in answer["error"]
    # A client that announces a huge body and sends nothing gets 413 without a read.
    conn = http.client.HTTPConnection(server.split("//")[1], timeout=10)
    conn.putrequest("POST", "/measure")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert _healthy(server)["status"] == "ok"


def test_not_a_flatbuffer_and_bad_query_are_400(server, tflite):
    status, answer = _post(server, b"PK\x03\x04 this is a zip, not a model")
    assert status == 400 and "TFL3" in answer["error"]
    assert _post(server, tflite, query="runs=abc")[0] == 400
    assert _post(server, tflite, query="runs=0")[0] == 400
    assert _post(server, tflite, query="threads=1000")[0] == 400
    assert _post(server, tflite, query="color=red")[0] == 400
    assert _healthy(server)["status"] == "ok"


def test_model_that_fails_to_allocate_is_422(server, unallocatable, tflite):
    status, answer = _post(server, unallocatable)
    assert status == 422 and "allocate" in answer["error"] and "Igamma" in answer["error"]
    status, answer = _post(server, tflite[:8] + bytes(64))  # identifier only
    assert status == 422
    assert _post(server, tflite)[0] == 200  # still serving


def test_concurrent_requests_queue_and_never_overlap(server, tflite):
    results = []

    def worker():
        results.append(_post(server, tflite, query="runs=200&warmup=5"))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [s for s, _ in results] == [200, 200, 200]
    spans = sorted((a["started"], a["ended"]) for _, a in results)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end  # measured one after the other


def test_busy_server_answers_503_with_zero_queue_timeout(tflite):
    proc, url = _start("--queue-timeout", "0")
    try:
        first = []
        t = threading.Thread(target=lambda: first.append(_post(url, tflite, token=None,
                                                               query="runs=3000&warmup=0")))
        t.start()
        deadline = time.time() + 30
        while not _healthy(url)["busy"]:
            assert time.time() < deadline, "server never became busy"
            time.sleep(0.005)
        status, answer = _post(url, tflite, token=None)
        assert status == 503 and "busy" in answer["error"]
        t.join(60)
        assert first[0][0] == 200
        assert _post(url, tflite, token=None)[0] == 200
    finally:
        _stop(proc)


def test_server_binds_loopback_by_default():
    proc, url = _start()
    try:
        assert url.startswith("http://127.0.0.1:")
    finally:
        _stop(proc)


# -- one file for a device, and tflite-runtime -------------------------------------------------
def test_server_alone_without_the_protocol_says_how_to_get_it(tmp_path):
    alone = tmp_path / "litert_server.py"
    shutil.copy(SERVER, alone)
    proc = subprocess.run([sys.executable, str(alone), "--port", "0"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode != 0 and "--bundle" in proc.stderr


def test_bundle_is_one_file_that_measures(tmp_path, tflite, calibration):
    bundle = tmp_path / "device" / "litert_server_device.py"
    bundle.parent.mkdir()
    out = subprocess.run([sys.executable, str(SERVER), "--bundle", str(bundle)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and bundle.is_file()
    assert list(bundle.parent.iterdir()) == [bundle]
    proc, url = _start(server=bundle, cwd=bundle.parent)
    try:
        stats = RemoteDevice(url).measure(tflite, runs=10, calibration=calibration)
        assert stats.protocol["name"] == "paired" and stats.ratio > 0
    finally:
        _stop(proc)
    again = subprocess.run([sys.executable, str(bundle), "--bundle", str(tmp_path / "x.py")],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "already a bundle" in again.stderr


def _tflite_runtime_python():
    path = os.environ.get(TFLITE_RUNTIME_PYTHON)
    if not path:
        default = ROOT / ".venv-tflite" / "bin" / "python"
        path = str(default) if default.exists() else None
    if path is None:
        reason = (f"no tflite-runtime virtual environment: set {TFLITE_RUNTIME_PYTHON} to the "
                  "Python of a venv with `pip install tflite-runtime==2.14.0 'numpy<2'` "
                  "(.ci/run makes .venv-tflite)")
        if os.environ.get("CI"):
            pytest.fail(reason + "; in CI it must exist")
        pytest.skip(reason)
    return path


def test_server_runs_under_tflite_runtime_with_numpy_1(tmp_path, tflite):
    python = _tflite_runtime_python()
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u, numpy, tflite_runtime; "
                       "print(numpy.__version__, tflite_runtime.__version__, "
                       "u.find_spec('ai_edge_litert') is None, u.find_spec('keras_nas') is None)"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    numpy_version, runtime_version, no_litert, no_keras_nas = probe.stdout.split()
    assert int(numpy_version.split(".")[0]) < 2
    assert no_litert == "True" and no_keras_nas == "True"  # only what a device would have
    # As on a device: one bundled file, alone in its folder, run by that Python.
    bundle = tmp_path / "litert_server_device.py"
    subprocess.run([sys.executable, str(SERVER), "--bundle", str(bundle)], check=True,
                   capture_output=True, timeout=60)
    proc, url = _start(python=python, server=bundle, cwd=tmp_path)
    try:
        device = RemoteDevice(url, timeout=120)
        assert device.health()["runtime"] == f"tflite_runtime {runtime_version}"
        assert device.fingerprint()["runtime"] == f"tflite_runtime {runtime_version}"
        calibration = hardware.calibrate_reference(device, seconds=1.0, cache=False)
        assert calibration.runtime.startswith("tflite_runtime") and calibration.median_ms > 0
        stats = measure_latency(tflite, runs=20, device=device, calibration=calibration)
        assert stats.runtime.startswith("tflite_runtime") and stats.ratio > 0
        assert stats.protocol["name"] == "paired" and stats.reference["name"] == REFERENCE_NAME
        assert stats.median_ms == pytest.approx(stats.ratio * calibration.median_ms)
        single = measure_latency(tflite, runs=5, device=device, protocol="single")
        assert single.runs == 5 and single.runtime.startswith("tflite_runtime")
    finally:
        _stop(proc)
