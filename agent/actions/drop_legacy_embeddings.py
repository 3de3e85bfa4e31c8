"""drop_legacy_embeddings (destructive): drop Aperture's legacy and inactive-dimension embedding tables.

Aperture keeps embeddings in ``embeddings_{D}``, ``series_embeddings_{D}``, ``episode_embeddings_{D}`` per
dimension D and the pre-migration ones in ``*_legacy``; the active model is ``system_settings(key=
'embedding_model')`` (DESIGN.md §5). The active dimensions are those whose tables hold rows of the active
model; legacy tables, and tables of other dimensions that still hold rows, are dropped (what Aperture's
own "Delete Legacy" does). Empty tables of other dimensions stay: the app created them and uses them when
the model changes. Only after a backup of the database that passed verify_backup within `max_backup_age`
(default a day), in one transaction with `lock_timeout`, every name through psycopg.sql.Identifier.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from pydantic import Field

from agent.actions.base import Action, Context, Params, Refused, ResultModel
from agent.actions.db import session
from agent.actions.targets import Target, backup_targets
from agent.actions.verify_backup import last_verified
from agent.config import Config, Duration
from agent.durations import format_duration
from agent.rules.format import format_value

KINDS = ("embeddings", "series_embeddings", "episode_embeddings")
DIMENSIONS = (256, 384, 512, 768, 1024, 1536, 3072, 4096)
ACTIVE_MODEL_SQL = "SELECT value FROM system_settings WHERE key = 'embedding_model'"
EXISTING_SQL = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS size FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
"""


class DropParams(Params):
    include_inactive_dimensions: bool = True  # also the tables of other dimensions that still hold rows
    max_backup_age: Duration = Field(86400.0, gt=0)  # the verified backup must be at most this old
    lock_timeout: Duration = 5.0


class DropResult(ResultModel):
    droppedTables: list[str]  # noqa: N815 — the shape of Aperture's own maintenance answer
    bytesFreed: int  # noqa: N815


def _table(kind: str, suffix: str) -> str:
    return f"{kind}_{suffix}"


class DropLegacyEmbeddings(Action):
    name = "drop_legacy_embeddings"
    description = ("Drop Aperture's legacy and inactive-dimension embedding tables, only after a backup "
                   "verified within a day.")
    Params = DropParams
    Result = DropResult
    destructive = True
    target_labels = ("app", "database")

    def targets(self, config: Config) -> dict[str, Target]:
        return {db.name: Target(db.name, db.profile, database=db) for db in config.databases
                if db.profile == "aperture"}

    async def check(self, ctx: Context) -> None:
        names = [n for n, t in backup_targets(ctx.config).items()
                 if t.database is not None and t.database.name == ctx.target.name]
        age = ctx.params.max_backup_age
        if last_verified(ctx.deps.state, names, ctx.now() - age) is None:
            where = ", ".join(names) if names else "none configured in backups:"
            raise Refused(f"no backup of {ctx.target.name} passed verify_backup within {format_duration(age)} "
                          f"(backup targets: {where}); run backup and verify_backup first")

    async def plan(self, ctx: Context) -> dict[str, Any]:
        legacy = [_table(k, "legacy") for k in KINDS]
        dimensional = {_table(k, str(d)): d for k in KINDS for d in DIMENSIONS}
        async with session(ctx, read_only=True) as conn:
            row = await (await conn.execute(ACTIVE_MODEL_SQL)).fetchone()
            if not row or not row["value"]:
                raise Refused("system_settings has no embedding_model: cannot tell which embeddings are in use")
            model = row["value"]
            existing = {r["name"]: r["size"] for r in
                        await (await conn.execute(EXISTING_SQL, ([*legacy, *dimensional],))).fetchall()}
            has_rows, has_active = set(), set()
            for name in existing.keys() & dimensional.keys():
                ident = sql.Identifier(name)
                q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {}) AS any, EXISTS (SELECT 1 FROM {} WHERE model = %s) "
                            "AS active").format(ident, ident)
                r = await (await conn.execute(q, (model,))).fetchone()
                has_rows.update([name] if r["any"] else [])
                has_active.update([name] if r["active"] else [])
            active_dims = sorted({dimensional[n] for n in has_active})
            if not active_dims:
                raise Refused(f"no embeddings of the active model {model!r} in any dimension table: "
                              "the model may not have run yet; refusing to guess which tables are in use")
            drop = [n for n in legacy if n in existing]
            if ctx.params.include_inactive_dimensions:
                drop += sorted(n for n in has_rows if dimensional[n] not in active_dims)
            statements = [sql.SQL("DROP TABLE {}").format(sql.Identifier("public", n)).as_string(conn) for n in drop]
        return {"active_model": model, "active_dimensions": active_dims, "tables": drop, "statements": statements,
                "bytes": sum(existing[n] for n in drop)}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        ctx.progress.start("drop", len(plan["tables"]))
        async with session(ctx, lock_timeout=ctx.params.lock_timeout) as conn:
            sizes = {r["name"]: r["size"] for r in
                     await (await conn.execute(EXISTING_SQL, (plan["tables"],))).fetchall()}
            async with conn.transaction():
                for name in plan["tables"]:
                    await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("public", name)))
                    ctx.progress.advance()
        return {"droppedTables": plan["tables"], "bytesFreed": sum(sizes.get(n, 0) for n in plan["tables"])}

    def summary(self, target: str, result: dict[str, Any]) -> str:
        return (f"on {target}: dropped {len(result['droppedTables'])} table(s), freed "
                f"{format_value('bytes', result['bytesFreed'])}")
