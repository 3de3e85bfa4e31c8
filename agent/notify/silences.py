"""Silences and recurring maintenance windows: matchers over an alert's name and labels.

A matcher is Alertmanager's text form, ``NAME=VALUE``, ``NAME!=VALUE``, ``NAME=~REGEX``, ``NAME!~REGEX``
(regexes anchored at both ends); the alert's name is the label ``alertname``. A silence holds the *new*
notifications of every alert that all its matchers match while ``starts_at <= now < ends_at``; the alert
is still evaluated and exported, and when the silence ends while it still fires, it is sent then.
Silences live in the state file (table `silences`), so the CLI, the API and the agent share them.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from agent.state import State

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
MATCHER_HELP = "use NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX (e.g. alertname=DiskSpaceHigh)"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op in ("=", "!="):
            return (actual == self.value) == (self.op == "=")
        return (re.fullmatch(self.value, actual) is not None) == (self.op == "=~")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; ValueError quotes the text and says the accepted forms."""
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(f"bad matcher {text!r}: {MATCHER_HELP}")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad matcher {text!r}: invalid regex ({exc})") from None
    return Matcher(name, op, value)


def matches_all(matchers: tuple[Matcher, ...], rule: str, labels: dict[str, str]) -> bool:
    full = {**labels, "alertname": rule}
    return all(m.matches(full) for m in matchers)


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    created_at: float

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def as_dict(self) -> dict:
        return {"id": self.id, "matchers": [str(m) for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "reason": self.reason, "created_by": self.created_by,
                "created_at": self.created_at}


def add_silence(state: State, matchers: list[str] | dict[str, str], ends_at: float, reason: str,
                created_by: str, now: float, starts_at: float | None = None) -> Silence:
    """Create a silence; `matchers` as text (``["alertname=X"]``) or a dict of equalities.

    Raises ValueError for no matcher, a bad matcher, or an end not after the start."""
    texts = [f"{k}={v}" for k, v in matchers.items()] if isinstance(matchers, dict) else list(matchers)
    parsed = tuple(parse_matcher(t) for t in texts)
    if not parsed:
        raise ValueError(f"a silence needs at least one matcher: {MATCHER_HELP}")
    start = now if starts_at is None else starts_at
    if ends_at <= start:
        raise ValueError("the silence must end after it starts")
    silence = Silence(secrets.token_hex(4), parsed, start, ends_at, reason, created_by, now)
    with state.tx() as db:
        db.execute("INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (silence.id, json.dumps([str(m) for m in parsed]), start, ends_at, reason, created_by, now))
    return silence


def list_silences(state: State, now: float, include_expired: bool = False) -> list[Silence]:
    """Current and future silences (and, with `include_expired`, ended ones), by start time."""
    rows = state.query("SELECT * FROM silences WHERE ends_at > ? ORDER BY starts_at, id",
                       (float("-inf") if include_expired else now,))
    return [Silence(r["id"], tuple(parse_matcher(t) for t in json.loads(r["matchers"])), r["starts_at"],
                    r["ends_at"], r["reason"], r["created_by"], r["created_at"]) for r in rows]


def expire_silence(state: State, silence_id: str, now: float) -> bool:
    """End a silence now (kept for the record, like Alertmanager's expire). False if unknown or ended."""
    with state.tx() as db:
        cur = db.execute("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?", (now, silence_id, now))
        return cur.rowcount > 0


class MaintenanceWindows:
    """The config's recurring windows (`notify.maintenance_windows`): `active(now)` gives the windows in
    force, as (name, matchers, end). A window is in force from each cron slot for its duration."""

    def __init__(self, windows: list) -> None:
        self.windows = [(w, tuple(parse_matcher(t) for t in w.matchers)) for w in windows]

    def active(self, now: float) -> list[tuple[str, tuple[Matcher, ...], float]]:
        out = []
        for w, matchers in self.windows:
            # The latest slot at or before now: croniter's get_prev is strictly before its start and works
            # in whole seconds, so start one second later and step back once more if that overshot.
            slots = croniter(w.schedule, datetime.fromtimestamp(now, ZoneInfo(w.timezone)) + timedelta(seconds=1))
            start = slots.get_prev(float)
            if start > now:
                start = slots.get_prev(float)
            if start <= now < start + w.duration:
                out.append((w.name, matchers, start + w.duration))
        return out
