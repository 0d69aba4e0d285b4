"""The base of every settings section (:mod:`autodata.settings`): frozen, unknown keys refused,
every number finite, every duration at most a day."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

MAX_S = 86400.0  # the longest duration a setting may name: a day


class Section(BaseModel):
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
