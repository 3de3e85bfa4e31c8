"""Auto-remediation: policies, a firing alert that runs its action and whose next notification states the outcome,
and a loop that stops at its cap and escalates once."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest

from action_helpers import plant_dead_tuples, runtime
from agent.actions.remediation import policy_for
from agent.config import parse_config
from agent.rules.model import load_rules

NOTIFY = {"urls": ["json://127.0.0.1:9/caretaker"]}  # the delivery loop is not started: messages stay queued


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def settle(rt, runs: int) -> None:
    """Until `runs` action runs exist and every run and follow-up has finished (bounded: 20 s)."""
    for _ in range(800):
        await asyncio.sleep(0.025)
        if len(rt.actions.runs()) >= runs and not rt.actions.live and not rt.remediator.tasks:
            return
    raise AssertionError(f"runs: {rt.actions.runs()}")


def probe(rt, kind: str):
    return next(p for p in rt.probes if p.kind == kind)


@pytest.mark.parametrize("overrides, rule, action, auto", [
    ({}, "PostgresDeadTuplesHigh", "vacuum_analyze", True),
    ({}, "JobStuck", "clear_stuck_jobs", True),  # destructive, but auto_safe when scoped to the alert
    ({}, "BackupStale", "backup", True),
    ({}, "PostersMissing", "poster_repair", False),
    ({}, "LegacyEmbeddingsPresent", "drop_legacy_embeddings", False),
    ({"LegacyEmbeddingsPresent": {"auto": True}}, "LegacyEmbeddingsPresent", "drop_legacy_embeddings", True),
    ({"PostgresDeadTuplesHigh": {"auto": False}}, "PostgresDeadTuplesHigh", "vacuum_analyze", False),
    ({"PostersMissing": {"auto": True}}, "PostersMissing", "poster_repair", True),
    ({"DiskSpaceHigh": {"action": "prune_logs"}}, "DiskSpaceHigh", "prune_logs", False),  # destructive: not by default
])
def test_policies(overrides, rule, action, auto):
    config = parse_config({"remediation": overrides})
    [r] = [r for r in load_rules(config.rules) if r.name == rule]
    policy = policy_for(config, r)
    assert (policy.action.name, policy.auto) == (action, auto)


def test_firing_alert_is_remediated_and_the_note_states_the_outcome(tmp_path, fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    clock = Clock()
    planted = plant_dead_tuples(dsn, "movies", manifest["counts"]["movies"])

    async def main():
        rt = runtime(tmp_path, clock=clock, alerting=True, notify=NOTIFY,
                     databases=[{"name": "aperture", "dsn": dsn, "integrity": {"enabled": False}}])
        try:
            pg = probe(rt, "postgres")
            await rt.probe_once(pg)  # pending: the rule's `for` is 30 minutes
            clock.now += 31 * 60
            await rt.probe_once(pg)  # firing → vacuum_analyze on the alert's relation
            await settle(rt, 1)
            notes = [r["text"] for r in rt.state.query("SELECT text FROM alert_notes")]
            outbox = [(r["kind"], r["rule"]) for r in rt.state.query("SELECT kind, rule FROM outbox ORDER BY id")]
            return rt.actions.runs(), notes, outbox, [a["name"] for a in rt.alerting.alerts()]
        finally:
            await rt.close()

    runs, notes, outbox, active = asyncio.run(main())
    [record] = runs
    assert (record["action"], record["trigger"], record["who"], record["outcome"]) == (
        "vacuum_analyze", "alert", "rule PostgresDeadTuplesHigh", "succeeded")
    assert record["alert"] == 'PostgresDeadTuplesHigh{database="aperture",relation="movies"}'
    assert notes == [f"vacuum_analyze on movies: dead tuples {planted:,} → 0; resolved".replace(",", " ")]
    assert ("firing", "PostgresDeadTuplesHigh") in outbox and ("resolved", "PostgresDeadTuplesHigh") in outbox
    assert "PostgresDeadTuplesHigh" not in active


def test_remediation_loop_stops_at_its_cap_and_escalates_once(tmp_path, tsundoku_db):
    db_path, _, manifest = tsundoku_db
    clock = Clock()
    key = 'JobStuck{app="tsundoku",job_name="series-refresh"}'

    def crash_again() -> int:  # the app crashes again: one more run left 'running', three days old
        started = datetime.now(timezone.utc) - timedelta(days=3)
        with sqlite3.connect(db_path) as conn:
            return conn.execute("INSERT INTO series_refresh_runs (provider_id, started_at, status, trigger) "
                                "VALUES ('anilist', ?, 'running', 'cron')",
                                (started.strftime("%Y-%m-%dT%H:%M:%S.000Z"),)).lastrowid

    async def main():
        rt = runtime(tmp_path, clock=clock, alerting=True, notify=NOTIFY,
                     sqlite=[{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku"}],
                     remediation={"JobStuck": {"cooldown": "10m", "max_runs": 2, "window": "1h"}})
        try:
            jobs = probe(rt, "jobs")
            await rt.probe_once(jobs)  # the fixture's stuck runs: JobStuck fires, run 1
            await settle(rt, 1)
            clock.now += 11 * 60
            crash_again()
            await rt.probe_once(jobs)  # fires again after the cooldown: run 2
            await settle(rt, 2)
            clock.now += 11 * 60
            left = crash_again()
            await rt.probe_once(jobs)  # third time within the hour: capped, escalated
            await settle(rt, 2)
            clock.now += 11 * 60
            await rt.probe_once(jobs)  # still firing: the retry hits the cap again, no second escalation
            await settle(rt, 2)
            escalations = rt.state.query("SELECT alert FROM remediation_escalations")
            notes = [json.loads(r["payload"]) for r in rt.state.query(
                "SELECT payload FROM outbox WHERE kind = 'note' ORDER BY id")]
            firing = [a["name"] for a in rt.alerting.alerts() if a["state"] == "firing"]
            return rt.actions.runs(), escalations, notes, firing, left
        finally:
            await rt.close()

    runs, escalations, notes, firing, left = asyncio.run(main())
    assert [(r["action"], r["alert"], r["outcome"]) for r in runs] == [("clear_stuck_jobs", key, "succeeded")] * 2
    assert [r["params"].get("job") for r in runs] == ["series-refresh"] * 2  # from the alert's job_name label
    assert [r["alert"] for r in escalations] == [key]
    [escalation] = [n for n in notes if "Auto-remediation stopped" in (n.get("text") or "")]
    assert escalation["severity"] == "critical"
    assert re.search(r"clear_stuck_jobs ran 2 times within 1h", escalation["text"])
    assert "JobStuck" in firing  # (clearing adds failed runs: JobErrorRateHigh may fire too)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT status FROM series_refresh_runs WHERE id = ?", (left,)).fetchone() == ("running",)
        assert conn.execute("SELECT count(*) FROM series_refresh_runs WHERE id IN (%s) AND status = 'failure'"
                            % ",".join(map(str, manifest["stuck_run_ids"]))).fetchone() == (3,)
