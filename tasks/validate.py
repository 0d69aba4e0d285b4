"""Validate stage: the Great Expectations gate between ``generate`` and ``export``.

Pure-ish core: :func:`validate` takes the ``accepted`` and ``rounds`` frames and the
``validate`` settings, runs two suites (one per table) in an ephemeral GE context, optionally
builds Data Docs into a directory, and returns a :class:`ValidationReport`. Nothing is read
from params.yaml or the environment. :func:`write_report` writes ``metrics/validation.json``;
:func:`raise_if_failed` stops the pipeline with one readable message. :func:`validate_stage`
runs it on the project's files, :func:`validate_task` inside a flow.

The suite itself (what is expected of which column) lives in :mod:`tasks.validate_checks`;
the per-row gate and rubric facts it checks are computed in :mod:`tasks.validate_rows`.
Expectations that need rows (a median, a share) are reported ``applicable: false`` on an
empty table instead of failing: zero accepted rows is a valid outcome (DESIGN §4).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata import schemas
from autodata._killpoints import killpoint
from autodata.errors import ValidationFailed
from autodata.io import atomic_dir, write_json
from autodata.settings import Settings, Validate
from tasks.accept import accepted_and_rounds
from tasks.validate_checks import Spec, accepted_specs, accepted_view, rounds_specs, rounds_view

__all__ = [
    "ExpectationResult",
    "ValidationReport",
    "raise_if_failed",
    "validate",
    "validate_stage",
    "validate_task",
    "write_report",
]

MAX_IDS = 20
SITE = "local_site"  # the ephemeral context's own site; pointed at our directory
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_IDS}
DETAIL_KEYS = ("element_count", "unexpected_count", "unexpected_percent", "observed_value")


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation. ``success`` is None when it was not applicable."""

    name: str
    description: str
    table: str
    success: bool | None
    applicable: bool
    details: dict[str, Any] = field(default_factory=dict)
    offending_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationReport:
    """Everything the gate found: overall success, one entry per expectation, counts."""

    success: bool
    expectations: list[ExpectationResult]
    counts: dict[str, Any]
    data_docs: str | None = None

    @property
    def failed(self) -> list[ExpectationResult]:
        """The expectations that were applicable and failed."""
        return [e for e in self.expectations if e.success is False]

    def result(self, name: str) -> ExpectationResult:
        """The result of the expectation called ``name`` (KeyError if there is none)."""
        for entry in self.expectations:
            if entry.name == name:
                return entry
        raise KeyError(name)


def validate(
    accepted: pl.DataFrame, rounds: pl.DataFrame, cfg: Validate, data_docs_dir: Path | None
) -> ValidationReport:
    """Run the accepted and rounds suites; build Data Docs into ``data_docs_dir`` if given."""
    accepted = schemas.check(accepted, schemas.ACCEPTED, "accepted")
    rounds = schemas.check(rounds, schemas.ROUNDS, "rounds")
    a_view, r_view = accepted_view(accepted, rounds), rounds_view(rounds)
    suites = {
        "accepted": (a_view, accepted_specs(a_view, cfg)),
        "rounds": (r_view, rounds_specs(r_view, cfg)),
    }
    context = _context()
    results = [r for table, (v, specs) in suites.items() for r in _run(context, table, v, specs)]
    docs = _build_docs(context, data_docs_dir) if data_docs_dir is not None else None
    return ValidationReport(
        success=all(r.success is not False for r in results),
        expectations=results,
        counts=_counts(accepted, rounds, results),
        data_docs=docs,
    )


def write_report(report: ValidationReport, path: Path) -> Path:
    """Write ``report`` as JSON to ``path`` atomically (the ``validate`` stage's metrics file)."""
    return write_json(asdict(report), path)


def raise_if_failed(report: ValidationReport) -> None:
    """Raise :class:`ValidationFailed` naming every failed expectation and its offending ids."""
    if report.success:
        return
    failed = report.failed
    parts = "; ".join(_describe_failure(r) for r in failed)
    where = f"Data Docs: {report.data_docs}" if report.data_docs else "details in the report JSON"
    raise ValidationFailed(
        f"validation failed, export stopped: {len(failed)} of {len(report.expectations)} "
        f"expectations failed: {parts}. Fix the rows named, or the recipe or validate "
        f"thresholds, and rerun; {where}"
    )


# --- read / write wrapper and its Prefect task ---------------------------------------------


def validate_stage(settings: Settings) -> ValidationReport:
    """The validate stage on the project's files: run the suites on the accept stage's outputs;
    write ``metrics/validation.json`` and the Data Docs. Returns the report without raising
    (:func:`raise_if_failed` stops export); :class:`SourceError` if accept has not run."""
    accepted, rounds = accepted_and_rounds(settings.paths)
    report = validate(accepted, rounds, settings.validate_, settings.paths.data_docs)
    killpoint("validate:before-write")
    write_report(report, settings.paths.validation_metrics)
    return report


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(settings: Settings) -> dict[str, Any]:
    """Prefect wrapper of :func:`validate_stage` that stops the flow when the suite fails."""
    report = validate_stage(settings)
    raise_if_failed(report)
    return report.counts


def _describe_failure(r: ExpectationResult) -> str:
    what = f"{r.name} ({r.description})"
    if "unexpected_count" in r.details:
        what += f": {r.details['unexpected_count']} row(s)"
    elif "observed_value" in r.details:
        what += f": observed {r.details['observed_value']}"
    if "exception" in r.details:
        what += f": error {r.details['exception']}"
    return what + (f", ids {', '.join(r.offending_ids)}" if r.offending_ids else "")


# --- Great Expectations -------------------------------------------------------------------


def _gx() -> Any:
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # offline hygiene (DESIGN §5), before import
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are noise
    import great_expectations as gx

    for name in list(logging.root.manager.loggerDict):  # some of its modules set their own INFO
        if name.startswith("great_expectations."):
            logging.getLogger(name).setLevel(logging.NOTSET)
    return gx


def _context() -> Any:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = _gx().get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _expectation(gx: Any, spec: Spec) -> Any:
    cls = getattr(gx.expectations, spec.expectation)
    return cls(**spec.kwargs, meta={"key": spec.key}, description=spec.description)


def _run(
    context: Any, table: str, view: pl.DataFrame, specs: list[Spec]
) -> list[ExpectationResult]:
    gx = _gx()
    # Passing the expectations up front saves the suite once, not once per expectation.
    expectations = [_expectation(gx, s) for s in specs if s.applicable]
    suite = context.suites.add(gx.ExpectationSuite(name=table, expectations=expectations))
    asset = context.data_sources.add_pandas(table).add_dataframe_asset(table)
    batch = asset.add_batch_definition_whole_dataframe("all")
    definition = gx.ValidationDefinition(name=table, data=batch, suite=suite)
    run = context.validation_definitions.add(definition).run(
        batch_parameters={"dataframe": view.to_pandas()}, result_format=RESULT_FORMAT
    )
    # GE reorders results (column-map expectations first), so match them by our key.
    by_key = {r.expectation_config.meta["key"]: r for r in run.results}
    return [_result(spec, by_key.get(spec.key), view) for spec in specs]


def _result(spec: Spec, outcome: Any, view: pl.DataFrame) -> ExpectationResult:
    def make(success: bool | None, details: dict[str, Any], ids: list[str]) -> ExpectationResult:
        return ExpectationResult(
            spec.key, spec.description, spec.table, success, spec.applicable, details, ids
        )

    if not spec.applicable:
        return make(None, {"reason": spec.why_not}, [])
    if outcome is None:
        return make(False, {"exception": "Great Expectations returned no result for it"}, [])
    if outcome.success:
        return make(True, _details(outcome), [])
    return make(False, _details(outcome), _offenders(spec, outcome, view))


def _offenders(spec: Spec, outcome: Any, view: pl.DataFrame) -> list[str]:
    if spec.offenders:
        return list(spec.offenders)[:MAX_IDS]
    rows = (outcome.result or {}).get("partial_unexpected_index_list") or []
    ids = [view["candidate_id"][int(i)] or f"row {int(i)}" for i in rows]
    return list(dict.fromkeys(ids))[:MAX_IDS]


def _details(outcome: Any) -> dict[str, Any]:
    result = outcome.result or {}
    details = {k: _plain(result[k]) for k in DETAIL_KEYS if k in result}
    if "partial_unexpected_list" in result:
        details["unexpected_values"] = _plain(result["partial_unexpected_list"][:MAX_IDS])
    error = _exception(outcome.exception_info or {})
    if error:
        details["exception"] = error
    return details


def _exception(info: dict[str, Any]) -> str | None:
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _plain(value: Any) -> Any:
    """JSON-safe copy of a GE value (numpy scalars -> Python, NaN -> None)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _build_docs(context: Any, target: Path) -> str:
    with atomic_dir(target) as tmp:
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(tmp.resolve()),  # GE rejects a relative base directory
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
        if SITE in (context.list_data_docs_sites() or {}):
            context.update_data_docs_site(SITE, site)
        else:
            context.add_data_docs_site(SITE, site)
        context.build_data_docs(site_names=[SITE])
    return str(target / "index.html")


def _counts(
    accepted: pl.DataFrame, rounds: pl.DataFrame, results: list[ExpectationResult]
) -> dict[str, Any]:
    decisions = rounds["decision"].fill_null("(null)").value_counts(sort=True)
    return {
        "accepted": accepted.height,
        "rounds": rounds.height,
        "decisions": dict(zip(decisions["decision"], decisions["count"], strict=True)),
        "expectations": len(results),
        "failed": sum(r.success is False for r in results),
        "not_applicable": sum(not r.applicable for r in results),
    }
