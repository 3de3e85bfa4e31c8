"""PostgreSQL health probe: up, size, tables, per-relation dead tuples/size/vacuum age, invalid indexes,
connections by state, longest transaction (DESIGN.md §6 'postgres').

Sources (PostgreSQL 15 docs): §28.2.2 "The Statistics Views" (pg_stat_user_tables n_live_tup, n_dead_tup,
last_vacuum, last_autovacuum; pg_stat_activity state, xact_start), §9.27.7 "Database Object Management
Functions" (pg_database_size, pg_total_relation_size), §53.26 pg_index (indisvalid).
"""

from __future__ import annotations

import logging

import psycopg

from agent.config import Config, DatabaseConfig
from agent.pg import connect, describe_pg_error
from agent.probes.base import Probe, ProbeResult
from agent.samples import Sample, sample

log = logging.getLogger("caretaker.probe.postgres")

SIZE_SQL = "SELECT pg_database_size(current_database()) AS size"
TABLES_SQL = "SELECT count(*) AS n FROM pg_stat_user_tables"
RELATIONS_SQL = """
SELECT schemaname, relname, n_live_tup, n_dead_tup,
       EXTRACT(EPOCH FROM GREATEST(last_vacuum, last_autovacuum)) AS last_vacuum,
       pg_total_relation_size(relid) AS size
FROM pg_stat_user_tables
ORDER BY pg_total_relation_size(relid) DESC, schemaname, relname
LIMIT %s
"""
INVALID_INDEXES_SQL = "SELECT count(*) AS n FROM pg_index WHERE NOT indisvalid"
CONNECTIONS_SQL = """
SELECT state, count(*) AS n FROM pg_stat_activity
WHERE datname = current_database() AND state IS NOT NULL GROUP BY state
"""
LONGEST_TX_SQL = """
SELECT COALESCE(EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)), 0) AS seconds
FROM pg_stat_activity
WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
"""
# pg_stat_activity.state values (docs §28.2.3); exported at 0 when absent so dashboards stack cleanly.
STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call",
          "disabled")


def relation_label(schema: str, name: str) -> str:
    """`movies` for the public schema, `schema.name` elsewhere."""
    return name if schema == "public" else f"{schema}.{name}"


def relation_samples(database: str, rows: list[dict]) -> list[Sample]:
    """Rows of RELATIONS_SQL → size, dead tuples, dead tuple ratio, last vacuum per relation."""
    out = []
    for r in rows:
        rel = relation_label(r["schemaname"], r["relname"])
        live, dead = int(r["n_live_tup"] or 0), int(r["n_dead_tup"] or 0)
        out.append(sample("caretaker_postgres_relation_size_bytes", r["size"], database=database, relation=rel))
        out.append(sample("caretaker_postgres_dead_tuples", dead, database=database, relation=rel))
        out.append(sample("caretaker_postgres_dead_tuple_ratio", dead / (live + dead) if live + dead else 0.0,
                          database=database, relation=rel))
        if r["last_vacuum"] is not None:
            out.append(sample("caretaker_postgres_last_vacuum_timestamp_seconds", float(r["last_vacuum"]),
                              database=database, relation=rel))
    return out


class PostgresProbe(Probe):
    """One database's health. Down or refused login → `caretaker_postgres_up 0` and a reason naming the
    cause (the password is never shown)."""

    kind = "postgres"

    def __init__(self, db: DatabaseConfig):
        super().__init__(db.name, db.interval, db.timeout)
        self.db = db

    async def _one(self, conn: psycopg.AsyncConnection, query: str, params: tuple = ()) -> dict:
        cur = await conn.execute(query, params)
        return await cur.fetchone()

    async def run(self) -> ProbeResult:
        name = self.db.name
        try:
            async with connect(self.db.dsn.get_secret_value(), connect_timeout=self.db.connect_timeout,
                               statement_timeout=self.db.statement_timeout) as conn:
                size = (await self._one(conn, SIZE_SQL))["size"]
                tables = (await self._one(conn, TABLES_SQL))["n"]
                rows = await (await conn.execute(RELATIONS_SQL, (self.db.top_relations,))).fetchall()
                invalid = (await self._one(conn, INVALID_INDEXES_SQL))["n"]
                states = {r["state"]: r["n"] for r in await (await conn.execute(CONNECTIONS_SQL)).fetchall()}
                longest = float((await self._one(conn, LONGEST_TX_SQL))["seconds"])
        except psycopg.Error as exc:
            reason = describe_pg_error(exc)
            return ProbeResult([sample("caretaker_postgres_up", 0, database=name)], ok=False,
                               reason=f"database {name}: {reason}")
        samples = [
            sample("caretaker_postgres_up", 1, database=name),
            sample("caretaker_postgres_database_size_bytes", size, database=name),
            sample("caretaker_postgres_tables", tables, database=name),
            sample("caretaker_postgres_invalid_indexes", invalid, database=name),
            sample("caretaker_postgres_longest_transaction_seconds", longest, database=name),
            *(sample("caretaker_postgres_connections", states.get(s, 0), database=name, state=s) for s in STATES),
            *relation_samples(name, rows),
        ]
        summary = f"{size / 2**20:.1f} MiB, {tables} tables, {invalid} invalid index(es)"
        return ProbeResult(samples, summary=summary)


def build(config: Config, deps) -> list[Probe]:
    return [PostgresProbe(db) for db in config.databases]
