"""Config loading: validation with field paths, ${ENV} and *_file secrets, unknown rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_config, parse_config

DATA = Path(__file__).parent / "data"


def errors_of(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.errors


def test_good_config_with_env_secrets(monkeypatch):
    monkeypatch.setenv("CT_TEST_TOKEN", "tok-123")
    monkeypatch.setenv("CT_TEST_DSN", "postgresql://u:pw@127.0.0.1/aperture")
    cfg = load_config(DATA / "config-good.yaml")
    assert cfg.agent.admin_token.get_secret_value() == "tok-123"
    assert cfg.databases[0].dsn.get_secret_value().endswith("/aperture")
    assert "pw" not in repr(cfg.databases[0])  # SecretStr hides it
    assert cfg.system.interval == 15.0
    assert cfg.rules["DiskSpaceHigh"].threshold == 0.85
    assert cfg.rules["DiskSpaceHigh"].for_ == 600.0


def test_embedded_default_watches_this_host():
    cfg = load_config(None)
    assert cfg.system.enabled and cfg.databases == [] and cfg.agent.listen == "127.0.0.1:9464"
    assert cfg.agent.state_dir == Path("caretaker-data")


def test_unknown_field_is_named_with_its_path():
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "config-bad-extra-field.yaml")
    assert info.value.errors == ["system.mountpoint: Extra inputs are not permitted"]


def test_errors_name_list_positions():
    errs = errors_of({"services": [{"name": "a", "kind": "http", "url": "http://x"},
                                   {"name": "b", "kind": "nope"}]})
    assert len(errs) == 1 and errs[0].startswith("services[1].kind:")


def test_missing_env_var_names_field_not_value(monkeypatch):
    monkeypatch.delenv("CT_MISSING", raising=False)
    assert errors_of({"databases": [{"name": "a", "dsn": "${CT_MISSING}"}]}) == [
        "databases[0].dsn: environment variable CT_MISSING is not set"]


def test_secret_file_twin(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    cfg = parse_config({"agent": {"admin_token_file": str(secret)}})
    assert cfg.agent.admin_token.get_secret_value() == "from-file"
    errs = errors_of({"agent": {"admin_token_file": str(tmp_path / "absent")}})
    assert "cannot read" in errs[0] and errs[0].startswith("agent")


def test_bad_values_do_not_leak_secrets():
    errs = errors_of({"databases": [{"name": "a", "dsn": "postgresql://u:topsecret@h/d", "interval": "soon"}]})
    assert errs[0].startswith("databases[0].interval:")
    assert all("topsecret" not in e for e in errs)


def test_unknown_rule_name_is_an_error():
    errs = errors_of({"rules": {"DiskSpaceHigh": {"threshold": 0.9}, "DiskFull": {"threshold": 0.9}}})
    assert errs == ["rules: Value error, unknown rule name(s): DiskFull"]


def test_duplicate_names_rejected():
    errs = errors_of({"databases": [{"name": "a", "dsn": "x"}, {"name": "a", "dsn": "y"}]})
    assert "duplicate name(s) a" in errs[0]


def test_invalid_yaml_reports_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  listen: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "invalid YAML at line" in info.value.errors[0]


def test_integrity_schedule_is_a_validated_cron():
    errs = errors_of({"databases": [{"name": "a", "dsn": "x", "integrity": {"schedule": "every sunday"}}]})
    assert len(errs) == 1 and errs[0].startswith("databases[0].integrity.schedule:")
    assert "invalid cron expression" in errs[0]
    cfg = parse_config({"databases": [{"name": "a", "dsn": "x", "integrity": {"schedule": "@weekly"}}]})
    assert cfg.databases[0].integrity.schedule == "0 0 * * 0"


@pytest.mark.parametrize("data, path", [
    ({"databases": [{"name": "a", "dsn": "x", "integrity": {"schedule": "0 0 4 * * 0"}}]},
     "databases[0].integrity.schedule"),
    ({"maintenance": {"tasks": {"vacuum": {"schedule": "0 0 3 * * 0"}}}}, "maintenance.tasks.vacuum.schedule"),
    ({"notify": {"maintenance_windows": [{"name": "w", "schedule": "0 0 3 * * 0", "duration": "1h"}]}},
     "notify.maintenance_windows[0].schedule"),
    ({"jobs": [{"name": "j", "schedule": "0 0 3 * * 0"}]}, "jobs[0].schedule"),
])
def test_every_cron_field_takes_five_fields_only(data, path):
    """One validator for every cron field: croniter's six-field (seconds) form is refused everywhere."""
    errs = errors_of(data)
    assert len(errs) == 1 and errs[0].startswith(f"{path}: Value error, invalid cron expression"), errs


@pytest.mark.parametrize("data, path", [
    ({"maintenance": {"timezone": "Mars/Olympus"}}, "maintenance.timezone"),
    ({"notify": {"maintenance_windows": [{"name": "w", "schedule": "0 3 * * *", "duration": "1h",
                                          "timezone": "Mars/Olympus"}]}}, "notify.maintenance_windows[0].timezone"),
    ({"services": [{"name": "j", "kind": "jellyfin", "url": "http://j", "api_key": "k",
                    "timezone": "Mars/Olympus"}]}, "services[0].timezone"),
])
def test_time_zones_are_checked_alike(data, path):
    assert errors_of(data) == [f"{path}: Value error, unknown time zone 'Mars/Olympus' "
                               "(use an IANA name such as Europe/Berlin)"]


def test_log_level_regex_must_compile():
    errs = errors_of({"logs": [{"app": "a", "paths": ["/x.log"], "level_regex": "(unclosed"}]})
    assert len(errs) == 1 and errs[0].startswith("logs[0].level_regex: Value error, invalid regular expression")


def test_public_listen_needs_an_admin_token(tmp_path):
    errs = errors_of({"agent": {"listen": "0.0.0.0:9464"}})
    assert errs == ["agent: Value error, listen: 0.0.0.0:9464 is not a loopback address; "
                    "set agent.admin_token (or admin_token_file) to listen beyond this host"]
    for host in ("127.0.0.1", "[::1]", "localhost"):
        assert parse_config({"agent": {"listen": f"{host}:9464"}}).agent.admin_token is None
    token = tmp_path / "token"
    token.write_text("t0k\n")
    assert parse_config({"agent": {"listen": "0.0.0.0:9464", "admin_token_file": str(token)}}).agent.listen
