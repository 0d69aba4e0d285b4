"""Promotion rewrites params.yaml to run a variant: it reads back as exactly that variant, every
comment and every other key are kept, and the seed changes nothing."""

from __future__ import annotations

from pathlib import Path

from autodata.settings import Optimize, Settings, load_settings
from tasks.optimize_promote import promoted_params
from tasks.optimize_surface import ProposedEdit, Rejection, apply_edits, surface_of

REPO_PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"
SEED = surface_of(Settings())


def child() -> dict:
    edits = [
        ProposedEdit(target="challenger_system", action="append", new="Never state the answer."),
        ProposedEdit(target="feedback", action="set", new="  Earlier:\t$attempts  \n\n"),
        ProposedEdit(target="challenger.top_p", action="set", new="0.9"),
    ]
    result = apply_edits(SEED, edits, Optimize())
    assert not isinstance(result, Rejection)
    return result


def test_the_seed_leaves_params_yaml_as_it_is() -> None:
    text = REPO_PARAMS.read_text()
    assert promoted_params(text, SEED) == text


def test_a_promoted_variant_reads_back_exactly_with_comments_kept(tmp_path: Path) -> None:
    text, variant = REPO_PARAMS.read_text(), child()
    params = tmp_path / "params.yaml"
    params.write_text(promoted_params(text, variant))
    settings = load_settings(params)
    assert surface_of(settings) == variant
    assert settings.gate == Settings().gate and settings.models.judge == Settings().models.judge
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert all(c in params.read_text() for c in comments)
    assert "challenger_system: |-" in params.read_text()  # a readable block
    params.write_text(promoted_params(params.read_text(), SEED))  # and back to the seed
    assert surface_of(load_settings(params)) == SEED
