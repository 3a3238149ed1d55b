#!/usr/bin/env python3
"""A latency server for a device: receives a .tflite over HTTP, times it, answers JSON.

It needs only the Python standard library, numpy and a TFLite runtime (`ai_edge_litert`,
or `tflite_runtime`), so it runs on a phone-class or single-board device with no TensorFlow.
keras-nas's client is `keras_nas.hardware.RemoteDevice`.

    python litert_server.py [--host 127.0.0.1] [--port 8765] [--token SECRET]
                            [--max-bytes 67108864] [--queue-timeout 60]
    python litert_server.py --bundle litert_server_device.py   # one file for a device

The timing protocol is keras-nas's own, written once in `keras_nas/hardware/_runner.py`
(the file `measure_latency` runs locally). This server loads it from, in order: the copy
embedded by `--bundle`; `keras_nas_timing.py` beside this file; the keras-nas checkout
this file sits in (`../keras_nas/hardware/_runner.py`). To put a server on a device, run
`--bundle` in a checkout and copy the one file it writes.

The token may also come from the LITERT_SERVER_TOKEN environment variable (it is then not
visible in the process list). It binds to 127.0.0.1 unless `--host` says otherwise; to
serve a LAN, give `--host 0.0.0.0` and a token.

Endpoints:
    GET  /health   -> 200 {"status": "ok", "runtime": ..., "busy": bool, "max_bytes": int,
                           "fingerprint": {...}, "protocols": [...], "protocol_version": int}
    POST /measure?runs=50&warmup=10&threads=1&xnnpack=1&protocol=single, body = the .tflite
                   -> 200 {"median_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "runs",
                           "warmup", "threads", "xnnpack", "runtime", "size_bytes",
                           "times_ms", "protocol", "started", "ended"}
    POST /measure?protocol=paired&reference_bytes=N[&quiet_ms=0.09]&runs=..., body = the
         reference .tflite (N bytes) followed by the candidate .tflite
                   -> 200 the paired result: {"ratio", "blocks", "quiet_blocks",
                           "relative_times", "times_ms", "raw_median_ms", ...} and the fields
                           above; with quiet_ms (the reference's calibrated latency on this
                           device) also "latency_ms" = ratio x quiet_ms
    POST /measure?protocol=calibrate&seconds=4, body = the reference .tflite
                   -> 200 {"median_ms", "blocks", "quiet_blocks", ...}
`protocol` defaults to "paired" when reference_bytes is given, else "single".
Errors answer {"error": message} with: 400 bad query or a body that is not a TFLite
flatbuffer (no "TFL3" identifier at bytes 4..8), 401 missing or wrong token,
404 unknown path, 411 no Content-Length, 413 body over --max-bytes, 422 the runtime
cannot load, allocate or run the model, 503 busy, 504 measurement timed out.

One model is measured at a time: a request that arrives during a measurement waits
(in arrival order of lock acquisition) for up to --queue-timeout seconds, then gets 503
with a Retry-After header. Each model is timed in a fresh child process (this file run
with --_measure), so a model that crashes the runtime cannot take the server down and
measurements do not disturb each other.
"""

import argparse
import hmac
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.parse

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
LIMITS = {"runs": (1, 10000), "warmup": (0, 1000), "threads": (1, 64),
          "reference_bytes": (8, DEFAULT_MAX_BYTES), "quiet_ms": (1e-6, 1e6),
          "seconds": (0.5, 120.0), "max_seconds": (0.1, 120.0)}
FLOATS = ("quiet_ms", "seconds", "max_seconds")
PROTOCOLS = ("single", "paired", "calibrate")


# -- the timing protocol (keras_nas/hardware/_runner.py) --------------------------------------
_EMBEDDED_TIMING = None  # `--bundle` writes a copy of this file with the protocol's source here
_TIMING = []


def _load_timing():
    """The timing protocol module: embedded, beside this file, or from the checkout."""
    if _TIMING:
        return _TIMING[0]
    if _EMBEDDED_TIMING is not None:
        module = types.ModuleType("keras_nas_timing")
        module.__file__ = os.path.abspath(__file__)
        exec(compile(_EMBEDDED_TIMING, "<keras_nas_timing, embedded>", "exec"), module.__dict__)
        _TIMING.append(module)
        return module
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, "keras_nas_timing.py"),
                 os.path.join(here, os.pardir, "keras_nas", "hardware", "_runner.py")):
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("keras_nas_timing", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _TIMING.append(module)
            return module
    raise ImportError(
        "the timing protocol (keras_nas/hardware/_runner.py) was not found: run this server "
        "from a keras-nas checkout, copy that file beside it as keras_nas_timing.py, or "
        "write a one-file server with `litert_server.py --bundle OUT.py`")


def _timing_source():
    """The source of keras_nas/hardware/_runner.py, to embed in a bundle."""
    module = _load_timing()
    if _EMBEDDED_TIMING is not None:
        return _EMBEDDED_TIMING
    with open(module.__file__) as f:
        return f.read()


def bundle(path):
    """Writes this server with the timing protocol embedded: one file for a device."""
    if _EMBEDDED_TIMING is not None:
        raise RuntimeError("this file is already a bundle; bundle from a checkout")
    with open(os.path.abspath(__file__)) as f:
        source = f.read()
    marker = "_EMBEDDED_TIMING = " + "None  #"  # split, so that only the assignment matches
    embedded = source.replace(marker, f"_EMBEDDED_TIMING = {_timing_source()!r}  #", 1)
    with open(path, "w") as f:
        f.write(embedded)
    return path


def _child_main():
    """The measuring child: one job on standard input, one JSON line on standard output."""
    try:
        timing = _load_timing()
    except ImportError as e:
        sys.stdout.write(json.dumps({"error": str(e)}) + "\n")
        return 0
    return timing.main()


# -- the server -----------------------------------------------------------------------------
class LatencyServer(http.server.ThreadingHTTPServer):
    """HTTP server that measures one TFLite model at a time."""

    daemon_threads = True

    def __init__(self, address, token=None, max_bytes=DEFAULT_MAX_BYTES, queue_timeout=60.0,
                 measure_timeout=600.0):
        super().__init__(address, Handler)
        self.token = token or None
        self.max_bytes = int(max_bytes)
        self.queue_timeout = float(queue_timeout)
        self.measure_timeout = float(measure_timeout)
        self.measure_lock = threading.Lock()
        self.timing = _load_timing()
        try:
            self.runtime = self.timing.runtime()[2]
        except ImportError:
            self.runtime = None
        self.fingerprint = self.timing.fingerprint(self.runtime) if self.runtime else None

    def measure(self, models, params):
        """Times `models` (the .tflite bytes: [candidate], [reference, candidate] when paired,
        [reference] to calibrate) in a child process; returns (status, answer dict)."""
        if not self.measure_lock.acquire(timeout=self.queue_timeout):
            return 503, {"error": "busy: another model is being measured; retry later"}
        paths = []
        try:
            for data in models:
                fd, path = tempfile.mkstemp(suffix=".tflite")
                paths.append(path)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            job = {key: value for key, value in params.items() if key != "reference_bytes"}
            if params["protocol"] == "single":
                job["models"] = paths
            else:
                job.update(reference=paths[0], models=paths[1:])
            started = time.time()
            try:
                proc = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--_measure"],
                    input=json.dumps(job), capture_output=True, text=True,
                    timeout=self.measure_timeout,
                )
            except subprocess.TimeoutExpired:
                return 504, {"error": f"measurement took longer than {self.measure_timeout}s"}
            ended = time.time()
        finally:
            for path in paths:
                os.unlink(path)
            self.measure_lock.release()
        answer = None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("{"):
                answer = json.loads(line)
                break
        if answer is None:
            return 422, {"error": f"the runtime crashed on this model (exit code {proc.returncode})"}
        if "error" in answer:
            return 500, {"error": f"the measuring process could not run: {answer['error']}"}
        result = answer["results"][0]
        if not result["ok"]:
            return 422, {"error": f"the runtime could not {result['stage']} this model: "
                                  f"{result['error']}"}
        result.update(warmup=params["warmup"], threads=params["threads"],
                      xnnpack=params["xnnpack"], size_bytes=len(models[-1]), started=started,
                      ended=ended)
        if params["protocol"] == "single":
            result.update(self.timing.summarize(result["times_ms"]))
        elif params["protocol"] == "paired" and params.get("quiet_ms"):
            result["latency_ms"] = result["ratio"] * params["quiet_ms"]
        return 200, result


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "litert-server/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one short line per request on stderr
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _answer(self, status, payload, headers=()):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _discard_body(self):
        """Reads and drops a request body of bounded size so the client sees the answer."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return
        if length > 2 * self.server.max_bytes:
            return  # too large to drain; the connection is closed after the answer
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _authorized(self):
        token = self.server.token
        if token is None:
            return True
        got = self.headers.get("Authorization", "")
        return got.startswith("Bearer ") and hmac.compare_digest(
            got[len("Bearer "):].encode(), token.encode()
        )

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/health":
            return self._answer(404, {"error": f"unknown path {path!r}; use GET /health or POST /measure"})
        self._answer(200, {"status": "ok", "runtime": self.server.runtime,
                           "busy": self.server.measure_lock.locked(),
                           "max_bytes": self.server.max_bytes,
                           "fingerprint": self.server.fingerprint,
                           "protocols": list(PROTOCOLS),
                           "protocol_version": self.server.timing.PROTOCOL_VERSION})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/measure":
            return self._answer(404, {"error": f"unknown path {url.path!r}; use POST /measure"})
        if not self._authorized():
            self._discard_body()
            return self._answer(401, {"error": "missing or wrong token (Authorization: Bearer TOKEN)"},
                                [("WWW-Authenticate", "Bearer")])
        length = self.headers.get("Content-Length")
        if length is None:
            return self._answer(411, {"error": "Content-Length is required"})
        try:
            length = int(length)
            if length < 0:
                raise ValueError
        except ValueError:
            return self._answer(400, {"error": "Content-Length must be a non-negative integer"})
        if length > self.server.max_bytes:
            self._discard_body()
            return self._answer(413, {"error": f"body of {length} bytes is over the limit of "
                                               f"{self.server.max_bytes} bytes"})
        try:
            params = self._params(urllib.parse.parse_qs(url.query, keep_blank_values=True))
        except ValueError as e:
            self._discard_body()
            return self._answer(400, {"error": str(e)})
        data = self.rfile.read(length)
        if len(data) != length:
            return self._answer(400, {"error": "body shorter than Content-Length"})
        if params["protocol"] == "paired":
            split = params["reference_bytes"]
            if split >= len(data):
                return self._answer(400, {"error": f"reference_bytes={split} leaves no candidate "
                                                   f"model in a body of {len(data)} bytes"})
            models = [data[:split], data[split:]]
        else:
            models = [data]
        for name, model in zip(("the reference", "the model")[-len(models):], models):
            if model[4:8] != b"TFL3":
                return self._answer(400, {"error": f"the body ({name}) is not a TFLite flatbuffer "
                                                   "(no 'TFL3' identifier at bytes 4..8)"})
        if self.server.runtime is None:
            return self._answer(500, {"error": "no TFLite runtime is installed on the server"})
        status, answer = self.server.measure(models, params)
        headers = [("Retry-After", "5")] if status == 503 else []
        self._answer(status, answer, headers)

    @staticmethod
    def _params(query):
        params = {"runs": 50, "warmup": 10, "threads": 1, "xnnpack": True}
        for key, values in query.items():
            value = values[-1]
            if key == "protocol":
                if value not in PROTOCOLS:
                    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {value!r}")
                params[key] = value
                continue
            if key == "xnnpack":
                if value.lower() not in ("0", "1", "true", "false"):
                    raise ValueError(f"xnnpack must be 0/1/true/false, got {value!r}")
                params[key] = value.lower() in ("1", "true")
                continue
            if key not in LIMITS:
                raise ValueError(f"unknown query parameter {key!r}; expected runs, warmup, "
                                 "threads, xnnpack, protocol, reference_bytes, quiet_ms, "
                                 "seconds or max_seconds")
            kind = float if key in FLOATS else int
            try:
                number = kind(value)
            except ValueError:
                raise ValueError(f"{key} must be {'a number' if kind is float else 'an integer'}, "
                                 f"got {value!r}") from None
            low, high = LIMITS[key]
            if not low <= number <= high:
                raise ValueError(f"{key} must be between {low} and {high}, got {number}")
            params[key] = number
        params.setdefault("protocol", "paired" if "reference_bytes" in params else "single")
        if params["protocol"] == "paired" and "reference_bytes" not in params:
            raise ValueError("protocol=paired needs reference_bytes=N: the body is the reference "
                             "model (N bytes) followed by the candidate")
        if params["protocol"] != "paired" and "reference_bytes" in params:
            raise ValueError(f"reference_bytes is for protocol=paired, not {params['protocol']}")
        return params


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_measure":
        return _child_main()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument("--token", default=os.environ.get("LITERT_SERVER_TOKEN"),
                        help="require 'Authorization: Bearer TOKEN' (or LITERT_SERVER_TOKEN)")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="largest accepted model in bytes")
    parser.add_argument("--queue-timeout", type=float, default=60.0,
                        help="seconds a request waits for the measurement lock before 503")
    parser.add_argument("--measure-timeout", type=float, default=600.0,
                        help="seconds one measurement may take before 504")
    parser.add_argument("--bundle", metavar="OUT.py",
                        help="write this server with the timing protocol embedded (one file "
                             "to copy to a device) and exit")
    args = parser.parse_args(argv)
    if args.bundle:
        try:
            print(f"wrote {bundle(args.bundle)}")
        except (ImportError, RuntimeError, OSError) as e:
            parser.error(f"--bundle: {e}")
        return 0
    if args.max_bytes < 8:
        parser.error("--max-bytes must be at least 8")
    try:
        _load_timing()
    except ImportError as e:
        parser.error(str(e))
    server = LatencyServer((args.host, args.port), token=args.token, max_bytes=args.max_bytes,
                           queue_timeout=args.queue_timeout, measure_timeout=args.measure_timeout)
    host, port = server.server_address[:2]
    print(f"litert_server listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
