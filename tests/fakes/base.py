"""FakeServer: a small threaded HTTP(S) server on 127.0.0.1 that the API fakes build on.

Each fake is a route table (method, path regex, handler) plus a `before` hook for the modes that
change every answer (down, quota, ...). Common modes: `good`, `bad_key`, `quota`, `slow`, `down`;
"not listening at all" is `stop()`. Handlers see `req.mode`, a snapshot taken when the request
arrived, so flipping `server.mode` mid-request never gives a half-and-half answer.
"""
from __future__ import annotations

import json
import re
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HOST = "127.0.0.1"
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str                      # without the query string
    query: dict[str, str]          # first value of each parameter, names as sent
    headers: dict[str, str]        # lower-cased names
    body: bytes
    mode: str                      # server mode when the request arrived ("slow" already served as "good")
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route regex

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Query parameter looked up case-insensitively (ASP.NET/Jellyfin binds them that way)."""
        low = name.lower()
        for k, v in self.query.items():
            if k.lower() == low:
                return v
        return default

    def bearer(self) -> str | None:
        """Token of an `Authorization: Bearer X` header, or None."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Handler = Callable[[Request], Reply]
Route = tuple[str, str, Handler]


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(obj).encode(), {"Content-Type": JSON_TYPE, **(headers or {})})


def text_reply(status: int, text: str = "", content_type: str = TEXT_TYPE,
               headers: dict[str, str] | None = None) -> Reply:
    base = {"Content-Type": content_type} if text else {}
    return Reply(status, text.encode(), {**base, **(headers or {})})


def html_reply(status: int, title: str) -> Reply:
    """The HTML error page a CDN / reverse proxy shows during an outage."""
    page = f"<html><head><title>{status} {title}</title></head><body><h1>{title}</h1></body></html>"
    return text_reply(status, page, "text/html; charset=utf-8")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart() binds the same port again right away

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse-DNS lookup that can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (TLS probes, timeouts) are expected in tests; no tracebacks on stderr


class FakeServer:
    """Base of every fake. `FakeServer(port=0, tls=None)`; `start()`, `stop()`, `restart()`, `url`.

    `tls=(certfile, keyfile)` serves HTTPS (see certs.make_self_signed). HTTP/1.0 on purpose: every
    connection closes after one answer, so a pooled client cannot keep talking to a stopped server.
    """

    name = "fake"

    def __init__(self, port: int = 0, tls: tuple[str, str] | None = None) -> None:
        self.port = port
        self.tls = tls
        self.mode = "good"
        self.slow_seconds = 5.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path with query, headers)
        self.request_times: list[float] = []                       # time.time() of each, same order
        self.errors: list[str] = []                                 # handler exceptions (answered 500)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = [(m, re.compile(p), h) for m, p, h in self.routes()]

    # -- to override -------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return []

    def before(self, req: Request) -> Reply | None:
        """Answer for modes that replace every route's answer; None = go on to the route."""
        if req.mode == "down":
            return text_reply(503, "Service Unavailable")
        if req.mode == "quota":
            return text_reply(429, "Too Many Requests", headers={"Retry-After": "10"})
        return None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> FakeServer:
        if self._httpd is not None:
            return self
        self._stopping = threading.Event()
        httpd = _HTTPServer((HOST, self.port), self._handler_class())
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            # Handshake lazily in the handler thread, so a client that never speaks TLS cannot block accept().
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down and close the listening socket: afterwards the port refuses connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in `slow` mode
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart(self) -> FakeServer:
        self.stop()
        return self.start()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.request_times.clear()

    def paths(self) -> list[str]:
        """Paths (with query) requested so far, in order."""
        with self._lock:
            return [p for _, p, _ in self.requests]

    # -- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, req: Request, raw_path: str) -> Reply | None:
        with self._lock:
            self.requests.append((req.method, raw_path, dict(req.headers)))
            self.request_times.append(time.time())
        if req.mode == "slow":
            if self._stopping.wait(self.slow_seconds):
                return None  # stopped while sleeping: hang up without an answer, as a dead server would
            req.mode = "good"
        try:
            reply = self.before(req)
            if reply is not None:
                return reply
            method = "GET" if req.method == "HEAD" else req.method
            path_known = False
            for m, rx, handler in self._routes:
                match = rx.fullmatch(req.path)
                if match is None:
                    continue
                path_known = True
                if m == method:
                    req.params = match.groupdict()
                    return handler(req)
            return text_reply(405 if path_known else 404, "Method Not Allowed" if path_known else "Not Found")
        except Exception as exc:  # a bug in a fake must show up in the test, not hang the client
            with self._lock:
                self.errors.append(f"{req.method} {raw_path}: {exc!r}")
            return text_reply(500, f"fake error: {exc!r}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            server_version = "Fake"
            sys_version = ""
            timeout = 30  # a client that connects and never speaks cannot pin a thread forever

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
                req = Request(
                    method=self.command, path=parts.path,
                    query=dict(reversed(parse_qsl(parts.query, keep_blank_values=True))),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body, mode=fake.mode,
                )
                reply = fake._dispatch(req, self.path)
                if reply is None:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        return _Handler
