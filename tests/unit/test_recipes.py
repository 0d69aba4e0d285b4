"""autodata.recipes: the registry maps every recipe_hash on a row back to its recipe."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from autodata import recipes
from autodata.settings import Gate, Paths, Settings

NOW = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def settings(root: Path, **sections: object) -> Settings:
    paths = Paths(**{k: root / str(v) for k, v in Paths().model_dump().items()})
    return Settings(paths=paths, **sections)  # type: ignore[arg-type]


def test_hash_recipe_is_the_settings_recipe_hash(tmp_path: Path) -> None:
    for s in (settings(tmp_path), settings(tmp_path, gate=Gate(method="fixed", min_gap=0.3))):
        assert recipes.hash_recipe(s.recipe()) == s.recipe_hash()
        # ... also after a JSON round trip (the generate stage's snapshot)
        assert recipes.hash_recipe(json.loads(json.dumps(s.recipe()))) == s.recipe_hash()


def test_record_writes_each_hash_once(tmp_path: Path) -> None:
    path = tmp_path / "recipes.jsonl"
    recipe = settings(tmp_path).recipe()
    first = recipes.record(path, recipe, "abc123", now=NOW)
    again = recipes.record(path, recipe, "def456")
    assert first == again
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry == {"recipe_hash": first, "recipe": recipe, "first_seen": "2026-11-21T03:00:00+00:00", "git_rev": "abc123"}  # fmt: skip


def test_record_appends_a_new_recipe_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "recipes.jsonl"
    one = recipes.record(path, settings(tmp_path).recipe(), "r1")
    two = recipes.record(
        path, settings(tmp_path, gate=Gate(method="fixed", min_gap=0.3)).recipe(), "r2"
    )
    registry = recipes.read_registry(path)
    assert list(registry) == [one, two]
    assert registry[two]["recipe"]["gate"]["min_gap"] == 0.3
    assert registry[one]["git_rev"] == "r1"


def test_read_registry_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert recipes.read_registry(tmp_path / "nope.jsonl") == {}


def test_record_recipe_records_the_generate_snapshot_and_the_current_recipe(tmp_path: Path) -> None:
    generated = settings(tmp_path)
    recipes.write_snapshot(generated)
    retuned = settings(
        tmp_path, gate=Gate(method="fixed", min_gap=0.5)
    )  # the gate changed after generate
    path = retuned.paths.recipe_registry
    hashes = recipes.record_recipe(retuned, path, "rev")
    assert hashes == [generated.recipe_hash(), retuned.recipe_hash()]
    assert set(recipes.read_registry(path)) == set(hashes)


def test_record_recipe_without_a_snapshot_records_the_current_one(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert recipes.record_recipe(s, tmp_path / "r.jsonl") == [s.recipe_hash()]
    assert recipes.record_recipe(s, tmp_path / "r.jsonl") == [s.recipe_hash()]
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1
