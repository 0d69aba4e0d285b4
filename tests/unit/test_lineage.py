"""autodata.lineage: resolving ids, a source's rounds and recipes, comparing recipe versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from autodata import lineage, schemas
from autodata.errors import AutodataError
from autodata.settings import ROLES, Gate

GATE = Gate(method="fixed").model_dump_json()
STRICT = Gate(method="fixed", min_gap=0.5).model_dump_json()


def source(
    source_id: str, text: str = "Clause 9.2 says the buyer may terminate."
) -> dict[str, Any]:
    return {"source_id": source_id, "doc_id": "d" + source_id, "section": 0, "domain": "legal",
            "title": f"title {source_id}", "uri": f"legal/{source_id}.md", "text": text,
            "n_chars": len(text), "ingested_at": datetime(2026, 1, 1, tzinfo=UTC)}  # fmt: skip


def round_(cid: str, sid: str, rnd: int, decision: str, gap: float | None = None, recipe: str = "aaa", gate: str = GATE) -> dict[str, Any]:  # fmt: skip
    weak = 0.3 if gap is not None else None
    strong = None if gap is None else round(0.3 + gap, 4)
    return {"candidate_id": cid, "source_id": sid, "round": rnd, "question": f"q {cid}",
            "weak_mean": weak, "weak_max": weak, "weak_min": weak, "strong_mean": strong,
            "strong_min": strong, "gap": gap, "control_gap": 1.0, "decision": decision,
            "reason": "" if decision == "accepted" else f"{decision} because", "feedback": "",
            "recipe_hash": recipe, "gate": gate}  # fmt: skip


def sources(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=schemas.SOURCES)


def rounds(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=schemas.ROUNDS)


SOURCES = sources(source("src-alpha"), source("src-beta"), source("zzz-other"))
ROUNDS = rounds(
    round_("cand-a2", "src-alpha", 2, "accepted", gap=0.4),
    round_("cand-a1", "src-alpha", 1, "too_easy"),
    round_("cand-b1", "src-beta", 1, "failed_strong", gap=0.1),
)


def test_resolve_exact_candidate_gives_its_source() -> None:
    assert lineage.resolve("cand-a2", SOURCES, ROUNDS) == lineage.Target("src-alpha", "cand-a2")


def test_resolve_unique_prefix_of_a_source() -> None:
    assert lineage.resolve("zzz", SOURCES, ROUNDS) == lineage.Target("zzz-other", None)


def test_resolve_ambiguous_prefix_names_the_matches() -> None:
    with pytest.raises(AutodataError, match=r"ambiguous \(cand-a1, cand-a2"):
        lineage.resolve("cand-a", SOURCES, ROUNDS)


def test_resolve_unknown_id_says_where_ids_come_from() -> None:
    with pytest.raises(
        AutodataError, match=r"no candidate or source with id 'nope'.*rounds\.parquet"
    ):
        lineage.resolve("nope", SOURCES, ROUNDS)


def test_resolve_exact_match_wins_over_longer_ids_with_that_prefix() -> None:
    extra = rounds(round_("cand-a", "src-beta", 3, "too_easy"), *ROUNDS.iter_rows(named=True))
    assert lineage.resolve("cand-a", SOURCES, extra) == lineage.Target("src-beta", "cand-a")


def test_source_excerpt_is_cut_at_the_limit() -> None:
    long = sources(source("s1", "x" * 1000))
    got = lineage.source_excerpt(long, "s1", chars=400)
    assert got["excerpt"] == "x" * 400 + " …"
    assert (got["title"], got["uri"], got["domain"]) == ("title s1", "legal/s1.md", "legal")
    assert lineage.source_excerpt(SOURCES, "src-alpha")["excerpt"].endswith("terminate.")


def test_source_excerpt_of_a_removed_source_is_empty() -> None:
    assert lineage.source_excerpt(SOURCES, "gone") == {}


def test_rounds_of_lists_every_round_in_order() -> None:
    got = lineage.rounds_of(ROUNDS, "src-alpha")
    assert got["round"].to_list() == [1, 2]
    assert got["decision"].to_list() == ["too_easy", "accepted"]
    assert got.columns == list(lineage.ROUND_COLUMNS)


def test_recipes_of_looks_hashes_up_and_marks_missing_ones() -> None:
    mixed = rounds(
        round_("c1", "s", 1, "too_easy", recipe="aaa"),
        round_("c2", "s", 2, "too_easy", recipe="bbb"),
    )
    registry = {"aaa": {"recipe_hash": "aaa", "recipe": {"gate": {"min_gap": 0.2}}}}
    got = lineage.recipes_of(mixed, "s", registry)
    assert got == [registry["aaa"], {"recipe_hash": "bbb", "recipe": None}]


def test_gate_of_a_candidate_is_its_recorded_gate() -> None:
    mixed = rounds(round_("c1", "s", 1, "too_easy"), round_("c2", "s", 2, "too_easy", gate=STRICT))
    assert lineage.gate_of(mixed, "c1", "s")["min_gap"] == 0.2
    assert lineage.gate_of(mixed, None, "s")["min_gap"] == 0.5  # the source's last round


def test_compare_versions_groups_by_recipe_and_gate() -> None:
    base = rounds(
        round_("a1", "s1", 1, "too_easy"),
        round_("a2", "s1", 2, "accepted", gap=0.4),
        round_("a3", "s1", 3, "accepted", gap=0.9),  # a later accepted round does not count twice
        round_("b1", "s2", 1, "accepted", gap=0.2),
        round_("c1", "s3", 1, "failed_strong", gap=0.1),
    )
    strict = base.with_columns(gate=pl.lit(STRICT))
    got = lineage.compare_versions({"HEAD": base, "exp": strict}).to_dicts()
    assert [(g["label"], g["recipe_hash"]) for g in got] == [("HEAD", "aaa"), ("exp", "aaa")]
    assert got[0]["gate"] != got[1]["gate"]
    first = got[0]
    assert (first["sources"], first["candidates"], first["accepted"]) == (3, 5, 2)
    assert first["acceptance_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert first["mean_rounds_per_accepted"] == 1.5  # rounds 2 and 1
    assert first["median_gap"] == pytest.approx(0.3)  # gaps 0.4 and 0.2


def test_compare_versions_without_acceptances_has_null_figures() -> None:
    got = lineage.compare_versions({"w": rounds(round_("a", "s", 1, "too_easy"))}).row(
        0, named=True
    )
    assert (got["accepted"], got["acceptance_rate"]) == (0, 0.0)
    assert got["mean_rounds_per_accepted"] is None and got["median_gap"] is None


def test_compare_versions_of_nothing_is_an_empty_frame() -> None:
    assert lineage.compare_versions({"w": schemas.empty(schemas.ROUNDS)}).is_empty()


def test_gate_hash_ignores_key_order() -> None:
    gate = json.loads(GATE)
    reordered = json.dumps(dict(reversed(list(gate.items()))))
    assert lineage.gate_hash(reordered) == lineage.gate_hash(GATE) != lineage.gate_hash(STRICT)


def test_differences_lists_only_changed_keys_per_version() -> None:
    one = {"gate": {"min_gap": 0.2, "weak_mean_max": 0.65}, "rollouts": {"weak": 3}}
    two = {"gate": {"min_gap": 0.3, "weak_mean_max": 0.65}, "rollouts": {"weak": 3}, "new": [1]}
    assert lineage.differences({"v1": one, "v2": two}) == {
        "gate.min_gap": {"v1": 0.2, "v2": 0.3},
        "new": {"v1": None, "v2": [1]},
    }


def test_effective_recipe_takes_the_deciding_gate() -> None:
    recipe = {"gate": {"min_gap": 0.2}, "rollouts": {"weak": 3}}
    got = lineage.effective_recipe(recipe, STRICT)
    assert got["gate"]["min_gap"] == 0.5 and got["rollouts"] == {"weak": 3}
    assert recipe["gate"] == {"min_gap": 0.2}  # the registry entry is not modified
    assert lineage.effective_recipe(None, None) == {}


def test_made_by_is_each_roles_model_and_prompt_hash_as_the_accepted_row_records_them() -> None:
    recorded = {f"{r}_{c}": f"{c}-of-{r}" for r in ROLES for c in ("model", "prompt_hash")}
    row = dict.fromkeys(schemas.ACCEPTED.names()) | {"candidate_id": "c1", "source_id": "s1"}
    accepted = pl.DataFrame([row | recorded], schema=schemas.ACCEPTED)
    expected = [(r, f"model-of-{r}", f"prompt_hash-of-{r}") for r in ROLES]
    assert lineage.made_by(accepted, lineage.Target("s1")) == ("c1", expected)
    assert lineage.made_by(accepted, lineage.Target("s1", "c1")) == ("c1", expected)
    assert lineage.made_by(accepted, lineage.Target("s1", "c2")) == ("", [])  # not accepted
