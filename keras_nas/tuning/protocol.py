"""What a parallel search's chief and workers say to each other, beside KerasTuner's oracle calls.

KerasTuner's gRPC oracle service carries the trials (create, update, end). A worker also needs
the search's settings and data, the chief's deadline, and a place for each trial's checkpoint
and timings; those travel as the methods of a second gRPC service, `keras_nas.Chief`, on the
same server, in plain bytes:

- `Spec`: the pickled worker settings (the space, objective, epochs...; see
  `Search._worker_spec`);
- `Data`: the training and validation arrays as `.npz` bytes, streamed in chunks;
- `Beat`: the heartbeat, `{"worker": id}` -> `{"search_deadline": t or null}` as JSON;
- `PutFile` / `GetFile`: a file of a trial's folder at the chief (its checkpoint, its timings).

Every call, KerasTuner's included, carries the search's token in the `keras-nas-token`
metadata, and the chief refuses calls without it (`TokenCheck`).

```python
link = ChiefLink("127.0.0.1:7000", token)
spec = link.spec()           # raises ChiefUnreachable with one line when it cannot
```
"""

import collections
import hmac
import io
import ipaddress
import json
import pickle
import struct

import grpc

SERVICE = "keras_nas.Chief"
TOKEN_HEADER = "keras-nas-token"
#: The environment variable a worker reads its token from (so it is not on a command line).
TOKEN_ENV = "KERAS_NAS_TOKEN"
#: Bytes per `Data` message.
CHUNK_BYTES = 1 << 20
#: The largest message either side accepts (a spec with a latency predictor, a checkpoint).
MAX_MESSAGE_BYTES = 512 << 20
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
#: Seconds a worker waits for the chief to answer its first call.
CONNECT_TIMEOUT_S = 30.0
#: Seconds any later call of the keras-nas service may take.
CALL_TIMEOUT_S = 60.0


def is_loopback(host):
    """True for an address only this machine can reach (`127.0.0.1`, `::1`, `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(listen, token):
    """`(host, port)` of `listen` ("HOST:PORT"; port 0: any free one), or a ValueError; a
    chief that listens beyond loopback needs a `token`."""
    if not isinstance(listen, str) or ":" not in listen:
        raise ValueError(f"`listen` must be 'HOST:PORT' (e.g. '0.0.0.0:7000'), got {listen!r}.")
    host, port = listen.rsplit(":", 1)
    if not port.isdigit() or int(port) > 65535 or not host:
        raise ValueError(f"`listen` must be 'HOST:PORT' with a port 0-65535, got {listen!r}.")
    if not is_loopback(host) and not token:
        raise ValueError(f"`listen`={listen!r} reaches beyond this machine: give a `token` "
                         "(a secret string the workers present) too.")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError(f"`token` must be a non-empty string, got {token!r}.")
    return host, int(port)


class ChiefUnreachable(RuntimeError):
    """The chief does not answer, or refuses this worker (the message is one line)."""


def encode_file(trial_id, name, content=b""):
    """A `PutFile` / `GetFile` request: a JSON header, then the file's bytes."""
    header = json.dumps({"trial_id": trial_id, "name": name}).encode()
    return struct.pack(">I", len(header)) + header + content


def decode_file(message):
    """`(trial_id, name, content)` of an `encode_file` message."""
    (size,) = struct.unpack(">I", message[:4])
    header = json.loads(message[4:4 + size])
    return str(header["trial_id"]), str(header["name"]), message[4 + size:]


def arrays_to_bytes(**arrays):
    buffer = io.BytesIO()
    import numpy as np

    np.savez(buffer, **arrays)
    return buffer.getvalue()


def bytes_to_arrays(content):
    import numpy as np

    with np.load(io.BytesIO(content)) as arrays:
        return {name: arrays[name] for name in arrays.files}


class TokenCheck(grpc.ServerInterceptor):
    """Refuses every call whose `keras-nas-token` metadata is not the search's token."""

    def __init__(self, token):
        self.token = token.encode()

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "wrong or missing keras-nas token")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        given = dict(handler_call_details.invocation_metadata or ()).get(TOKEN_HEADER, "")
        if hmac.compare_digest(str(given).encode(), self.token):
            return continuation(handler_call_details)
        return self._deny_stream if handler_call_details.method.endswith("/Data") else (
            self._deny_unary)


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class _TokenHeader(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the token to every call of a channel."""

    def __init__(self, token):
        self.metadata = ((TOKEN_HEADER, token),)

    def _with_token(self, details):
        return _CallDetails(details.method, details.timeout,
                            tuple(details.metadata or ()) + self.metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


class ChiefLink:
    """A worker's connection to its chief: a gRPC channel that carries the token, for
    KerasTuner's oracle calls and the `keras_nas.Chief` methods.

    Args:
        address: `"host:port"` of the chief.
        token: the search's token.
    """

    def __init__(self, address, token):
        self.address = address
        self.channel = grpc.intercept_channel(
            grpc.insecure_channel(address, options=CHANNEL_OPTIONS), _TokenHeader(token))

    def _call(self, method, request=b"", timeout=CALL_TIMEOUT_S, stream=False):
        path = f"/{SERVICE}/{method}"
        try:
            if stream:
                return b"".join(self.channel.unary_stream(path)(
                    request, timeout=timeout, wait_for_ready=True))
            return self.channel.unary_unary(path)(request, timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as e:
            raise ChiefUnreachable(_one_line(self.address, e)) from None

    def spec(self, timeout=CONNECT_TIMEOUT_S):
        """The worker settings (waits up to `timeout` seconds for the chief to answer)."""
        return pickle.loads(self._call("Spec", timeout=timeout))

    def data(self):
        """`(x, y), (x_val, y_val)` as the chief holds them."""
        arrays = bytes_to_arrays(self._call("Data", stream=True))
        return (arrays["x"], arrays["y"]), (arrays["x_val"], arrays["y_val"])

    def beat(self, worker_id, timeout=CALL_TIMEOUT_S):
        """Tells the chief this worker lives; returns its search deadline (None: none)."""
        answer = self._call("Beat", json.dumps({"worker": worker_id}).encode(), timeout=timeout)
        return json.loads(answer).get("search_deadline")

    def put_file(self, trial_id, name, content):
        self._call("PutFile", encode_file(trial_id, name, content))

    def get_file(self, trial_id, name):
        """The file's bytes at the chief, or None if it has none."""
        content = self._call("GetFile", encode_file(trial_id, name))
        return content or None


def _one_line(address, error):
    code = error.code() if hasattr(error, "code") else None
    detail = (error.details() if hasattr(error, "details") else None) or str(error)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"the chief at {address} refused this worker: {detail} (check --token)"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return f"cannot reach the chief at {address} ({code.name.lower()})"
    return f"the chief at {address} answered with an error: {detail.splitlines()[0]}"
