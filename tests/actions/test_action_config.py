"""The config sections of the actions: every bad value is an error naming its field."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, parse_config


@pytest.mark.parametrize("sections, message", [
    ({"maintenance": {"tasks": {"vacuum": {"schedule": "0 2 * *"}}}}, "maintenance.tasks.vacuum.schedule: "),
    ({"maintenance": {"tasks": {"nightly": {"schedule": "0 2 * * *"}}}}, "tasks.nightly: action and schedule"),
    ({"maintenance": {"tasks": {"vacuum": {"params": {"relation": "x"}}}}}, "tasks.vacuum.params.relation: Extra"),
    ({"maintenance": {"tasks": {"b": {"action": "backup", "schedule": "0 1 * * *", "then": ["verify"]}}}},
     "tasks.b: unknown action(s) verify"),
    ({"maintenance": {"timezone": "Mars/Olympus"}}, "maintenance.timezone: Value error, unknown time zone"),
    ({"remediation": {"NoSuchRule": {"auto": True}}}, "NoSuchRule: unknown rule name"),
    ({"remediation": {"DiskSpaceHigh": {"auto": True}}}, "DiskSpaceHigh.action: required"),
    ({"remediation": {"JobStuck": {"action": "nope"}}}, "remediation.JobStuck.action: Value error, unknown action(s) nope"),
    ({"remediation": {"PostgresDeadTuplesHigh": {"params": {"lock_timeout": "soon"}}}},
     "PostgresDeadTuplesHigh.params.lock_timeout: Value error, invalid duration 'soon'"),
    ({"remediation": {"JobStuck": {"max_runs": 0}}}, "remediation.JobStuck.max_runs: "),
    ({"actions": {"timeouts": {"vacum_analyze": "1h"}}}, "timeouts: unknown action(s) vacum_analyze"),
])
def test_bad_values_name_their_field(sections, message):
    with pytest.raises(ConfigError) as e:
        parse_config(sections)
    assert any(message in line for line in e.value.errors), e.value.errors


def test_admin_token_is_a_secret(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("tsu-admin\n")
    cfg = parse_config({"services": [{"name": "t", "kind": "tsundoku", "url": "http://t:8080",
                                      "admin_token_file": str(secret)}]})
    token = cfg.services[0].admin_token
    assert token.get_secret_value() == "tsu-admin" and "tsu-admin" not in repr(cfg)
