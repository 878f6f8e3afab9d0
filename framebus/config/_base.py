"""What every config model shares: frozen, unknown keys refused; names; retry policies."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._names import NAME_PATTERN

# Same rule as the core's stream names: they become /dev/shm/framebus.<name>.
StreamName = Annotated[str, Field(pattern=NAME_PATTERN, description="letters, digits, '_', '-', '.'")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Model):
    """Exponential backoff between attempts to (re)open a failing source or restart a process."""

    initial_s: float = Field(default=0.5, gt=0, le=3600, description="first wait, seconds")
    max_s: float = Field(default=10.0, gt=0, le=3600, description="longest wait, seconds")
    factor: float = Field(default=2.0, ge=1.0, le=10.0, description="each wait is the previous times this")

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryPolicy:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must not be below initial_s ({self.initial_s})")
        return self
