"""The whole loop with the real servers (issue 6, "How it is shown"): Prometheus scrapes a running Caretaker
and evaluates the exported rules; a planted fault (dead tuples over the threshold) fires
PostgresDeadTuplesHigh; Alertmanager delivers it to Caretaker's `/api/v1/alertmanager` webhook with the
admin token; Caretaker runs the mapped remediation (vacuum_analyze on that relation) and the alert
resolves in Prometheus. Debian's prometheus and prometheus-alertmanager, on loopback ports
(tests/promstack.py); every wait is bounded (≤ 60 s) and every server is stopped by its PID.

The rule file is the committed export with one change: PostgresDeadTuplesHigh's `for` is 0s instead of
30m, so the test need not wait half an hour. Caretaker's own engine keeps the 30m, so the only way the
remediation can start within the test is the Alertmanager webhook.
"""

from __future__ import annotations

import httpx
import psycopg
import yaml

from agentproc import AgentProcess
from bundle_sources import RULES_FILE
from promstack import Alertmanager, Prometheus, skip_unless_installed
from receivers import wait_until

ALERT = "PostgresDeadTuplesHigh"
TOKEN = "loop-admin-token-0123456789"
TABLE = "episodes"  # 30 000 rows and no planted index fault (movies carries the INVALID unique index)
UPDATED = 15_000  # dead tuples after the UPDATE: over 10 000, and 15 000 / 45 000 = 0.33 > 0.20


def rules_with_short_for(path) -> None:
    """The committed rule file, with `for: 0s` on the one rule this test makes fire."""
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"] if r["alert"] == ALERT]
    assert len(rules) == 1, rules
    rules[0]["for"] = "0s"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def plant_dead_tuples(dsn: str) -> None:
    """Autovacuum off on the table (it would clean up behind the test's back), then a bulk UPDATE that
    leaves one dead version per row; pg_stat_force_next_flush() publishes the counts at once instead of
    within the stats system's 1 s (PostgreSQL 15 docs §28.2.2, §9.27)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ANALYZE {TABLE}")  # n_live_tup as a settled database has it; a fresh clone has no stats
        conn.execute(f"ALTER TABLE {TABLE} SET (autovacuum_enabled = false)")
        conn.execute(f"UPDATE {TABLE} SET updated_at = now() WHERE id <= %s", (UPDATED,))
        conn.execute("SELECT pg_stat_force_next_flush()")


def dead_tuples(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (TABLE,)).fetchone()[0]


def test_dead_tuples_fire_in_prometheus_alertmanager_remediates_and_it_resolves(tmp_path, fresh_aperture_db):
    skip_unless_installed()
    dsn, _ = fresh_aperture_db
    token_file = tmp_path / "admin_token"
    token_file.write_text(TOKEN)
    rules = tmp_path / "rules.yml"
    rules_with_short_for(rules)
    config = {"agent": {"admin_token_file": str(token_file)}, "system": {"enabled": False},
              "databases": [{"name": "aperture", "dsn": dsn, "interval": "1s", "integrity": {"enabled": False}}]}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    (tmp_path / "agent").mkdir()
    agent = AgentProcess(tmp_path / "agent", config)
    with agent, \
            Alertmanager(tmp_path / "am", webhook=f"{agent.url}/api/v1/alertmanager", token_file=token_file) as am, \
            Prometheus(tmp_path / "prom", targets=[f"127.0.0.1:{agent.port}"], rule_files=[rules],
                       alertmanager=am.address) as prom:
        wait_until(prom.targets_up, 30, "Prometheus to scrape Caretaker")
        assert prom.alerts(state="firing") == []

        import time; T=time.monotonic(); plant_dead_tuples(dsn)
        wait_until(lambda: dead_tuples(dsn) > 10_000, 10, f"the dead tuples of {TABLE} in pg_stat_user_tables")
        alert, = prom.wait_for_alert(ALERT, "firing", timeout=60); print("FIRING", time.monotonic()-T)
        assert {k: alert["labels"][k] for k in ("database", "relation", "severity")} == {
            "database": "aperture", "relation": TABLE, "severity": "info"}
        assert float(alert["value"]) > 0.2

        def remediation_run() -> dict | None:
            runs = httpx.get(f"{agent.url}/api/v1/actions/runs", params={"action": "vacuum_analyze"}, headers=auth,
                             timeout=5).json()["runs"]
            return runs[0] if runs and runs[0]["outcome"] != "running" else None
        run = wait_until(remediation_run, 60, "the vacuum_analyze run started by the Alertmanager webhook")
        print("REMEDIATED", time.monotonic()-T, run["started_at"], run["finished_at"]); assert (run["trigger"], run["who"], run["target"], run["outcome"]) == (
            "alertmanager", f"rule {ALERT}", "aperture", "succeeded"), run
        assert run["params"]["relations"] == [TABLE]
        relation, = run["result"]["relations"]
        assert relation["relation"] == TABLE and relation["dead_tuples_before"] > 10_000
        assert relation["dead_tuples_after"] == 0 and relation["error"] is None
        assert dead_tuples(dsn) == 0

        prom.wait_for_no_alert(ALERT, timeout=60); print("RESOLVED", time.monotonic()-T)
        assert agent.metric("caretaker_postgres_dead_tuples", database="aperture", relation=TABLE) == 0
        assert agent.metric("caretaker_action_runs_total", action="vacuum_analyze", outcome="succeeded") == 1
        # Alertmanager's further deliveries (resolved, repeats) started no second run.
        runs = httpx.get(f"{agent.url}/api/v1/actions/runs", headers=auth, timeout=5).json()["runs"]
        assert [r["run_id"] for r in runs] == [run["run_id"]]
        # The clone's planted INVALID index is pending for its 15 minutes; nothing else is active.
        assert {a["labels"]["alertname"]: a["state"] for a in prom.alerts()} == {"PostgresInvalidIndex": "pending"}
    for server in (agent, am, prom):
        assert server.proc is not None and server.proc.poll() is not None, f"{server} still running"
