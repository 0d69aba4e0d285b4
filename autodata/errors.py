"""The few typed errors autodata raises. Each message is one line that names the culprit and the fix.

The CLI turns any ``AutodataError`` into that line and a non-zero exit, in one place
(``autodata.cli_common.Commands``); anything else is a bug.
Per-row problems (a bad source file, a malformed reply) are never exceptions: they become rows.
"""


class AutodataError(Exception):
    """Base class: ``str(err)`` is a complete, user-facing sentence with the fix. ``cause_line``, when
    a command knows it, is a last line on what lay behind it (e.g. the dominant failed call)."""

    exit_code = 2
    cause_line: str | None = None


class ConfigError(AutodataError):
    """params.yaml or an AUTODATA_* variable is wrong (unknown key, bad type, out of range)."""


class SourceError(AutodataError):
    """The sources cannot be used as a whole: missing or empty directory, or --strict and a bad file."""


class BackendError(AutodataError):
    """A model server cannot be used: unreachable, wrong key (401), unknown model (404), won't start."""

    exit_code = 3


class CallError(AutodataError):
    """One LLM call failed after its retries. Stages turn it into a row status, never a crash.

    ``kind`` is one of: ``connection``, ``timeout``, ``bad_body``, ``http_<code>``, ``invalid_output``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def is_infra(self) -> bool:
        """True for transport failures; ``invalid_output`` is the model's fault, not the network's."""
        return self.kind != "invalid_output"


class ValidationFailed(AutodataError):
    """The Great Expectations gate failed: export is stopped. The message lists what failed."""

    exit_code = 4


class StorageError(AutodataError):
    """A dataset could not be written (disk full, permissions); nothing half-written is left."""


class OrchestratorError(AutodataError):
    """The Prefect API cannot be used: the temporary server would not start, or is unreachable."""

    exit_code = 3


class ProjectBusy(AutodataError):
    """Another autodata run holds this project's run lock (one run per project at a time)."""


class ComponentError(AutodataError):
    """A library the pipeline runs on (DVC, Great Expectations, polars) failed; the message names
    it and the fix (:mod:`autodata.third_party` turns its exception into this)."""

    exit_code = 5


class MeasurementChanged(AutodataError):
    """Meta-optimization: what measures a variant (solver and judge prompts, gate, controls,
    models, the validation split) is not what the optimization started with."""


class JudgeDrift(AutodataError):
    """The judge disagrees with too many of the fixed anchor verdicts (``loop.anchor_min_agreement``):
    a model or prompt change degraded grading. The run stops before any round."""
