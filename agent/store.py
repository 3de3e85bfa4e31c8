"""The store: the latest samples of every probe, replaced whole per (probe, target) source.

Scrapes, rules and the status API read it; only the probe runner writes it. Replacing a source's samples
as a unit means a series a probe stops emitting (a dropped relation) disappears instead of going stale.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from agent.samples import Sample

Source = tuple[str, str]  # (probe, target)


@dataclass
class ProbeStatus:
    """The last result of one probe source, for `caretaker check` and `/api/v1/status`."""

    probe: str
    target: str
    ok: bool
    reason: str
    summary: str
    finished_at: float
    duration_seconds: float


class Store:
    """Thread-safe latest-sample store. `version` increases on every change (the exporter's cache key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_source: dict[Source, list[Sample]] = {}
        self._status: dict[Source, ProbeStatus] = {}
        self.version = 0
        self._by_name: dict[str, list[Sample]] = {}
        self._indexed_version = -1  # the version `_by_name` was built at

    def replace(self, source: Source, samples: list[Sample], status: ProbeStatus | None = None) -> None:
        with self._lock:
            self._by_source[source] = list(samples)
            if status is not None:
                self._status[source] = status
            self.version += 1

    def samples(self) -> list[Sample]:
        with self._lock:
            return [s for group in self._by_source.values() for s in group]

    def series(self, name: str) -> list[Sample]:
        """Every sample of one metric name, across sources (a new list)."""
        with self._lock:
            if self._indexed_version != self.version:
                by_name: dict[str, list[Sample]] = {}
                for group in self._by_source.values():
                    for s in group:
                        by_name.setdefault(s.name, []).append(s)
                self._by_name = by_name
                self._indexed_version = self.version
            return list(self._by_name.get(name, ()))

    def statuses(self) -> list[ProbeStatus]:
        with self._lock:
            return sorted(self._status.values(), key=lambda s: (s.probe, s.target))


@dataclass
class Window:
    """Timestamped events in a sliding window, for ratios such as the service error ratio.

    `ratio(now)` is bad / all over the last `seconds`; 0.0 for an empty window. `add_counts` records
    many events at once (a log probe's run), so memory grows with the runs, not with the events.
    """

    seconds: float
    _events: deque[tuple[float, int, int]] = field(default_factory=deque)  # (at, bad, total)

    def add(self, at: float, bad: bool) -> None:
        self.add_counts(at, int(bad), 1)

    def add_counts(self, at: float, bad: int, total: int) -> None:
        self._events.append((at, bad, total))

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.seconds:
            self._events.popleft()

    def ratio(self, now: float) -> float:
        self._trim(now)
        total = sum(t for _, _, t in self._events)
        return sum(b for _, b, _ in self._events) / total if total else 0.0
