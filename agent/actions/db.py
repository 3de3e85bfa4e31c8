"""PostgreSQL sessions for actions: the agent's standard options (agent/pg.py), writable, and a statement
timeout as long as the run's own timeout (VACUUM and REINDEX of a large table take minutes)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import psycopg

from agent.actions.base import Context
from agent.config import DatabaseConfig
from agent.pg import connect


def dsn_of(db: DatabaseConfig) -> str:
    return db.dsn.get_secret_value()


@asynccontextmanager
async def session(ctx: Context, *, lock_timeout: float = 5.0,
                  read_only: bool = False) -> AsyncIterator[psycopg.AsyncConnection]:
    """An autocommit session on the target's database (VACUUM and REINDEX CONCURRENTLY refuse a
    transaction block; PostgreSQL 15 docs, VACUUM and REINDEX "Notes")."""
    db = ctx.target.database
    assert db is not None, "a PostgreSQL action on a target without a database"
    async with connect(dsn_of(db), connect_timeout=db.connect_timeout, statement_timeout=ctx.timeout,
                       lock_timeout=lock_timeout, read_only=read_only) as conn:
        yield conn
