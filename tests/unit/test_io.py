"""Atomic writes: the target is replaced whole or not at all, and no temp file is left behind."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import polars as pl
import pytest

from autodata import io
from autodata.errors import StorageError

OLD = {"version": 1}


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """An existing file whose content must survive any failed write."""
    path = tmp_path / "out" / "metrics.json"
    io.write_json(OLD, path)
    return path


def _leftovers(directory: Path, keep: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p != keep)


def test_write_json_replaces_the_file_and_leaves_no_temp(target):
    io.write_json({"version": 2, "b": [1, 2]}, target)
    assert json.loads(target.read_text()) == {"version": 2, "b": [1, 2]}
    assert _leftovers(target.parent, target) == []


def test_write_parquet_round_trips_into_a_new_directory(tmp_path):
    frame = pl.DataFrame({"id": [1, 2], "text": ["a", "é"]})
    path = io.write_parquet(frame, tmp_path / "new" / "dir" / "t.parquet")
    assert pl.read_parquet(path).equals(frame)
    assert _leftovers(path.parent, path) == []


def test_write_text_overwrites(tmp_path):
    path = io.write_text("first", tmp_path / "a.txt")
    io.write_text("second", path)
    assert path.read_text() == "second"


def test_a_frame_that_cannot_be_written_leaves_the_old_file(tmp_path):
    path = io.write_parquet(pl.DataFrame({"x": [1]}), tmp_path / "t.parquet")
    unwritable = pl.DataFrame({"x": [object()]})
    with pytest.raises(pl.exceptions.ComputeError):
        io.write_parquet(unwritable, path)
    assert pl.read_parquet(path)["x"].to_list() == [1]
    assert _leftovers(tmp_path, path) == []


def test_an_error_midway_through_the_write_leaves_the_old_file(target):
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text('{"version": 2, "trunc')
        raise RuntimeError("writer crashed")
    assert json.loads(target.read_text()) == OLD
    assert _leftovers(target.parent, target) == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_disk_full_is_a_storage_error_and_the_old_file_stays(target, monkeypatch, failing):
    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, no_space)
    with pytest.raises(StorageError) as err:
        io.write_json({"version": 2}, target)
    monkeypatch.undo()
    message = str(err.value)
    assert str(target) in message
    assert "No space left on device" in message and "free disk space" in message
    assert json.loads(target.read_text()) == OLD
    assert _leftovers(target.parent, target) == []


def test_an_oserror_raised_by_the_writer_is_a_storage_error(target):
    with pytest.raises(StorageError) as err, io.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise OSError(errno.EIO, "Input/output error")
    assert str(target) in str(err.value)
    assert json.loads(target.read_text()) == OLD
    assert _leftovers(target.parent, target) == []


def test_an_unusable_directory_is_a_storage_error(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(StorageError) as err:
        io.write_text("x", blocker / "out.txt")
    assert str(blocker / "out.txt") in str(err.value)
    assert "fix permissions" in str(err.value)


def test_a_written_file_is_readable_like_any_other(tmp_path):
    path = io.write_text("x", tmp_path / "card.md")
    assert path.stat().st_mode & 0o777 == 0o644


# -- atomic_dir ------------------------------------------------------------------------------


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """An existing output directory holding one file."""
    with io.atomic_dir(tmp_path / "export") as tmp:
        (tmp / "train.jsonl").write_text("old\n")
    return tmp_path / "export"


def test_atomic_dir_swaps_in_the_new_directory_whole(published):
    with io.atomic_dir(published) as tmp:
        (tmp / "train.jsonl").write_text("new\n")
        (tmp / "card.md").write_text("card")
        assert (published / "train.jsonl").read_text() == "old\n"  # not visible until done
    assert sorted(p.name for p in published.iterdir()) == ["card.md", "train.jsonl"]
    assert (published / "train.jsonl").read_text() == "new\n"
    assert published.stat().st_mode & 0o777 == 0o755
    assert _leftovers(published.parent, published) == []


def test_atomic_dir_keeps_the_old_directory_when_the_writer_fails(published):
    with pytest.raises(RuntimeError), io.atomic_dir(published) as tmp:
        (tmp / "train.jsonl").write_text("half")
        raise RuntimeError("writer crashed")
    assert (published / "train.jsonl").read_text() == "old\n"
    assert _leftovers(published.parent, published) == []


def test_atomic_dir_puts_the_old_directory_back_when_the_swap_fails(published, monkeypatch):
    real_replace = os.replace

    def swap_fails(src: object, dst: object) -> None:
        if str(src).endswith(".tmp") and Path(str(dst)) == published:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", swap_fails)
    with pytest.raises(StorageError) as err, io.atomic_dir(published) as tmp:
        (tmp / "train.jsonl").write_text("new\n")
    monkeypatch.undo()
    assert str(published) in str(err.value) and "free disk space" in str(err.value)
    assert (published / "train.jsonl").read_text() == "old\n"
    assert _leftovers(published.parent, published) == []


def test_atomic_dir_in_an_unusable_directory_is_a_storage_error(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(StorageError), io.atomic_dir(blocker / "export"):
        pass
