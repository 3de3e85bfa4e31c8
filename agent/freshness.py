"""Job freshness with Healthchecks semantics: pure functions of (schedule, last success, grace, now).

Source: healthchecks/healthchecks `hc/api/models.py`, `Check.get_grace_start` and `Check.get_status`.
A job is due at the next scheduled time after its last success: `last + period` for a period, the next
cron occurrence after `last` in the job's time zone for a cron schedule. It is `up` before that, in
`grace` until `due + grace`, and `down` (overdue) from then on. A job that never succeeded is `new`
(Healthchecks does not alert on a check that has never pinged); a manual job is never overdue.

Times are Unix epoch seconds (float). Cron expressions have five fields (minute hour day-of-month month
day-of-week, day-of-week 0 = Sunday) or one of the @hourly/@daily/@weekly/@monthly/@yearly macros, and are
evaluated with croniter in the schedule's IANA time zone. Daylight-saving changes follow Vixie cron (as
cronsim, which Healthchecks uses, does): a wall-clock time skipped by the spring change fires at the first
valid time after the gap; a wall-clock time repeated by the autumn change fires once — except for
schedules whose hour field is a wildcard (`0 * * * *`), which fire in both repeated hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from agent.durations import parse_duration

KINDS = ("cron", "daily", "weekly", "interval", "manual")
_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_MAX_SKIPS = 4  # repeated-hour skips in a row; more would mean a bug, not a schedule


class ScheduleError(ValueError):
    """A schedule that cannot be evaluated; the message names the bad value."""


@dataclass(frozen=True)
class Schedule:
    """`kind` is "cron" (with `cron` and `tz`), "interval" (with `every` seconds) or "manual"."""

    kind: str
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"


@dataclass(frozen=True)
class Verdict:
    """`status`: manual | new | up | grace | down. `due` is the epoch the next success is expected by
    (None for manual and new jobs); `overdue_seconds` is `now - (due + grace)` when down, else 0."""

    status: str
    due: float | None
    overdue_seconds: float


def check_timezone(tz: str) -> str:
    """Return `tz` if it names an IANA time zone; raises ScheduleError otherwise."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)") from None
    return tz


def check_cron(expr: str) -> str:
    """Return the five-field form of `expr`; raises ScheduleError for anything croniter cannot read."""
    text = _MACROS.get(expr.strip().lower(), expr.strip())
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise ScheduleError(f"invalid cron expression {expr!r}: use five fields, minute hour day month weekday")
    return text


def schedule_from(kind: str | None, *, cron: str | None = None, every: float | None = None,
                  hour: int | None = None, minute: int | None = None, day_of_week: int | None = None,
                  tz: str = "UTC") -> Schedule:
    """Build a Schedule from an app's columns. `kind` is one of KINDS (None means manual).

    daily/weekly (Aperture's `job_config`) need `hour` and `minute`, weekly also `day_of_week`
    (0 = Sunday, as JavaScript's getDay() and cron count); interval needs `every` > 0 seconds.
    """
    kind = (kind or "manual").strip().lower()
    if kind == "manual":
        return Schedule("manual")
    check_timezone(tz)
    if kind == "interval":
        if not every or every <= 0:
            raise ScheduleError("interval schedule without a positive period")
        return Schedule("interval", every=float(every))
    if kind in ("daily", "weekly"):
        if hour is None or minute is None or (kind == "weekly" and day_of_week is None):
            raise ScheduleError(f"{kind} schedule needs hour, minute{' and day_of_week' if kind == 'weekly' else ''}")
        cron = f"{int(minute)} {int(hour)} * * {int(day_of_week) if kind == 'weekly' else '*'}"
        kind = "cron"
    if kind == "cron":
        if not cron:
            raise ScheduleError("cron schedule without an expression")
        return Schedule("cron", cron=check_cron(cron), tz=tz)
    raise ScheduleError(f"unknown schedule kind {kind!r}: use one of {', '.join(KINDS)}")


def parse_schedule_text(text: str, tz: str = "UTC") -> Schedule:
    """A config value: "manual", a period ("6h", "30m") or a cron expression ("0 3 * * *")."""
    text = text.strip()
    if text.lower() == "manual":
        return Schedule("manual")
    try:
        every = parse_duration(text)
    except ValueError:
        return schedule_from("cron", cron=text, tz=tz)
    return schedule_from("interval", every=every, tz=tz)


def _repeated_wall_time(moment: datetime) -> bool:
    """True when `moment` is the second occurrence of a local time that the autumn change repeats."""
    zone, naive = moment.tzinfo, moment.replace(tzinfo=None)
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return False
    in_gap = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != naive
    return not in_gap and moment.utcoffset() == second.utcoffset()


def next_cron(expr: str, after: float, tz: str = "UTC") -> float:
    """Epoch of the first occurrence of `expr` strictly after `after`, evaluated in time zone `tz`."""
    expr = check_cron(expr)
    hour_wildcard = expr.split()[1].startswith("*")
    it = croniter(expr, datetime.fromtimestamp(after, ZoneInfo(check_timezone(tz))))
    moment = it.get_next(datetime)
    for _ in range(_MAX_SKIPS):
        if hour_wildcard or not _repeated_wall_time(moment):
            break
        moment = it.get_next(datetime)
    return moment.timestamp()


def due_at(schedule: Schedule, last_success: float) -> float | None:
    """When the next success is expected (Healthchecks' grace start); None for a manual job."""
    if schedule.kind == "interval":
        return last_success + float(schedule.every or 0)
    if schedule.kind == "cron":
        return next_cron(schedule.cron or "", last_success, schedule.tz)
    return None


def judge(schedule: Schedule, last_success: float | None, grace: float, now: float) -> Verdict:
    """The job's freshness at `now` (see the module docstring for the states)."""
    if schedule.kind == "manual":
        return Verdict("manual", None, 0.0)
    if last_success is None:
        return Verdict("new", None, 0.0)
    due = due_at(schedule, last_success)
    assert due is not None
    if now >= due + grace:
        return Verdict("down", due, now - (due + grace))
    return Verdict("grace" if now >= due else "up", due, 0.0)
