"""Helpers for the action tests: a Runtime from config sections, a database checksum, a test action."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import psycopg
from psycopg import sql

from agent.actions.base import Action, Context, Params, ResultModel
from agent.actions.targets import Target
from agent.config import parse_config
from agent.runtime import Runtime
from receivers import wait_until


def runtime(tmp_path: Path, *, clock: Callable[[], float] = time.time, alerting: bool = False,
            **sections: Any) -> Runtime:
    """A Runtime over `sections` (YAML-shaped dicts), state under tmp_path, without the system probe."""
    cfg = parse_config({"agent": {"state_dir": str(tmp_path / "state")}, "system": {"enabled": False},
                        **sections})
    return Runtime(cfg, clock=clock, alerting=alerting)


def db_checksum(dsn: str, tables: list[str] | None = None) -> str:
    """md5 over the md5 of every row of every user table (sorted): equal before and after ⇔ no row changed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = tables or [r[0] for r in conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname")]
        parts = []
        for name in names:
            q = sql.SQL("SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM "
                        "(SELECT md5(t::text) AS h FROM {} t) rows").format(sql.Identifier(name))
            parts.append(f"{name}:{conn.execute(q).fetchone()[0]}")
    return ",".join(parts)


def dead_tuples(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (table,)).fetchone()[0]


def plant_dead_tuples(dsn: str, table: str, minimum: int) -> int:
    """UPDATE every row of `table` (autovacuum off for it), flush the statistics, wait (bounded) until
    pg_stat_user_tables shows at least `minimum` dead tuples; returns the count."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(sql.Identifier(table)))
        conn.execute(sql.SQL("UPDATE {} SET updated_at = updated_at").format(sql.Identifier(table)))
        conn.execute("SELECT pg_stat_force_next_flush()")

    def enough() -> list[int] | None:  # a one-item list: truthy even when the count is 0
        n = dead_tuples(dsn, table)
        return [n] if n >= minimum else None

    # the backend flushes its counters when it goes idle or exits: well within 5 s
    return wait_until(enough, 5, f"pg_stat_user_tables to show at least {minimum} dead tuples in {table}")[0]


def run(coro):
    return asyncio.run(coro)


def act(rt: Runtime, name: str, *args: Any, trigger: str = "cli", who: str = "t", **kw: Any) -> dict:
    """Prepare `name` (rt.actions.prepare(name, *args, **kw)) and run it to its end; the run record."""
    return run(rt.actions.run(rt.actions.prepare(name, *args, **kw), trigger, who))


class GateParams(Params):
    items: int = 3


class GateResult(ResultModel):
    items: int


class GateAction(Action):
    """A test-only action that waits on `gate` between items, so a test can look at a run in progress."""

    name = "gate"
    description = "test action"
    Params = GateParams
    Result = GateResult
    timeout = 30.0

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.started: asyncio.Event | None = None

    def targets(self, config) -> dict[str, Target]:
        return {"one": Target("one"), "two": Target("two")}

    async def plan(self, ctx: Context) -> dict[str, Any]:
        return {"items": ctx.params.items}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        ctx.progress.start("items", plan["items"])
        for _ in range(plan["items"]):
            self.started.set()
            await self.gate.wait()
            self.gate.clear()
            ctx.progress.advance()
        return {"items": plan["items"]}
