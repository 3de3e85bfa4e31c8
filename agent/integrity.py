"""amcheck integrity checks of a PostgreSQL database, one relation at a time (LIBRARIES.md B6).

`bt_index_check` on every valid, ready B-tree index and `verify_heapam` on every table, each under
`lock_timeout` and `statement_timeout` (both take AccessShareLock only); `bt_index_parent_check`
(ShareLock: blocks writes) only when configured. Sources: PostgreSQL 15 docs F.2 "amcheck";
pg_amcheck skips the same indexes (NOT indisready OR NOT indisvalid, temp relations).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from agent.config import DatabaseConfig
from agent.pg import connect, describe_pg_error

log = logging.getLogger("caretaker.integrity")

EXTENSION_SQL = "SELECT extversion FROM pg_extension WHERE extname = 'amcheck'"
PRIVILEGE_SQL = """
SELECT has_function_privilege('bt_index_check(regclass, boolean)', 'EXECUTE') AS btree,
       has_function_privilege('verify_heapam(regclass, boolean, boolean, text, bigint, bigint)', 'EXECUTE')
         AS heap,
       current_user AS role
"""
_USER_RELATIONS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' " \
                  "AND c.relpersistence <> 't'"
INDEXES_SQL = f"""
SELECT c.oid::regclass::text AS name FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND {_USER_RELATIONS}
ORDER BY 1
"""
TABLES_SQL = f"""
SELECT c.oid::regclass::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND {_USER_RELATIONS} ORDER BY 1
"""


def grant_statements(role: str) -> list[str]:
    """What a superuser runs once per database so `role` may use amcheck (docs F.2; B6)."""
    return [
        "CREATE EXTENSION IF NOT EXISTS amcheck;",
        f"GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO {role};",
        f"GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO {role};",
    ]


RECONNECT_ATTEMPTS = 10
RECONNECT_DELAY = 1.0


class AmcheckUnavailable(Exception):
    """amcheck is not installed or not granted; the message holds the statements that fix it."""


@dataclass
class IntegrityReport:
    """One run: `findings` are (relation, message); `skipped` relations hit a lock or statement timeout."""

    database: str
    started_at: float
    finished_at: float = 0.0
    checked: int = 0
    skipped: list[str] = field(default_factory=list)
    findings: list[tuple[str, str]] = field(default_factory=list)


async def _precheck(conn: psycopg.AsyncConnection, database: str) -> None:
    ext = await (await conn.execute(EXTENSION_SQL)).fetchone()
    priv = None if ext is None else await (await conn.execute(PRIVILEGE_SQL)).fetchone()
    role = priv["role"] if priv else "<caretaker role>"
    if ext is None or not (priv["btree"] and priv["heap"]):
        what = "is not installed" if ext is None else f"is not granted to role {role}"
        fix = " ".join(grant_statements(role)[0 if ext is None else 1:])
        raise AmcheckUnavailable(f"amcheck {what} in database {database}; as a superuser run: {fix}")


async def _check_one(conn: psycopg.AsyncConnection, query: sql.Composable, params: tuple) -> list[str]:
    """Messages of one relation's check: [] when clean. Raises lock/statement timeouts to the caller."""
    try:
        rows = await (await conn.execute(query, params)).fetchall()
    except psycopg.InternalError as exc:  # SQLSTATE class XX (XX001 data, XX002 index corrupted)
        detail = exc.diag.message_detail
        return [str(exc).strip().splitlines()[0] + (f" ({detail})" if detail else "")]
    return [f"block {r['blkno']} offset {r['offnum']}: {r['msg']}" for r in rows if "msg" in r]


async def run_amcheck(db: DatabaseConfig, clock=time.time) -> IntegrityReport:
    """Check every B-tree index and table of `db`. Raises AmcheckUnavailable (missing or not granted)
    and psycopg.OperationalError (cannot connect). A lost connection mid-check — amcheck can crash a
    backend on garbage pages (B6) — is itself a finding, and the run goes on on a new connection."""
    cfg = db.integrity
    report = IntegrityReport(db.name, clock())
    btree = sql.SQL("SELECT bt_index_parent_check(%s::regclass, %s, false)" if cfg.parent_check
                    else "SELECT bt_index_check(%s::regclass, %s)")
    heap = sql.SQL("SELECT blkno, offnum, attnum, msg FROM verify_heapam(%s::regclass)")
    opts = dict(connect_timeout=db.connect_timeout, statement_timeout=cfg.statement_timeout,
                lock_timeout=cfg.lock_timeout)
    dsn = db.dsn.get_secret_value()
    async with connect(dsn, **opts) as conn:
        await _precheck(conn, db.name)
        work = [(r["name"], btree, (r["name"], cfg.heapallindexed))
                for r in await (await conn.execute(INDEXES_SQL)).fetchall()]
        work += [(r["name"], heap, (r["name"],)) for r in await (await conn.execute(TABLES_SQL)).fetchall()]
    pending = list(work)
    reconnects = 0
    while pending:
        try:
            conn_cm = connect(dsn, **opts)
            conn = await conn_cm.__aenter__()
        except psycopg.OperationalError:
            # After a crashed backend the server runs crash recovery for a moment: retry, bounded.
            reconnects += 1
            if reconnects > RECONNECT_ATTEMPTS:
                raise
            await asyncio.sleep(RECONNECT_DELAY)
            continue
        try:
            while pending:
                relation, query, params = pending[0]
                try:
                    messages = await _check_one(conn, query, params)
                except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
                    report.skipped.append(f"{relation} ({describe_pg_error(exc)})")
                except psycopg.OperationalError as exc:
                    report.findings.append((relation, f"connection lost while checking: {describe_pg_error(exc)}"))
                    log.error("amcheck on %s/%s lost its connection; continuing on a new one", db.name, relation)
                    pending.pop(0)
                    break
                else:
                    report.findings += [(relation, m) for m in messages]
                    report.checked += 1
                pending.pop(0)
        finally:
            await conn_cm.__aexit__(None, None, None)
    report.finished_at = clock()
    return report
