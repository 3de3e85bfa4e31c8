"""Fault tests of the notification path, each with `caretaker run` as a real subprocess and real Apprise
delivering to a local JSON receiver: receiver outage, SIGKILL with notifications pending, restart while
firing, and an alert that clears while the agent is stopped.

Alerts are made to fire on demand with rule overrides: DiskSpaceHigh/MemoryUsageHigh with threshold 0
(any usage fires), and to resolve with threshold 1 (no usage fires) — independent of this machine's load.
"""

from __future__ import annotations

import re
import sqlite3
import time

import httpx
from agentproc import AgentProcess
from receivers import JsonReceiver, wait_until

ON = {"threshold": 0.0, "clear": 0.0, "for": "0s"}
OFF = {"threshold": 1.0, "clear": 1.0}
DISK_FIRING = ("FIRING", "DiskSpaceHigh")
MEMORY_FIRING = ("FIRING", "MemoryUsageHigh")


def config(rx: JsonReceiver, disk: dict, memory: dict) -> dict:
    return {"system": {"interval": "1s", "mountpoints": ["/"]},
            "notify": {"urls": [rx.apprise_url("/alerts")], "group_window": "1s", "retry_initial": "200ms",
                       "retry_max": "1s"},
            "rules": {"DiskSpaceHigh": disk, "MemoryUsageHigh": memory}}


def events(rx: JsonReceiver) -> list[tuple[str, str]]:
    """(state, alert) of every block of every received message, in arrival order."""
    return [(m.group(1), m.group(2)) for msg in rx.received("/alerts")
            for m in re.finditer(r"^(FIRING|RESOLVED|STILL FIRING) (\w+) \(", msg["message"], re.M)]


def pending(agent: AgentProcess) -> list[tuple[str, str]]:
    """(kind, rule) of the notifications waiting in the agent's outbox, read from its state file."""
    path = agent.dir / "caretaker-data" / "state.db"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        try:
            return db.execute("SELECT kind, rule FROM outbox WHERE status = 'pending' ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def firing_lines(agent: AgentProcess, rule: str) -> int:
    return len(re.findall(rf"alert {rule}\S* firing:", agent.log()))


def test_receiver_outage_then_back_every_notification_arrives_in_order(tmp_path):
    with JsonReceiver() as rx:
        rx.mode = "down"  # answers 503
        agent = AgentProcess(tmp_path, config(rx, ON, {**ON, "for": "2s"}))
        try:
            agent.start()
            wait_until(lambda: pending(agent) == [("firing", "DiskSpaceHigh"), ("firing", "MemoryUsageHigh")], 20,
                       "both firings waiting in the outbox")
            wait_until(lambda: (agent.metric("caretaker_notifications_failed_total") or 0) >= 2, 10,
                       "failed attempts")
            assert agent.metric("caretaker_notification_outbox_pending") == 2
            rx.mode = "good"
            wait_until(lambda: events(rx) == [DISK_FIRING, MEMORY_FIRING], 15, f"the firings, got {events(rx)}")
            agent.stop()

            rx.stop()  # now refuse connections outright
            agent.write_config(config(rx, OFF, OFF))
            agent.start()
            wait_until(lambda: pending(agent) == [("resolved", "DiskSpaceHigh"), ("resolved", "MemoryUsageHigh")],
                       20, "both resolutions waiting in the outbox")
            rx.start()
            wait_until(lambda: len(events(rx)) >= 4, 15, f"the resolutions, got {events(rx)}")
            assert events(rx) == [DISK_FIRING, MEMORY_FIRING, ("RESOLVED", "DiskSpaceHigh"),
                                  ("RESOLVED", "MemoryUsageHigh")]
            wait_until(lambda: agent.metric("caretaker_notification_outbox_pending") == 0, 5, "an empty outbox")
        finally:
            agent.kill()


def test_sigkill_with_notifications_pending_delivers_them_after_restart(tmp_path):
    with JsonReceiver() as rx:
        rx.stop()
        agent = AgentProcess(tmp_path, config(rx, ON, {**ON, "for": "1s"}))
        try:
            agent.start()
            wait_until(lambda: pending(agent) == [("firing", "DiskSpaceHigh"), ("firing", "MemoryUsageHigh")], 20,
                       "both firings waiting in the outbox")
            agent.kill()
            rx.start()
            agent.start()
            wait_until(lambda: len(events(rx)) >= 2, 15, f"the firings, got {events(rx)}")
            time.sleep(2)  # two more probe rounds: room for a duplicate or a re-fire to show up
            # At most one duplicate per kill is allowed; nothing was delivered before this kill, so none.
            assert events(rx) == [DISK_FIRING, MEMORY_FIRING]
            assert firing_lines(agent, "DiskSpaceHigh") == 1  # the restarted agent knew it was firing
        finally:
            agent.kill()


def test_restart_while_firing_sends_nothing_and_a_clear_while_stopped_sends_the_resolution(tmp_path):
    with JsonReceiver() as rx:
        agent = AgentProcess(tmp_path, config(rx, ON, OFF))
        try:
            agent.start()
            wait_until(lambda: events(rx) == [DISK_FIRING], 15, f"the firing, got {events(rx)}")

            agent.stop()  # restart while the alert fires: no second firing message
            agent.start()
            alerts = httpx.get(f"{agent.url}/api/v1/alerts", timeout=5).json()["alerts"]
            assert [(a["name"], a["state"]) for a in alerts] == [("DiskSpaceHigh", "firing")]
            time.sleep(2)  # two probe rounds of the restarted agent
            assert events(rx) == [DISK_FIRING]
            assert firing_lines(agent, "DiskSpaceHigh") == 1

            agent.stop()  # the alert clears while the agent is stopped: the resolution follows the restart
            agent.write_config(config(rx, OFF, OFF))
            agent.start()
            wait_until(lambda: len(events(rx)) >= 2, 15, f"the resolution, got {events(rx)}")
            assert events(rx) == [DISK_FIRING, ("RESOLVED", "DiskSpaceHigh")]
            resolved = rx.received("/alerts")[1]
            assert resolved["title"].startswith("[RESOLVED] DiskSpaceHigh on ") and resolved["type"] == "success"
            assert "(fires > 100.0%, clears when not > 100.0%)" in resolved["message"]
        finally:
            agent.kill()
