"""Outbound HTTP for actions, through the host.

The sandbox has no sockets. Each request goes to the host whole, through the shim's
``_vivarium.host_call``: the host checks it against the action's allowed hosts, resolves the
name, refuses private addresses, sends it, and hands back the whole response. This module
makes the usual libraries use that path unchanged:

* ``http.client.HTTPConnection`` and ``HTTPSConnection`` are replaced by subclasses whose
  socket collects what ``http.client`` writes and, when the response is read, makes the
  exchange and hands ``http.client`` the response's bytes to parse as it always does;
* ``urllib.request`` therefore opens http and https URLs, follows redirects and raises
  ``URLError``/``HTTPError`` as it always does (each redirect is a new, checked request);
* ``requests`` (and anything else on ``urllib3``) gets connection classes through urllib3's
  ``ConnectionCls`` extension point, installed when ``urllib3.connectionpool`` is imported.

A refused or failed request raises the exception the library raises for a connection that
fails (``ConnectionRefusedError``, ``socket.gaierror``, ``TimeoutError``; ``URLError`` from
urllib; ``requests.ConnectionError``/``ReadTimeout`` from requests), with the host's message
saying which rule refused it and how to allow it. Every such exception is also an
``EgressError`` carrying the ``wasi:http`` error code. TLS is the host's: certificates are
always verified there, and a ``context`` passed here changes nothing.
"""

import http.client
import importlib.abc
import io
import marshal
import socket
import sys

import _vivarium

__all__ = ["EgressError", "HTTPConnection", "HTTPSConnection", "send"]

_OP_HTTP_SEND = 1


class EgressError(OSError):
    """A request the host refused or could not complete; ``code`` is its wasi:http name."""

    code = "internal-error"


class RequestRefused(EgressError, ConnectionRefusedError):
    """The egress policy refused the request (its origin, method, address or budget)."""


class NameNotResolved(EgressError, socket.gaierror):
    """The host name could not be resolved."""


class RequestTimedOut(EgressError, TimeoutError):
    """No connection or no complete response in time."""


class ConnectionFailed(EgressError, ConnectionError):
    """The connection was refused, reset, or its TLS handshake failed."""


# The host classifies each error code (vivarium_egress::FailureClass); each class is raised
# as the exception a library raises for that kind of failed connection.
_CLASSES = {
    "refused": RequestRefused,
    "name_not_resolved": NameNotResolved,
    "timed_out": RequestTimedOut,
    "connection_failed": ConnectionFailed,
}


def _error(code, message, kind):
    error = _CLASSES.get(kind, EgressError)("[vivarium egress] %s: %s" % (code, message))
    error.code = code
    return error


def send(method, url, headers=(), body=b"", timeout=None):
    """Sends one request through the host; returns ``(status, reason, headers, body)`` with
    headers as ``(name, value bytes)`` pairs, or raises an ``EgressError``."""
    for stream in (sys.stdout, sys.stderr):
        # The host places its audit line after what the action logged before the request.
        try:
            stream.flush()
        except Exception:
            pass
    pairs = [(str(name), _as_bytes(value)) for name, value in headers]
    timeout = None if timeout is None else float(timeout)
    request = marshal.dumps((str(method), str(url), pairs, bytes(body), timeout))
    answer = marshal.loads(_vivarium.host_call(_OP_HTTP_SEND, request))
    if answer[0] == "ok":
        return answer[1:]
    raise _error(answer[1], answer[2], answer[3])


def _as_bytes(value):
    if isinstance(value, bytes):
        return value
    return str(value).encode("latin-1")


class _RequestBytes:
    """One HTTP/1.1 request as ``http.client`` wrote it, taken apart."""

    def __init__(self, raw):
        head, _, rest = bytes(raw).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.method, self.target, _ = lines[0].decode("latin-1").split(" ", 2)
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers.append((name.decode("latin-1").strip(), value.strip()))
        names = {name.lower(): value for name, value in self.headers}
        if names.get("transfer-encoding", b"").lower() == b"chunked":
            self.body = _dechunk(rest)
        elif "content-length" in names:
            self.body = rest[: int(names["content-length"])]
        else:
            self.body = rest


def _dechunk(data):
    body = bytearray()
    at = 0
    while True:
        end = data.index(b"\r\n", at)
        size = int(data[at:end].split(b";")[0], 16)
        at = end + 2
        if size == 0:
            return bytes(body)
        body += data[at : at + size]
        at += size + 2


def _response_bytes(method, status, reason, headers, body):
    lines = ["HTTP/1.1 %d %s" % (status, reason)]
    keep_length = method == "HEAD"
    for name, value in headers:
        if name.lower() == "content-length" and not keep_length:
            continue
        lines.append("%s: %s" % (name, value.decode("latin-1")))
    if not keep_length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _ExchangeSocket:
    """Stands in for a connection's socket: collects the request bytes written to it, and
    makes the exchange when the response is read (or when asked to, right after a request)."""

    def __init__(self, scheme, host, port, timeout):
        self._origin = "%s://%s:%d" % (scheme, "[%s]" % host if ":" in host else host, port)
        self._sent = bytearray()
        self._answer = None
        self._timeout = timeout if isinstance(timeout, (int, float)) else None

    def sendall(self, data):
        self._sent += data

    def send(self, data):
        self._sent += data
        return len(data)

    def exchange(self):
        """Sends what was written so far as one request and keeps the response."""
        if not self._sent:
            return
        request = _RequestBytes(self._sent)
        self._sent = bytearray()
        url = request.target
        if not (url.startswith("http://") or url.startswith("https://")):
            url = self._origin + url
        status, reason, headers, body = send(
            request.method, url, request.headers, request.body, self._timeout
        )
        self._answer = _response_bytes(request.method, status, reason, headers, body)

    def makefile(self, mode="rb", *args, **kwargs):
        if "r" not in mode:
            raise io.UnsupportedOperation("the request is written with sendall")
        if self._answer is None:
            self.exchange()
        answer, self._answer = self._answer or b"", None
        return io.BytesIO(answer)

    def settimeout(self, timeout):
        self._timeout = timeout

    def gettimeout(self):
        return self._timeout

    def setsockopt(self, *args):
        pass

    def shutdown(self, how):
        pass

    def close(self):
        pass


_SocketHTTPConnection = http.client.HTTPConnection


class HTTPConnection(_SocketHTTPConnection):
    """``http.client.HTTPConnection`` over the host: proxies and tunnels are ignored (the
    request goes to its own origin, checked by the host)."""

    _scheme = "http"

    def connect(self):
        host, port = self.host, self.port
        if self._tunnel_host:
            host, port = self._tunnel_host, self._tunnel_port or self.default_port
        self.sock = _ExchangeSocket(self._scheme, host, port, self.timeout)

    def request(self, *args, **kwargs):
        super().request(*args, **kwargs)
        # The exchange is made here, so that a refusal is raised where a failed connection
        # would be (urllib turns it into URLError).
        self.sock.exchange()


class HTTPSConnection(HTTPConnection):
    """``http.client.HTTPSConnection`` over the host; the host verifies the certificate."""

    default_port = http.client.HTTPS_PORT
    _scheme = "https"

    def __init__(self, host, port=None, *, context=None, **kwargs):
        super().__init__(host, port, **kwargs)


def _create_https_context(http_version, *args, **kwargs):
    """What ``urllib.request.HTTPSHandler`` asks ``http.client`` for: TLS is the host's."""
    return None


http.client.HTTPConnection = HTTPConnection
http.client.HTTPSConnection = HTTPSConnection
http.client._create_https_context = _create_https_context
if "HTTPSConnection" not in http.client.__all__:
    http.client.__all__.append("HTTPSConnection")


# TLS options urllib3's HTTPS pool passes to its connection class; the host verifies TLS.
_TLS_OPTIONS = (
    "key_file",
    "cert_file",
    "key_password",
    "cert_reqs",
    "ca_certs",
    "ca_cert_dir",
    "ca_cert_data",
    "assert_hostname",
    "assert_fingerprint",
    "ssl_version",
    "ssl_minimum_version",
    "ssl_maximum_version",
    "ssl_context",
    "server_hostname",
)


def _urllib3_connections(connection_module):
    """Connection classes for urllib3, made from its own: its request and response
    handling, over the exchange socket."""

    class Urllib3HTTPConnection(connection_module.HTTPConnection):
        _scheme = "http"
        is_verified = False
        proxy_is_verified = None

        def __init__(self, host, port=None, **kwargs):
            for option in _TLS_OPTIONS:
                kwargs.pop(option, None)
            super().__init__(host, port, **kwargs)

        def connect(self):
            self.sock = _ExchangeSocket(self._scheme, self.host, self.port, self.timeout)

        def set_cert(self, *args, **kwargs):
            pass

        @property
        def is_connected(self):
            return self.sock is not None

        @property
        def has_connected_to_proxy(self):
            return False

    class Urllib3HTTPSConnection(Urllib3HTTPConnection):
        default_port = 443
        _scheme = "https"
        is_verified = True

    return Urllib3HTTPConnection, Urllib3HTTPSConnection


def _install_in_urllib3(pool_module):
    import urllib3.connection

    plain, tls = _urllib3_connections(urllib3.connection)
    pool_module.HTTPConnectionPool.ConnectionCls = plain
    pool_module.HTTPSConnectionPool.ConnectionCls = tls


class _Urllib3Hook(importlib.abc.MetaPathFinder):
    """Installs the urllib3 connection classes as soon as ``urllib3.connectionpool`` is
    executed, whichever finder loads it (the dependency layer's, usually)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "urllib3.connectionpool":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _install_in_urllib3(module)


sys.meta_path.insert(0, _Urllib3Hook())

import urllib.request  # noqa: E402  (after HTTPSConnection exists, so HTTPSHandler does)
