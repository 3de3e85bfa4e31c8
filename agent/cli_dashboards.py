"""`caretaker dashboards …`: the Grafana dashboards as JSON files for file provisioning."""

from __future__ import annotations

from pathlib import Path

import typer

dashboards_app = typer.Typer(help="Grafana dashboards.", no_args_is_help=True)


@dashboards_app.command("build")
def dashboards_build(
    output: Path = typer.Option(Path("dashboards"), "--output", "-o",
                                help="Folder for the <name>.json files (the repo's dashboards/)."),
) -> None:
    """Build every dashboard into OUTPUT/<name>.json; the same code gives the same bytes."""
    from agent.dashboards import write_dashboards  # the Grafana SDK is needed only here

    for path in write_dashboards(output):
        typer.echo(str(path))
