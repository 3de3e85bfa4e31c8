"""`caretaker rules …`: the alert rules as Prometheus sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from agent.rules.model import load_rules
from agent.rules.promql import UnsupportedRule, export

rules_app = typer.Typer(help="Alert rules.", no_args_is_help=True)


@rules_app.command("export")
def rules_export(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="Apply this config's `rules:` overrides; without it, the defaults."),
) -> None:
    """Print (or write) the rules as a Prometheus rule file, e.g. alerts/caretaker.rules.yml."""
    from agent.cli import err, load_or_exit

    overrides = load_or_exit(config).rules if config else None
    try:
        text = export(load_rules(overrides))
    except UnsupportedRule as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
