"""What every config model shares: frozen, unknown keys refused; names; retry policies."""

from __future__ import annotations

from types import FunctionType
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .._layout import MIB as MIB  # the one megabyte (MiB), stated there
from .._names import NAME_PATTERN, validate_name

# The core's own check (and message) for stream names, which become /dev/shm/framebus.<name>;
# the pattern is stated for the JSON Schema only, so config and command line say what the core says.
StreamName = Annotated[
    str,
    Field(json_schema_extra={"pattern": NAME_PATTERN}, description="letters, digits, '_', '-', '.'"),
    AfterValidator(validate_name),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not cls.__pydantic_complete__:
            # A kind module run by runpy without a sys.modules entry (runpy.run_module's default):
            # pydantic looked its names up in another module; its own methods know its globals.
            functions = (v for v in vars(cls).values() if isinstance(v, FunctionType))
            namespace = next((f.__globals__ for f in functions), None)
            if namespace is not None:
                cls.model_rebuild(_types_namespace=namespace)


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
