"""vacuum_analyze: ``VACUUM (ANALYZE)`` on named relations, or on those over the dead-tuple thresholds.

Autocommit (VACUUM refuses a transaction block) with `lock_timeout`, so a relation locked by a long
migration is skipped with an error instead of queueing every other query behind the VACUUM. Dead tuples
come from pg_stat_user_tables.n_dead_tup (PostgreSQL 15 docs §28.2.2), read before and after.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg import errors, sql
from pydantic import Field

from agent.actions.base import Action, ActionError, ActionFailed, Context, Params, ResultModel, thousands
from agent.actions.db import session
from agent.actions.targets import Target, postgres_targets
from agent.config import Config, Duration, Ratio
from agent.pg import describe_pg_error
from agent.probes.postgres import relation_label

RESOLVE_SQL = """
SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'm', 't')
"""
STATS_SQL = """
SELECT schemaname AS schema, relname AS name, n_dead_tup AS dead, n_live_tup AS live
FROM pg_stat_user_tables ORDER BY n_dead_tup DESC, schemaname, relname
"""


class VacuumParams(Params):
    relations: list[str] = []  # "movies" or "schema.name"; empty: every relation over both thresholds
    min_dead_tuples: int = Field(10_000, ge=0)  # the PostgresDeadTuplesHigh thresholds (DESIGN.md §7)
    min_dead_ratio: Ratio = 0.20
    lock_timeout: Duration = 5.0


class RelationResult(ResultModel):
    relation: str
    dead_tuples_before: int
    dead_tuples_after: int | None
    seconds: float
    error: str | None = None


class VacuumResult(ResultModel):
    relations: list[RelationResult]


class VacuumAnalyze(Action):
    name = "vacuum_analyze"
    description = "VACUUM (ANALYZE) named relations, or every relation over the dead-tuple thresholds."
    Params = VacuumParams
    Result = VacuumResult
    auto_safe = True
    target_labels = ("database",)
    trips = (("ProbeFailing", "target"),)  # a probe queued behind a VACUUM's lock may time out

    def targets(self, config: Config) -> dict[str, Target]:
        return postgres_targets(config)

    def alert_params(self, labels: dict[str, str]) -> dict[str, Any]:
        return {"relations": [labels["relation"]]} if labels.get("relation") else {}

    async def _stats(self, conn) -> dict[tuple[str, str], dict]:
        await conn.execute("SELECT pg_stat_clear_snapshot()")  # fresh numbers, not the transaction's cache
        cur = await conn.execute(STATS_SQL)
        return {(r["schema"], r["name"]): r for r in await cur.fetchall()}

    async def check(self, ctx: Context) -> None:
        if not ctx.params.relations:
            return
        async with session(ctx, read_only=True) as conn:
            for rel in ctx.params.relations:
                cur = await conn.execute(RESOLVE_SQL, (rel,))
                if await cur.fetchone() is None:
                    raise ActionError(f"params.relations: no table {rel!r} in database {ctx.target.name}")

    async def plan(self, ctx: Context) -> dict[str, Any]:
        p = ctx.params
        async with session(ctx, read_only=True) as conn:
            stats = await self._stats(conn)
            if p.relations:
                chosen = []
                for rel in p.relations:
                    row = await (await conn.execute(RESOLVE_SQL, (rel,))).fetchone()
                    chosen.append((row["schema"], row["name"]))
            else:
                chosen = [key for key, r in stats.items()
                          if r["dead"] > p.min_dead_tuples and r["dead"] / max(r["dead"] + r["live"], 1) > p.min_dead_ratio]
            relations = []
            for schema, name in dict.fromkeys(chosen):
                stmt = sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, name)).as_string(conn)
                relations.append({"schema": schema, "name": name, "relation": relation_label(schema, name),
                                  "dead_tuples": int(stats.get((schema, name), {}).get("dead", 0)),
                                  "statement": stmt})
        return {"lock_timeout_seconds": p.lock_timeout, "relations": relations}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        ctx.progress.start("vacuum", len(plan["relations"]))
        results = []
        async with session(ctx, lock_timeout=ctx.params.lock_timeout) as conn:
            for rel in plan["relations"]:
                started, error = time.monotonic(), None
                try:
                    await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(rel["schema"], rel["name"])))
                except errors.LockNotAvailable:
                    error = f"skipped: lock not granted within lock_timeout ({ctx.params.lock_timeout:g}s)"
                except errors.Error as exc:
                    error = describe_pg_error(exc)
                results.append({"relation": rel["relation"], "dead_tuples_before": rel["dead_tuples"],
                                "dead_tuples_after": None, "seconds": round(time.monotonic() - started, 3),
                                "error": error, "key": (rel["schema"], rel["name"])})
                ctx.progress.advance()
            after = await self._stats(conn)
        for r in results:
            key = r.pop("key")
            r["dead_tuples_after"] = int(after[key]["dead"]) if key in after else None
        result = {"relations": results}
        failed = [r["relation"] for r in results if r["error"]]
        if failed:
            raise ActionFailed(f"VACUUM failed on {', '.join(failed)}", result)
        return result

    def summary(self, target: str, result: dict[str, Any]) -> str:
        rels = result.get("relations") or []
        if not rels:
            return f"on {target}: no relation over the thresholds"
        parts = [f"{r['relation']}: dead tuples {thousands(r['dead_tuples_before'])} → "
                 f"{'?' if r['dead_tuples_after'] is None else thousands(r['dead_tuples_after'])}" for r in rels[:3]]
        more = f" (+{len(rels) - 3} more)" if len(rels) > 3 else ""
        return "on " + "; ".join(parts) + more
