"""dvc.yaml agrees with the code: paths from Settings.Paths, param keys the stages read, deps that
exist. (DVC itself runs it in tests/integration/test_dvc_pipeline.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from autodata.settings import Gate, Ingest, Validate, load_settings

REPO = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES: dict[str, Any] = DVC["stages"]
PATHS = load_settings(REPO / "params.yaml").paths
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def names(entries: list[Any]) -> list[str]:
    """Entry names of a deps/outs/metrics/params block list (plain strings or one-key maps)."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def test_stage_order_and_commands() -> None:
    assert list(STAGES) == ["ingest", "generate", "accept", "validate", "export"]
    for name, stage in STAGES.items():
        assert stage["cmd"].split()[:3] == ["autodata", "stage", name]


@pytest.mark.parametrize(
    ("stage", "key", "expected"),
    [
        ("ingest", "outs", [PATHS.sources_table, PATHS.skipped_sources_table]),
        (
            "accept",
            "outs",
            [PATHS.rounds_table, PATHS.accepted_table, PATHS.recipe_registry],
        ),
        ("accept", "metrics", [PATHS.generate_metrics]),
        ("validate", "outs", [PATHS.data_docs]),
        ("validate", "metrics", [PATHS.validation_metrics]),
        ("export", "outs", [PATHS.export, PATHS.plots]),
    ],
)
def test_outputs_are_the_settings_paths(stage: str, key: str, expected: list[Path]) -> None:
    assert names(STAGES[stage][key]) == [str(p) for p in expected]


def test_generate_outputs_are_what_accept_reads() -> None:
    tables = (PATHS.challenges_table, PATHS.rollouts_table, PATHS.judgments_table, PATHS.loop_rounds_table)  # fmt: skip
    loop_outs = [str(p) for p in (*tables, PATHS.calls_file, PATHS.recipe_snapshot)]
    assert names(STAGES["generate"]["outs"]) == loop_outs
    assert set(loop_outs) <= set(names(STAGES["accept"]["deps"]))


def test_every_dep_exists_or_is_an_upstream_output() -> None:
    produced = {
        n for s in STAGES.values() for k in ("outs", "metrics") for n in names(s.get(k, []))
    }
    for name, stage in STAGES.items():
        for dep in names(stage["deps"]):
            assert (REPO / dep).exists() or dep in produced, f"{name}: {dep}"


def test_metrics_are_not_cached_and_not_git_ignored() -> None:
    ignored = (REPO / ".gitignore").read_text().split()
    for stage in STAGES.values():
        for entry in stage.get("metrics", []):
            ((path, opts),) = entry.items()
            assert opts == {"cache": False}
            assert not any(path.startswith(p.strip("/")) for p in ignored), path


def leaves(data: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        nested = isinstance(value, dict) and value  # an empty mapping is itself a param value
        out |= leaves(value, f"{prefix}{key}.") if nested else {prefix + key}
    return out


def test_every_param_key_exists_in_params_yaml() -> None:
    present = leaves(PARAMS) | {f"models.{role}" for role in PARAMS["models"]}
    for name, stage in STAGES.items():
        for key in stage.get("params", []):
            assert key in present, f"{name}: {key}"


def test_accept_reads_every_gate_key_and_generate_only_the_method() -> None:
    """Re-tuning a threshold reruns accept alone; switching fixed <-> sequential changes which
    rollouts the loop draws, and the answer tolerance how it scores them: generate reruns too."""
    accept, generate = set(STAGES["accept"]["params"]), STAGES["generate"]["params"]
    assert {f"gate.{k}" for k in Gate.model_fields} <= accept
    assert [k for k in generate if k.startswith("gate")] == ["gate.method", "gate.answer_tolerance"]
    assert {"models.challenger", "models.judge", "rollouts.weak", "loop.max_rounds"} <= set(
        generate
    )


def test_validate_and_ingest_read_their_own_sections() -> None:
    assert set(STAGES["validate"]["params"]) == {f"validate.{k}" for k in Validate.model_fields}
    ingest = {f"ingest.{k}" for k in Ingest.model_fields if k in PARAMS["ingest"]}
    assert set(STAGES["ingest"]["params"]) == ingest


def test_plots_point_at_the_csvs_export_writes() -> None:
    from tasks.plots import PLOTS

    declared = [next(iter(p)) for p in DVC["plots"]]
    assert declared == [str(PATHS.plots / f"{name}.csv") for name in PLOTS]


def test_dvc_config_is_offline_and_keeps_its_site_cache_in_the_repo() -> None:
    config = (REPO / ".dvc" / "config").read_text()
    for line in ("analytics = false", "check_update = false", "site_cache_dir = .cache/dvc-site"):
        assert line in config
