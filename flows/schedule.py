"""The refresh deployment: :func:`flows.refresh.refresh_flow` served with a cron schedule.

Kept apart from the flow (PrefectHQ/examples keep ``deploy/`` beside ``flows/``). ``serve``
registers the deployment with the Prefect API in ``PREFECT_API_URL`` and then runs each
scheduled (or manually triggered) flow run in a subprocess of this process, in its working
directory. Run it against a long-lived server, e.g.::

    prefect server start --host 127.0.0.1 --port 4200          # once, in its own terminal
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    autodata schedule --cron "0 3 * * *"                     # from the repository root
"""

from __future__ import annotations

import os

from autodata.errors import ConfigError

DEPLOYMENT = "autodata-refresh"


def check_cron(cron: str) -> str:
    """``cron`` if Prefect accepts it as a cron schedule, else a :class:`ConfigError`."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError:
        raise ConfigError(
            f"--cron '{cron}' is not a valid cron expression; use five fields, e.g. '0 3 * * *' (03:00 daily)"
        ) from None
    return cron


def check_api() -> str:
    """The Prefect API URL a schedule needs (an ephemeral server would vanish with us)."""
    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        raise ConfigError(
            "PREFECT_API_URL is not set: a schedule needs a long-lived Prefect server; run "
            "`prefect server start` and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    return url


def serve_refresh(
    cron: str, name: str = DEPLOYMENT, params: str = "params.yaml", push: bool = True
) -> None:
    """Create (or update) the deployment ``refresh/<name>`` with ``cron`` and serve it (blocks)."""
    from prefect.deployments.runner import EntrypointType

    from flows.refresh import refresh_flow

    check_api()
    refresh_flow.serve(
        name=name,
        cron=check_cron(cron),
        parameters={"params": params, "repo": os.getcwd(), "push": push},
        description="Ingest new sources, dvc repro, record the dataset version.",
        tags=["autodata"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
