"""The actions API: 401/403/503, 4xx with a reason, the lock (`triggered: false`), dry runs that change nothing,
run records with progress, and the Alertmanager webhook."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from action_helpers import GateAction, dead_tuples, db_checksum, plant_dead_tuples, runtime
from agent.actions import ACTIONS
from agent.api import build_app

TOKEN = "adm-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def gate(monkeypatch) -> GateAction:
    action = GateAction()
    monkeypatch.setitem(ACTIONS, "gate", action)
    return action


def client(rt) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(rt)), base_url="http://agent")


def test_auth_401_403_and_503(tmp_path):
    async def main():
        with_token = runtime(tmp_path / "a", agent={"state_dir": str(tmp_path / "a"), "admin_token": TOKEN},
                             databases=[{"name": "db", "dsn": "postgresql://u:pg-Secret-9@127.0.0.1:1/db"}],
                             sqlite=[{"name": "tsundoku", "path": str(tmp_path / "t.db"), "profile": "tsundoku",
                                      "app": {"api": "tsu"}}],
                             services=[{"name": "tsu", "kind": "tsundoku", "url": "http://127.0.0.1:1",
                                        "admin_token": "tsu-Secret-7"}])
        without = runtime(tmp_path / "b")
        try:
            async with client(with_token) as c:
                no = await c.post("/api/v1/actions/vacuum_analyze", json={})
                wrong = await c.post("/api/v1/actions/vacuum_analyze", json={}, headers={"Authorization": "Bearer x"})
                read = await c.get("/api/v1/actions")
                read_ok = await c.get("/api/v1/actions", headers=AUTH)
            async with client(without) as c:
                unconfigured = await c.post("/api/v1/actions/vacuum_analyze", json={})
                hook = await c.post("/api/v1/alertmanager", json={"alerts": []})
                listing = await c.get("/api/v1/actions")
            return no, wrong, read, read_ok, unconfigured, hook, listing
        finally:
            await with_token.close()
            await without.close()

    no, wrong, read, read_ok, unconfigured, hook, listing = asyncio.run(main())
    assert (no.status_code, wrong.status_code, read.status_code) == (401, 403, 401)
    assert read_ok.status_code == 200 and {a["name"] for a in read_ok.json()["actions"]} >= {
        "vacuum_analyze", "backup", "restore", "drop_legacy_embeddings", "prune_logs"}
    assert {"db", "tsundoku"} <= {t for a in read_ok.json()["actions"] for t in a["targets"]}
    assert not any(secret in read_ok.text for secret in ("pg-Secret-9", "tsu-Secret-7", TOKEN))
    assert (unconfigured.status_code, hook.status_code) == (503, 503)
    assert listing.status_code == 200  # reads stay open on a loopback agent without a token


def test_bad_requests_answer_4xx_with_a_reason(tmp_path, gate):
    async def main():
        rt = runtime(tmp_path, agent={"state_dir": str(tmp_path), "admin_token": TOKEN},
                     logs=[{"app": "web", "paths": [str(tmp_path / "*.log")]}])
        try:
            async with client(rt) as c:
                post = lambda path, body: c.post(path, json=body, headers=AUTH)  # noqa: E731
                return [await post("/api/v1/actions/nope", {}),
                        await post("/api/v1/actions/gate", {"target": "one", "params": {"items": "x"}}),
                        await post("/api/v1/actions/gate", {"target": "zzz"}),
                        await post("/api/v1/actions/gate", {}),
                        await post("/api/v1/actions/prune_logs", {}),
                        await post("/api/v1/actions/gate", {"target": "one", "bogus": 1}),
                        await c.get("/api/v1/actions/runs/999", headers=AUTH)]
        finally:
            await rt.close()

    unknown, bad_param, bad_target, no_target, unconfirmed, bad_body, no_run = asyncio.run(main())
    assert unknown.status_code == 404 and unknown.json()["reason"].startswith("unknown action 'nope'")
    assert bad_param.status_code == 400 and bad_param.json()["reason"].startswith("params.items:")
    assert bad_target.status_code == 404 and "'zzz' is not a target of gate" in bad_target.json()["reason"]
    assert no_target.status_code == 400 and no_target.json()["reason"] == "target: required, one of one, two"
    assert unconfirmed.status_code == 400 and unconfirmed.json()["reason"].startswith("confirm: prune_logs is destructive")
    assert bad_body.status_code == 422
    assert no_run.status_code == 404


def test_lock_and_progress_over_http(tmp_path, gate):
    async def main():
        rt = runtime(tmp_path, agent={"state_dir": str(tmp_path), "admin_token": TOKEN})
        gate.gate, gate.started = asyncio.Event(), asyncio.Event()
        try:
            async with client(rt) as c:
                first = await c.post("/api/v1/actions/gate", json={"target": "one", "params": {"items": 2}},
                                     headers=AUTH)
                await asyncio.wait_for(gate.started.wait(), 5)
                second = await c.post("/api/v1/actions/gate", json={"target": "one"}, headers=AUTH)
                progress = await c.get(f"/api/v1/actions/runs/{first.json()['run_id']}", headers=AUTH)
                gate.gate.set()
                for _ in range(50):
                    gate.gate.set()
                    await asyncio.sleep(0.02)
                    if not rt.actions.live:
                        break
                done = await c.get(f"/api/v1/actions/runs/{first.json()['run_id']}", headers=AUTH)
                listing = await c.get("/api/v1/actions/runs?action=gate", headers=AUTH)
            return first, second, progress, done, listing
        finally:
            await rt.close()

    first, second, progress, done, listing = asyncio.run(main())
    assert first.status_code == 202 and first.json()["triggered"] is True
    assert second.status_code == 409
    assert second.json() == {"triggered": False, "reason": "running", "run_id": first.json()["run_id"]}
    p = progress.json()
    assert p["outcome"] == "running" and p["progress"] == {"done": 0, "total": 2, "phase": "items"}
    assert p["trigger"] == "api" and p["who"].startswith("api from")
    assert done.json()["outcome"] == "succeeded" and done.json()["result"] == {"items": 2}
    assert [r["run_id"] for r in listing.json()["runs"]] == [first.json()["run_id"]]


def test_dry_run_over_http_changes_nothing(tmp_path, fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    checksum = db_checksum(dsn)  # of the contents: the planted UPDATE rewrites rows with the same values
    before = plant_dead_tuples(dsn, "movies", manifest["counts"]["movies"])

    async def main():
        rt = runtime(tmp_path, agent={"state_dir": str(tmp_path), "admin_token": TOKEN},
                     databases=[{"name": "aperture", "dsn": dsn, "profile": "aperture"}])
        try:
            async with client(rt) as c:
                vacuum = await c.post("/api/v1/actions/vacuum_analyze", json={"dry_run": True}, headers=AUTH)
                drop = await c.post("/api/v1/actions/drop_legacy_embeddings", json={"dry_run": True}, headers=AUTH)
            return vacuum, drop
        finally:
            await rt.close()

    vacuum, refused = asyncio.run(main())
    assert vacuum.status_code == 200 and vacuum.json()["outcome"] == "planned"
    assert [r["relation"] for r in vacuum.json()["plan"]["relations"]] == ["movies"]
    assert refused.status_code == 409 and "passed verify_backup" in refused.json()["reason"]
    assert dead_tuples(dsn, "movies") == before
    assert db_checksum(dsn) == checksum


def test_alertmanager_webhook_runs_the_mapped_remediation(tmp_path, fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    plant_dead_tuples(dsn, "movies", manifest["counts"]["movies"])
    payload = {"version": "4", "receiver": "caretaker", "status": "firing", "groupKey": "{}:{}",
               "alerts": [
                   {"status": "firing", "labels": {"alertname": "PostgresDeadTuplesHigh", "database": "aperture",
                                                   "relation": "movies", "instance": "db:9464", "severity": "info"},
                    "annotations": {"summary": "…"}, "startsAt": "2025-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123"},
                   {"status": "firing", "labels": {"alertname": "DiskSpaceHigh", "mountpoint": "/"},
                    "fingerprint": "def"},
                   {"status": "resolved", "labels": {"alertname": "JobStuck", "app": "x", "job_name": "y"},
                    "fingerprint": "ghi"},
                   {"status": "firing", "labels": {"alertname": "SomethingElse"}, "fingerprint": "jkl"}]}

    async def main():
        rt = runtime(tmp_path, agent={"state_dir": str(tmp_path), "admin_token": TOKEN},
                     databases=[{"name": "aperture", "dsn": dsn}])
        try:
            async with client(rt) as c:
                answer = await c.post("/api/v1/alertmanager", json=payload, headers=AUTH)
            await rt.remediator.idle()
            return answer, rt.actions.runs("vacuum_analyze")
        finally:
            await rt.close()

    answer, runs = asyncio.run(main())
    assert answer.status_code == 200
    decisions = {a["fingerprint"]: a for a in answer.json()["alerts"]}
    assert decisions["abc123"]["decision"] == "started" and decisions["abc123"]["target"] == "aperture"
    assert decisions["def"] == {"alertname": "DiskSpaceHigh", "fingerprint": "def", "decision": "ignored",
                                "reason": "the rule has no remediation"}
    assert decisions["ghi"]["reason"] == "not firing"
    assert decisions["jkl"]["reason"] == "no Caretaker rule of that name"
    [record] = runs
    assert (record["trigger"], record["outcome"], record["params"]["relations"]) == ("alertmanager", "succeeded",
                                                                                    ["movies"])
    assert record["alert"] == 'PostgresDeadTuplesHigh{database="aperture",instance="db:9464",relation="movies",' \
                              'severity="info"}'
    assert dead_tuples(dsn, "movies") == 0
