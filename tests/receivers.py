"""Local receivers for notifications sent through real Apprise (DESIGN.md §12): a JSON HTTP endpoint for
``json://`` URLs and an SMTP server (aiosmtpd) for ``mailto://`` URLs, both on 127.0.0.1.

    with JsonReceiver() as rx:                        # rx.apprise_url("/ops") → "json://127.0.0.1:PORT/ops"
        rx.mode = "down"                              # answer 503 (Apprise counts it as a failure)
        rx.stop(); rx.start()                         # refuse connections, then listen again on the same port
        rx.wait_for(2, timeout=10)                    # → the first two messages, or AssertionError

Apprise's JSON payload is ``{version, title, message, type, attachments}`` (LIBRARIES.md B3); the receiver
adds ``path``.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller

from fakes.base import FakeServer, Reply, Request, json_reply
from pgcluster import free_port


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class JsonReceiver(FakeServer):
    """Records every POSTed JSON body in `messages`; mode "down" answers 503, `stop()` refuses connections."""

    name = "json-receiver"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.messages: list[dict] = []

    def routes(self) -> list:
        return [("POST", r"/.*", self._receive)]

    def _receive(self, req: Request) -> Reply:
        with self._lock:
            self.messages.append({**req.json(), "path": req.path})
        return json_reply(200, {"ok": True})

    def apprise_url(self, path: str = "/hook", tags: str = "") -> str:
        return f"{tags + '=' if tags else ''}json://127.0.0.1:{self.port}{path}"

    def received(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [m for m in self.messages if path is None or m["path"] == path]

    def wait_for(self, count: int, timeout: float = 10.0, path: str | None = None) -> list[dict]:
        wait_until(lambda: len(self.received(path)) >= count, timeout, f"{count} message(s) at {path or 'any path'}")
        return self.received(path)


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1; `messages` are parsed `email.message.EmailMessage`s."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self._lock = threading.Lock()
        self.port = free_port()  # aiosmtpd's Controller cannot bind port 0 (it connects to itself to start)
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted"

    def start(self) -> SmtpReceiver:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def apprise_url(self, to: str = "ops@example.org", tags: str = "") -> str:
        return (f"{tags + '=' if tags else ''}mailto://127.0.0.1:{self.port}"
                f"?from=caretaker@example.org&to={to}&secure=no")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[email.message.EmailMessage]:
        def enough() -> bool:
            with self._lock:
                return len(self.messages) >= count
        wait_until(enough, timeout, f"{count} mail(s)")
        with self._lock:
            return list(self.messages)

    @staticmethod
    def text(message: email.message.EmailMessage) -> str:
        return message.get_body(("plain",)).get_content()
