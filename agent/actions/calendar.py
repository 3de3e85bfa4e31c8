"""The maintenance calendar (the `maintenance:` section): actions on cron schedules, as the seed workflow
runs them — backup daily at 01:00 then verify_backup, VACUUM ANALYZE weekly, posters daily. The weekly
integrity check (amcheck) follows each database's `integrity.schedule` (agent/probes/integrity.py).

A task runs its action on each of its targets in turn (trigger `schedule`), then its `then` actions on a
target whose run succeeded. While a task runs on a target, the alerts its actions are expected to trip
(`Action.trips`: a backup fills the disk, a VACUUM holds locks a probe waits for) are silenced for that
target, until the run ends or at the latest the action's timeout. A slot missed while the agent was down is
not made up: BackupStale and the other rules say what was missed, and their remediation acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from agent.actions import ACTIONS
from agent.actions.base import ActionError, timeout_for
from agent.actions.runner import ActionRunner
from agent.config import MaintenanceTask

log = logging.getLogger("caretaker.maintenance")

MAX_SLEEP = 60.0  # re-read the clock at least every minute (suspend, clock steps)


def next_slot(task: MaintenanceTask, after: float, tz: str) -> float:
    """Epoch seconds of the task's first cron slot after `after`, in time zone `tz` (DST-aware)."""
    return croniter(task.schedule, datetime.fromtimestamp(after, ZoneInfo(tz))).get_next(float)


class Calendar:
    """Runs the config's maintenance tasks for a Runtime `rt` with `runner`."""

    def __init__(self, rt, runner: ActionRunner):
        self.rt, self.runner = rt, runner
        cfg = rt.config.maintenance
        self.tz = cfg.timezone
        self.tasks = {n: t for n, t in cfg.effective_tasks.items() if t.enabled} if cfg.enabled else {}
        self.running: set[asyncio.Task] = set()

    def due(self, slots: dict[str, float], now: float) -> list[str]:
        """Names of the tasks whose slot has come; their next slots are moved on."""
        names = [n for n, at in slots.items() if at <= now]
        for n in names:
            slots[n] = next_slot(self.tasks[n], now, self.tz)
        return names

    async def service(self, stop: asyncio.Event) -> None:
        """Runtime service: sleep until the next slot, start the due tasks, repeat until `stop`."""
        now = self.rt.clock()
        slots = {n: next_slot(t, now, self.tz) for n, t in self.tasks.items()}
        try:
            while slots and not stop.is_set():
                for name in self.due(slots, self.rt.clock()):
                    task = asyncio.create_task(self.run_task(name), name=f"maintenance:{name}")
                    self.running.add(task)
                    task.add_done_callback(self.running.discard)
                delay = min(MAX_SLEEP, max(0.0, min(slots.values()) - self.rt.clock()))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            for task in list(self.running):
                task.cancel()
            await asyncio.gather(*self.running, return_exceptions=True)

    async def run_task(self, name: str) -> list[dict]:
        """Run one task now on every target; returns the run records (or start answers) in order."""
        task = self.tasks[name]
        action = ACTIONS[task.action]
        records = []
        for target in task.targets or sorted(action.targets(self.rt.config)):
            silences = self._silence(name, [task.action, *task.then], target)
            try:
                record = await self._run(task.action, target, task.params, name)
                records.append(record)
                if record.get("outcome") == "succeeded":
                    for follow in task.then:
                        if target in ACTIONS[follow].targets(self.rt.config):
                            records.append(await self._run(follow, target, {}, name))
            finally:
                self._unsilence(silences)
        return records

    async def _run(self, action: str, target: str, params: dict, task: str) -> dict:
        try:
            prep = self.runner.prepare(action, target, params, confirm=True)
            return await self.runner.run(prep, "schedule", f"maintenance task {task}")
        except ActionError as exc:
            log.warning("maintenance task %s: %s on %s not run: %s", task, action, target, exc.reason)
            return {"action": action, "target": target, "outcome": "refused", "error": exc.reason}

    def _silence(self, task: str, actions: list[str], target: str) -> list[str]:
        alerting = getattr(self.rt, "alerting", None)
        if alerting is None:
            return []
        until = self.rt.clock() + sum(timeout_for(ACTIONS[a], self.rt.config) for a in actions)
        ids = []
        for alertname, label in {trip for a in actions for trip in ACTIONS[a].trips}:
            matchers = {"alertname": alertname, **({label: target} if label else {})}
            ids.append(alerting.silence(matchers, until, f"maintenance task {task} on {target}",
                                        created_by="caretaker maintenance"))
        return ids

    def _unsilence(self, ids: list[str]) -> None:
        for silence_id in ids:
            self.rt.alerting.unsilence(silence_id)
