"""Step: the analyzer and the editor. From the parent's training run (its digest) to a proposal:
a root-cause analysis, then JSON edits of the editable surface. A failed or unusable call is a
:class:`Proposal` with ``failure`` set (the iteration ends without a child), never a crash.

Source: Meta FAIR's Autodata write-up (an analyzer LLM reads the trajectories, an editor LLM
writes the new variant).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata.errors import CallError
from autodata.llm.backends import open_clients
from autodata.llm.client import ChatClient
from autodata.settings import OPTIMIZER_ROLES, Models, Settings
from tasks.optimize import EditorOut, Spend, analyzer_request, editor_request
from tasks.optimize_surface import ProposedEdit

MAX_ANALYSIS_CHARS = 4000


@dataclass
class Proposal:
    """What the analyzer and editor returned for one parent, and what they cost."""

    analysis: str = ""
    rationale: str = ""
    edits: list[ProposedEdit] = field(default_factory=list)
    failure: str | None = None
    spend: Spend = field(default_factory=Spend)


async def propose(
    clients: Mapping[str, ChatClient],
    models: Models,
    run_digest: str,
    surface: Mapping[str, Any],
    iteration: int,
) -> Proposal:
    """Ask the analyzer, then the editor (each seeded by the iteration, so a resumed iteration
    gets its replies from the cache)."""
    out = Proposal()
    try:
        reply = await clients["analyzer"].chat(
            analyzer_request(run_digest, surface, models.analyzer, iteration)
        )
        out.analysis = reply.texts[0].strip()[:MAX_ANALYSIS_CHARS]
        if not out.analysis:
            out.failure = "analyzer: empty analysis"
            return out
        reply = await clients["editor"].chat(
            editor_request(out.analysis, surface, models.editor, iteration)
        )
    except CallError as exc:
        out.failure = str(exc)
        return out
    edited = reply.parsed[0]
    assert isinstance(edited, EditorOut)
    out.rationale, out.edits = edited.rationale, list(edited.edits)
    return out


@task(name="propose", cache_policy=NO_CACHE)
async def propose_task(
    settings: Settings,
    run_digest: str,
    surface: Mapping[str, Any],
    iteration: int,
    announce: Callable[[str], None],
) -> Proposal:
    """Prefect wrapper: reach (or start) the analyzer's and editor's servers, run :func:`propose`,
    and count what it cost."""
    async with open_clients(settings, OPTIMIZER_ROLES, announce=announce) as clients:
        proposal = await propose(clients, settings.models, run_digest, surface, iteration)
        proposal.spend = Spend.of({r: c.stats.as_dict() for r, c in clients.items()})
    return proposal
