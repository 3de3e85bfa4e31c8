"""Queues probe: length and queue time of each queue an app profile names (DESIGN.md §6 "queues").

Each profile query returns one row `(length, oldest_at)`: how many items wait, and when the oldest of them
was queued (epoch seconds, a timestamp or ISO-8601 text; NULL when the queue is empty). Exports
`caretaker_queue_length{app,queue}` and `caretaker_queue_oldest_age_seconds{app,queue}` ("queue time",
0 for an empty queue), the basis of QueueTimeHigh (> 10 min).
"""

from __future__ import annotations

from agent.appdb import app_entries, describe_db_error, open_app_db, query_params, to_epoch
from agent.config import Config, DatabaseConfig, SQLiteConfig
from agent.durations import format_duration
from agent.probes.base import Probe, ProbeResult
from agent.profiles import Profile
from agent.samples import Sample, sample


def queue_samples(app: str, queue: str, row: dict | None, now: float) -> list[Sample]:
    length = int((row or {}).get("length") or 0)
    oldest = to_epoch((row or {}).get("oldest_at"))
    age = max(0.0, now - oldest) if oldest is not None and length else 0.0
    return [sample("caretaker_queue_length", length, app=app, queue=queue),
            sample("caretaker_queue_oldest_age_seconds", age, app=app, queue=queue)]


class QueuesProbe(Probe):
    kind = "queues"

    def __init__(self, entry: DatabaseConfig | SQLiteConfig, profile: Profile, deps):
        super().__init__(entry.name, entry.app.interval, entry.timeout)
        self.entry, self.profile, self.deps = entry, profile, deps

    async def run(self) -> ProbeResult:
        now = self.deps.clock()
        samples: list[Sample] = []
        try:
            async with open_app_db(self.entry) as db:
                for q in self.profile.queues:
                    rows = await db.rows(q.sql, **query_params(self.entry, now))
                    samples += queue_samples(self.target, q.name, rows[0] if rows else None, now)
        except Exception as exc:  # unreachable database or a broken query: a reason, never a crash
            return ProbeResult(samples, ok=False, reason=describe_db_error(exc))
        parts = []
        for length, age in zip(samples[::2], samples[1::2]):
            parts.append(f"{length.label('queue')} {int(length.value)}"
                         + (f" (oldest {format_duration(age.value)})" if length.value else ""))
        return ProbeResult(samples, summary=", ".join(parts))


def build(config: Config, deps) -> list[Probe]:
    return [QueuesProbe(entry, profile, deps) for entry, profile in app_entries(config) if profile.queues]
