"""The action runner: lock per action+target, crash recovery, dry run, timeout, progress, audit, metrics."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import psutil
import pytest

from action_helpers import GateAction, act, run, runtime
from agent.actions import ACTIONS, runner as runner_mod
from agent.actions.base import ActionError

PARAMS_FOR = {"items": 2}


@pytest.fixture
def gate(monkeypatch) -> GateAction:
    action = GateAction()
    monkeypatch.setitem(ACTIONS, "gate", action)
    return action


def series(rt, name: str) -> dict[tuple, float]:
    return {s.labels: s.value for s in rt.store.series(name)}


def test_lock_progress_audit_and_metrics(tmp_path, gate, monkeypatch):
    monkeypatch.setattr(runner_mod, "PROGRESS_SAVE_SECONDS", 0.05)

    async def main():
        rt = runtime(tmp_path)
        gate.gate, gate.started = asyncio.Event(), asyncio.Event()
        try:
            prep = rt.actions.prepare("gate", "one", PARAMS_FOR)
            first = await rt.actions.start(prep, "api", "tester")
            assert first == {"triggered": True, "run_id": first["run_id"]}
            await asyncio.wait_for(gate.started.wait(), 5)
            # a second trigger of the same action and target is refused; another target is not
            second = await rt.actions.start(prep, "cli", "someone else")
            assert second == {"triggered": False, "reason": "running", "run_id": first["run_id"]}
            other = await rt.actions.start(rt.actions.prepare("gate", "two", {"items": 1}), "cli", "x")
            assert other["triggered"]
            assert series(rt, "caretaker_action_running")[(("action", "gate"),)] == 2
            gate.gate.set()
            for _ in range(100):  # progress is readable while the run goes on, in memory and in the state file
                saved = rt.state.query("SELECT progress_done FROM action_runs WHERE id = ?", (first["run_id"],))
                if rt.actions.get_run(first["run_id"])["progress"]["done"] >= 1 and saved[0][0] >= 1:
                    break
                await asyncio.sleep(0.02)
            record = rt.actions.get_run(first["run_id"])
            assert record["outcome"] == "running"
            assert record["progress"] == {"done": 1, "total": 2, "phase": "items"}
            for _ in range(3):
                gate.gate.set()
                await asyncio.sleep(0.05)
            await asyncio.wait_for(rt.actions.wait(first["run_id"]), 5)
            await asyncio.wait_for(rt.actions.wait(other["run_id"]), 5)
            return rt.actions.get_run(first["run_id"]), rt
        finally:
            await rt.http.aclose()  # the state file stays open for the checks below

    record, rt = run(main())
    assert record["outcome"] == "succeeded" and record["result"] == {"items": 2}
    assert (record["trigger"], record["who"], record["params"], record["dry_run"]) == ("api", "tester", PARAMS_FOR,
                                                                                      False)
    assert record["finished_at"] >= record["started_at"] > 0
    assert record["progress"] == {"done": 2, "total": 2, "phase": "items"}
    assert rt.state.query("SELECT count(*) FROM action_locks")[0][0] == 0
    assert series(rt, "caretaker_action_runs_total")[(("action", "gate"), ("outcome", "succeeded"))] == 2
    assert series(rt, "caretaker_action_running")[(("action", "gate"),)] == 0
    assert series(rt, "caretaker_action_last_run_timestamp_seconds")[(("action", "gate"),)] >= record["finished_at"]
    body = rt.exporter.body().decode()  # every series is in the catalogue: the exporter renders them
    assert 'caretaker_action_runs_total{action="gate",outcome="succeeded"} 2.0' in body
    rt.state.close()


def test_crashed_run_is_interrupted_and_its_lock_recovered(tmp_path, gate):
    """A process that took the lock and died (kill -9): the next runner marks its run interrupted."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        created = psutil.Process(child.pid).create_time()
        rt = runtime(tmp_path)
        with rt.state.tx() as db:
            cur = db.execute("INSERT INTO action_runs (action, target, trigger, who, params, dry_run, started_at, "
                             "outcome, pid, pid_started) VALUES ('gate', 'one', 'cli', 'x', '{}', 0, 1, 'running', ?, ?)",
                             (child.pid, created))
            db.execute("INSERT INTO action_locks VALUES ('gate', 'one', ?)", (cur.lastrowid,))
        crashed = cur.lastrowid
        assert rt.actions.recover() == 0  # its process is alive: the lock holds
        held = run(rt.actions.start(rt.actions.prepare("gate", "one", {"items": 0}), "cli", "me"))
        assert held == {"triggered": False, "reason": "running", "run_id": crashed}
        run(rt.close())
    finally:
        child.kill()
        child.wait(timeout=10)
    rt = runtime(tmp_path)  # "restart": the holder is gone now
    try:
        record = rt.actions.get_run(crashed)
        assert record["outcome"] == "interrupted" and "process" in record["error"]
        assert rt.state.query("SELECT count(*) FROM action_locks")[0][0] == 0
        again = act(rt, "gate", "one", {"items": 0}, who="me")
        assert again["outcome"] == "succeeded"
        assert series(rt, "caretaker_action_runs_total")[(("action", "gate"), ("outcome", "interrupted"))] == 1
    finally:
        run(rt.close())


def test_timeout_and_cancel_release_the_lock(tmp_path, gate):
    async def main():
        rt = runtime(tmp_path, actions={"timeouts": {"gate": "300ms"}})  # the gate never opens: it times out
        gate.gate, gate.started = asyncio.Event(), asyncio.Event()
        try:
            timed = await rt.actions.run(rt.actions.prepare("gate", "one", {}), "schedule", "calendar")
            started = await rt.actions.start(rt.actions.prepare("gate", "two", {}), "api", "x")
            await asyncio.wait_for(gate.started.wait(), 5)
            await rt.actions.cancel_all()
            return timed, rt.actions.get_run(started["run_id"]), rt.state.query("SELECT count(*) FROM action_locks")
        finally:
            await rt.close()

    timed, cancelled, locks = run(main())
    assert timed["outcome"] == "timeout" and timed["error"] == "timed out after 0.3s"
    assert cancelled["outcome"] == "cancelled"
    assert locks[0][0] == 0


def test_validation_errors_name_the_field(tmp_path, gate):
    rt = runtime(tmp_path, logs=[{"app": "web", "paths": [str(tmp_path / "*.log")]}])
    try:
        with pytest.raises(ActionError) as e:
            rt.actions.prepare("nope")
        assert e.value.status == 404 and "unknown action 'nope'" in e.value.reason
        with pytest.raises(ActionError) as e:
            rt.actions.prepare("gate")
        assert e.value.status == 400 and e.value.reason == "target: required, one of one, two"
        with pytest.raises(ActionError) as e:
            rt.actions.prepare("gate", "three")
        assert e.value.status == 404 and "'three' is not a target of gate" in e.value.reason
        with pytest.raises(ActionError) as e:
            rt.actions.prepare("gate", "one", {"items": "many", "extra": 1})
        assert e.value.status == 400
        assert "params.items:" in e.value.reason and "params.extra: Extra inputs are not permitted" in e.value.reason
        with pytest.raises(ActionError) as e:  # destructive: refused without confirm, allowed as a dry run
            rt.actions.prepare("prune_logs", "web")
        assert e.value.status == 400 and e.value.reason.startswith("confirm: prune_logs is destructive")
        assert rt.actions.prepare("prune_logs", "web", dry_run=True).dry_run
        assert rt.actions.prepare("prune_logs", "web", confirm=True).target.name == "web"
    finally:
        run(rt.close())


def test_dry_run_is_audited_not_counted(tmp_path, gate):
    rt = runtime(tmp_path)
    try:
        answer = run(rt.actions.start(rt.actions.prepare("gate", "one", {"items": 5}, dry_run=True), "api", "x"))
        assert answer["triggered"] and answer["outcome"] == "planned" and answer["plan"] == {"items": 5}
        record = rt.actions.get_run(answer["run_id"])
        assert record["dry_run"] and record["result"] == {"items": 5}
        assert ((("action", "gate"), ("outcome", "planned"))) not in series(rt, "caretaker_action_runs_total")
        assert json.loads(rt.state.query("SELECT params FROM action_runs")[0][0]) == {"items": 5}
    finally:
        run(rt.close())
