"""App profiles: the built-in ones load, a user's own works end to end, bad ones fail naming the field."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from agent.appdb import bind_postgres, to_epoch
from agent.config import ConfigError, parse_config
from agent.profiles import ApiCall, ProfileError, builtin_names, load_profile

REPO = Path(__file__).resolve().parent.parent


def test_builtin_profiles():
    assert builtin_names() == ["aperture", "aphrodite", "jellyfin", "tsundoku"]
    engines = {n: load_profile(n).engine for n in builtin_names()}
    assert engines == {"aperture": "postgres", "aphrodite": "postgres", "jellyfin": "api", "tsundoku": "sqlite"}
    aperture = load_profile("aperture")
    assert aperture.api.running_jobs.path == "/api/jobs/active"
    assert aperture.embeddings.model_dimensions["nomic-embed-text"] == 768
    assert [q.name for q in load_profile("aphrodite").queues] == ["batch_jobs", "processing_jobs"]
    assert load_profile("jellyfin").media_server.item_types == ["Movie", "Series"]


def test_actions_hold_sql_or_api_calls(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nengine: postgres\nactions:\n  fix: UPDATE t SET x = 1\n"
                    "  cancel: {method: POST, path: \"/api/jobs/{job}/cancel\"}\n")
    actions = load_profile(str(path)).actions
    assert actions["fix"] == "UPDATE t SET x = 1"
    assert actions["cancel"] == ApiCall(method="POST", path="/api/jobs/{job}/cancel")


@pytest.mark.parametrize("text, message", [
    ("name: p\nengine: postgres\njobs: {freshnes: SELECT 1}\n", "p.yaml: jobs.freshnes: Extra inputs are not permitted"),
    ("name: p\nengine: postgres\njobs: {running: DELETE FROM runs}\n",
     "p.yaml: jobs.running: Value error, must be a read-only query starting with SELECT or WITH"),
    ("name: p\nengine: mysql\n", "p.yaml: engine: Input should be 'postgres', 'sqlite' or 'api'"),
    ("name: p\nengine: sqlite\njobs: {timezone: Moon/Base}\n", "p.yaml: jobs.timezone: Value error, unknown time zone"),
    ("name: p\nengine: sqlite\napi: {running_jobs: {path: api/jobs, job: n, started_at: s}}\n",
     "p.yaml: api.running_jobs.path: String should match pattern '^/'"),
    ("[1, 2]\n", "expected a mapping"),
    ("name: [\n", "invalid YAML at line 2"),
])
def test_bad_profiles_name_the_field(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    assert any(message in line for line in err.value.errors), err.value.errors


def test_unknown_name_lists_the_builtin_ones():
    with pytest.raises(ProfileError, match="unknown profile 'sonarr': built-in ones are aperture, aphrodite, "
                                           "jellyfin, tsundoku, or give the path of a YAML file"):
        load_profile("sonarr")


def test_config_checks_profiles_and_links(tmp_path):
    def errors(data: dict) -> list[str]:
        with pytest.raises(ConfigError) as err:
            parse_config(data)
        return err.value.errors

    db = {"name": "a", "dsn": "host=x"}
    assert "databases.0.profile" not in str(errors({"databases": [{**db, "profile": "tsundoku"}]}))
    assert any(e.startswith("databases[0].profile") and "reads a sqlite database, not postgres" in e
               for e in errors({"databases": [{**db, "profile": "tsundoku"}]}))
    assert any(e.startswith("sqlite[0].profile") and "unknown profile 'nope'" in e
               for e in errors({"sqlite": [{"name": "t", "path": "/x.db", "profile": "nope"}]}))
    assert any("databases[0].app.api: no service named 'aperture-api'" in e
               for e in errors({"databases": [{**db, "profile": "aperture", "app": {"api": "aperture-api"}}]}))
    tmdb = {"name": "tmdb", "kind": "tmdb", "api_key": "k"}
    assert any("databases[0].app.media_server: no jellyfin or emby service named 'tmdb'" in e
               for e in errors({"services": [tmdb], "databases": [{**db, "app": {"media_server": "tmdb"}}]}))
    assert any(e.startswith("databases[0].app.schedules") and "sync: invalid cron expression" in e
               for e in errors({"databases": [{**db, "app": {"schedules": {"sync": "0 25 * * *"}}}]}))
    assert any(e.startswith("jobs[0].schedule") for e in errors({"jobs": [{"name": "j", "schedule": "daily"}]}))
    assert any(e.startswith("jobs[0].timezone") for e in
               errors({"jobs": [{"name": "j", "period": "1h", "timezone": "CEST"}]}))
    assert any(e.startswith("jobs[0].name") for e in errors({"jobs": [{"name": "a/b", "period": "1h"}]}))


def test_examples_config_is_valid(monkeypatch, tmp_path):
    data = yaml.safe_load((REPO / "examples" / "apps.yaml").read_text())
    secret = tmp_path / "token"
    secret.write_text("admin")
    data["agent"]["admin_token_file"] = str(secret)
    for var in ("APERTURE_DSN", "APHRODITE_DSN", "JELLYFIN_API_KEY", "APERTURE_TOKEN", "BACKUP_PING_TOKEN"):
        monkeypatch.setenv(var, "x")
    monkeypatch.chdir(REPO)
    cfg = parse_config(data)
    assert [d.app.api for d in cfg.databases] == ["aperture-api", None]
    assert cfg.sqlite[1].profile == "./examples/profile-myapp.yaml"


def test_bind_postgres():
    q = "SELECT x::int FROM t WHERE a LIKE 'x%' AND b >= to_timestamp(:since) AND c = :other AND d = :now"
    assert bind_postgres(q, {"since": 1, "now": 2}) == (
        "SELECT x::int FROM t WHERE a LIKE 'x%%' AND b >= to_timestamp(%(since)s) AND c = :other AND d = %(now)s")


def test_to_epoch():
    moment = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    for value in (moment, moment.replace(tzinfo=None), "2026-03-01T12:00:00.250Z", "2026-03-01T13:00:00.25+01:00",
                  moment.timestamp(), str(moment.timestamp())):
        assert to_epoch(value) == moment.timestamp()
    assert to_epoch(None) is None
    with pytest.raises(ValueError):
        to_epoch("yesterday")


def test_profiles_are_parsed_once_and_failures_are_not_cached(tmp_path):
    assert load_profile("aperture") is load_profile("aperture")  # remediation asks on every decision
    path = tmp_path / "p.yaml"
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(str(path))
    path.write_text("name: p\nengine: sqlite\n")
    profile = load_profile(path)  # a Path and its text are the same profile
    assert profile.name == "p" and load_profile(str(path)) is profile
