"""restore (destructive): put a backup back over the live database, after a pre-restore backup.

PostgreSQL custom format: ``pg_restore --clean --if-exists --single-transaction --no-owner
--no-privileges`` (all or nothing: a failure leaves the database as it was); plain SQL: ``psql
--single-transaction -v ON_ERROR_STOP=1`` (Caretaker's own sql dumps carry ``--clean --if-exists``).
`lock_timeout` (PGOPTIONS) makes a restore blocked by the app's open transactions fail instead of
queueing the app behind it. SQLite: the online backup API copies the backup over the live file, which
other connections see as one change, in steps (backup.sqlite_backup) so that a timeout or the agent
shutting down stops it, the live file left as it was.

By default (`require_verified`) a backup is restored only if the newest verify_backup run that reached a
verdict on that file passed: a newer failed verification overrides an older pass. A backup without a
.sha256 sidecar (checksum `absent`, e.g. one the app wrote itself) may be restored when that verification
passed its other checks (pg_restore --list or PRAGMA integrity_check; the test restore and row counts).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent.actions import backup_files as files
from agent.actions.backup import make_backup, sqlite_backup, writable_targets
from agent.actions.base import Action, ActionError, ActionFailed, Context, Params, Refused, ResultModel
from agent.actions.pgtools import restore_into
from agent.appdb import sqlite_uri
from agent.actions.targets import Target
from agent.actions.verify_backup import compare, pg_counts
from agent.config import Config, Duration

CUSTOM_ARGS = ["--clean", "--if-exists", "--single-transaction", "--no-owner", "--no-privileges"]


class RestoreParams(Params):
    file: str | None = None  # a file name in the target's directory; default: the newest backup
    require_verified: bool = True  # only a file whose newest verify_backup verdict is a pass
    lock_timeout: Duration = 30.0


class RestoreResult(ResultModel):
    file: str
    pre_restore_backup: str
    seconds: float
    tables: int
    rows: int


def last_verification(state, target: str, file: str) -> dict[str, Any] | None:
    """The newest verify_backup run (not a dry run) of `target` that reached a verdict on `file`:
    {"run_id", "outcome", "result"}; None if that file was never verified."""
    rows = state.query("SELECT id, outcome, result FROM action_runs WHERE action = 'verify_backup' AND target = ? "
                       "AND dry_run = 0 AND result IS NOT NULL AND json_extract(result, '$.file') = ? "
                       "ORDER BY id DESC LIMIT 1", (target, file))
    if not rows:
        return None
    return {"run_id": rows[0]["id"], "outcome": rows[0]["outcome"], "result": json.loads(rows[0]["result"])}


class Restore(Action):
    name = "restore"
    description = "Restore a backup over the live database (pg_restore --clean --if-exists), after a pre-restore backup."
    Params = RestoreParams
    Result = RestoreResult
    destructive = True
    timeout = 4 * 3600.0
    target_labels = ("target", "database")

    def targets(self, config: Config) -> dict[str, Target]:
        return writable_targets(config)  # a restore starts with a backup of the same target

    async def _file(self, ctx: Context) -> Path:
        return files.pick(ctx.target.backup, await files.directory_of(ctx.target), ctx.params.file)

    async def check(self, ctx: Context) -> None:
        path = await self._file(ctx)
        if not ctx.params.require_verified:
            return
        last = last_verification(ctx.deps.state, ctx.target.name, path.name)
        if last is None:
            raise Refused(f"{path.name} has not passed verify_backup; run it first, or set require_verified: false")
        if last["outcome"] != "succeeded":
            raise Refused(f"{path.name} has not passed verify_backup: its newest verification (run {last['run_id']}) "
                          f"{last['outcome']}; fix the backup or pick another file, or set require_verified: false")

    async def plan(self, ctx: Context) -> dict[str, Any]:
        path = await self._file(ctx)
        t = ctx.target
        if t.database is not None:
            tool = ("pg_restore " + " ".join(CUSTOM_ARGS) if t.backup.kind == "pg_dump-custom"
                    else "psql --single-transaction -v ON_ERROR_STOP=1")
            how = f"{tool} into database {t.database.name}"
        else:
            how = f"SQLite online backup from {path.name} over {t.sqlite.path}"
        return {"file": path.name, "path": str(path), "size_bytes": path.stat().st_size,
                "steps": [f"backup of {t.name} first (the pre-restore backup)", how, "compare row counts"]}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        path, t = Path(plan["path"]), ctx.target
        if not path.is_file():
            raise ActionError(f"{path.name} disappeared before the restore", 409)
        pre = await make_backup(ctx, t, keep=frozenset({path}))
        ctx.progress.start("restore", None)
        started = time.monotonic()
        if t.database is not None:
            counts = await self._restore_pg(ctx, t, path)
        else:
            counts = await sqlite_backup(ctx, sqlite_uri(path, "immutable=1"), t.sqlite.path, self_contained=False)
        result = {"file": path.name, "pre_restore_backup": pre["file"], "seconds": round(time.monotonic() - started, 3),
                  "tables": len(counts), "rows": sum(counts.values())}
        manifest = files.read_manifest(path)
        if manifest is not None and (diff := compare(manifest.get("tables", {}), counts)):
            raise ActionFailed(f"restored row counts differ from the backup's in {len(diff)} table(s)", result)
        return result

    async def _restore_pg(self, ctx: Context, t: Target, path: Path) -> dict[str, int]:
        dsn = t.database.dsn.get_secret_value()
        await restore_into(t.backup.kind, path, dsn, CUSTOM_ARGS,
                           pgoptions=f"-c lock_timeout={int(ctx.params.lock_timeout * 1000)}")
        return await pg_counts(dsn, t.database.connect_timeout, ctx.timeout)

    def summary(self, target: str, result: dict[str, Any]) -> str:
        return (f"on {target}: restored {result['file']} ({result['tables']} tables, {result['rows']} rows; "
                f"pre-restore backup {result['pre_restore_backup']})")
