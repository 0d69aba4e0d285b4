"""Process environment defaults, set before Prefect or Great Expectations are imported.

Offline hygiene (DESIGN §5): no telemetry, Prefect's home inside the project, a startup timeout
long enough for a new local database. Users' own values always win (``setdefault``).
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


SET_HERE: set[str] = set()  # the DEFAULTS keys the user had not set (a child may drop them)


def configure(project_root: Path | None = None) -> None:
    """Apply :data:`DEFAULTS` and put ``PREFECT_HOME`` under the project."""
    root = (project_root or Path.cwd()).resolve()
    for key, value in DEFAULTS.items():
        if key not in os.environ:
            SET_HERE.add(key)
            os.environ[key] = value
    os.environ.setdefault("PREFECT_HOME", str(root / ".prefect"))
    # A Prefect home that cannot be created is reported once, by the run (autodata.prefect_api)
    warnings.filterwarnings("ignore", message="Failed to create the Prefect home directory")


def git_revision(cwd: Path | None = None) -> str:
    """The current commit (``+dirty`` if the work tree has changes), or ``unknown``."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
