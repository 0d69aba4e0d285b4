"""The one settings object: ``params.yaml`` (the recipe) + ``AUTODATA_*`` environment variables.

Loaded once at the edge (CLI / flow entry) with :func:`load_settings` and passed down as values.
Secrets (API keys) come only from the environment, e.g. ``AUTODATA_MODELS__JUDGE__API_KEY``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from autodata.errors import ConfigError

ROLES = ("challenger", "verifier", "weak", "strong", "judge")
OPTIMIZER_ROLES = ("analyzer", "editor")  # meta-optimization only: `autodata run` never starts them
EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"
MAX_S = 86400.0  # the longest duration a setting may name: a day
MIN_RUBRIC_TOKENS = 128  # the smallest judge budget loop.judge_protocol per_answer accepts
THINKING_MAX_TOKENS = 4096  # default budget of a role with thinking on (max_tokens unset)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _sane_number(cls, value: Any, info: ValidationInfo) -> Any:
        """Every number finite (YAML's ``.inf``/``.nan`` passed ``gt=0`` and crashed the run);
        every duration (a ``*_s`` key) at most a day."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if isinstance(value, float) and (info.field_name or "").endswith("_s") and value > MAX_S:
            raise ValueError(f"must be at most {MAX_S:g} seconds (a day)")
        return value


class RoleModel(_Section):
    """How one role reaches its model, and how it samples."""

    backend: Literal["vllm", "openai"] = "vllm"
    model: str = EMBEDDED_MODEL
    base_url: str | list[str] | None = Field(
        None,
        description="for backend=openai: e.g. http://host:8000/v1, or a list of such URLs (one "
        "per server serving the model: calls are balanced across them, autodata/llm/balance.py)",
    )
    api_key: SecretStr | None = Field(None, description="environment only")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1, le=32768)
    seed: int = 0
    privileged: bool = Field(False, description="solver also sees the source document")
    max_concurrency: int = Field(4, ge=1, le=1024)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    max_resamples: int = Field(2, ge=0, le=10, description="re-asks on unparseable JSON")
    guided_json_hints: bool = Field(
        True, description="add vLLM guidance whitespace hints to JSON schemas (DESIGN §4)"
    )
    retry_max_tokens: int | None = Field(
        None,
        ge=1,
        le=131072,
        description="a solver answer cut at max_tokens is asked again once with this budget "
        "(default 4 x max_tokens; equal to max_tokens: never)",
    )
    thinking: Literal["auto", "on", "off"] = Field(
        "auto", description="reasoning models: chat_template_kwargs.enable_thinking (vLLM/SGLang)"
    )
    reasoning_effort: str | None = Field(None, description="sent as reasoning_effort if set")
    reasoning_api: bool | None = Field(
        None,
        description="OpenAI reasoning-model parameters (max_completion_tokens, no temperature/"
        "top_p/logprobs); null = detect from the model name (o1/o3/o4/gpt-5)",
    )
    strict_json: bool = Field(True, description="send json_schema.strict: true")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="merged into every request body (server-specific)"
    )
    rate_limit_wait_s: float = Field(
        600.0, gt=0, le=86400, description="longest a call waits out HTTP 429s before failing"
    )

    @field_validator("base_url")
    @classmethod
    def _one_or_more_urls(cls, value: str | list[str] | None) -> str | list[str] | None:
        """A list names each endpoint once; a list of one is that URL."""
        if not isinstance(value, list):
            return value
        if not value or not all(url.strip() for url in value):
            raise ValueError("a list of URLs must name at least one, and none empty")
        if len({url.strip().rstrip("/") for url in value}) < len(value):
            raise ValueError("names the same URL twice; list each endpoint once")
        return value[0] if len(value) == 1 else value

    @property
    def base_urls(self) -> list[str]:
        """Every endpoint of the role (none for a managed server)."""
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @model_validator(mode="after")
    def _openai_needs_url(self) -> RoleModel:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        return self

    @model_validator(mode="after")
    def _thinking_budget(self) -> RoleModel:
        # A reasoning model thinks before it answers: a few hundred tokens (a judge's reply) end
        # inside the think block. Unless max_tokens was set, give thinking room.
        if self.thinking == "on" and "max_tokens" not in self.model_fields_set:
            object.__setattr__(self, "max_tokens", max(self.max_tokens, THINKING_MAX_TOKENS))
        return self

    @property
    def budget_retry(self) -> int:
        """The one larger budget for a cut solver answer (0: no retry)."""
        cap = self.retry_max_tokens or min(4 * self.max_tokens, 32768)
        return cap if cap > self.max_tokens else 0


class Models(_Section):
    challenger: RoleModel = RoleModel(temperature=0.3, max_tokens=768, timeout_s=600)
    verifier: RoleModel = RoleModel(temperature=0.0, max_tokens=256)
    weak: RoleModel = RoleModel(temperature=0.7, max_tokens=256, timeout_s=300)
    strong: RoleModel = RoleModel(temperature=0.7, max_tokens=256, privileged=True, timeout_s=300)
    judge: RoleModel = RoleModel(temperature=0.0, max_tokens=512, timeout_s=600)  # per_answer JSON
    analyzer: RoleModel = RoleModel(temperature=0.3, max_tokens=512, timeout_s=600)
    editor: RoleModel = RoleModel(temperature=0.7, max_tokens=768, timeout_s=600)

    def role(self, name: str) -> RoleModel:
        return getattr(self, name)


class Gate(_Section):
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


class Prompts(_Section):
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


class Optimize(_Section):
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


class Rollouts(_Section):
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


class Loop(_Section):
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


class Ingest(_Section):
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


class Validate(_Section):
    """Dataset-level difficulty checks run by the Great Expectations gate before export."""

    min_median_gap: float = Field(0.20, ge=0, le=1)
    max_infra_error_share: float = Field(0.25, ge=0, le=1)
    min_accepted: int = Field(0, ge=0, description="fail validation below this many accepted rows")


class ServerOptions(_Section):
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


class Vllm(_Section):
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


class RoundFiles(NamedTuple):
    """One round's files of the loop, one per step (read back instead of recomputed on resume)."""

    challenges: Path
    weak_rollouts: Path
    weak_judgments: Path
    strong_rollouts: Path
    strong_judgments: Path
    rounds: Path
    fresh_weak_rollouts: Path  # the fresh re-scoring of the round's accepted items
    fresh_weak_judgments: Path
    fresh_strong_rollouts: Path
    fresh_strong_judgments: Path


class StepFiles(NamedTuple):
    """One step of the sequential gate inside a round: the rollouts it drew and their grades."""

    weak_rollouts: Path
    weak_judgments: Path
    strong_rollouts: Path
    strong_judgments: Path


class Paths(_Section):
    """Every path named once: the directories are settings; every file the pipeline writes in
    them is a property here, its name spelled nowhere else (``tests/unit/test_dvc_yaml.py``
    holds ``dvc.yaml`` to them). Inside a directory that one module owns whole (the export,
    the plots, the Data Docs, the call cache) that module lays out its own files."""

    sources: Path = Path("data/sources")
    interim: Path = Path("data/interim")
    processed: Path = Path("data/processed")
    export: Path = Path("data/export")
    metrics: Path = Path("metrics")
    reports: Path = Path("reports")
    cache: Path = Path(".cache/llm")
    models: Path = Path(".cache/models")
    logs: Path = Path(".cache/logs")
    optimize: Path = Path("data/optimize")  # meta-optimization: splits, variants, history, state

    @property
    def sources_table(self) -> Path:
        return self.processed / "sources.parquet"

    @property
    def rounds_table(self) -> Path:
        return self.processed / "rounds.parquet"

    @property
    def accepted_table(self) -> Path:
        return self.processed / "accepted.parquet"

    @property
    def generate_metrics(self) -> Path:
        return self.metrics / "generate.json"

    @property
    def optimize_metrics(self) -> Path:
        """Meta-optimization's figures, one entry per evaluated variant (``dvc metrics diff``)."""
        return self.metrics / "optimize.json"

    @property
    def skipped_sources_table(self) -> Path:
        return self.processed / "skipped_sources.parquet"

    @property
    def validation_metrics(self) -> Path:
        return self.metrics / "validation.json"

    @property
    def data_docs(self) -> Path:
        return self.reports / "validation"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"

    @property
    def challenges_table(self) -> Path:
        """The loop's items, every round (generate writes it, accept reads it)."""
        return self.interim / "challenges.parquet"

    @property
    def rollouts_table(self) -> Path:
        return self.interim / "rollouts.parquet"

    @property
    def judgments_table(self) -> Path:
        return self.interim / "judgments.parquet"

    @property
    def loop_rounds_table(self) -> Path:
        """The loop's own decisions (under the gate it searched with)."""
        return self.interim / "loop_rounds.parquet"

    @property
    def calls_file(self) -> Path:
        """The generate stage's call counts per role (read by ``autodata stage accept``)."""
        return self.interim / "calls.json"

    @property
    def recipe_snapshot(self) -> Path:
        """The recipe the generate stage ran with."""
        return self.interim / "recipe.json"

    @property
    def recipe_registry(self) -> Path:
        """Every recipe that produced data, by hash (:mod:`autodata.recipes`); only grows."""
        return self.processed / "recipes.jsonl"

    @property
    def lock_file(self) -> Path:
        """The project's run lock (:mod:`autodata.runlock`)."""
        return self.interim / ".autodata.lock"

    @property
    def prefect_log(self) -> Path:
        """The temporary Prefect server's log (:mod:`autodata.prefect_api`)."""
        return self.logs / "prefect-server.log"

    def work_dir(self, work_key: str) -> Path:
        """A work folder of the loop (one per source set): ``round_NN/<key>/<step>.parquet``."""
        return self.interim / "work" / work_key

    def round_files(
        self, work_key: str, round_no: int, keys: Mapping[str, str] | None = None
    ) -> RoundFiles:
        """The files of round ``round_no`` in the work folder ``work_key``, each in a folder
        named by its content key ``keys[step]`` (:func:`tasks.generate.round_keys`), so a file
        is read back only when everything that makes it is unchanged. A step without a key of
        its own takes the round's (``keys["rounds"]``), which covers the whole recipe."""
        folder, keys = self.work_dir(work_key) / f"round_{round_no:02d}", keys or {}
        own = {step: keys.get(step, keys.get("rounds", "")) for step in RoundFiles._fields}
        return RoundFiles(*(folder / own[step] / f"{step}.parquet" for step in RoundFiles._fields))

    def step_files(self, work_key: str, round_no: int, key: str, step: int) -> StepFiles:
        """The files of step ``step`` of the sequential gate in round ``round_no``, under the
        round's content key ``key`` (its ``rounds`` file's: the whole recipe)."""
        folder = self.work_dir(work_key) / f"round_{round_no:02d}" / key / f"step_{step:02d}"
        return StepFiles(*(folder / f"{name}.parquet" for name in StepFiles._fields))

    @property
    def anchors_table(self) -> Path:
        """The judge's verdicts on the drift anchors, graded at the start of the last run."""
        return self.interim / "judge_anchors.parquet"

    @staticmethod
    def round_of(folder: Path) -> int | None:
        """The number of a ``round_NN`` folder (as :meth:`round_files` names it), else None."""
        digits = folder.name.removeprefix("round_")
        return int(digits) if digits != folder.name and digits.isdigit() else None


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
