"""Client of `tools/litert_server.py`: measure latency on another device over HTTP."""

import json
import urllib.error
import urllib.parse
import urllib.request

from keras_nas.hardware.export import is_tflite
from keras_nas.hardware.latency import (
    PROTOCOLS,
    _calibration_for,
    reference_tflite,
    stats_from_result,
)


class RemoteDeviceError(RuntimeError):
    """The latency server answered with an error; `status` is the HTTP status (or None)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class RemoteDevice:
    """A device running `tools/litert_server.py`, used as `measure_latency(..., device=...)`.

    The server runs the same timing protocol as a local measurement (paired with the
    reference model by default; the client sends the reference with each model) and the
    reference is calibrated on the device itself (`calibrate_reference(device)`, cached by
    the device's fingerprint from `/health`).

    Args:
        url: base URL of the server, e.g. `"http://192.168.1.20:8765"`.
        token: the server's token, sent as `Authorization: Bearer TOKEN`, or `None`.
        timeout: seconds to wait for one answer (queueing behind other requests included).
        name: a label for reports; defaults to the URL.

    Example:

    ```python
    phone = keras_nas.hardware.RemoteDevice("http://127.0.0.1:8765", token="s3cret")
    stats = keras_nas.hardware.measure_latency(model, device=phone)
    ```
    """

    def __init__(self, url, token=None, timeout=300.0, name=None):
        if not isinstance(url, str):
            raise TypeError(f"`url` must be a string like 'http://host:port', got {type(url).__name__}.")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"`url` must be an http(s) URL like 'http://host:port', got {url!r}.")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("`token` must be a non-empty string or None.")
        if not float(timeout) > 0:
            raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}.")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = float(timeout)
        self.name = name or self.url
        self._fingerprint = None

    def __repr__(self):
        return f"RemoteDevice({self.url!r})"

    def _request(self, method, path, data=None):
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read().decode()).get("error", "")
            except (ValueError, OSError):
                message = ""
            raise RemoteDeviceError(
                f"{self.url} answered {e.code} {e.reason}: {message}", status=e.code
            ) from None
        except (urllib.error.URLError, OSError) as e:
            raise RemoteDeviceError(f"Could not reach the latency server at {self.url}: {e}") from e

    def health(self):
        """The server's `/health` answer as a dict. Example: `device.health()["runtime"]`."""
        return self._request("GET", "/health")

    def fingerprint(self):
        """What identifies the device for a calibration (host, CPU, cores, runtime).

        From the server's `/health`; a server too old to tell is identified by its URL.

        Example: `device.fingerprint()["runtime"]`.
        """
        if self._fingerprint is None:
            health = self.health()
            self._fingerprint = health.get("fingerprint") or {
                "url": self.url, "runtime": health.get("runtime")}
        return self._fingerprint

    def calibrate(self, seconds=4.0, threads=1, xnnpack=True):
        """Times the reference model alone on the device; the protocol's raw answer (a dict).

        Use `keras_nas.hardware.calibrate_reference(device)`, which caches the result.

        Example: `device.calibrate(seconds=2)["median_ms"]`.
        """
        query = urllib.parse.urlencode({"protocol": "calibrate", "seconds": float(seconds),
                                        "threads": int(threads), "xnnpack": 1 if xnnpack else 0})
        return self._request("POST", "/measure?" + query, data=reference_tflite())

    def measure(self, tflite_bytes, runs=50, warmup=10, threads=1, xnnpack=True,
                protocol="paired", calibration=None, max_seconds=None):
        """Sends a `.tflite` to the server and returns its `LatencyStats` (device = name).

        With `protocol="paired"` the reference model travels in the same request (its bytes
        first, `reference_bytes=N` in the query) and the server times the two interleaved.

        Args:
            tflite_bytes: the model flatbuffer.
            runs, warmup, threads, xnnpack, protocol, calibration, max_seconds: as for
                `measure_latency`.

        Example: `device.measure(data, runs=50).median_ms`.
        """
        if not is_tflite(tflite_bytes):
            raise ValueError("`tflite_bytes` is not a TFLite flatbuffer (no 'TFL3' identifier).")
        if protocol not in PROTOCOLS:
            raise ValueError(f"`protocol` must be one of {PROTOCOLS}, got {protocol!r}.")
        params = {"runs": int(runs), "warmup": int(warmup), "threads": int(threads),
                  "xnnpack": 1 if xnnpack else 0, "protocol": protocol}
        body = bytes(tflite_bytes)
        if protocol == "paired":
            calibration = _calibration_for(calibration, self, int(threads), xnnpack)
            reference = reference_tflite()
            params.update(reference_bytes=len(reference), quiet_ms=calibration.median_ms)
            if max_seconds is not None:
                params["max_seconds"] = float(max_seconds)
            body = reference + body
        answer = self._request("POST", "/measure?" + urllib.parse.urlencode(params), data=body)
        answer.setdefault("ok", True)
        if protocol == "paired" and "ratio" not in answer:
            raise RemoteDeviceError(
                f"{self.url} answered without a paired result: the server predates the paired "
                "protocol; update tools/litert_server.py on the device or pass protocol='single'.")
        return stats_from_result(
            answer, calibration, threads=int(answer["threads"]),
            xnnpack=bool(answer["xnnpack"]), warmup=int(answer["warmup"]), device=self.name,
            size_bytes=int(answer.get("size_bytes", len(tflite_bytes))))
