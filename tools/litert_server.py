#!/usr/bin/env python3
"""A latency server for a device: receives a .tflite over HTTP, times it, answers JSON.

It needs only the Python standard library, numpy and a TFLite runtime (`ai_edge_litert`,
or `tflite_runtime`), so it runs on a phone-class or single-board device with no TensorFlow.
keras-nas's client is `keras_nas.hardware.RemoteDevice`.

    python litert_server.py [--host 127.0.0.1] [--port 8765] [--token SECRET]
                            [--max-bytes 67108864] [--queue-timeout 60]

The token may also come from the LITERT_SERVER_TOKEN environment variable (it is then not
visible in the process list). It binds to 127.0.0.1 unless `--host` says otherwise; to
serve a LAN, give `--host 0.0.0.0` and a token.

Endpoints:
    GET  /health   -> 200 {"status": "ok", "runtime": ..., "busy": bool, "max_bytes": int}
    POST /measure?runs=50&warmup=10&threads=1&xnnpack=1, body = the .tflite bytes
                   -> 200 {"median_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "runs",
                           "warmup", "threads", "xnnpack", "runtime", "size_bytes",
                           "times_ms", "started", "ended"}
Errors answer {"error": message} with: 400 bad query or body that is not a TFLite
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
import gc
import hmac
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
LIMITS = {"runs": (1, 10000), "warmup": (0, 1000), "threads": (1, 64)}


# -- the measuring child ----------------------------------------------------------------
def _runtime():
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        import ai_edge_litert as mod
    except ImportError:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
        import tflite_runtime as mod
    return Interpreter, OpResolverType, f"{mod.__name__} {getattr(mod, '__version__', '?')}"


def time_model(path, runs, warmup, threads, xnnpack):
    """Loads the model at `path`, allocates it for batch 1 and times `runs` invocations."""
    import numpy as np

    Interpreter, OpResolverType, runtime = _runtime()
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
        return {"ok": False, "stage": "allocate", "error": f"{type(e).__name__}: {e}"}
    try:
        rng = np.random.default_rng(0)
        for d, shape in zip(interp.get_input_details(), shapes):
            if np.issubdtype(d["dtype"], np.integer):
                info = np.iinfo(d["dtype"])
                value = rng.integers(info.min, info.max, size=shape, endpoint=True)
            elif d["dtype"] == np.bool_:
                value = rng.integers(0, 1, size=shape, endpoint=True)
            else:
                value = rng.standard_normal(shape)
            interp.set_tensor(d["index"], value.astype(d["dtype"]))
        for _ in range(warmup):
            interp.invoke()
        times = []
        gc.disable()
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            interp.invoke()
            times.append((time.perf_counter_ns() - t0) / 1e6)
        gc.enable()
    except Exception as e:
        return {"ok": False, "stage": "invoke", "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "times_ms": times, "runtime": runtime}


def _child_main(argv):
    path, runs, warmup, threads, xnnpack = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4] == "1"
    try:
        result = time_model(path, runs, warmup, threads, xnnpack)
    except Exception as e:
        result = {"ok": False, "stage": "runtime", "error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def summarize(times):
    """Median, p90 (linear interpolation), mean, population std and min of a list of times."""
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
        try:
            self.runtime = _runtime()[2]
        except ImportError:
            self.runtime = None

    def measure(self, data, runs, warmup, threads, xnnpack):
        """Times `data` in a child process; returns (status, answer dict)."""
        if not self.measure_lock.acquire(timeout=self.queue_timeout):
            return 503, {"error": "busy: another model is being measured; retry later"}
        try:
            fd, path = tempfile.mkstemp(suffix=".tflite")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                started = time.time()
                try:
                    proc = subprocess.run(
                        [sys.executable, os.path.abspath(__file__), "--_measure", path,
                         str(runs), str(warmup), str(threads), "1" if xnnpack else "0"],
                        capture_output=True, text=True, timeout=self.measure_timeout,
                    )
                except subprocess.TimeoutExpired:
                    return 504, {"error": f"measurement took longer than {self.measure_timeout}s"}
                ended = time.time()
            finally:
                os.unlink(path)
        finally:
            self.measure_lock.release()
        result = None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("{"):
                result = json.loads(line)
                break
        if result is None:
            return 422, {"error": f"the runtime crashed on this model (exit code {proc.returncode})"}
        if not result["ok"]:
            return 422, {"error": f"the runtime could not {result['stage']} this model: "
                                  f"{result['error']}"}
        answer = summarize(result["times_ms"])
        answer.update(runs=runs, warmup=warmup, threads=threads, xnnpack=xnnpack,
                      runtime=result["runtime"], size_bytes=len(data),
                      times_ms=result["times_ms"], started=started, ended=ended)
        return 200, answer


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
                           "max_bytes": self.server.max_bytes})

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
        if data[4:8] != b"TFL3":
            return self._answer(400, {"error": "the body is not a TFLite flatbuffer "
                                               "(no 'TFL3' identifier at bytes 4..8)"})
        if self.server.runtime is None:
            return self._answer(500, {"error": "no TFLite runtime is installed on the server"})
        status, answer = self.server.measure(data, **params)
        headers = [("Retry-After", "5")] if status == 503 else []
        self._answer(status, answer, headers)

    @staticmethod
    def _params(query):
        params = {"runs": 50, "warmup": 10, "threads": 1, "xnnpack": True}
        for key, values in query.items():
            if key not in params:
                raise ValueError(f"unknown query parameter {key!r}; expected runs, warmup, "
                                 "threads or xnnpack")
            value = values[-1]
            if key == "xnnpack":
                if value.lower() not in ("0", "1", "true", "false"):
                    raise ValueError(f"xnnpack must be 0/1/true/false, got {value!r}")
                params[key] = value.lower() in ("1", "true")
                continue
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"{key} must be an integer, got {value!r}") from None
            low, high = LIMITS[key]
            if not low <= number <= high:
                raise ValueError(f"{key} must be between {low} and {high}, got {number}")
            params[key] = number
        return params


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_measure":
        return _child_main(argv[1:])
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
    args = parser.parse_args(argv)
    if args.max_bytes < 8:
        parser.error("--max-bytes must be at least 8")
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
