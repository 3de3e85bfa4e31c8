"""pg_dump, pg_restore and psql as cancellable subprocesses, and exact row counts of every table.

The password never reaches a command line (visible in `ps`): it goes through PGPASSWORD, and the rest of
the DSN through ``--dbname`` (PostgreSQL 15 docs §34.1.2 "Parameter Key Words", §34.15 "Environment
Variables"). A cancelled run kills its child process and waits for it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agent.actions.base import ActionError
from agent.pg import redact

# Tables whose rows a dump carries: user tables, not members of an extension (pg_depend deptype 'e').
TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
ORDER BY 1, 2
"""
SQLITE_TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"


class ToolError(Exception):
    """A PostgreSQL client tool failed; the message is its first error line, password removed."""


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr: str


def pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ActionError(f"{name} not found on PATH: install the PostgreSQL client (Debian: postgresql-client)", 409)
    return path


def client_args(dsn: str, dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """(``--dbname`` value without the password, environment with PGPASSWORD) for a client tool."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    if dbname is not None:
        params["dbname"] = dbname
    params.setdefault("connect_timeout", "10")
    params["application_name"] = "caretaker"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if password is not None:
        env["PGPASSWORD"] = password
    return make_conninfo(**params), env


async def run_tool(args: list[str], env: dict[str, str], *, stdin_path: Path | None = None,
                   gunzip: bool = False) -> ToolResult:
    """Run a client tool to completion; `stdin_path` is streamed to it (gunzipped when `gunzip`)."""
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdin=asyncio.subprocess.PIPE if stdin_path else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        feeder = asyncio.create_task(_feed(proc, stdin_path, gunzip)) if stdin_path else None
        out, err = await proc.communicate() if feeder is None else await _communicate_fed(proc, feeder)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return ToolResult(proc.returncode, out.decode(errors="replace"), redact(err.decode(errors="replace")))


async def _communicate_fed(proc, feeder: asyncio.Task) -> tuple[bytes, bytes]:
    out_task = asyncio.create_task(proc.stdout.read())
    err_task = asyncio.create_task(proc.stderr.read())
    try:
        await feeder
    finally:
        out, err = await asyncio.gather(out_task, err_task)
    await proc.wait()
    return out, err


async def _feed(proc, path: Path, gunzip: bool) -> None:
    import gzip

    opener = gzip.open if gunzip else open
    try:
        with opener(path, "rb") as src:
            while chunk := await asyncio.to_thread(src.read, 1 << 20):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the tool stopped reading (it failed); its exit code and stderr say why
    finally:
        proc.stdin.close()


def check(result: ToolResult, what: str) -> None:
    """Raise ToolError with the tool's first error line unless it exited 0."""
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()), lines[0] if lines else "")
        raise ToolError(f"{what} exited {result.returncode}: {first.strip()}" if first else
                        f"{what} exited {result.returncode}")


async def restore_into(kind: str, path: Path, dsn: str, custom_args: list[str], *, dbname: str | None = None,
                       pgoptions: str | None = None) -> None:
    """Restore a backup file of `kind` into the database of `dsn` (or `dbname` on the same server): custom
    format through pg_restore with `custom_args`, plain SQL (gzipped for sql.gz) through psql in one
    transaction. Raises ToolError with the tool's first error line."""
    conninfo, env = client_args(dsn, dbname)
    if pgoptions:
        env["PGOPTIONS"] = pgoptions
    if kind == "pg_dump-custom":
        result = await run_tool([pg_tool("pg_restore"), *custom_args, "--no-password", f"--dbname={conninfo}",
                                 str(path)], env)
        check(result, "pg_restore")
    else:
        result = await run_tool([pg_tool("psql"), "--no-psqlrc", "--quiet", "--no-password", "--single-transaction",
                                 "--set=ON_ERROR_STOP=1", f"--dbname={conninfo}", "--file=-"], env,
                                stdin_path=path, gunzip=kind == "sql.gz")
        check(result, "psql")


async def pg_row_counts(conn) -> dict[str, int]:
    """Exact ``count(*)`` of every table a dump carries, as {"schema.name": rows}, in the session's snapshot."""
    from psycopg import sql

    counts = {}
    for row in await (await conn.execute(TABLES_SQL)).fetchall():
        cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(row["schema"], row["name"])))
        counts[f"{row['schema']}.{row['name']}"] = (await cur.fetchone())["n"]
    return counts


def sqlite_row_counts(db: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in db.execute(SQLITE_TABLES_SQL)]
    return {name: db.execute(f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
            for name in names}
