"""Job freshness (Healthchecks semantics) at every boundary, including DST changes in Europe/Berlin."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from agent.freshness import (Schedule, ScheduleError, judge, next_cron, parse_schedule_text, schedule_from)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
H = 3600.0


def ts(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def states(schedule: Schedule, last: float, grace: float, *nows: float) -> list[tuple[str, float]]:
    return [(v.status, v.overdue_seconds) for v in (judge(schedule, last, grace, now) for now in nows)]


def test_interval_boundaries():
    every = schedule_from("interval", every=H)
    last = ts(2026, 1, 5, 10, 0)
    due, grace = last + H, 600.0
    assert states(every, last, grace, due - 1, due, due + grace - 1, due + grace, due + grace + 60) == [
        ("up", 0), ("grace", 0), ("grace", 0), ("down", 0), ("down", 60)]


def test_daily_cron_boundaries_in_utc():
    daily = schedule_from("cron", cron="0 2 * * *")
    last = ts(2026, 1, 5, 2, 10)  # the 02:00 run finished at 02:10
    due = ts(2026, 1, 6, 2, 0)
    assert judge(daily, last, H, last).due == due
    assert states(daily, last, H, due - 1, due, due + H - 1, due + H, due + 2 * H) == [
        ("up", 0), ("grace", 0), ("grace", 0), ("down", 0), ("down", H)]


def test_aperture_daily_and_weekly_columns():
    daily = schedule_from("daily", hour=2, minute=0)
    weekly = schedule_from("weekly", hour=4, minute=0, day_of_week=0)  # 0 = Sunday, as getDay()
    assert (daily.cron, weekly.cron) == ("0 2 * * *", "0 4 * * 0")
    last = ts(2026, 3, 1, 4, 22)  # Sunday 1 March 2026
    assert judge(weekly, last, H, last).due == ts(2026, 3, 8, 4, 0)


def test_manual_never_overdue_and_new_is_not_down():
    assert judge(schedule_from("manual"), ts(2020, 1, 1), H, ts(2026, 1, 1)) == judge(schedule_from(None), None, H, 0)
    assert judge(schedule_from("manual"), 0.0, H, ts(2026, 1, 1)).status == "manual"
    assert judge(schedule_from("interval", every=60), None, 0, ts(2026, 1, 1)).status == "new"


# --- DST: Europe/Berlin springs forward 2026-03-29 02:00 → 03:00 and falls back 2026-10-25 03:00 → 02:00 ----


def test_spring_forward_skipped_time_fires_at_the_gap_end():
    sched = schedule_from("cron", cron="30 2 * * *", tz="Europe/Berlin")  # 02:30 does not exist on 29 March
    last = ts(2026, 3, 28, 2, 35, tz=BERLIN)
    due = ts(2026, 3, 29, 3, 0, tz=BERLIN)
    assert due == ts(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert states(sched, last, H, due - 1, due, due + H - 1, due + H + 30) == [
        ("up", 0), ("grace", 0), ("grace", 0), ("down", 30)]
    assert next_cron("30 2 * * *", due, "Europe/Berlin") == ts(2026, 3, 30, 0, 30)  # 02:30 CEST again


def test_spring_forward_day_is_23_hours():
    sched = schedule_from("cron", cron="0 3 * * *", tz="Europe/Berlin")
    last = ts(2026, 3, 28, 3, 10, tz=BERLIN)  # 02:10 UTC
    due = ts(2026, 3, 29, 3, 0, tz=BERLIN)  # 01:00 UTC: 22h50m later, not last + 24 h
    assert due - last == 22 * H + 50 * 60
    assert states(sched, last, H, due + H - 1, due + H) == [("grace", 0), ("down", 0)]
    assert judge(sched, last, H, last + 24 * H).overdue_seconds == 10 * 60  # a naive +24 h check would miss it


def test_fall_back_repeated_time_fires_once():
    sched = schedule_from("cron", cron="30 2 * * *", tz="Europe/Berlin")  # 02:30 happens twice on 25 October
    last = ts(2026, 10, 25, 0, 35)  # after the first 02:30 (CEST, 00:30 UTC)
    due = ts(2026, 10, 26, 2, 30, tz=BERLIN)  # not the repeated 02:30 CET an hour later
    assert due == ts(2026, 10, 26, 1, 30)
    repeated = ts(2026, 10, 25, 1, 30)
    assert states(sched, last, H, repeated + H + 1, due - 1, due + H + 5) == [("up", 0), ("up", 0), ("down", 5)]


def test_fall_back_day_is_25_hours():
    sched = schedule_from("cron", cron="0 3 * * *", tz="Europe/Berlin")
    last = ts(2026, 10, 24, 3, 5, tz=BERLIN)  # 01:05 UTC
    due = ts(2026, 10, 25, 3, 0, tz=BERLIN)  # 02:00 UTC, 24h55m later
    assert due - last == 24 * H + 55 * 60
    assert states(sched, last, H, last + 24 * H + 50 * 60, due + H - 1, due + H + 1) == [
        ("up", 0), ("grace", 0), ("down", 1)]


def test_fall_back_hourly_fires_in_both_repeated_hours():
    hourly = "0 * * * *"
    first_two = ts(2026, 10, 25, 0, 0)  # 02:00 CEST
    assert next_cron(hourly, first_two, "Europe/Berlin") == ts(2026, 10, 25, 1, 0)  # 02:00 CET, the repeat
    assert next_cron(hourly, ts(2026, 10, 25, 1, 0), "Europe/Berlin") == ts(2026, 10, 25, 2, 0)


def test_schedule_errors_name_the_problem():
    with pytest.raises(ScheduleError, match="invalid cron expression '61 2 \\* \\* \\*'"):
        schedule_from("cron", cron="61 2 * * *")
    with pytest.raises(ScheduleError, match="five fields"):
        schedule_from("cron", cron="0 0 2 * * *")  # croniter would take seconds; we don't
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Base'"):
        schedule_from("cron", cron="0 2 * * *", tz="Mars/Base")
    with pytest.raises(ScheduleError, match="weekly schedule needs hour, minute and day_of_week"):
        schedule_from("weekly", hour=4, minute=0)
    with pytest.raises(ScheduleError, match="unknown schedule kind 'hourly'"):
        schedule_from("hourly")
    with pytest.raises(ScheduleError, match="positive period"):
        schedule_from("interval", every=0)


def test_schedule_text_of_the_config():
    assert parse_schedule_text("manual") == Schedule("manual")
    assert parse_schedule_text("6h") == Schedule("interval", every=6 * H)
    assert parse_schedule_text("@daily", "Europe/Berlin") == Schedule("cron", cron="0 0 * * *", tz="Europe/Berlin")
    with pytest.raises(ScheduleError):
        parse_schedule_text("every tuesday")
