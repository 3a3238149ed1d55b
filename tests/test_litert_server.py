"""tools/litert_server.py on loopback: answers, errors, and one measurement at a time."""

import http.client
import json
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

SERVER = Path(__file__).resolve().parents[1] / "tools" / "litert_server.py"
TOKEN = "s3cret-token"


def _start(*args):
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
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


def test_health_and_measure(server, tflite):
    h = _healthy(server)
    assert h["status"] == "ok" and h["busy"] is False and h["max_bytes"] == 200000
    status, answer = _post(server, tflite, query="runs=7&warmup=2&threads=1&xnnpack=0")
    assert status == 200
    assert answer["runs"] == 7 and len(answer["times_ms"]) == 7
    assert answer["warmup"] == 2 and answer["threads"] == 1 and answer["xnnpack"] is False
    assert answer["min_ms"] <= answer["median_ms"] <= answer["p90_ms"]
    assert answer["size_bytes"] == len(tflite)


def test_remote_device_client(server, tflite):
    device = RemoteDevice(server, token=TOKEN, timeout=60)
    assert device.health()["status"] == "ok"
    stats = device.measure(tflite, runs=6, warmup=1, threads=1)
    assert stats.runs == 6 and stats.device == server and stats.size_bytes == len(tflite)
    stats = measure_latency(tflite, runs=4, warmup=0, device=device)
    assert stats.runs == 4 and stats.device == server and stats.wall_s > 0
    with pytest.raises(RemoteDeviceError) as e:
        RemoteDevice(server, token="wrong").measure(tflite, runs=1)
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
