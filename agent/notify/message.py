"""Notification text: one message per delivery, listing every outbox entry it carries, in order.

Title ``[FIRING:2] DiskSpaceHigh, QueueTimeHigh on HOST``, ``[RESOLVED] DiskSpaceHigh on HOST``, or for a
digest that mixes them ``[FIRING:1, RESOLVED:2] …``. The body has one block per entry: state, alert and
severity, summary, value against the threshold, since when, labels, runbook link, the rule's remediation,
notes attached by the remediator, and what held or muted it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.durations import format_duration
from agent.notify.routes import NOTIFY_TYPES
from agent.rules.engine import Transition
from agent.rules.format import format_value, render
from agent.rules.model import Rule

MAX_TITLE_NAMES = 5
FIRING_KINDS = ("firing", "repeat")


def timestamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def payload(rule: Rule, labels: dict[str, str], value: float | None, since: float, fired_at: float | None,
            at: float, **extra: object) -> dict:
    """The facts a message needs, frozen when the entry is written (the rule may change later)."""
    return {"severity": rule.severity_for(labels), "unit": rule.unit, "op": rule.op, "threshold": rule.threshold,
            "clear": rule.clear, "value": value, "since": since, "fired_at": fired_at, "at": at,
            "summary": None if value is None else render(rule.summary, labels, rule.unit, value, rule.threshold),
            "runbook": rule.runbook_url,
            "remediation": None if rule.remediation is None else
            f"{rule.remediation.action} ({'automatic' if rule.remediation.auto else 'manual'})",
            **extra}


def transition_payload(t: Transition, **extra: object) -> dict:
    return payload(t.rule, dict(t.labels), t.value, t.since, t.fired_at, t.at, **extra)


@dataclass(frozen=True)
class Entry:
    """One outbox row as the composer sees it."""

    kind: str  # firing | repeat | resolved | flapping | note
    rule: str
    labels: dict[str, str]
    payload: dict
    was_held: dict | None = None  # {"by": "...", "since": ts} when it waited for a silence or inhibition
    notes: tuple[str, ...] = ()
    muting: tuple[str, ...] = ()  # alerts this one muted (ids), for an inhibition source


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    notify_type: str


def _condition(p: dict) -> str:
    unit = p["unit"]
    threshold = format_value(unit, p["threshold"])
    if p["value"] is None:
        return "series no longer reported"
    value = format_value(unit, p["value"])
    return f"value {value} {p['op']} {threshold}"


def _state_line(e: Entry, now: float) -> str:
    p = e.payload
    if e.kind == "resolved":
        if p.get("settled"):
            return "stopped flapping; not firing now"
        if p["value"] is None:
            cond = "series no longer reported"
        else:
            clear = p["threshold"] if p["clear"] is None else p["clear"]
            cond = (f"value {format_value(p['unit'], p['value'])} (fires {p['op']} "
                    f"{format_value(p['unit'], p['threshold'])}, clears when not {p['op']} "
                    f"{format_value(p['unit'], clear)})")
        fired = p.get("fired_at")
        span = f"; fired {timestamp(fired)}, resolved {timestamp(p['at'])} after " \
               f"{format_duration(p['at'] - fired)}" if fired else ""
        return cond + span
    if e.kind == "flapping":
        return (f"changed state {p['changes']} times within {format_duration(p['window'])}; its notifications "
                f"are held until it settles. Now {p['state']}: {_condition(p)}")
    since = p["since"]
    line = f"{_condition(p)} since {timestamp(since)} ({format_duration(now - since)} ago)"
    return ("stopped flapping; " if p.get("settled") else "") + line


_HEADS = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED", "flapping": "FLAPPING",
          "note": "NOTE"}


def _block(e: Entry, now: float) -> str:
    p = e.payload
    head = f"{_HEADS[e.kind]} {e.rule} ({p['severity']})"
    lines = [f"{head}: {p['summary']}" if p.get("summary") else head]
    if e.kind == "note":
        lines.append(p["text"])
    else:
        lines.append(_state_line(e, now))
    if e.labels:
        lines.append("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(e.labels.items())))
    if e.kind != "note":
        lines.append(f"runbook: {p['runbook']}")
        if p.get("remediation"):
            lines.append(f"remediation: {p['remediation']}")
    lines += [f"note: {n}" for n in e.notes]
    if e.was_held:
        lines.append(f"held: {e.was_held['by']} from {timestamp(e.was_held['since'])} until {timestamp(now)}")
    if e.muting:
        lines.append("muted meanwhile: " + ", ".join(e.muting))
    return "\n".join(lines)


def _title(entries: list[Entry], host: str) -> str:
    counts = {k: sum(1 for e in entries if e.kind in kinds) for k, kinds in
              (("FIRING", FIRING_KINDS), ("RESOLVED", ("resolved",)), ("FLAPPING", ("flapping",)),
               ("NOTE", ("note",)))}
    present = {k: n for k, n in counts.items() if n}
    if list(present) in (["RESOLVED"], ["NOTE"]):
        head = next(iter(present))
    else:
        head = ", ".join(f"{k}:{n}" for k, n in present.items())
    names = list(dict.fromkeys(e.rule for e in entries))
    shown = ", ".join(names[:MAX_TITLE_NAMES])
    if len(names) > MAX_TITLE_NAMES:
        shown += f" and {len(names) - MAX_TITLE_NAMES} more"
    return f"[{head}] {shown} on {host}"


def _notify_type(entries: list[Entry]) -> str:
    severities = {e.payload["severity"] for e in entries if e.kind in (*FIRING_KINDS, "flapping")}
    for severity in ("critical", "warning", "info"):
        if severity in severities:
            return NOTIFY_TYPES[severity]
    return NOTIFY_TYPES["resolved"] if any(e.kind == "resolved" for e in entries) else NOTIFY_TYPES["info"]


def compose(entries: list[Entry], host: str, now: float) -> Message:
    """The message for `entries` (in outbox order) on `host`."""
    body = "\n\n".join(_block(e, now) for e in entries)
    return Message(_title(entries, host), body, _notify_type(entries))
