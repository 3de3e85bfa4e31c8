"""`caretaker action list|run|runs` on a Tsundoku data directory: dry run, --yes, --param, exit codes, audit."""

from __future__ import annotations

import json
import sqlite3

import yaml
from typer.testing import CliRunner

from agent.cli import app
from agent.cli_action import parse_params


def config_file(tmp_path, db_path) -> str:
    path = tmp_path / "caretaker.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"state_dir": str(tmp_path / "state")}, "system": {"enabled": False},
        "sqlite": [{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku"}],
        "backups": [{"name": "tsundoku", "database": "tsundoku", "directory": str(tmp_path / "bk"),
                     "pattern": "tsundoku_*.db", "kind": "sqlite"}]}))
    return str(path)


def json_tail(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def test_parse_params():
    assert parse_params(["relations=[movies, series]", "older_than=2h", "restore=false", "n=5", "s="]) == {
        "relations": ["movies", "series"], "older_than": "2h", "restore": False, "n": 5, "s": ""}


def test_action_cli(tmp_path, tsundoku_db):
    db_path, _, manifest = tsundoku_db
    cfg = config_file(tmp_path, db_path)
    cli = CliRunner()

    listing = cli.invoke(app, ["action", "list", "-c", cfg])
    assert listing.exit_code == 0 and "clear_stuck_jobs" in listing.output and "tsundoku" in listing.output

    dry = cli.invoke(app, ["action", "run", "backup", "-c", cfg, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "planned" in dry.output and json_tail(dry.output)["file"].startswith("tsundoku_")
    assert not (tmp_path / "bk").exists() or not list((tmp_path / "bk").iterdir())

    backup = cli.invoke(app, ["action", "run", "backup", "-c", cfg])
    assert backup.exit_code == 0 and "succeeded" in backup.output, backup.output

    unconfirmed = cli.invoke(app, ["action", "run", "clear_stuck_jobs", "-c", cfg])
    assert unconfirmed.exit_code == 2 and "clear_stuck_jobs is destructive" in unconfirmed.output

    bad = cli.invoke(app, ["action", "run", "clear_stuck_jobs", "-c", cfg, "--yes", "--param", "oops"])
    assert bad.exit_code == 2 and "use key=value" in bad.output

    unknown_param = cli.invoke(app, ["action", "run", "backup", "-c", cfg, "-p", "x=1"])
    assert unknown_param.exit_code == 2 and "params.x" in unknown_param.output

    cleared = cli.invoke(app, ["action", "run", "clear_stuck_jobs", "-c", cfg, "--yes",
                               "--param", "older_than=1d", "--param", "job=series-refresh"])
    assert cleared.exit_code == 0, cleared.output
    assert json_tail(cleared.output)["cleared"] == len(manifest["stuck_run_ids"])
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM series_refresh_runs WHERE status = 'running'").fetchone() == (1,)

    runs = cli.invoke(app, ["action", "runs", "-c", cfg])
    assert runs.exit_code == 0 and "Action runs" in runs.output and "(dry run)" in runs.output
    one = cli.invoke(app, ["action", "runs", "-c", cfg, "--id", "1"])
    record = json_tail(one.output)
    assert (record["action"], record["trigger"], record["dry_run"], record["outcome"]) == (
        "backup", "cli", True, "planned")
    missing = cli.invoke(app, ["action", "runs", "-c", cfg, "--id", "999"])
    assert missing.exit_code == 2 and "no action run 999" in missing.output
