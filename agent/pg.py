"""Short PostgreSQL sessions with the agent's standard options (LIBRARIES.md B4).

Every session sets `connect_timeout`, `statement_timeout`, `lock_timeout` and
`application_name=caretaker`, so a hung server never hangs a probe and an admin can spot (and
cancel) the agent in pg_stat_activity. Probes open read-only sessions.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import AsyncIterator

import psycopg
from psycopg.rows import dict_row

_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)|(://[^:/@]+:)([^@]+)(@)", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove passwords from a DSN or a libpq error message (`password=…`, `user:pass@`)."""
    return _PASSWORD.sub(lambda m: f"{m.group(1)}***" if m.group(1) else f"{m.group(3)}***{m.group(5)}", text)


def describe_pg_error(exc: BaseException) -> str:
    """One line naming the cause (connection refused, password authentication failed, timeout…),
    with any password removed."""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "statement timeout"
    text = str(exc).strip()
    # libpq prefixes 'connection to server at "…", port N failed: ' — keep the cause after it
    cause = text.split("failed:", 1)[-1].strip() if "failed:" in text else text
    return redact(cause.splitlines()[0] if cause else type(exc).__name__)


@asynccontextmanager
async def connect(dsn: str, *, connect_timeout: float = 5.0, statement_timeout: float = 10.0,
                  lock_timeout: float = 5.0, read_only: bool = True,
                  autocommit: bool = True) -> AsyncIterator[psycopg.AsyncConnection]:
    """An async connection with dict rows; timeouts in seconds. Closed on exit.

    Raises psycopg.OperationalError when the server is unreachable or refuses the login."""
    options = f"-c statement_timeout={int(statement_timeout * 1000)} -c lock_timeout={int(lock_timeout * 1000)}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    conn = await psycopg.AsyncConnection.connect(
        dsn, connect_timeout=max(1, int(round(connect_timeout))), autocommit=autocommit,
        application_name="caretaker", options=options, row_factory=dict_row)
    try:
        yield conn
    finally:
        await conn.close()
