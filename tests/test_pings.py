"""Push pings: the /api/v1/ping endpoints (auth, storage) and the push_jobs probe's series, on a frozen clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from agent.api import build_app
from agent.config import parse_config
from agent import pings as pings_module
from agent.pings import recent_pings, record_ping
from agent.probes.push_jobs import push_status
from agent.runtime import Runtime
from agent.state import State

T0 = datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc).timestamp()  # a Monday, 00:30 UTC
JOB_TOKEN, ADMIN = "job-token-123", "admin-token-456"


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def agent(tmp_path):
    cfg = parse_config({
        "agent": {"state_dir": str(tmp_path), "admin_token": ADMIN},
        "system": {"enabled": False},
        "jobs": [{"name": "backup-db", "schedule": "0 1 * * *", "grace": "2h", "token": JOB_TOKEN},
                 {"name": "nightly-sync", "period": "1d", "app": "media", "max_runtime": "30m"}],
    })
    clock = Clock(T0)
    rt = Runtime(cfg, clock=clock, alerting=False)
    with TestClient(build_app(rt)) as client:
        yield rt, client, clock
    asyncio.run(rt.close())


def post(client, path: str, token: str | None = None):
    return client.post(path, headers={"Authorization": f"Bearer {token}"} if token else {})


def series(rt, name: str) -> dict[str, float]:
    return {s.label("job_name") or s.label("app"): s.value for s in rt.store.series(name)}


def test_auth(agent):
    rt, client, _ = agent
    assert post(client, "/api/v1/ping/backup-db").status_code == 401
    assert post(client, "/api/v1/ping/backup-db", "wrong").status_code == 403
    assert post(client, "/api/v1/ping/backup-db", JOB_TOKEN).json() == {"ok": True, "job": "backup-db",
                                                                        "kind": "success"}
    assert post(client, "/api/v1/ping/backup-db/start", ADMIN).status_code == 200  # the admin token works too
    # a job's token is only good for that job; unknown jobs are 404 after the token check
    assert post(client, "/api/v1/ping/nightly-sync", JOB_TOKEN).status_code == 403
    assert post(client, "/api/v1/ping/nope", JOB_TOKEN).status_code == 403
    assert post(client, "/api/v1/ping/nope", ADMIN).status_code == 404
    assert client.get("/api/v1/ping/backup-db").status_code == 405
    assert [k for k, _ in recent_pings(rt.state, "backup-db")] == ["success", "start"]


def test_without_any_token_pings_are_refused(tmp_path):
    cfg = parse_config({"agent": {"state_dir": str(tmp_path)}, "system": {"enabled": False},
                        "jobs": [{"name": "j", "period": "1h"}]})
    rt = Runtime(cfg, alerting=False)
    with TestClient(build_app(rt)) as client:
        assert client.post("/api/v1/ping/j").status_code == 503
    asyncio.run(rt.close())


def test_cron_job_lifecycle(agent):
    rt, client, clock = agent
    assert series(rt, "caretaker_job_overdue_seconds") == {}  # no probe run yet
    post(client, "/api/v1/ping/backup-db/start", JOB_TOKEN)  # 00:30
    clock.t = T0 + 40 * 60
    post(client, "/api/v1/ping/backup-db", JOB_TOKEN)  # 01:10: done, 40 minutes
    assert series(rt, "caretaker_job_last_success_timestamp_seconds")["backup-db"] == T0 + 2400
    assert series(rt, "caretaker_job_last_duration_seconds")["backup-db"] == 2400
    assert series(rt, "caretaker_job_overdue_seconds") == {"backup-db": 0}
    # due at the next 01:00 (tomorrow), grace 2h: on time until 03:00, overdue after
    next_due = datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc).timestamp()
    for t, overdue in ((next_due - 1, 0), (next_due + 7199, 0), (next_due + 7200, 0), (next_due + 7260, 60)):
        clock.t = t
        status = asyncio.run(rt.probe_once(next(p for p in rt.probes if p.target == "cron")))
        assert status.ok
        assert series(rt, "caretaker_job_overdue_seconds")["backup-db"] == overdue
    post(client, "/api/v1/ping/backup-db/fail", JOB_TOKEN)
    assert series(rt, "caretaker_jobs_failed") == {"cron": 1}
    assert series(rt, "caretaker_job_error_ratio") == {"cron": 1.0}  # the success, 26 h ago, is out of the window
    assert series(rt, "caretaker_job_overdue_seconds")["backup-db"] == 60  # a failure is no success


def test_started_run_becomes_stuck_after_max_runtime(agent):
    rt, client, clock = agent
    post(client, "/api/v1/ping/nightly-sync/start", ADMIN)
    clock.t = T0 + 30 * 60
    asyncio.run(rt.probe_once(next(p for p in rt.probes if p.target == "media")))
    assert series(rt, "caretaker_job_running_seconds") == {"nightly-sync": 1800}
    assert series(rt, "caretaker_job_stuck") == {"nightly-sync": 0}
    clock.t += 1
    asyncio.run(rt.probe_once(next(p for p in rt.probes if p.target == "media")))
    assert series(rt, "caretaker_job_stuck") == {"nightly-sync": 1}
    assert series(rt, "caretaker_job_overdue_seconds") == {"nightly-sync": 0}  # never succeeded: new
    post(client, "/api/v1/ping/nightly-sync", ADMIN)
    assert series(rt, "caretaker_job_stuck") == {} and series(rt, "caretaker_job_running_seconds") == {}
    assert series(rt, "caretaker_job_last_duration_seconds") == {"nightly-sync": 1801}


def test_push_status_folding():
    pings = [("start", 0.0), ("success", 10.0), ("success", 100.0), ("start", 200.0), ("fail", 230.0),
             ("start", 300.0)]
    s = push_status(pings, now=400.0, window=350.0)
    assert (s.last_success, s.last_duration, s.running_since) == (100.0, 30.0, 300.0)
    assert (s.failed, s.finished) == (1, 2)  # the success at 10 s is outside the window
    stale = push_status([("start", 0.0), ("success", 73 * 3600.0)], now=73 * 3600.0)
    assert stale.last_duration is None  # a start more than 72 h before the end is another run


def test_pings_are_pruned_per_job(tmp_path, monkeypatch):
    assert pings_module.KEEP == 1000
    monkeypatch.setattr(pings_module, "KEEP", 10)  # each ping is a durable commit: keep the test quick
    state = State(tmp_path / "state.db")
    for i in range(15):
        record_ping(state, "a", "success", float(i))
    record_ping(state, "b", "fail", 1.0)
    pings = recent_pings(state, "a")
    assert len(pings) == 10 and pings[0] == ("success", 5.0) and pings[-1] == ("success", 14.0)
    assert recent_pings(state, "b") == [("fail", 1.0)]
    state.close()


@pytest.mark.parametrize("header, token", [
    (None, ""), ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", ""), ("Bearer", ""), ("abc", ""),
])
def test_bearer_token_parsing(header, token):
    from starlette.requests import Request

    from agent.auth import bearer_token

    headers = [] if header is None else [(b"authorization", header.encode())]
    assert bearer_token(Request({"type": "http", "headers": headers})) == token
