"""The HTTP door of a master or an agent: a small server beside the actor system, in
the same process, that answers operators in Mesos' shapes.

It holds no state of the cluster: every answer is read from the kernel actors through
the same door as any other client (a Thespian external context, signed where the cluster
signs), so the actors stay sans-I/O.  What it adds is what a door must have: who is
asking (HTTP Basic with a principal and its secret from the cluster's secrets file, or a
bearer token derived from them: :func:`bearer_token`), capped bodies, timed-out slow
clients, JSON errors for everything refused, optional TLS.  docs/operators.md describes
the endpoints; docs/security.md who may read what.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("impresario.http")

#: The largest request body accepted (anything larger: 413).
MAX_BODY = 1 * 2**20
#: Seconds a client may take to send its request (and between requests on a kept-alive
#: connection) before the connection is closed.
CLIENT_TIMEOUT = 30.0
#: Where bearer tokens come from: HMAC-SHA256(secret, TOKEN_CONTEXT + principal).
TOKEN_CONTEXT = b"impresario-http-token:"


class HttpError(Exception):
    """An answer other than 200, with a reason the client reads in JSON."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: Any
    body: bytes
    principal: str | None
    client: str


@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """A chunked answer: its chunks come as the producer makes them (a file, an event stream)."""

    chunks: Iterator[bytes]
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, separators=(",", ":")).encode(), status)


def bearer_token(principal: str, secret: bytes) -> str:
    """The bearer token of ``principal``: ``PRINCIPAL:HEX`` (``Authorization: Bearer ...``).
    It is as secret as the secret it comes from, and valid as long as that one is."""
    mac = hmac.new(secret, TOKEN_CONTEXT + principal.encode(), hashlib.sha256).hexdigest()
    return f"{principal}:{mac}"


class HttpAuth:
    """Who a request comes from, by the secrets of a credentials object (principal ->
    secret bytes, read at each request so that a secret added later counts at once)."""

    def __init__(self, secrets: dict[str, bytes]) -> None:
        self.secrets = secrets

    def principal(self, header: str | None) -> str:
        """The authenticated principal; HttpError 401 when missing or wrong."""
        challenge = {"WWW-Authenticate": 'Basic realm="impresario"'}
        if not header:
            raise HttpError(401, "authentication required: HTTP Basic (principal:secret) or a bearer token",
                            challenge)
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                text = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise HttpError(401, "malformed Basic credentials", challenge) from None
            principal, sep, secret = text.partition(":")
            known = self.secrets.get(principal)
            if sep and known is not None and hmac.compare_digest(secret.encode(), known):
                return principal
        elif scheme == "bearer":
            principal, sep, _ = value.strip().partition(":")
            known = self.secrets.get(principal)
            if sep and known is not None and hmac.compare_digest(value.strip(), bearer_token(principal, known)):
                return principal
        else:
            raise HttpError(401, f"unsupported authentication scheme {scheme!r}", challenge)
        raise HttpError(401, "wrong credentials", challenge)


Handler = Callable[[Request], "Response | Stream"]


class Door:
    """A threaded HTTP server with routes, authentication, caps and JSON errors.

    ``routes``: path -> handler(request) -> Response.  ``auth``: None keeps the door open
    (every principal None).  ``tls``: (certificate file, key file), or None."""

    def __init__(self, name: str, host: str, port: int, routes: dict[str, Handler], auth: HttpAuth | None = None,
                 tls: tuple[str, str] | None = None, max_body: int = MAX_BODY,
                 client_timeout: float = CLIENT_TIMEOUT) -> None:
        self.name = name
        self.routes = routes
        self.auth = auth
        self.max_body = max_body
        self.served = 0
        self.refused = 0
        door = self

        class Handler(_Handler):
            timeout = client_timeout

            def door(self) -> Door:
                return door

        self.server = _Server((host, port), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[0], tls[1])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
            self.scheme = "https"
        address = self.server.server_address
        self.host, self.port = str(address[0] if isinstance(address[0], str) else address[0].decode()), \
            int(address[1])
        self._thread: threading.Thread | None = None
        self.on_stop: list[Callable[[], None]] = []

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> Door:
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"{self.name}-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=10)
        self.server.server_close()
        for f in self.on_stop:
            f()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False     # a port in use is refused, not shared
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("http: a request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "impresario"
    sys_version = ""

    def door(self) -> Door:   # replaced per server
        raise NotImplementedError

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: " + format, self.client_address[0], *args)

    def setup(self) -> None:
        super().setup()
        handshake = getattr(self.connection, "do_handshake", None)
        if handshake is not None:
            try:
                handshake()
            except (ssl.SSLError, OSError) as e:
                log.info("http: TLS handshake with %s failed: %s", self.client_address[0], e)
                self.close_connection = True
                raise ConnectionAbortedError from None

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, headers too long), in JSON."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"   # answer with a status line and headers all the same
        self._send(Response(json.dumps({"error": message or explain or str(code)}).encode(), code,
                            headers={"Connection": "close"}))
        self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        door = self.door()
        try:
            request = self._request(door, method)
            handler = door.routes.get(request.path)
            if handler is None:
                raise HttpError(404, f"no such endpoint: {request.path}")
            answer = handler(request)
        except HttpError as e:
            door.refused += 1
            answer = Response(json.dumps({"error": e.message}).encode(), e.status, headers=e.headers)
        except Exception as e:  # the door stays up whatever a handler does
            log.exception("http: %s %s failed", method, self.path)
            answer = Response(json.dumps({"error": f"internal error: {type(e).__name__}: {e}"}).encode(), 500)
        door.served += 1
        if isinstance(answer, Response):
            self._send(answer, head=method == "HEAD")
        else:
            self._stream(answer)

    def _request(self, door: Door, method: str) -> Request:
        principal = door.auth.principal(self.headers.get("Authorization")) if door.auth is not None else None
        length_text = self.headers.get("Content-Length")
        body = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HttpError(411, "chunked request bodies are not accepted: send Content-Length")
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                raise HttpError(400, f"bad Content-Length {length_text!r}") from None
            if length < 0:
                raise HttpError(400, f"bad Content-Length {length_text!r}")
            if length > door.max_body:
                self.close_connection = True
                raise HttpError(413, f"the body is larger than {door.max_body} bytes")
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                raise HttpError(400, "the body ended early")
        try:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True,
                                                     strict_parsing=False, max_num_fields=64).items()}
        except ValueError as e:
            raise HttpError(400, f"malformed query string: {e}") from None
        path = parts.path
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        return Request(method, path, params, self.headers, body, principal, self.client_address[0])

    def _send(self, r: Response, head: bool = False) -> None:
        try:
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(r.body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(r.body)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True

    def _stream(self, answer: Stream) -> None:
        """A chunked answer, until the producer or the client ends it."""
        chunks = answer.chunks
        try:
            self.send_response(200)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.end_headers()
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            self.close_connection = True
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


class Readers:
    """A few external contexts of one actor system, lent to request threads one at a time
    (Thespian's ``ActorSystem().private()``), with what each answers coalesced: identical
    reads in flight share one answer, and an answer is reused while it is younger than
    ``max_age`` seconds or ``duty`` times what it took to get, so that a crowd of pollers
    costs the actors one query per window, and a view that takes the master long to render
    (``/state`` of a large cluster) takes at most 1 / (1 + duty) of its time."""

    def __init__(self, make_client: Callable[[], tuple[Any, Callable[[], None]]], size: int = 4,
                 max_age: float = 0.25, duty: float = 5.0) -> None:
        self._make = make_client
        self._idle: queue.LifoQueue[tuple[Any, Callable[[], None]]] = queue.LifoQueue()
        self._made = 0
        self._size = size
        self._lock = threading.Lock()
        self.max_age = max_age
        self.duty = duty
        self._fresh: dict[Any, tuple[float, Any]] = {}   # key -> (reusable until, answer)
        self._flight: dict[Any, threading.Event] = {}
        self.queries = 0
        self.reused = 0

    @contextmanager
    def client(self) -> Iterator[Any]:
        with self._lock:
            make = self._idle.empty() and self._made < self._size
            if make:
                self._made += 1
        if make:
            try:
                lent = self._make()
            except Exception:
                with self._lock:
                    self._made -= 1
                raise
        else:
            lent = self._idle.get()
        try:
            yield lent[0]
        except BaseException:
            lent[1]()   # a context that failed mid-answer may hold a late reply: not lent again
            with self._lock:
                self._made -= 1
            raise
        else:
            self._idle.put(lent)

    def read(self, key: Any, fetch: Callable[[Any], Any]) -> Any:
        """``fetch(client)``'s answer for ``key``, shared as described above."""
        while True:
            with self._lock:
                now = time.monotonic()
                fresh = self._fresh.get(key)
                if fresh is not None and now <= fresh[0]:
                    self.reused += 1
                    return fresh[1]
                flight = self._flight.get(key)
                if flight is None:
                    flight = self._flight[key] = threading.Event()
                    mine = True
                else:
                    mine = False
            if not mine:
                flight.wait(60)
                with self._lock:
                    fresh = self._fresh.get(key)
                if fresh is not None:
                    self.reused += 1
                    return fresh[1]
                continue   # the one in flight failed: try again
            try:
                started = time.monotonic()
                with self.client() as c:
                    self.queries += 1
                    value = fetch(c)
                done = time.monotonic()
                with self._lock:
                    if len(self._fresh) > 256:
                        self._fresh.clear()
                    self._fresh[key] = (done + max(self.max_age, self.duty * (done - started)), value)
                return value
            finally:
                with self._lock:
                    self._flight.pop(key, None)
                flight.set()

    def close(self) -> None:
        while not self._idle.empty():
            _, close = self._idle.get()
            close()
