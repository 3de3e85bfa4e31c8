"""Run an app profile's read-only SQL against the app's database, PostgreSQL or SQLite, in one style.

Profile queries name their parameters SQLite's way, `:now` and `:since` (Unix epoch seconds), whatever the
engine; for PostgreSQL they are rewritten to psycopg's `%(now)s` (and every literal `%` doubled), so a
profile author never meets psycopg's placeholder rules. Rows come back as dicts by column name, with
PostgreSQL numerics as float. PostgreSQL sessions are read-only with the agent's standard timeouts
(`agent.pg.connect`); SQLite files are opened through a `mode=ro` URI with `PRAGMA query_only`, one short
statement at a time, so no lock is held between queries (SQLite doc "Uniform Resource Identifiers").
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator, Protocol

import psycopg

from agent.config import Config, DatabaseConfig, ServiceConfig, SQLiteConfig
from agent.pg import connect, describe_pg_error
from agent.profiles import Profile, load_profile

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def sqlite_uri(path: Path, query: str = "mode=ro") -> str:
    """A ``file:`` URI for sqlite3.connect(uri=True), percent-encoded (a path may hold ``?`` or ``#``);
    `mode=ro` neither writes nor creates the file, `immutable=1` also ignores a -wal beside it."""
    return f"{Path(path).resolve().as_uri()}?{query}"


class Session(Protocol):
    async def rows(self, query: str, **params: Any) -> list[dict[str, Any]]: ...


def bind_postgres(query: str, params: dict[str, Any]) -> str:
    """`:name` → `%(name)s` for each name in `params`, every other `%` doubled (`::` casts untouched)."""
    escaped = query.replace("%", "%%")
    return _PARAM.sub(lambda m: f"%({m.group(1)})s" if m.group(1) in params else m.group(0), escaped)


def to_epoch(value: Any) -> float | None:
    """A time column as epoch seconds: numbers as they are, datetimes (naive = UTC), ISO-8601 text
    (a trailing Z allowed, as JavaScript's toISOString() writes). None stays None; raises ValueError."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return to_epoch(moment)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}


class _PgSession:
    def __init__(self, conn):
        self.conn = conn

    async def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        cur = await self.conn.execute(bind_postgres(query, params), params)
        return [_plain(r) for r in await cur.fetchall()]


class _SqliteSession:
    """Blocking sqlite3 calls on one dedicated worker thread. Closing is queued on that same thread, so
    the connection is never closed while an interrupted statement still runs in it (a segfault)."""

    def __init__(self, path: Path, busy_timeout: float):
        uri = sqlite_uri(path)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="caretaker-sqlite")
        self.conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None,
                                    check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA query_only = ON")

    def _run(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(query, params).fetchall()]

    async def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, self._run, query, params)
        except asyncio.CancelledError:
            self.conn.interrupt()  # the worker thread would otherwise read on after the probe's timeout
            raise

    def close(self) -> None:
        self._worker.submit(self.conn.close)
        self._worker.shutdown(wait=False)


@asynccontextmanager
async def open_app_db(entry: DatabaseConfig | SQLiteConfig) -> AsyncIterator[Session]:
    """A read-only session on the app's database for the probe's run; closed on exit.

    Raises psycopg.Error or sqlite3.Error when the database cannot be opened."""
    if isinstance(entry, DatabaseConfig):
        async with connect(entry.dsn.get_secret_value(), connect_timeout=entry.connect_timeout,
                           statement_timeout=entry.statement_timeout) as conn:
            yield _PgSession(conn)
        return
    if not entry.path.is_file():
        raise FileNotFoundError(f"{entry.path} does not exist")
    session = _SqliteSession(entry.path, entry.busy_timeout)
    try:
        yield session
    finally:
        session.close()


def describe_db_error(exc: BaseException) -> str:
    """One line for a probe's reason: PostgreSQL errors without passwords (agent.pg), SQLite's own text."""
    if isinstance(exc, psycopg.Error):
        return describe_pg_error(exc)
    if isinstance(exc, sqlite3.Error):
        return f"sqlite: {exc}"
    return str(exc) or type(exc).__name__


def app_entries(config: Config) -> list[tuple[DatabaseConfig | SQLiteConfig, Profile]]:
    """Every `databases:` and `sqlite:` entry that names a profile, with the profile loaded."""
    entries: list[DatabaseConfig | SQLiteConfig] = [*config.databases, *config.sqlite]
    return [(e, load_profile(e.profile)) for e in entries if e.profile is not None]


def service(config: Config, name: str | None) -> ServiceConfig | None:
    return next((s for s in config.services if s.name == name), None) if name else None


def media_server(config: Config, entry: DatabaseConfig | SQLiteConfig) -> ServiceConfig | None:
    """The entry's `app.media_server`, else the only jellyfin/emby service (None when there are 0 or several)."""
    if entry.app.media_server is not None:
        return service(config, entry.app.media_server)
    servers = [s for s in config.services if s.kind in ("jellyfin", "emby")]
    return servers[0] if len(servers) == 1 else None


def query_params(entry: DatabaseConfig | SQLiteConfig, now: float) -> dict[str, float]:
    """The parameters every profile query may use: `now`, and `since` = now − the app's failure window."""
    return {"now": now, "since": now - entry.app.failure_window}
