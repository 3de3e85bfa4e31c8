"""Notifier policy at every boundary, with an injected clock: grouping, repeat, silences, maintenance
windows, inhibition, flapping, retries and expiry, notes, routing, restart durability."""

from __future__ import annotations

import asyncio
import logging

from alerting_harness import Harness, Recorder, heads

from agent.samples import sample

FAST = {"DiskSpaceHigh": {"for": "0s"}, "MemoryUsageHigh": {"for": "0s"}}


def disk(h: Harness, value: float, mountpoint: str = "/") -> None:
    h.feed("disk" + mountpoint, sample("caretaker_disk_usage_ratio", value, mountpoint=mountpoint))


def run(coro) -> None:
    asyncio.run(coro)


def test_first_transition_goes_out_at_once_and_the_rest_of_the_window_as_one_digest(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST)
        disk(h, 0.91)
        await h.round()
        assert h.dest.titles == ["[FIRING:1] DiskSpaceHigh on box"]
        h.feed("mem", sample("caretaker_memory_usage_ratio", 0.95))
        await h.round(advance=5)
        disk(h, 0.92, "/media")
        await h.round(advance=5)
        await h.round(advance=19.9)  # 29.9 s after the first message
        assert len(h.dest.messages) == 1
        await h.round(advance=0.1)
        title, body, kind = h.dest.messages[1]
        assert title == "[FIRING:2] MemoryUsageHigh, DiskSpaceHigh on box"
        assert heads(body) == ["FIRING MemoryUsageHigh", "FIRING DiskSpaceHigh"]
        assert "mountpoint=/media" in body and kind == "warning"
        assert "value 95.0% > 80.0% since" in body
        assert "runbook: https://github.com/caretaker-dev/caretaker/blob/main/runbooks/memoryusagehigh.md" in body
    run(main())


def test_resolution_text_and_title(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST, notify={"group_window": "0s"})
        disk(h, 0.91)
        await h.round()
        disk(h, 0.70)
        await h.round(advance=600)
        title, body, kind = h.dest.messages[1]
        assert title == "[RESOLVED] DiskSpaceHigh on box" and kind == "success"
        assert "value 70.0% (fires > 80.0%, clears when not > 75.0%)" in body and "after 10m" in body
    run(main())


def test_repeat_every_repeat_interval_while_firing(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST)
        disk(h, 0.91)
        await h.round()
        await h.round(advance=4 * 3600 - 1)
        assert len(h.dest.messages) == 1
        await h.round(advance=1)
        assert h.dest.titles[1] == "[FIRING:1] DiskSpaceHigh on box"
        assert heads(h.dest.messages[1][1]) == ["STILL FIRING DiskSpaceHigh"]
        await h.round(advance=4 * 3600 - 1)
        assert len(h.dest.messages) == 2
        await h.round(advance=1)
        assert len(h.dest.messages) == 3
    run(main())


def test_silence_holds_firing_until_it_ends_then_sends_with_the_reason(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST)
        sid = h.alerting.silence(["alertname=DiskSpaceHigh", "mountpoint=/"], h.clock() + 600, "disk swap")
        disk(h, 0.91)
        disk(h, 0.91, "/media")  # not matched by the silence
        await h.round()
        assert heads(h.dest.messages[0][1]) == ["FIRING DiskSpaceHigh"] and "mountpoint=/media" in h.dest.messages[0][1]
        (alert,) = [a for a in h.alerting.alerts() if a["labels"] == {"mountpoint": "/"}]
        assert alert["state"] == "firing" and alert["held_by"] == f"silenced by {sid} (disk swap)"
        assert h.metric("caretaker_notification_outbox_pending") == 0  # held rows are not "waiting to deliver"
        await h.round(advance=599)
        assert len(h.dest.messages) == 1
        await h.round(advance=1)
        body = h.dest.messages[1][1]
        assert 'mountpoint=/' in body and f"held: silenced by {sid} (disk swap) from" in body
    run(main())


def test_resolution_is_never_muted_but_an_episode_never_announced_stays_silent(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST, notify={"group_window": "0s"})
        disk(h, 0.91)
        await h.round()  # firing sent
        h.alerting.silence(["alertname=DiskSpaceHigh"], h.clock() + 3600, "")
        disk(h, 0.5)
        await h.round(advance=10)
        assert h.dest.titles == ["[FIRING:1] DiskSpaceHigh on box", "[RESOLVED] DiskSpaceHigh on box"]
        disk(h, 0.91)
        await h.round(advance=10)  # fires again, silenced: held
        disk(h, 0.5)
        await h.round(advance=10)  # resolves while held: neither is sent
        await h.round(advance=3600)
        assert len(h.dest.messages) == 2
        assert [r["status"] for r in h.outbox()][-2:] == ["muted", "muted"]
    run(main())


def test_maintenance_window_holds_during_its_slot_only(tmp_path):
    async def main():
        from datetime import datetime, timezone
        start = datetime(2026, 5, 3, 3, 0, tzinfo=timezone.utc).timestamp()
        h = Harness(tmp_path, rules=FAST, notify={"maintenance_windows": [
            {"name": "nightly", "schedule": "0 3 * * *", "duration": "1h", "matchers": ["alertname=~Disk.*"]}]})
        h.clock.t = start - 1
        assert h.alerting.notifier.windows.active(h.clock()) == []
        h.clock.t = start
        disk(h, 0.91)
        await h.round()
        assert h.dest.messages == []
        await h.round(advance=3599)
        assert h.dest.messages == []
        await h.round(advance=1)
        assert "held: silenced by maintenance window nightly" in h.dest.messages[0][1]
    run(main())


def test_postgres_down_mutes_the_same_apps_alerts_until_it_resolves(tmp_path):
    async def main():
        h = Harness(tmp_path, rules={"PostgresDown": {"for": "0s"}}, notify={"group_window": "0s"})
        h.feed("pg", sample("caretaker_postgres_up", 0, database="aperture"))
        await h.round()
        h.feed("q", sample("caretaker_queue_oldest_age_seconds", 900, app="aperture", queue="sync"),
               sample("caretaker_queue_oldest_age_seconds", 900, app="aphrodite", queue="batch"))
        await h.round(advance=10)
        assert [heads(b) for _, b, _ in h.dest.messages] == [["FIRING PostgresDown"], ["FIRING QueueTimeHigh"]]
        assert "app=aphrodite" in h.dest.messages[1][1]
        (muted,) = [a for a in h.alerting.alerts() if a["labels"].get("app") == "aperture"]
        assert muted["held_by"] == 'muted by PostgresDown{database="aperture"}'
        h.feed("pg", sample("caretaker_postgres_up", 1, database="aperture"))
        await h.round(advance=60)  # inhibition ends: the muted alert goes out with the source's resolution
        title, body, _ = h.dest.messages[2]
        assert heads(body) == ["FIRING QueueTimeHigh", "RESOLVED PostgresDown"]  # in outbox order
        assert 'muted meanwhile: QueueTimeHigh{app="aperture",queue="sync"}' in body
        assert 'held: muted by PostgresDown{database="aperture"} from' in body
    run(main())


def test_a_resolution_goes_out_even_while_its_alert_is_inhibited(tmp_path):
    async def main():
        h = Harness(tmp_path, rules={"PostgresDown": {"for": "0s"}}, notify={"group_window": "0s"})
        h.feed("q", sample("caretaker_queue_oldest_age_seconds", 900, app="aperture", queue="sync"))
        await h.round()
        h.feed("pg", sample("caretaker_postgres_up", 0, database="aperture"))
        await h.round(advance=10)
        h.feed("q", sample("caretaker_queue_oldest_age_seconds", 5, app="aperture", queue="sync"))
        await h.round(advance=10)
        assert [heads(b) for _, b, _ in h.dest.messages] == [
            ["FIRING QueueTimeHigh"], ["FIRING PostgresDown"], ["RESOLVED QueueTimeHigh"]]
    run(main())


def test_all_external_apis_down_is_one_internet_unreachable_alert(tmp_path):
    async def main():
        services = [{"name": n, "kind": n, "api_key": "k"} for n in ("tmdb", "omdb", "trakt")]
        h = Harness(tmp_path, services=services, notify={"group_window": "0s"})
        down = [sample("caretaker_service_up", 0, service=n, kind=n) for n in ("tmdb", "omdb", "trakt")]
        h.feed("svc", *down)
        await h.round()
        await h.round(advance=59)
        assert h.dest.messages == []
        await h.round(advance=1)  # InternetUnreachable: for 1m
        assert h.dest.titles == ["[FIRING:1] InternetUnreachable on box"]
        assert "All 3 external metadata APIs are unreachable" in h.dest.messages[0][1]
        await h.round(advance=60)  # ServiceDown ×3 fire after 2m: muted
        assert len(h.dest.messages) == 1
        assert {a["held_by"] for a in h.alerting.alerts() if a["name"] == "ServiceDown"} == {
            "muted by InternetUnreachable"}
        h.feed("svc", *[sample("caretaker_service_up", 1, service=n, kind=n) for n in ("tmdb", "omdb", "trakt")])
        await h.round(advance=30)
        title, body, _ = h.dest.messages[1]
        assert title == "[RESOLVED] InternetUnreachable on box"
        assert 'ServiceDown{kind="omdb",service="omdb"}' in body  # "muted meanwhile: …"
        assert len(h.dest.messages) == 2  # the muted ServiceDown episodes stay silent
    run(main())


def test_one_external_api_down_is_its_own_service_down(tmp_path):
    async def main():
        h = Harness(tmp_path, services=[{"name": n, "kind": n, "api_key": "k"} for n in ("tmdb", "omdb")])
        h.feed("svc", sample("caretaker_service_up", 0, service="tmdb", kind="tmdb"),
               sample("caretaker_service_up", 1, service="omdb", kind="omdb"))
        await h.round()
        await h.round(advance=120)
        assert h.dest.titles == ["[FIRING:1] ServiceDown on box"]
    run(main())


def test_media_server_down_mutes_posters_missing(tmp_path):
    async def main():
        h = Harness(tmp_path, rules={"ServiceDown": {"for": "0s"}, "PostersMissing": {"for": "0s"}},
                    notify={"group_window": "0s"})
        h.feed("jf", sample("caretaker_service_up", 0, service="jellyfin", kind="jellyfin"))
        await h.round()
        assert h.dest.messages[0][2] == "failure"  # critical for the media server
        h.feed("posters", sample("caretaker_posters_missing", 40, app="aperture", kind="movie"))
        await h.round(advance=10)
        assert len(h.dest.messages) == 1
    run(main())


def test_flapping_alert_sends_one_flapping_message_then_its_state_when_it_settles(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST, notify={"group_window": "0s", "flap_changes": 4, "flap_window": "1h"})
        for i, value in enumerate([0.9, 0.5, 0.9, 0.5, 0.9, 0.5, 0.9]):  # 7 changes, 10 s apart
            disk(h, value)
            await h.round(advance=10 if i else 0)
        assert [heads(b)[0] for _, b, _ in h.dest.messages] == [
            "FIRING DiskSpaceHigh", "RESOLVED DiskSpaceHigh", "FIRING DiskSpaceHigh", "RESOLVED DiskSpaceHigh",
            "FLAPPING DiskSpaceHigh"]
        assert "changed state 5 times within 1h" in h.dest.messages[4][1]
        assert h.dest.titles[4] == "[FLAPPING:1] DiskSpaceHigh on box"
        # Settles when at most 2 changes remain within the window: 3600 s after the 5th change.
        await h.round(advance=3600 + 40 - 60 - 1)
        assert len(h.dest.messages) == 5
        await h.round(advance=1)
        assert heads(h.dest.messages[5][1]) == ["FIRING DiskSpaceHigh"]
        assert "stopped flapping; value 90.0% > 80.0%" in h.dest.messages[5][1]
    run(main())


def test_failed_delivery_backs_off_exponentially_then_delivers_everything_in_order(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST, notify={"retry_initial": "5s", "retry_max": "20s"})
        h.dest.ok = False
        disk(h, 0.91)
        await h.round()
        attempts = [h.clock()]
        for _ in range(160):  # 40 s in 0.25 s steps (exact in binary floating point)
            before = h.dest.attempts
            await h.round(advance=0.25)
            if h.dest.attempts > before:
                attempts.append(h.clock())
        gaps = [round(b - a, 1) for a, b in zip(attempts, attempts[1:])]
        assert gaps == [5.0, 10.0, 20.0]
        assert h.metric("caretaker_notifications_failed_total") == 4
        assert h.metric("caretaker_notification_outbox_pending") == 1
        assert round(h.metric("caretaker_notification_outbox_oldest_seconds")) == 40
        h.feed("mem", sample("caretaker_memory_usage_ratio", 0.95))
        disk(h, 0.5)
        await h.round(advance=1)
        h.dest.ok = True
        await h.round(advance=20)
        (title, body, _), = h.dest.messages
        assert title == "[FIRING:2, RESOLVED:1] DiskSpaceHigh, MemoryUsageHigh on box"
        assert heads(body) == ["FIRING DiskSpaceHigh", "RESOLVED DiskSpaceHigh", "FIRING MemoryUsageHigh"]
        assert h.metric("caretaker_notifications_sent_total") == 1
        assert h.metric("caretaker_notification_outbox_pending") == 0
    run(main())


def test_undeliverable_notification_expires_counted_and_logged(tmp_path, caplog):
    async def main():
        h = Harness(tmp_path, rules=FAST, notify={"expiry": "1h", "retry_initial": "1m", "retry_max": "10m"})
        h.dest.ok = False
        disk(h, 0.91)
        await h.round()
        with caplog.at_level(logging.ERROR, logger="caretaker.notify"):
            await h.round(advance=3599)
            assert h.metric("caretaker_notifications_expired_total") == 0
            await h.round(advance=1)
        assert h.metric("caretaker_notifications_expired_total") == 1
        # Meanwhile the outbox age tripped NotificationsFailing (> 10m), which now waits in turn.
        assert [(r["rule"], r["status"]) for r in h.outbox()] == [
            ("DiskSpaceHigh", "expired"), ("NotificationsFailing", "pending")]
        assert 'notification firing DiskSpaceHigh{mountpoint="/"} to test://rec expired: undeliverable for 1h' \
            in caplog.text
    run(main())


def test_a_note_rides_with_the_alerts_next_notification_or_goes_alone(tmp_path):
    async def main():
        h = Harness(tmp_path, rules={"PostgresDeadTuplesHigh": {"for": "0s"}}, notify={"group_window": "0s"})
        labels = {"database": "aperture", "relation": "movies"}
        h.feed("pg", sample("caretaker_postgres_dead_tuple_ratio", 0.4, **labels),
               sample("caretaker_postgres_dead_tuples", 31042, **labels))
        await h.round()
        assert "remediation: vacuum_analyze (automatic)" in h.dest.messages[0][1]
        h.alerting.add_note("PostgresDeadTuplesHigh", labels, "vacuum_analyze on movies: dead tuples 31 042 → 0")
        h.feed("pg", sample("caretaker_postgres_dead_tuple_ratio", 0.0, **labels),
               sample("caretaker_postgres_dead_tuples", 0, **labels))
        await h.round(advance=30)
        assert "note: vacuum_analyze on movies: dead tuples 31 042 → 0" in h.dest.messages[1][1]
        h.alerting.add_note("PostgresDeadTuplesHigh", labels, "weekly vacuum done")
        await h.round(advance=30)
        title, body, _ = h.dest.messages[2]
        assert title == "[NOTE] PostgresDeadTuplesHigh on box" and "weekly vacuum done" in body
        await h.round(advance=30)
        assert len(h.dest.messages) == 3  # each note once
    run(main())


def test_routing_by_severity_tags(tmp_path):
    async def main():
        phone, chat, info = Recorder("phone", ("critical",)), Recorder("chat", ("ops",)), Recorder("info", ("info",))
        chat.ok = False
        h = Harness(tmp_path, rules={"PostgresDown": {"for": "0s"}, **FAST}, dests=[phone, chat, info],
                    notify={"retry_max": "1m"})
        disk(h, 0.91)
        h.feed("pg", sample("caretaker_postgres_up", 0, database="aperture"))
        await h.round()
        assert [heads(m[1]) for m in phone.messages] == [["FIRING PostgresDown"]]
        assert chat.attempts == 1 and info.messages == []
        await h.round(advance=601)
        await h.round(advance=1)  # the chat's first notification has waited > 10 min: NotificationsFailing
        # NotificationsFailing is tried on every destination, even one that takes only info.
        assert [heads(m[1]) for m in phone.messages][1:] == [["FIRING NotificationsFailing"]]
        assert [heads(m[1]) for m in info.messages] == [["FIRING NotificationsFailing"]]
        chat.ok = True
        await h.round(advance=60)
        assert heads(chat.messages[0][1]) == ["FIRING DiskSpaceHigh", "FIRING PostgresDown",
                                              "FIRING NotificationsFailing"]
        # An escalation note of a warning alert pages: it is routed as critical, at once, on its own.
        h.alerting.add_note("DiskSpaceHigh", {"mountpoint": "/"}, "auto-remediation stopped", severity="critical")
        await h.round(advance=1)
        # (NotificationsFailing resolved meanwhile: its resolution shares the message.)
        title, body, _ = phone.messages[-1]
        assert "NOTE DiskSpaceHigh" in heads(body) and "auto-remediation stopped" in body
        assert all("NOTE" not in t for t in info.titles)
    run(main())


def test_pending_notifications_survive_a_restart_of_the_pipeline(tmp_path):
    async def main():
        h = Harness(tmp_path, rules=FAST)
        h.dest.ok = False
        disk(h, 0.91)
        await h.round()
        h.state.close()
        again = Harness(tmp_path, rules=FAST, clock=h.clock)
        disk(again, 0.91)
        await again.round(advance=1)
        assert again.dest.titles == ["[FIRING:1] DiskSpaceHigh on box"]  # delivered once, not re-fired
    run(main())
