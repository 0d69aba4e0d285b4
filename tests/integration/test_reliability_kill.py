"""Kill anywhere (hardening issue, items 1, 4 and 6), through the real CLI.

``autodata run`` runs as a subprocess against a scripted server in this process. A chain of
reruns of one project is SIGKILLed at 12 kill points (``AUTODATA_TEST_KILL_AT``, see
``autodata/_killpoints.py``) — inside every stage, during parquet writes, inside a cache commit,
between rounds — and each rerun resumes from what the last one left. The final tables equal an
uninterrupted run's (run alongside); every killed run's completed calls are never asked again
(only the calls in flight at the kill are); no published file is ever unreadable. The same runs
carry bad source files (skipped with one named line each) and an API key (found in no file)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pypdf
import pytest
from reliability_cli import Ran, make_project, run_cli, shared_prefect, unreadable_outputs

from autodata.llm.cache import cache_key
from autodata.settings import Paths
from autodata.testing.replies import Reply
from autodata.testing.roles import LoopScript, challenger_item, role_of, user_text
from autodata.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration
KEY = "sk-autodata-test-5e0c2b7d9a41f38c"  # set for every role; must never land in a file
IN_FLIGHT = 4  # max_concurrency 2 per role; the challenger and the verifier overlap
CHAIN = (  # in pipeline order: each rerun resumes past the previous kill point
    "ingest:before-write",
    "llm:response:challenger:1",
    "stage:before-write:challenges",
    "llm:response:weak:3",
    "atomic:before-rename:weak_rollouts.parquet",
    "llm:response:judge:10",
    "cache:commit:5",
    "loop:round-end",
    "llm:response:strong:2",
    "atomic:before-rename:accepted.parquet",  # rounds.parquet written, accepted not yet
    "validate:before-write",
    "atomic:before-rename:sft.jsonl",
)
BAD_FILES = {  # name -> what its skip line must say
    "binary.txt": "binary data",
    "empty.md": "empty file",
    "huge.txt": "too large",
    "latin1.md": "not UTF-8",
    "locked.pdf": "encrypted PDF",
}


class TwoRounds(LoopScript):
    """Round 1's items are too easy (the weak solver meets every criterion), round 2's are
    accepted: every stage runs, and the loop crosses a round boundary."""

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        if role_of(body) == "challenger":
            item = challenger_item(body)
            return item | {"context": f"{item['context']} (round {body['seed']})"}
        return super().__call__(body)

    def _judge(self, body: dict[str, Any]) -> Reply | dict[str, Any]:
        if "(round 1)" in user_text(body):
            return LoopScript(weak_met=[True, True, True])._judge(body)
        return super()._judge(body)


def add_bad_files(root: Path) -> None:
    sources = root / "data" / "sources"
    (sources / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00binary\x00data")
    (sources / "empty.md").write_bytes(b"")
    with (sources / "huge.txt").open("wb") as fh:  # 100 MB, sparse
        fh.truncate(100 * 1024 * 1024)
    (sources / "latin1.md").write_bytes(
        "Caf\u00e9 cr\u00e8me, a paragraph in Latin-1.".encode("latin-1")
    )
    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    with (sources / "locked.pdf").open("wb") as fh:
        writer.write(fh)


@dataclass
class Killed:
    label: str
    ran: Ran
    keys: list[str]  # cache keys of the chat requests the server answered during this run
    unreadable: list[str]


@dataclass
class Runs:
    baseline_root: Path
    baseline: Ran
    baseline_keys: list[str]
    chain_root: Path
    chain: list[Killed] = field(default_factory=list)
    final: Ran | None = None


def keys(server: ScriptedServer, start: int = 0) -> list[str]:
    return [cache_key(r.body) for r in server.requests[start:] if r.path.endswith("/chat/completions")]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    shared_prefect()  # start it before the two runs race for it
    secret = {f"AUTODATA_MODELS__{r}__API_KEY": KEY for r in ("CHALLENGER", "VERIFIER", "WEAK", "STRONG", "JUDGE")}  # fmt: skip
    with ScriptedServer(TwoRounds(), api_key=KEY) as solo, ScriptedServer(TwoRounds(), api_key=KEY) as chained:  # fmt: skip
        base_root = make_project(tmp_path_factory.mktemp("uninterrupted"))
        add_bad_files(base_root)
        result: dict[str, Ran] = {}
        thread = threading.Thread(target=lambda: result.update(ran=run_cli(base_root, solo, env=secret)))  # fmt: skip
        thread.start()  # the uninterrupted run, alongside the chain (2 cores, mostly waiting)
        chain_root = make_project(tmp_path_factory.mktemp("killed"))
        add_bad_files(chain_root)
        out = Runs(base_root, Ran(-1, "", "", 0), [], chain_root)
        for label in CHAIN:
            start = len(chained.requests)
            ran = run_cli(chain_root, chained, kill_at=label, env=secret)
            out.chain.append(
                Killed(label, ran, keys(chained, start), unreadable_outputs(chain_root))
            )
        start = len(chained.requests)
        out.final = run_cli(chain_root, chained, env=secret)
        out.chain.append(Killed("(none)", out.final, keys(chained, start), []))
        thread.join()
        out.baseline, out.baseline_keys = result["ran"], keys(solo)
        yield out


def test_every_kill_point_was_reached(runs: Runs) -> None:
    assert runs.baseline.returncode == 0, runs.baseline.stderr
    outcomes = [(k.label, k.ran.returncode) for k in runs.chain]
    assert outcomes == [(label, -9) for label in CHAIN] + [("(none)", 0)], [k.ran.stderr[-2000:] for k in runs.chain]  # fmt: skip


def test_the_killed_and_rerun_project_ends_with_the_uninterrupted_tables(runs: Runs) -> None:
    for name in ("rounds", "accepted"):
        done = pl.read_parquet(runs.chain_root / "data" / "processed" / f"{name}.parquet")
        solo = pl.read_parquet(runs.baseline_root / "data" / "processed" / f"{name}.parquet")
        assert done.equals(solo), name
    accepted = pl.read_parquet(runs.chain_root / "data" / "processed" / "accepted.parquet")
    assert accepted["round"].to_list() == [2, 2]  # round 1 too easy, round 2 accepted
    assert (runs.chain_root / "data" / "export" / "sft.jsonl").read_text().count("\n") == 2


def test_only_calls_in_flight_at_a_kill_are_asked_again(runs: Runs) -> None:
    assert len(set(runs.baseline_keys)) == len(runs.baseline_keys)  # no call repeats itself
    asked = [key for k in runs.chain for key in k.keys]
    assert set(asked) == set(runs.baseline_keys)  # the same calls, no others
    repeated = {}
    for i, killed in enumerate(runs.chain):
        later = {key for k in runs.chain[i + 1 :] for key in k.keys}
        repeated[killed.label] = len(set(killed.keys) & later)
    print("calls asked again after each kill point:", repeated)  # whole in a failure's report
    assert all(n <= IN_FLIGHT for n in repeated.values()), repeated
    assert len(asked) - len(runs.baseline_keys) == sum(repeated.values())


def test_no_published_file_is_ever_half_written(runs: Runs) -> None:
    assert {k.label: k.unreadable for k in runs.chain if k.unreadable} == {}


def test_bad_source_files_are_skipped_with_one_named_line_each(runs: Runs) -> None:
    for ran in (runs.baseline, runs.final):
        assert ran is not None
        for name, reason in BAD_FILES.items():
            lines = [line for line in ran.stderr.splitlines() if f"data/sources/{name}:" in line]
            assert len(lines) == 1 and lines[0].startswith("skipped ") and reason in lines[0]
        assert f"{len(BAD_FILES)} source files skipped" in " ".join(ran.stdout.split())
    skipped = pl.read_parquet(runs.baseline_root / "data" / "processed" / "skipped_sources.parquet")
    assert sorted(skipped["uri"]) == sorted(BAD_FILES)


def test_no_file_and_no_output_contains_the_api_key(runs: Runs) -> None:
    """data/, metrics/, reports/, the cache, logs, exports, Prefect's database: nowhere."""
    _, prefect_home = shared_prefect()
    roots = [runs.baseline_root, runs.chain_root, prefect_home]
    scanned = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "calls.sqlite" for p in scanned) and any(
        p.suffix == ".db" for p in scanned
    )
    assert [str(p) for p in scanned if KEY.encode() in p.read_bytes()] == []
    texts = [runs.baseline.stdout, runs.baseline.stderr] + [t for k in runs.chain for t in (k.ran.stdout, k.ran.stderr)]  # fmt: skip
    assert not any(KEY in text for text in texts)


def test_the_console_carries_no_library_chatter(runs: Runs) -> None:
    assert (runs.baseline_root / Paths().validation_metrics).is_file()  # Great Expectations ran
    assert "ephemeral docs site" not in runs.baseline.stdout + runs.baseline.stderr
