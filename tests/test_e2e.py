"""Issue 2 end to end: `caretaker run` as a real subprocess against real PostgreSQL, the fake Jellyfin and
a real Apprise delivery to a local JSON receiver."""

from __future__ import annotations

import psycopg

from agentproc import AgentProcess
from fakes import FakeJellyfin
from receivers import JsonReceiver, wait_until

KEY = "jf-e2e-key-0123456789"


def titles(rx: JsonReceiver) -> list[str]:
    return [m["title"] for m in rx.received()]


def test_agent_end_to_end(tmp_path, aperture_db):
    dsn, _ = aperture_db
    with FakeJellyfin(api_key=KEY) as jellyfin, JsonReceiver() as rx:
        config = {
            "system": {"interval": "1s", "mountpoints": ["/"]},
            "databases": [{"name": "aperture", "dsn": dsn, "interval": "2s"}],
            "services": [{"name": "jellyfin", "kind": "jellyfin", "url": jellyfin.url, "api_key": KEY,
                          "interval": "1s", "timeout": "1s"}],
            "notify": {"urls": [rx.apprise_url("/alerts")], "group_window": "1s"},
            # `for` shortened so the test need not wait the default 2 minutes
            "rules": {"ServiceDown": {"for": "0s"}, "DiskSpaceHigh": {"threshold": 1.0},
                      "MemoryUsageHigh": {"threshold": 1.0}},
        }
        with AgentProcess(tmp_path, config) as agent:
            wait_until(lambda: agent.metric("caretaker_service_up", service="jellyfin") == 1, 15, "jellyfin up")
            with psycopg.connect(dsn) as conn:
                size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            assert agent.metric("caretaker_postgres_up", database="aperture") == 1
            assert abs(agent.metric("caretaker_postgres_database_size_bytes", database="aperture") - size) < 2**20
            assert agent.metric("caretaker_service_auth_valid", service="jellyfin") == 1
            assert agent.metric("caretaker_probe_success", probe="system") == 1
            assert rx.received() == []  # healthy: nothing to say

            jellyfin.stop()
            wait_until(lambda: any("ServiceDown" in t and "FIRING" in t for t in titles(rx)), 30,
                       f"a ServiceDown notification, got {titles(rx)}")
            firing = next(m for m in rx.received() if "ServiceDown" in m["title"])
            assert agent.metric("caretaker_service_up", service="jellyfin") == 0
            assert "jellyfin" in firing["message"] and firing["type"] == "failure"

            jellyfin.start()
            wait_until(lambda: any("RESOLVED" in t and "ServiceDown" in t for t in titles(rx)), 30,
                       f"the ServiceDown resolution, got {titles(rx)}")

            jellyfin.mode = "bad_key"
            wait_until(lambda: any("ServiceAuthInvalid" in t for t in titles(rx)), 30,
                       f"a ServiceAuthInvalid notification, got {titles(rx)}")
            assert agent.metric("caretaker_service_auth_valid", service="jellyfin") == 0
            assert KEY not in agent.log()
        assert all(KEY not in m["message"] + m["title"] for m in rx.received())
