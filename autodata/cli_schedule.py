"""``autodata schedule``: serve the refresh flow as a Prefect deployment with a cron schedule."""

from __future__ import annotations

from typing import Annotated

import typer

from autodata.cli_common import say, settings_of


def schedule(
    ctx: typer.Context,
    cron: Annotated[str, typer.Option(help="When to refresh, e.g. '0 3 * * *' (03:00 daily).")],
    name: Annotated[str, typer.Option(help="Deployment name.")] = "autodata-refresh",
    push: Annotated[
        bool, typer.Option(help="dvc push after each refresh (if a remote is set).")
    ] = True,
) -> None:
    """Serve the scheduled refresh (ingest new sources, dvc repro, record the version); blocks.

    Needs a long-lived Prefect server: `prefect server start`, then export PREFECT_API_URL.
    """
    from flows.schedule import check_api, check_cron, serve_refresh

    settings_of(ctx)  # fail now, not at 03:00, if params.yaml is wrong
    url, cron = check_api(), check_cron(cron)
    say(f"schedule: serving refresh/{name} on '{cron}' via {url}")
    serve_refresh(cron, name, str(ctx.find_root().obj["params"]), push)
