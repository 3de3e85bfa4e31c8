"""amcheck integrity checks: a clean database, a corrupted index on disk, missing privileges."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from agent.config import DatabaseConfig
from agent.integrity import AmcheckUnavailable, run_amcheck
from agent.probes.integrity import IntegrityProbe, check_now, findings
from agent.state import State
from fixtures import corrupt_index, create_scratch_index


def db_config(dsn: str, name: str = "scratch") -> DatabaseConfig:
    return DatabaseConfig(name=name, dsn=dsn, integrity={"statement_timeout": "60s"})


def test_clean_database_has_no_findings(fresh_aperture_db):
    dsn, _ = fresh_aperture_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        tables = conn.execute("SELECT count(*) FROM pg_stat_user_tables").fetchone()[0]
        indexes = conn.execute("SELECT count(*) FROM pg_stat_user_indexes s JOIN pg_index i USING (indexrelid) "
                               "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                               "WHERE a.amname = 'btree' AND i.indisvalid").fetchone()[0]
    report = asyncio.run(run_amcheck(db_config(dsn)))
    assert report.findings == []
    assert report.checked == tables + indexes


def test_corrupted_index_is_counted_and_database_stays_usable(pg_cluster, tmp_path):
    dsn = pg_cluster.create_database("corrupt_me")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION amcheck")
        index = create_scratch_index(dsn)
        corrupt_index(pg_cluster, "corrupt_me", index)
        state = State(tmp_path / "state.db")
        clock = iter(range(1000, 2000, 10)).__next__
        report = asyncio.run(check_now(db_config(dsn), state, clock))
        assert len(report.findings) >= 1
        assert any(index in rel for rel, _ in report.findings)
        assert findings(state, "scratch") == report.findings
        probe = IntegrityProbe(db_config(dsn), state, clock)
        result = asyncio.run(probe.run())
        errors = next(s.value for s in result.samples if s.name == "caretaker_postgres_integrity_errors")
        assert errors == len(report.findings)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM caretaker_scratch").fetchone()[0] == 5000
    finally:
        pg_cluster.drop_database("corrupt_me")


def test_missing_grant_says_which_statements(pg_cluster, fresh_aperture_db, tmp_path):
    dsn, _ = fresh_aperture_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        dbname = conn.info.dbname
    pg_cluster.create_role("checker", "pw")
    try:
        role_dsn = pg_cluster.dsn(dbname, user="checker", password="pw")
        try:
            asyncio.run(run_amcheck(db_config(role_dsn)))
        except AmcheckUnavailable as exc:
            message = str(exc)
        assert "not granted to role checker" in message
        assert "GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO checker;" in message
        assert "verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO checker;" in message
        state = State(tmp_path / "s.db")
        asyncio.run(check_now(db_config(role_dsn), state, lambda: 5.0))
        result = asyncio.run(IntegrityProbe(db_config(role_dsn), state, lambda: 6.0).run())
        assert not result.ok and "GRANT EXECUTE" in result.reason
    finally:
        with pg_cluster.connect("postgres") as conn:
            conn.execute("REASSIGN OWNED BY checker TO postgres")
        with pg_cluster.connect(dbname) as conn:
            conn.execute("DROP OWNED BY checker")
        with pg_cluster.connect("postgres") as conn:
            conn.execute("DROP ROLE checker")


def test_schedule_is_not_due_on_first_start(tmp_path):
    state = State(tmp_path / "s.db")
    probe = IntegrityProbe(db_config("host=127.0.0.1 port=1"), state, lambda: 0.0)
    # 2026-11-22 is a Sunday: the default schedule "0 4 * * 0" is due at 04:00 UTC.
    saturday = 1795392000.0 - 86400 * 2  # 2026-11-21T00:00:00Z
    assert probe.due(saturday) is False          # first start records the baseline only
    assert probe.due(saturday + 27 * 3600) is False   # Sunday 03:00
    assert probe.due(saturday + 28 * 3600) is True    # Sunday 04:00


def test_cancelled_run_is_recorded_so_the_next_tick_does_not_restart_it(tmp_path, monkeypatch):
    """A run cut off by the probe's timeout (or a shutdown) counts as the slot's run: without a record,
    due() stayed true and amcheck restarted on every 60 s tick."""
    import agent.probes.integrity as integrity_probe

    async def endless(db, clock):
        await asyncio.sleep(3600)

    monkeypatch.setattr(integrity_probe, "run_amcheck", endless)
    state = State(tmp_path / "s.db")
    sunday_4am = 1795392000.0 + 4 * 3600  # 2026-11-22T04:00:00Z, a slot of the default "0 4 * * 0"
    probe = IntegrityProbe(db_config("host=127.0.0.1 port=1"), state, lambda: sunday_4am)
    state.put("integrity_first_seen:scratch", repr(sunday_4am - 7 * 86400))
    assert probe.due(sunday_4am)

    async def tick():
        await asyncio.wait_for(probe.run(), timeout=0.2)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(tick())
    run = integrity_probe.last_run(state, "scratch")
    assert run["error"] == "integrity check of scratch cancelled (timeout or shutdown)"
    assert run["started_at"] == sunday_4am and run["finished_at"] == sunday_4am
    assert probe.due(sunday_4am + 60) is False  # the next tick waits for next Sunday's slot
    assert probe.due(sunday_4am + 7 * 86400) is True
    result = asyncio.run(IntegrityProbe(db_config("host=127.0.0.1 port=1"), state, lambda: sunday_4am + 60).run())
    assert not result.ok and "cancelled" in result.reason
