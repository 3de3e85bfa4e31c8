"""reindex: ``REINDEX INDEX CONCURRENTLY`` for each invalid index (pg_index.indisvalid = false).

An invalid index is what a failed ``CREATE INDEX CONCURRENTLY`` leaves behind. REINDEX CONCURRENTLY
rebuilds it without blocking writes; when the rebuild itself fails (the duplicates that broke a UNIQUE
build are still there), PostgreSQL leaves a second invalid index named ``<index>_ccnew``, which this
action drops again so a failed attempt never adds to the invalid-index count (PostgreSQL 15 docs, REINDEX,
"Rebuilding Indexes Concurrently").
"""

from __future__ import annotations

from typing import Any

from psycopg import errors, sql

from agent.actions.base import Action, ActionError, ActionFailed, Context, Params, ResultModel
from agent.actions.db import session
from agent.actions.targets import Target, postgres_targets
from agent.config import Config
from agent.pg import describe_pg_error
from agent.probes.postgres import relation_label

INVALID_SQL = """
SELECT n.nspname AS schema, c.relname AS name, t.relname AS table_name
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1, 2
"""
LEFTOVER_SQL = """
SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND n.nspname = %(schema)s AND left(c.relname, length(%(prefix)s)) = %(prefix)s
  AND substr(c.relname, length(%(prefix)s) + 1) ~ '^[0-9]*$'
"""


class ReindexParams(Params):
    indexes: list[str] = []  # names among the invalid indexes ("idx" or "schema.idx"); empty: all of them


class IndexResult(ResultModel):
    index: str
    table: str
    rebuilt: bool
    error: str | None = None


class ReindexResult(ResultModel):
    rebuilt: int
    indexes: list[IndexResult]


class Reindex(Action):
    name = "reindex"
    description = "REINDEX INDEX CONCURRENTLY every invalid index (left by a failed CREATE INDEX CONCURRENTLY)."
    Params = ReindexParams
    Result = ReindexResult
    target_labels = ("database",)

    def targets(self, config: Config) -> dict[str, Target]:
        return postgres_targets(config)

    async def check(self, ctx: Context) -> None:
        if not ctx.params.indexes:
            return
        async with session(ctx, read_only=True) as conn:
            found = {relation_label(r["schema"], r["name"]) for r in await (await conn.execute(INVALID_SQL)).fetchall()}
        if missing := set(ctx.params.indexes) - found:
            raise ActionError(f"params.indexes: not invalid indexes in {ctx.target.name}: {', '.join(sorted(missing))}")

    async def plan(self, ctx: Context) -> dict[str, Any]:
        async with session(ctx, read_only=True) as conn:
            rows = await (await conn.execute(INVALID_SQL)).fetchall()
            wanted = set(ctx.params.indexes)
            return {"indexes": [
                {"schema": r["schema"], "name": r["name"], "index": relation_label(r["schema"], r["name"]),
                 "table": r["table_name"],
                 "statement": sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(
                     sql.Identifier(r["schema"], r["name"])).as_string(conn)}
                for r in rows if not wanted or relation_label(r["schema"], r["name"]) in wanted]}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        ctx.progress.start("reindex", len(plan["indexes"]))
        out = []
        async with session(ctx) as conn:
            for ix in plan["indexes"]:
                error = None
                try:
                    await conn.execute(sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(
                        sql.Identifier(ix["schema"], ix["name"])))
                except errors.Error as exc:
                    error = describe_pg_error(exc)
                    await self._drop_leftovers(conn, ix["schema"], ix["name"])
                out.append({"index": ix["index"], "table": ix["table"], "rebuilt": error is None, "error": error})
                ctx.progress.advance()
        result = {"rebuilt": sum(r["rebuilt"] for r in out), "indexes": out}
        failed = [r["index"] for r in out if r["error"]]
        if failed:
            raise ActionFailed(f"REINDEX failed on {', '.join(failed)}", result)
        return result

    @staticmethod
    async def _drop_leftovers(conn, schema: str, name: str) -> None:
        prefix = f"{name}_ccnew"
        for row in await (await conn.execute(LEFTOVER_SQL, {"schema": schema, "prefix": prefix})).fetchall():
            await conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(schema, row["name"])))

    def summary(self, target: str, result: dict[str, Any]) -> str:
        return f"on {target}: {result.get('rebuilt', 0)} of {len(result.get('indexes') or [])} invalid index(es) rebuilt"
