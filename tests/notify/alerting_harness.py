"""An in-process alert pipeline (engine + notifier + state file) with an injected clock, for tests.

    h = Harness(tmp_path, notify={"group_window": "30s"}, rules={"DiskSpaceHigh": {"for": "0s"}})
    h.feed("system", sample("caretaker_disk_usage_ratio", 0.91, mountpoint="/"))
    await h.round()                     # evaluate the rules now, then one delivery pass
    h.dest.messages                     # [(title, body, notify_type)] sent to the default Recorder
"""

from __future__ import annotations

import re

from agent.config import parse_config
from agent.notify.alerting import Alerting
from agent.notify.routes import Destination
from agent.samples import Sample
from agent.state import State
from agent.store import Store


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder(Destination):
    """A destination that records what it is sent; `ok = False` makes every attempt fail."""

    def __init__(self, id: str = "rec", tags: tuple[str, ...] = ()):
        super().__init__(id, frozenset(tags), f"test://{id}", None)
        self.messages: list[tuple[str, str, str]] = []
        self.attempts = 0
        self.ok = True

    def send(self, title: str, body: str, notify_type: str = "info") -> bool:
        self.attempts += 1
        if self.ok:
            self.messages.append((title, body, notify_type))
        return self.ok

    @property
    def titles(self) -> list[str]:
        return [m[0] for m in self.messages]


def heads(body: str) -> list[str]:
    """The block heads of a message body in order: ["FIRING DiskSpaceHigh", "RESOLVED DiskSpaceHigh", ...]."""
    return re.findall(r"^((?:STILL )?[A-Z]+ [A-Za-z]+) \(", body, re.M)


class Harness:
    def __init__(self, tmp_path, notify: dict | None = None, rules: dict | None = None,
                 services: list | None = None, dests: list[Recorder] | None = None, clock: Clock | None = None,
                 apprise: bool = False):
        """`apprise`: deliver to the config's notify.urls through real Apprise instead of Recorders."""
        self.config = parse_config({"agent": {"state_dir": str(tmp_path), "hostname": "box"},
                                    "notify": notify or {}, "rules": rules or {}, "services": services or []})
        self.clock = clock or Clock()
        self.store = Store()
        self.state = State(tmp_path / "state.db")
        self.dests = dests if dests is not None else [Recorder()]
        self.alerting = Alerting(self.config, self.state, self.store, self.clock,
                                 destinations=None if apprise else self.dests)
        self.alerting.notifier.rng = lambda: 1.0  # no jitter: backoff delays are exact
        self.alerting.notifier.tick_interval = 0.01

    @property
    def dest(self) -> Recorder:
        return self.dests[0]

    def feed(self, source: str, *samples: Sample) -> None:
        self.store.replace(("test", source), list(samples))

    async def round(self, advance: float = 0.0) -> None:
        self.clock.t += advance
        self.alerting.engine.evaluate(self.clock())
        await self.alerting.notifier.run_once()

    def outbox(self) -> list[dict]:
        return [dict(r) for r in self.state.query("SELECT * FROM outbox ORDER BY id")]

    def metric(self, name: str) -> float:
        (s,) = self.store.series(name)
        return s.value
