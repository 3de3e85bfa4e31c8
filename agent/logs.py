"""Logging setup: one line per event on stderr, no secrets (values are never logged, only field names)."""

from __future__ import annotations

import logging
import sys

import httpx


class _DropQueryStrings(logging.Filter):
    """Strip the query string and user:password from URLs httpx logs ("HTTP Request: GET …"): OMDb,
    MDBList and TMDB v3 keys travel there. A guard for when someone lowers httpx's log level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.copy_with(query=None, userinfo=b"") if isinstance(a, httpx.URL) else a
                                for a in record.args)
        return True


_DROP_QUERY = _DropQueryStrings()


def redact_http_logs() -> None:
    """Install the query-string filter on httpx's logger (idempotent)."""
    logging.getLogger("httpx").addFilter(_DROP_QUERY)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time, so a replaced stderr (a test's capture, a daemon's
    redirect) never leaves the handler on a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: str = "info") -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # httpx logs every request URL, which can carry an API key in its query string (OMDb, MDBList).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # Apprise logs full notification URLs (tokens included) at debug level; its warnings name only the host.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    redact_http_logs()
