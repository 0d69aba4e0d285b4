"""The one settings object: ``params.yaml`` (the recipe) + ``AUTODATA_*`` environment variables.

Loaded once at the edge (CLI / flow entry) with :func:`load_settings` and passed down as values.
Secrets (API keys) come only from the environment, e.g. ``AUTODATA_MODELS__JUDGE__API_KEY``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from autodata.errors import ConfigError
from autodata.model_settings import EMBEDDED_MODEL as EMBEDDED_MODEL
from autodata.model_settings import OPTIMIZER_ROLES as OPTIMIZER_ROLES
from autodata.model_settings import ROLES as ROLES
from autodata.model_settings import THINKING_MAX_TOKENS as THINKING_MAX_TOKENS
from autodata.model_settings import Models as Models
from autodata.model_settings import RoleModel as RoleModel
from autodata.paths import Paths as Paths
from autodata.paths import RoundFiles as RoundFiles
from autodata.paths import StepFiles as StepFiles
from autodata.section import MAX_S as MAX_S
from autodata.section import Section

MIN_RUBRIC_TOKENS = 128  # the smallest judge budget loop.judge_protocol per_answer accepts


class Gate(Section):
    """Acceptance thresholds (DESIGN §1 steps 5 and 7)."""

    weak_mean_max: float = Field(0.65, ge=0, le=1)
    weak_max_max: float = Field(0.75, ge=0, le=1)
    strong_mean_min: float = Field(0.60, ge=0, le=1)
    strong_mean_max: float = Field(0.95, ge=0, le=1)
    min_gap: float = Field(0.20, ge=0, le=1)
    forbid_zero_weak: bool = True
    forbid_zero_strong: bool = True
    control_margin: float = Field(
        0.5, ge=0, le=1, description="min score(reference) - score(non-answer) for a reliable judge"
    )
    method: Literal["fixed", "sequential"] = Field(
        "sequential",
        description="fixed: rollouts.weak/strong rollouts and the rules above; sequential: "
        "rollouts in batches until the evidence is clear (tasks/gate_sequential.py), deciding "
        "on the means (the single-rollout rules weak_max_max and forbid_zero_* are fixed-only)",
    )
    confidence: float = Field(
        0.85, gt=0, lt=1, description="sequential: accept at P(every mean condition) >= this; "
        "also the level of the credible intervals recorded on every round",
    )  # fmt: skip
    weak_confidence: float = Field(
        0.8, gt=0, lt=1, description="sequential: the strong solver runs at P(weak_mean <= weak_mean_max) >= this"
    )  # fmt: skip
    weak_futility: float = Field(
        0.6, ge=0, lt=1, description="sequential: too easy at P(weak_mean <= weak_mean_max) <= this"
    )  # fmt: skip
    futility: float = Field(
        0.3, ge=0, lt=1, description="sequential: give up on a candidate at P(every mean condition) <= this"
    )  # fmt: skip
    prior_weight: float = Field(
        1.0, gt=0, le=100, description="sequential: pseudo-rollouts of the prior, half scoring 0, half 1"
    )  # fmt: skip
    fresh_min_gap: float = Field(
        0.10, ge=-1, le=1, description="fresh re-scoring: an accepted item whose fresh gap is below this is flagged"
    )  # fmt: skip
    drop_flagged: bool = Field(
        False, description="fresh re-scoring: leave flagged items out of the accepted table"
    )
    answer_tolerance: float = Field(
        1e-4, ge=0, le=1, description="verifiable: numbers equal within this relative tolerance"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Gate:
        if self.strong_mean_min >= self.strong_mean_max:
            raise ValueError("strong_mean_min must be below strong_mean_max")
        if self.weak_mean_max > self.weak_max_max:
            raise ValueError("weak_mean_max must not exceed weak_max_max")
        if self.futility >= self.confidence or self.weak_futility >= self.weak_confidence:
            raise ValueError(
                "futility must be below confidence (and weak_futility below weak_confidence)"
            )
        return self


class Prompts(Section):
    """Replacement text of the challenger-side templates (``autodata/prompts/<name>.md``, same
    ``$name`` placeholders); null = the packaged file. ``autodata optimize promote`` writes it."""

    challenger_system: str | None = None
    challenger_user: str | None = None
    challenger_example_user: str | None = None
    challenger_example_assistant: str | None = None
    feedback: str | None = None
    verifier_system: str | None = None
    verifier_user: str | None = None

    def overrides(self) -> dict[str, str]:
        """The templates this recipe replaces, by name."""
        return {name: text for name, text in self.model_dump().items() if text is not None}


class Optimize(Section):
    """Meta-optimization of the challenger side (docs/optimize.md). Budgets: null = no limit."""

    iterations: int = Field(20, ge=0, le=100000)
    temperature: float = Field(0.1, gt=0, le=100, description="Boltzmann T: P ∝ exp(score/T)")
    seed: int = 0
    validation_share: float = Field(0.34, gt=0, lt=1, description="share of sources held out")
    minibatch: int = Field(8, ge=1, description="training sources per parent run")
    repeats: int = Field(1, ge=1, le=20, description="validation evaluations per variant, averaged")
    max_rounds: int = Field(2, ge=1, le=100, description="rounds per source in optimizer runs")
    max_calls: int | None = Field(None, ge=1, description="model calls in total")
    max_tokens: int | None = Field(None, ge=1, description="tokens (in + out) in total")
    iteration_calls: int | None = Field(None, ge=1, description="model calls per iteration")
    iteration_tokens: int | None = Field(None, ge=1, description="tokens per iteration")
    max_edits: int = Field(4, ge=1, le=8, description="edits per proposed variant")
    max_edit_chars: int = Field(1500, ge=1, description="characters one edit may write")
    max_text_chars: int = Field(6000, ge=100, description="characters of any edited template")
    digest_chars: int = Field(3000, ge=200, description="characters of rounds the analyzer reads")


class Rollouts(Section):
    """Rollouts per role: ``weak``/``strong`` for the fixed gate; the rest for the sequential gate
    and the fresh re-scoring of accepted items."""

    weak: int = Field(3, ge=1, le=64)
    strong: int = Field(3, ge=1, le=64)
    first: int = Field(
        2, ge=1, le=64, description="sequential: rollouts per role in the first batch"
    )
    batch: int = Field(
        1, ge=1, le=64, description="sequential: rollouts per role in each later batch"
    )
    max_weak: int = Field(10, ge=1, le=64, description="sequential: cap on weak rollouts")
    max_strong: int = Field(20, ge=1, le=64, description="sequential: cap on strong rollouts")
    fresh: int = Field(
        3, ge=0, le=64, description="fresh re-scoring: rollouts per role with new seeds (0 = off)"
    )

    @model_validator(mode="after")
    def _first_within_caps(self) -> Rollouts:
        if self.first > min(self.max_weak, self.max_strong):
            raise ValueError("first must not exceed max_weak or max_strong")
        return self


class Loop(Section):
    max_rounds: int = Field(8, ge=1, le=100)
    max_infra_retries: int = Field(2, ge=0, le=20, description="extra rounds for infra errors")
    mode: Literal["rubric", "verifiable"] = "rubric"
    non_answer: str = "I don't know."
    judge_protocol: Literal["per_answer", "per_criterion"] = Field(
        "per_answer", description="per_answer: one call per answer, a reason then a verdict per "
        "criterion (schema-guided); per_criterion: one yes/no call per criterion, P(yes) from logprobs",
    )  # fmt: skip
    judge_reference: bool = Field(
        False, description="per_answer judge: also show it the reference answer to check values "
        "against (reference-guided grading)",
    )  # fmt: skip
    anchor_min_agreement: float = Field(
        0.0, ge=0, le=1, description="judge drift: stop the run when the judge agrees with fewer "
        "than this share of the anchor verdicts (0: off, no anchor is graded)",
    )  # fmt: skip
    judge_anchors: Path | None = Field(
        None,
        description="judge drift: a JSON-lines anchor set (null: autodata/anchors/judge.jsonl)",
    )

    @model_validator(mode="after")
    def _reference_needs_per_answer(self) -> Loop:
        if self.judge_reference and self.judge_protocol != "per_answer":
            raise ValueError(
                "loop.judge_reference needs loop.judge_protocol: per_answer (the one-word "
                "per_criterion judge has no room for it); set one of them"
            )
        return self


class Ingest(Section):
    text_column: str = "text"
    max_section_chars: int = Field(3000, ge=200)
    min_chars: int = Field(40, ge=1)
    max_file_mb: float = Field(50.0, gt=0)
    max_parse_s: float = Field(
        300.0, gt=0, description="a file whose reading takes longer is skipped (per file)"
    )
    follow_links_outside: bool = Field(
        False, description="read links in the sources folder that resolve outside it"
    )
    domains: dict[str, str] = Field(
        default_factory=dict, description="sub-directory name -> domain label"
    )


class Validate(Section):
    """Dataset-level difficulty checks run by the Great Expectations gate before export."""

    min_median_gap: float = Field(0.20, ge=0, le=1)
    max_infra_error_share: float = Field(0.25, ge=0, le=1)
    min_accepted: int = Field(0, ge=0, description="fail validation below this many accepted rows")


class ServerOptions(Section):
    """How the managed vLLM server of one model is started, where it differs from the ``vllm``
    block (unset = the block's value). Keyed by the model name roles use in ``models``."""

    max_model_len: int | None = Field(None, ge=128)
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs per model replica")
    data_parallel_size: int = Field(1, ge=1, le=64, description="model replicas in the server")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="GPU memory share")
    kv_cache_gib: int | None = Field(None, ge=1, description="CPU build: KV cache size")
    cpu_cores: str | None = Field(
        None,
        pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$",
        description="CPU build: cores its threads bind to (VLLM_CPU_OMP_THREADS_BIND, e.g. "
        "'1' or '0-3'); unset: vLLM's choice, but a second server takes the core it leaves free",
    )
    extra_args: list[str] | None = Field(None, description="replaces vllm.extra_args")


class Vllm(Section):
    """How managed vLLM servers are started (the environment is separate from the pipeline's)."""

    python: Path = Path(".venv-vllm/bin/python")
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 = pick a free port")
    max_model_len: int = 4096
    startup_timeout_s: float = 300.0
    kv_cache_gib: int = Field(1, ge=1)
    extra_args: list[str] = Field(default_factory=lambda: ["--enforce-eager"])
    models: dict[str, ServerOptions] = Field(
        default_factory=dict, description="per-model server settings, by model name"
    )


class Settings(BaseSettings):
    """Everything configurable. Sections mirror ``params.yaml``."""

    model_config = SettingsConfigDict(
        env_prefix="AUTODATA_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    models: Models = Models()
    gate: Gate = Gate()
    rollouts: Rollouts = Rollouts()
    loop: Loop = Loop()
    prompts: Prompts = Prompts()
    optimize: Optimize = Optimize()
    ingest: Ingest = Ingest()
    validate_: Validate = Field(Validate(), alias="validate")
    vllm: Vllm = Vllm()
    paths: Paths = Paths()

    @model_validator(mode="after")
    def _judge_budget_fits_its_protocol(self) -> Settings:
        """A per-answer verdict is JSON with a reason per criterion: a budget sized for one word
        (the old default, 4) would cut every reply, and the run would learn it only after solving."""
        budget = self.models.judge.max_tokens
        if self.loop.judge_protocol == "per_answer" and budget < MIN_RUBRIC_TOKENS:
            raise ValueError(
                f"models.judge.max_tokens {budget} is too small for loop.judge_protocol "
                f"per_answer (a reason and a verdict per criterion): set it to 512 (at least "
                f"{MIN_RUBRIC_TOKENS}), or loop.judge_protocol: per_criterion for one-word verdicts"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    def recipe(self) -> dict[str, Any]:
        """The settings that change what data is produced (no paths, no secrets, no servers)."""
        keep = self.model_dump(mode="json", include={"models", "gate", "rollouts", "loop"})
        for name in OPTIMIZER_ROLES:
            keep["models"].pop(name)  # they write recipes, not data
        if overrides := self.prompts.overrides():  # only when set: other recipes keep their hash
            keep["prompts"] = overrides
        for role in keep["models"].values():
            for key in ("api_key", "max_concurrency", "timeout_s", "max_retries", "base_url"):
                role.pop(key, None)
        return keep

    def recipe_hash(self) -> str:
        """Short stable hash of :meth:`recipe`, recorded on every row for lineage."""
        blob = json.dumps(self.recipe(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; pass --params PATH or create it (see README)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)}); fix the syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections (models, gate, ...)")
    _reject_secrets(data, path)
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _reject_secrets(data: dict[str, Any], path: Path) -> None:
    models = data.get("models")
    if not isinstance(models, dict):  # a wrong type is reported by validation
        return
    for role, spec in models.items():
        if isinstance(spec, dict) and "api_key" in spec:
            env = f"AUTODATA_MODELS__{str(role).upper()}__API_KEY"
            raise ConfigError(
                f"{path}: models.{role}.api_key: secrets never go in params.yaml; remove it and set {env}"
            )


def _describe(exc: ValidationError, path: Path) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    env = "AUTODATA_" + "__".join(str(p).upper() for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key '{key}'; remove it or check its spelling against the README"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{path}: {key}: {err['msg']}{shown}; fix it in {path} or {env}{more}"


def load_settings(path: Path | str = "params.yaml") -> Settings:
    """Load and validate settings; raise :class:`ConfigError` with one actionable line."""
    path = Path(path)
    data = _read_yaml(path)
    try:
        return Settings(**data)
    except ValidationError as exc:  # not chained: its inputs may hold an API key from the env
        raise ConfigError(_describe(exc, path)) from None
