"""`caretaker silence add|list|rm`: silences in the state file, shared with the running agent.

The agent reads silences from its state file at every delivery pass, so a silence added here takes
effect within a second, whether or not the agent is running; the HTTP API (POST/GET/DELETE
/api/v1/silences) does the same remotely.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.durations import parse_duration
from agent.notify.message import timestamp
from agent.notify.silences import add_silence, expire_silence, list_silences
from agent.state import State

silence_app = typer.Typer(help="Silences: hold the notifications of matching alerts for a while.",
                          no_args_is_help=True)
ConfigOption = typer.Option(None, "--config", "-c", help="The agent's config (for its state_dir).")


def _state(config: Optional[Path]) -> State:
    from agent.cli import load_or_exit

    return State(load_or_exit(config).agent.state_dir / "state.db")


def _fail(message: str) -> None:
    from agent.cli import err

    err.print(f"[red]error[/red] {message}", highlight=False)
    raise typer.Exit(2)


@silence_app.command("add")
def silence_add(
    matchers: list[str] = typer.Argument(..., help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX, NAME!~REGEX; "
                                                   "alertname is the alert's name."),
    duration: Optional[str] = typer.Option(None, "--duration", "-d", help="How long, e.g. 2h, 30m."),
    until: Optional[str] = typer.Option(None, "--until", help="End time, ISO 8601 (local time unless it has an "
                                                             "offset), e.g. 2026-05-01T06:00."),
    reason: str = typer.Option("", "--reason", "-r", help="Why, shown in lists and messages."),
    author: str = typer.Option("cli", "--author", help="Who created it."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Add a silence; prints its id."""
    now = time.time()
    if (duration is None) == (until is None):
        _fail("give exactly one of --duration or --until")
    try:
        ends = now + parse_duration(duration) if duration else datetime.fromisoformat(until).timestamp()
    except ValueError as exc:
        _fail(f"--duration/--until: {exc}")
    state = _state(config)
    try:
        silence = add_silence(state, matchers, ends, reason, author, now)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        state.close()
    typer.echo(f"{silence.id} until {timestamp(silence.ends_at)}")


@silence_app.command("list")
def silence_list(all_: bool = typer.Option(False, "--all", help="Include ended silences."),
                 config: Optional[Path] = ConfigOption) -> None:
    """List current and future silences."""
    from agent.cli import console

    state = _state(config)
    try:
        silences = list_silences(state, time.time(), all_)
    finally:
        state.close()
    table = Table(title="Silences")
    for column in ("id", "matchers", "starts", "ends", "reason", "by"):
        table.add_column(column)
    for s in silences:
        table.add_row(s.id, " ".join(str(m) for m in s.matchers), timestamp(s.starts_at), timestamp(s.ends_at),
                      s.reason, s.created_by)
    console.print(table)


@silence_app.command("rm")
def silence_rm(silence_id: str = typer.Argument(..., help="The silence's id (from `silence list`)."),
               config: Optional[Path] = ConfigOption) -> None:
    """End a silence now."""
    state = _state(config)
    try:
        ended = expire_silence(state, silence_id, time.time())
    finally:
        state.close()
    if not ended:
        _fail(f"no active silence {silence_id}")
    typer.echo(f"{silence_id} ended")
