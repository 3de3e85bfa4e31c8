"""PostgreSQL health probe against a real PostgreSQL 15 with an Aperture-shaped database."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from agent.config import DatabaseConfig
from agent.probes.postgres import PostgresProbe
from fixtures import plant_invalid_index
from pgcluster import free_port


def probe_for(dsn: str, name: str = "aperture", **kw) -> PostgresProbe:
    return PostgresProbe(DatabaseConfig(name=name, dsn=dsn, **kw))


def values(result, name: str) -> dict:
    return {s.labels: s.value for s in result.samples if s.name == name}


def value(result, name: str, **labels) -> float:
    wanted = tuple(sorted(labels.items()))
    return next(s.value for s in result.samples if s.name == name and all(p in s.labels for p in wanted))


def test_size_and_tables_agree_with_postgres(aperture_db):
    dsn, _ = aperture_db
    result = asyncio.run(probe_for(dsn).run())
    assert result.ok, result.reason
    with psycopg.connect(dsn) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM pg_stat_user_tables").fetchone()[0]
    assert value(result, "caretaker_postgres_up", database="aperture") == 1
    assert value(result, "caretaker_postgres_database_size_bytes") == pytest.approx(size, abs=64 * 8192)
    assert value(result, "caretaker_postgres_tables") == tables
    assert tables >= 12
    assert value(result, "caretaker_postgres_connections", state="active") >= 0
    assert len(values(result, "caretaker_postgres_connections")) == 6
    assert value(result, "caretaker_postgres_invalid_indexes") == 1  # planted by the fixture


def test_dead_tuples_after_bulk_update(fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE movies SET (autovacuum_enabled = false)")
        updated = conn.execute("UPDATE movies SET title = title || ' '").rowcount
        conn.execute("SELECT pg_stat_force_next_flush()")
    with psycopg.connect(dsn) as conn:
        live, dead, rel_size = conn.execute(
            "SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables "
            "WHERE relname = 'movies'").fetchone()
    assert dead == updated == manifest["counts"]["movies"]
    result = asyncio.run(probe_for(dsn).run())
    assert value(result, "caretaker_postgres_dead_tuples", relation="movies") == dead
    assert value(result, "caretaker_postgres_dead_tuple_ratio", relation="movies") == pytest.approx(
        dead / (live + dead))
    assert value(result, "caretaker_postgres_relation_size_bytes", relation="movies") == rel_size


def test_top_relations_bounds_cardinality(aperture_db):
    dsn, _ = aperture_db
    result = asyncio.run(probe_for(dsn, top_relations=3).run())
    sizes = values(result, "caretaker_postgres_relation_size_bytes")
    assert len(sizes) == 3
    with psycopg.connect(dsn) as conn:
        largest = conn.execute("SELECT relname FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) "
                               "DESC, schemaname, relname LIMIT 3").fetchall()
    assert sorted(dict(k)["relation"] for k in sizes) == sorted(r[0] for r in largest)


def test_invalid_index_is_counted(fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    planted = len(manifest["invalid_indexes"])  # the fixture leaves one on movies(title)
    assert value(asyncio.run(probe_for(dsn).run()), "caretaker_postgres_invalid_indexes") == planted == 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE dupes AS SELECT g % 10 AS k FROM generate_series(1, 1000) g")
    plant_invalid_index(dsn, "dupes", "k")
    assert value(asyncio.run(probe_for(dsn).run()), "caretaker_postgres_invalid_indexes") == planted + 1


def test_longest_transaction(aperture_db):
    dsn, _ = aperture_db
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT 1")  # opens a transaction (autocommit off) and keeps it open
        holder.execute("SELECT pg_sleep(0.3)")
        result = asyncio.run(probe_for(dsn).run())
    assert value(result, "caretaker_postgres_longest_transaction_seconds") >= 0.3


def test_down_database_is_up_zero_with_cause(caplog):
    dsn = f"host=127.0.0.1 port={free_port()} user=postgres password=s3cret-pw dbname=x"
    result = asyncio.run(probe_for(dsn, name="gone", connect_timeout="2s").run())
    assert not result.ok
    assert value(result, "caretaker_postgres_up", database="gone") == 0
    assert "refused" in result.reason.lower()
    assert "s3cret-pw" not in result.reason


def test_refused_login_names_the_cause(pg_cluster):
    dsn = pg_cluster.dsn("postgres", user="no_such_role", password="s3cret-pw")
    result = asyncio.run(probe_for(dsn, name="login").run())
    assert not result.ok and value(result, "caretaker_postgres_up") == 0
    assert 'role "no_such_role" does not exist' in result.reason
    assert "s3cret-pw" not in result.reason


def test_failure_goes_through_runner_as_metric_and_log(pg_cluster, caplog):
    from agent.probes.base import run_probe
    from agent.store import Store

    store = Store()
    dsn = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/x"
    with caplog.at_level(logging.WARNING):
        status = asyncio.run(run_probe(probe_for(dsn, name="gone"), store))
    assert not status.ok
    assert [s.value for s in store.series("caretaker_probe_success")] == [0.0]
    assert [s.value for s in store.series("caretaker_postgres_up")] == [0.0]
    assert "gone" in caplog.text and "refused" in caplog.text.lower()
    assert "s3cret-pw" not in caplog.text
