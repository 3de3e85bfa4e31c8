"""Run an app profile's named write statement (its `actions:` mapping) on the app's database.

The profile's read queries go through agent/appdb.py (read-only sessions); the statements of `actions:`
change data and run only here, for an action, one short autocommit statement at a time. Placeholders are
SQLite-style ``:name`` for both engines (agent/appdb.py rewrites them for psycopg). A statement that
returns rows reports its first column (a CTE counting the rows it changed); otherwise its row count.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from agent.appdb import bind_postgres
from agent.config import DatabaseConfig, SQLiteConfig
from agent.pg import connect


class _PgWriter:
    def __init__(self, conn):
        self.conn = conn

    async def run(self, statement: str, **params: Any) -> int:
        cur = await self.conn.execute(bind_postgres(statement, params), params)
        if cur.description:
            row = await cur.fetchone()
            return int(next(iter(row.values())) or 0) if row else 0
        return max(cur.rowcount, 0)


class _SqliteWriter:
    def __init__(self, entry: SQLiteConfig):
        self.conn = sqlite3.connect(entry.path, timeout=entry.busy_timeout, isolation_level=None,
                                    check_same_thread=False)

    def _run(self, statement: str, params: dict[str, Any]) -> int:
        cur = self.conn.execute(statement, params)
        if cur.description:
            row = cur.fetchone()
            return int(row[0] or 0) if row else 0
        return max(cur.rowcount, 0)

    async def run(self, statement: str, **params: Any) -> int:
        try:
            return await asyncio.to_thread(self._run, statement, params)
        except asyncio.CancelledError:
            self.conn.interrupt()
            raise


@asynccontextmanager
async def open_writer(entry: DatabaseConfig | SQLiteConfig, statement_timeout: float) -> AsyncIterator[Any]:
    """A writable session on the app's database with `run(statement, **params) -> rows changed`."""
    if isinstance(entry, DatabaseConfig):
        async with connect(entry.dsn.get_secret_value(), connect_timeout=entry.connect_timeout,
                           statement_timeout=statement_timeout, read_only=False) as conn:
            yield _PgWriter(conn)
        return
    if not entry.path.is_file():
        raise FileNotFoundError(f"{entry.path} does not exist")
    writer = _SqliteWriter(entry)
    try:
        yield writer
    finally:
        writer.conn.close()
