"""The ``models`` section of the settings: how each role reaches its model and how it samples
(re-exported by :mod:`autodata.settings`, where the whole settings object lives)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from autodata.section import Section

ROLES = ("challenger", "verifier", "weak", "strong", "judge")
OPTIMIZER_ROLES = ("analyzer", "editor")  # meta-optimization only: `autodata run` never starts them
EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"
THINKING_MAX_TOKENS = 4096  # default budget of a role with thinking on (max_tokens unset)


class RoleModel(Section):
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


class Models(Section):
    challenger: RoleModel = RoleModel(temperature=0.3, max_tokens=768, timeout_s=600)
    verifier: RoleModel = RoleModel(temperature=0.0, max_tokens=256)
    weak: RoleModel = RoleModel(temperature=0.7, max_tokens=256, timeout_s=300)
    strong: RoleModel = RoleModel(temperature=0.7, max_tokens=256, privileged=True, timeout_s=300)
    judge: RoleModel = RoleModel(temperature=0.0, max_tokens=512, timeout_s=600)  # per_answer JSON
    analyzer: RoleModel = RoleModel(temperature=0.3, max_tokens=512, timeout_s=600)
    editor: RoleModel = RoleModel(temperature=0.7, max_tokens=768, timeout_s=600)

    def role(self, name: str) -> RoleModel:
        return getattr(self, name)
