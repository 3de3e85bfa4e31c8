"""vacuum_analyze and reindex against the real PostgreSQL fixtures, with planted faults."""

from __future__ import annotations

import psycopg
import pytest

from action_helpers import act, db_checksum, dead_tuples, plant_dead_tuples, run, runtime
from agent.actions.base import ActionError
from fixtures.invalid_index import plant_invalid_index


def invalid_indexes(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                           "WHERE NOT i.indisvalid ORDER BY 1")]


def test_vacuum_analyze_takes_dead_tuples_to_zero(tmp_path, fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    checksum = db_checksum(dsn, ["movies", "series"])
    before = plant_dead_tuples(dsn, "movies", manifest["counts"]["movies"])  # UPDATE … SET x = x: same rows
    rt = runtime(tmp_path, databases=[{"name": "aperture", "dsn": dsn}])
    try:
        dry = act(rt, "vacuum_analyze", dry_run=True)
        assert dry["outcome"] == "planned"
        [planned] = dry["result"]["relations"]  # only movies is over both thresholds
        assert planned["relation"] == "movies" and planned["dead_tuples"] == before
        assert planned["statement"] == 'VACUUM (ANALYZE) "public"."movies"'
        assert dead_tuples(dsn, "movies") == before  # the dry run vacuumed nothing
        # (reading every row may prune a few dead tuples on the way: count them again after the checksum)
        assert db_checksum(dsn, ["movies", "series"]) == checksum
        before = dead_tuples(dsn, "movies")
        record = act(rt, "vacuum_analyze")
    finally:
        run(rt.close())
    assert record["outcome"] == "succeeded", record["error"]
    [rel] = record["result"]["relations"]
    assert (rel["relation"], rel["dead_tuples_before"], rel["dead_tuples_after"], rel["error"]) == \
        ("movies", before, 0, None)
    assert before > 10_000
    assert dead_tuples(dsn, "movies") == 0
    assert db_checksum(dsn, ["movies", "series"]) == checksum  # VACUUM changes no row


def test_vacuum_named_relations_and_unknown_ones(tmp_path, aperture_db):
    dsn, _ = aperture_db
    rt = runtime(tmp_path, databases=[{"name": "aperture", "dsn": dsn}])
    try:
        record = act(rt, "vacuum_analyze", params={"relations": ["series", "public.api_errors"]})
        assert record["outcome"] == "succeeded"
        assert [r["relation"] for r in record["result"]["relations"]] == ["series", "api_errors"]
        with pytest.raises(ActionError) as e:
            act(rt, "vacuum_analyze", params={"relations": ["no_such_table"]})
        assert e.value.status == 400
        assert e.value.reason == "params.relations: no table 'no_such_table' in database aperture"
    finally:
        run(rt.close())


def test_reindex_rebuilds_an_invalid_index(tmp_path, fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    with psycopg.connect(dsn, autocommit=True) as conn:  # a failed CONCURRENTLY build whose cause is then fixed
        conn.execute("CREATE TABLE tags (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO tags (name) SELECT 'tag ' || (g % 50) FROM generate_series(1, 200) g")
    name = plant_invalid_index(dsn, "tags", "name")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM tags a USING tags b WHERE a.name = b.name AND a.id > b.id")
    assert invalid_indexes(dsn) == sorted([*manifest["invalid_indexes"], name])
    rt = runtime(tmp_path, databases=[{"name": "aperture", "dsn": dsn}])
    try:
        dry = act(rt, "reindex", dry_run=True)
        assert [ix["statement"] for ix in dry["result"]["indexes"]] == [
            f'REINDEX INDEX CONCURRENTLY "public"."{manifest["invalid_indexes"][0]}"',
            f'REINDEX INDEX CONCURRENTLY "public"."{name}"']
        record = act(rt, "reindex")
    finally:
        run(rt.close())
    # the fixed one is valid now; the one over duplicate titles fails again and leaves no _ccnew index behind
    assert invalid_indexes(dsn) == manifest["invalid_indexes"]
    assert record["outcome"] == "failed"
    by_index = {ix["index"]: ix for ix in record["result"]["indexes"]}
    assert by_index[name]["rebuilt"] is True and by_index[name]["error"] is None
    bad = by_index[manifest["invalid_indexes"][0]]
    assert bad["rebuilt"] is False and "could not create unique index" in bad["error"]
    assert record["result"]["rebuilt"] == 1


def test_errors_carry_no_password(tmp_path, pg_cluster):
    password = "s3cret-Pa55"
    dsn = f"postgresql://postgres:{password}@127.0.0.1:{pg_cluster.port}/no_such_db"
    rt = runtime(tmp_path, databases=[{"name": "x", "dsn": dsn}])
    try:
        record = act(rt, "vacuum_analyze", trigger="api")
    finally:
        run(rt.close())
    assert record["outcome"] == "failed" and 'database "no_such_db" does not exist' in record["error"]
    assert password not in str(record) and password.encode() not in rt.state.path.read_bytes()
