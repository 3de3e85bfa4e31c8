"""Silences from the API and the CLI, matchers, maintenance windows, and GET /api/v1/alerts."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.api import build_app
from agent.cli import app
from agent.config import ConfigError, parse_config
from agent.notify.silences import MaintenanceWindows, parse_matcher
from agent.runtime import Runtime
from agent.samples import sample

TOKEN = "admin-token-for-tests"
SECRET_URL = "json://127.0.0.1:9/hook-secret-path-4711"


@pytest.mark.parametrize("text, labels, expected", [
    ("alertname=DiskSpaceHigh", {"alertname": "DiskSpaceHigh"}, True),
    ('mountpoint="/media"', {"mountpoint": "/media"}, True),
    ("database!=aperture", {"database": "aphrodite"}, True),
    ("alertname=~Postgres.*", {"alertname": "PostgresDown"}, True),
    ("alertname=~Down", {"alertname": "PostgresDown"}, False),  # anchored, like Alertmanager
    ("app!~aper.*", {"app": "aperture"}, False),
    ("missing=", {}, True),  # an absent label equals ""
])
def test_matchers(text, labels, expected):
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["alertname", "=x", "a=~(", "9x=1"])
def test_bad_matcher_is_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match=re.escape(f"bad matcher {text!r}")):
        parse_matcher(text)


def test_maintenance_window_boundaries_in_its_time_zone():
    (cfg,) = parse_config({"notify": {"maintenance_windows": [
        {"name": "backup", "schedule": "0 3 * * 0", "duration": "90m", "timezone": "Europe/Berlin",
         "matchers": ["alertname=~Postgres.*"]}]}}).notify.maintenance_windows
    windows = MaintenanceWindows([cfg])
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 29, 3, 0, tzinfo=berlin).timestamp()  # the Sunday DST begins (02:00 → 03:00)
    assert windows.active(start - 1) == []
    ((name, matchers, end),) = windows.active(start)
    assert name == "backup" and end == start + 5400 and [str(m) for m in matchers] == ["alertname=~Postgres.*"]
    assert windows.active(start + 5399) and windows.active(start + 5400) == []
    assert windows.active(start + 86400) == []  # Monday


def test_bad_maintenance_window_names_the_field():
    with pytest.raises(ConfigError) as exc:
        parse_config({"notify": {"maintenance_windows": [
            {"name": "x", "schedule": "every night", "duration": "1h", "matchers": ["alertname"]}]}})
    text = "\n".join(exc.value.errors)
    assert "notify.maintenance_windows[0].schedule" in text and "notify.maintenance_windows[0].matchers" in text


@pytest.fixture
def rt(tmp_path):
    config = parse_config({"agent": {"state_dir": str(tmp_path), "admin_token": TOKEN},
                           "system": {"enabled": False},
                           "rules": {"DiskSpaceHigh": {"for": "0s"}},
                           "notify": {"urls": [SECRET_URL]}})
    runtime = Runtime(config)
    yield runtime
    runtime.state.close()


def client(rt) -> TestClient:
    return TestClient(build_app(rt))


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_silence_api_create_list_expire(rt):
    c = client(rt)
    assert c.post("/api/v1/silences", json={"matchers": ["alertname=X"], "duration": "1h"}).status_code == 401
    assert c.post("/api/v1/silences", headers={"Authorization": "Bearer wrong"},
                  json={"matchers": ["alertname=X"], "duration": "1h"}).status_code == 403
    made = c.post("/api/v1/silences", headers=AUTH, json={
        "matchers": ["alertname=DiskSpaceHigh", "mountpoint=/"], "duration": "2h", "reason": "disk swap",
        "created_by": "ana"})
    assert made.status_code == 201
    body = made.json()
    assert body["matchers"] == ["alertname=DiskSpaceHigh", "mountpoint=/"] and body["reason"] == "disk swap"
    assert body["ends_at"] - body["starts_at"] == 7200
    listed = c.get("/api/v1/silences", headers=AUTH).json()["silences"]
    assert [s["id"] for s in listed] == [body["id"]]
    ended = c.delete(f"/api/v1/silences/{body['id']}", headers=AUTH)
    assert ended.status_code == 200 and ended.json()["ends_at"] <= rt.clock()
    assert c.get("/api/v1/silences", headers=AUTH).json()["silences"] == []
    assert [s["id"] for s in c.get("/api/v1/silences?all=true", headers=AUTH).json()["silences"]] == [body["id"]]
    assert c.delete(f"/api/v1/silences/{body['id']}", headers=AUTH).status_code == 404


@pytest.mark.parametrize("payload, words", [
    ({"matchers": ["alertname"], "duration": "1h"}, "bad matcher 'alertname'"),
    ({"matchers": [], "duration": "1h"}, "at least one matcher"),
    ({"matchers": ["a=b"]}, "exactly one of duration or ends_at"),
    ({"matchers": ["a=b"], "duration": "soon"}, "invalid duration"),
    ({"matchers": ["a=b"], "ends_at": "2000-01-01T00:00:00"}, "must end after it starts"),
])
def test_silence_api_rejects_bad_input_naming_the_problem(rt, payload, words):
    r = client(rt).post("/api/v1/silences", headers=AUTH, json=payload)
    assert r.status_code == 422 and words in r.text


def test_alerts_api_shows_state_hold_and_no_secret(rt):
    rt.store.replace(("system", "host"), [sample("caretaker_disk_usage_ratio", 0.93, mountpoint="/")])
    rt.alerting.engine.evaluate(rt.clock())
    sid = rt.alerting.silence({"alertname": "DiskSpaceHigh"}, rt.clock() + 600, "swap")
    c = client(rt)
    assert c.get("/api/v1/alerts").status_code == 401
    r = c.get("/api/v1/alerts", headers=AUTH)
    (alert,) = r.json()["alerts"]
    assert alert["name"] == "DiskSpaceHigh" and alert["state"] == "firing" and alert["labels"] == {"mountpoint": "/"}
    assert alert["value_text"] == "93.0%" and alert["severity"] == "warning"
    assert alert["held_by"] == f"silenced by {sid} (swap)" and alert["flapping"] is False
    assert alert["summary"] == "Filesystem / is 93.0% full"
    rt.exporter.refresh()
    for text in (r.text, c.get("/metrics").text, c.get("/api/v1/silences", headers=AUTH).text):
        assert "hook-secret-path-4711" not in text
    assert "caretaker_alerts_firing{severity=\"warning\"} 1.0" in c.get("/metrics").text


def test_silence_cli_add_list_rm(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f'agent: {{state_dir: "{tmp_path}"}}\n')
    runner = CliRunner()
    added = runner.invoke(app, ["silence", "add", "alertname=PostgresDown", "database=aperture", "--duration", "2h",
                                "--reason", "upgrade", "--config", str(config)])
    assert added.exit_code == 0, added.output
    sid = re.match(r"([0-9a-f]{8}) until ", added.output).group(1)
    listed = runner.invoke(app, ["silence", "list", "--config", str(config)], env={"COLUMNS": "200"})
    assert sid in listed.output and "alertname=PostgresDown database=aperture" in listed.output
    assert "upgrade" in listed.output
    assert runner.invoke(app, ["silence", "rm", sid, "--config", str(config)]).exit_code == 0
    assert sid not in runner.invoke(app, ["silence", "list", "--config", str(config)]).output
    assert runner.invoke(app, ["silence", "rm", sid, "--config", str(config)]).exit_code == 2
    bad = runner.invoke(app, ["silence", "add", "alertname", "--duration", "1h", "--config", str(config)])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output
    both = runner.invoke(app, ["silence", "add", "a=b", "--config", str(config)])
    assert both.exit_code == 2 and "exactly one of --duration or --until" in both.output
