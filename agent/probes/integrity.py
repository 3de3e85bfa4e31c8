"""Integrity probe: runs amcheck (agent.integrity) on each database's cron schedule (default weekly) and
exports the last run from the state file, so the series survive a restart and a scrape between runs
still shows the last verdict.

A run that could not happen (amcheck missing or not granted, database down) is kept as the last run's
`error`: the probe fails with that reason until a later run succeeds, and the log says it once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from croniter import croniter

from agent.config import Config, DatabaseConfig
from agent.integrity import AmcheckUnavailable, IntegrityReport, run_amcheck
from agent.pg import describe_pg_error
from agent.probes.base import Probe, ProbeResult
from agent.samples import sample
from agent.state import State

log = logging.getLogger("caretaker.integrity")

TICK_SECONDS = 60.0


def save_report(state: State, report: IntegrityReport, error: str | None = None) -> None:
    with state.tx() as db:
        db.execute("INSERT OR REPLACE INTO integrity_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (report.database, report.started_at, report.finished_at, report.checked, len(report.skipped),
                    len(report.findings), error))
        db.executemany("INSERT INTO integrity_findings VALUES (?, ?, ?, ?)",
                       [(report.database, report.started_at, rel, msg) for rel, msg in report.findings])


def last_run(state: State, database: str):
    rows = state.query("SELECT * FROM integrity_runs WHERE database = ? ORDER BY started_at DESC LIMIT 1",
                       (database,))
    return rows[0] if rows else None


def findings(state: State, database: str) -> list[tuple[str, str]]:
    """(relation, message) of the database's last run."""
    run = last_run(state, database)
    if run is None:
        return []
    rows = state.query("SELECT relation, message FROM integrity_findings WHERE database = ? AND started_at = ?",
                       (database, run["started_at"]))
    return [(r["relation"], r["message"]) for r in rows]


async def check_now(db: DatabaseConfig, state: State, clock) -> IntegrityReport:
    """Run amcheck on `db` now and record the outcome; errors are recorded, not raised. A cancelled run
    (probe timeout, shutdown) is recorded too, so the next tick does not start it again, and re-raised."""
    report = IntegrityReport(db.name, clock())
    error = None
    try:
        report = await run_amcheck(db, clock)
    except asyncio.CancelledError:
        report.finished_at = clock()
        error = f"integrity check of {db.name} cancelled (timeout or shutdown)"
        log.error("%s", error)
        save_report(state, report, error)
        raise
    except AmcheckUnavailable as exc:
        error = str(exc)
    except Exception as exc:  # a down database is the health probe's finding; here it only delays the check
        error = f"integrity check of {db.name} could not run: {describe_pg_error(exc)}"
    report.finished_at = report.finished_at or clock()
    if error:
        log.error("%s", error)
    elif report.findings:
        log.error("amcheck found %d problem(s) in %s: %s", len(report.findings), db.name,
                  "; ".join(f"{r}: {m}" for r, m in report.findings[:5]))
    save_report(state, report, error)
    return report


class IntegrityProbe(Probe):
    kind = "postgres_integrity"

    def __init__(self, db: DatabaseConfig, state: State, clock):
        # The tick is short and cheap: it only decides whether the cron schedule is due.
        super().__init__(db.name, TICK_SECONDS, db.integrity.statement_timeout * 50)
        self.db, self.state, self.clock = db, state, clock

    def due(self, now: float) -> bool:
        """Due when the schedule had a slot after the last run (or after the first start, never at once:
        a new install does not run amcheck in business hours)."""
        run = last_run(self.state, self.db.name)
        key = f"integrity_first_seen:{self.db.name}"
        since = run["started_at"] if run else float(self.state.get(key) or 0)
        if not since:
            self.state.put(key, repr(now))
            return False
        start = datetime.fromtimestamp(since, timezone.utc)
        return croniter(self.db.integrity.schedule, start).get_next(float) <= now

    async def run(self) -> ProbeResult:
        if self.due(self.clock()):
            await check_now(self.db, self.state, self.clock)
        run = last_run(self.state, self.db.name)
        if run is None:
            return ProbeResult(summary="no amcheck run yet")
        if run["error"]:
            return ProbeResult(ok=False, reason=run["error"])
        name = self.db.name
        return ProbeResult([
            sample("caretaker_postgres_integrity_errors", run["errors"], database=name),
            sample("caretaker_postgres_integrity_check_timestamp_seconds", run["finished_at"], database=name),
            sample("caretaker_postgres_integrity_check_duration_seconds", run["finished_at"] - run["started_at"],
                   database=name),
        ], summary=f"{run['checked']} relations checked, {run['errors']} finding(s), {run['skipped']} skipped")


def build(config: Config, deps) -> list[Probe]:
    return [IntegrityProbe(db, deps.state, deps.clock) for db in config.databases if db.integrity.enabled]
