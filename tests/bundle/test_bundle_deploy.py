"""docker-compose.yml, the Dockerfile and deploy/: valid for their tools, wired to each other, no secret
committed. There is no Docker engine on these machines; the stack's servers are exercised by the
Prometheus/Alertmanager tests instead."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config
from bundle_sources import REPO, RULES_FILE

DEPLOY = REPO / "deploy"
SERVICES = {"caretaker", "postgres", "prometheus", "alertmanager", "grafana"}
SECRET_WORDS = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|DSN|URL", re.I)


def run(*cmd: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=120)


def needs(binary: str):
    return pytest.mark.skipif(shutil.which(binary) is None, reason=f"{binary} not installed")


def compose_config(*extra: str) -> dict:
    result = run("docker-compose", "-f", str(REPO / "docker-compose.yml"), *extra, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@needs("docker-compose")
def test_docker_compose_config_passes_without_and_with_the_example_env():
    for extra in ((), ("--env-file", str(REPO / ".env.example"))):
        config = compose_config(*extra)
        assert set(config["services"]) == SERVICES
        assert config["services"]["caretaker"]["build"]["context"] == str(REPO)


def test_services_are_wired_to_each_other():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    prometheus_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = {src: dst.removesuffix(":ro") for src, _, dst in
              (v.partition(":") for v in services["prometheus"]["volumes"])}
    assert prometheus_cfg["rule_files"] == [f"{mounts['./alerts']}/{RULES_FILE.name}"]
    scrape = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus_cfg["scrape_configs"]}
    assert scrape["caretaker"] == ["caretaker:9464"]
    assert prometheus_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]

    alertmanager = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    hook = alertmanager["receivers"][0]["webhook_configs"][0]
    assert alertmanager["route"]["receiver"] == alertmanager["receivers"][0]["name"]
    assert hook["url"] == "http://caretaker:9464/api/v1/alertmanager" and hook["send_resolved"]
    caretaker_cfg = yaml.safe_load((DEPLOY / "caretaker" / "config.yaml").read_text())
    token_file = caretaker_cfg["agent"]["admin_token_file"]
    assert hook["http_config"]["authorization"]["credentials_file"] == token_file
    secret = Path(token_file).name
    assert secret in services["caretaker"]["secrets"] and secret in services["alertmanager"]["secrets"]
    assert caretaker_cfg["agent"]["listen"] == "0.0.0.0:9464"


def test_nothing_secret_is_committed():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, secret in compose["secrets"].items():
        assert secret["file"] == f"./secrets/{name}"
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".env" in ignored and "/secrets/" in ignored
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(key) and not key.endswith("_FILE"):
                assert re.fullmatch(rf"\$\{{{key}:-\}}", str(value)), f"{name}.{key} is not from .env"
    for line in (REPO / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if not line.startswith("#") and SECRET_WORDS.search(key):
            assert value == "", f".env.example: {key} has a value"


def test_dockerfile_builds_a_non_root_image_that_runs_the_agent():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install ." in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^EXPOSE 9464$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert 'CMD ["caretaker", "run", "--config", "/etc/caretaker/config.yaml"]' in text
    assert "deploy/caretaker/config.yaml:/etc/caretaker/config.yaml" in (REPO / "docker-compose.yml").read_text()


def test_make_secrets_then_the_stack_config_validates(tmp_path):
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    first = run("sh", str(tmp_path / "deploy" / "make-secrets.sh"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    secrets = tmp_path / "secrets"
    names = {p.name for p in secrets.iterdir()}
    assert names == set(yaml.safe_load((REPO / "docker-compose.yml").read_text())["secrets"])
    before = {p.name: p.read_text() for p in secrets.iterdir()}
    assert len(before["caretaker_admin_token"]) == 64
    assert before["caretaker_pg_dsn"] == f"postgresql://caretaker:{before['postgres_password']}@postgres:5432/media"
    again = run("sh", str(tmp_path / "deploy" / "make-secrets.sh"), cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""            # kept, not regenerated
    assert {p.name: p.read_text() for p in secrets.iterdir()} == before
    assert secrets.stat().st_mode & 0o777 == 0o700

    config = tmp_path / "config.yaml"
    config.write_text((DEPLOY / "caretaker" / "config.yaml").read_text().replace("/run/secrets/", f"{secrets}/"))
    cfg = load_config(config)
    assert cfg.agent.admin_token.get_secret_value() == before["caretaker_admin_token"]
    assert cfg.databases[0].dsn.get_secret_value() == before["caretaker_pg_dsn"]
    result = CliRunner().invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 0 and before["postgres_password"] not in result.output


@needs("promtool")
def test_prometheus_config_is_valid(tmp_path):
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/", f"{RULES_FILE.parent}/"))
    result = run("promtool", "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


@needs("amtool")
def test_alertmanager_config_is_valid():
    result = run("amtool", "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
