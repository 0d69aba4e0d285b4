"""``autodata lineage <id>`` and ``autodata recipes``: thin commands over :mod:`autodata.lineage`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
import yaml
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from autodata import lineage as core
from autodata import recipes as registry
from autodata import schemas
from autodata.cli_common import settings_of
from autodata.cli_optimize import print_variants
from autodata.errors import AutodataError
from autodata.settings import Settings
from autodata.stagefile import read_or_empty
from autodata.terminal import printable

out = Console()
WORKSPACE = "workspace"


def _rounds(settings: Settings) -> pl.DataFrame:
    path = settings.paths.rounds_table
    if not path.exists():
        raise AutodataError(f"{path} not found; run `dvc repro` or `autodata run` first")
    return read_or_empty(path, schemas.ROUNDS, "rounds")


def lineage(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(help="A candidate_id or source_id (or a unique prefix).")],
    chars: Annotated[int, typer.Option(help="Characters of the source to show.")] = 400,
) -> None:
    """Show where a row came from: the source, every round tried on it, and its recipe."""
    settings = settings_of(ctx)
    rounds = _rounds(settings)
    sources = read_or_empty(settings.paths.sources_table, schemas.SOURCES, "sources")
    target = core.resolve(ident, sources, rounds)
    entries = registry.read_registry(settings.paths.recipe_registry)
    _print_source(core.source_excerpt(sources, target.source_id, chars), target)
    _print_rounds(core.rounds_of(rounds, target.source_id), target)
    for entry in core.recipes_of(rounds, target.source_id, entries):
        _print_recipe(entry, settings.paths.recipe_registry)
    gate = core.gate_of(rounds, target.candidate_id, target.source_id)
    _show("decided under gate", ", ".join(f"{k}={v}" for k, v in gate.items()))
    accepted = read_or_empty(settings.paths.accepted_table, schemas.ACCEPTED, "accepted")
    _print_made_by(*core.made_by(accepted, target))


def _print_made_by(candidate_id: str, roles: list[tuple[str, str, str]]) -> None:
    if not roles:
        return
    title = f"accepted {candidate_id}: made by (as its rows record)"
    table = Table("role", "model", "prompt hash", title=title)
    for role in roles:
        table.add_row(*(Text(printable(cell)) for cell in role))  # names and hashes, never markup
    out.print(table)


def _show(label: str, text: str, *, lines: bool = False) -> None:
    """One printed item: a bold ``label`` (ours) and ``text`` that may have come from a file or a
    model — never read as markup, its control characters escaped."""
    shown = Text(printable(text, lines=lines))
    item = Text.assemble((label, "bold"), " ", shown) if label else shown
    out.print(item, highlight=False, soft_wrap=True)


def _print_source(source: dict[str, Any], target: core.Target) -> None:
    _show("source", target.source_id)
    if not source:
        _show("", "  (not in the current sources table: the file was removed or changed)")
        return
    _show("", f"  {source['title']} · {source['domain']} · {source['uri']}")
    _show("", source["excerpt"], lines=True)


def _print_rounds(rows: pl.DataFrame, target: core.Target) -> None:
    ids = [Column(name, no_wrap=True) for name in ("", "round", "decision")]
    table = Table(*ids, "weak", "strong", "gap", "reason", "question", title="rounds")
    for r in rows.iter_rows(named=True):
        mark = "→" if r["candidate_id"] == target.candidate_id else ""
        figures = [_num(r["weak_mean"]), _num(r["strong_mean"]), _num(r["gap"])]
        # a model wrote the question; the reason may quote it
        texts = (r["decision"], r["reason"] or "", r["question"] or "")
        decision, reason, question = (Text(printable(t, lines=True)) for t in texts)
        table.add_row(mark, str(r["round"]), decision, *figures, reason, question)
    out.print(table)


def _print_recipe(entry: dict[str, Any], registry_file: Path) -> None:
    _show("recipe", entry["recipe_hash"])
    if entry.get("recipe") is None:
        _show("", f"  (not in the recipe registry {registry_file}; rerun `autodata stage accept`)")
        return
    _show("", f"  first seen {entry['first_seen']} at git {entry['git_rev']}")
    _show("", yaml.safe_dump(entry["recipe"], sort_keys=True).rstrip(), lines=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def recipes(
    ctx: typer.Context,
    rev: Annotated[
        list[str] | None,
        typer.Option(
            help="Also compare the data at this git revision or DVC experiment (repeatable)."
        ),
    ] = None,
) -> None:
    """Compare the recipe versions in the data: acceptance rate, rounds per accepted, gap; then the
    optimizer's variants (``autodata optimize``) as a tree with their validation pass rates."""
    settings = settings_of(ctx)
    if not settings.paths.rounds_table.exists() and print_variants(settings, out):
        return  # variants, but no generated data yet
    tables = {WORKSPACE: _rounds(settings)} | {r: _rounds_at(settings, r) for r in rev or []}
    entries = registry.read_registry(settings.paths.recipe_registry)
    for r in rev or []:
        entries = _registry_at(settings, r) | entries
    _print_versions(core.compare_versions(tables), entries)
    print_variants(settings, out)


def _print_versions(versions: pl.DataFrame, entries: dict[str, dict[str, Any]]) -> None:
    """The versions table, then the recipe keys that differ between versions."""
    ids = [Column(name, no_wrap=True, min_width=w) for name, w in (("version", 3), ("data", 9), ("recipe", 12), ("gate", 8))]  # fmt: skip
    table = Table(*ids, "sources", "candidates", "accepted", "rate", "rounds/accepted",
                  "median gap", title="recipe versions")  # fmt: skip
    effective, unknown = {}, []
    for i, v in enumerate(versions.iter_rows(named=True), start=1):
        name, recipe = f"v{i}", (entries.get(v["recipe_hash"]) or {}).get("recipe")
        if recipe is None:
            unknown.append(f"{name} ({v['recipe_hash']})")
        else:
            effective[name] = core.effective_recipe(recipe, v["gate_json"])
        label, gate = (Text(printable(v[k])) for k in ("label", "gate"))  # a git ref, a setting
        table.add_row(name, label, v["recipe_hash"], gate, str(v["sources"]), str(v["candidates"]),
                      str(v["accepted"]), f"{v['acceptance_rate']:.0%}",
                      _num(v["mean_rounds_per_accepted"]), _num(v["median_gap"]))  # fmt: skip
    out.print(table)
    for key, values in core.differences(effective).items():  # values may be a model's prompt
        _show("", f"{key}: " + ", ".join(f"{n}={values[n]}" for n in values))
    if unknown:
        _show("", f"not in the recipe registry: {', '.join(unknown)}")


def _read_at(path: Path, rev: str, *, missing_ok: bool = False) -> bytes | None:
    """``path`` as it is at git revision or DVC experiment ``rev``; None when it is not there
    and ``missing_ok`` (any other failure is an :class:`AutodataError` naming the fix)."""
    import dvc.api
    from dvc.exceptions import DvcException, FileMissingError, PathMissingError

    try:
        with dvc.api.open(str(path), rev=rev, mode="rb") as fh:
            return bytes(fh.read())
    except (FileMissingError, PathMissingError) as exc:
        if missing_ok:
            return None
        raise _unreadable(path, rev, exc) from exc
    except DvcException as exc:
        raise _unreadable(path, rev, exc) from exc


def _unreadable(path: Path, rev: str, exc: Exception) -> AutodataError:
    return AutodataError(
        f"cannot read {path} at revision '{rev}' ({exc}); check the name with `git log` or "
        "`dvc exp show`, and `dvc pull` if the data is only on a remote"
    )


def _rounds_at(settings: Settings, rev: str) -> pl.DataFrame:
    data = _read_at(settings.paths.rounds_table, rev)
    assert data is not None  # not missing_ok
    return schemas.check(pl.read_parquet(io.BytesIO(data)), schemas.ROUNDS, "rounds")


def _registry_at(settings: Settings, rev: str) -> dict[str, dict[str, Any]]:
    """The registry at ``rev``; empty at an older revision that has none (the table still
    compares, its recipes reported as not in the registry)."""
    data = _read_at(settings.paths.recipe_registry, rev, missing_ok=True)
    return registry.parse_registry(data.decode()) if data is not None else {}
