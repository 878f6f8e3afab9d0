"""Subscribers: any command, or a service kind (the shipped recorder, analyzer, web, ...).

A service kind is one module: a :class:`Service` model (its options, bounds, defaults and help,
stated once) with a ``run()`` that does the work, listed as an entry point in
``framebus.subscribers``. Its topology entry, its ``framebus <command>`` subcommand with
``--help``, ``framebus schema`` and the process ``framebus run`` (or systemd) starts for it all
follow from the model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from .._logs import configure_logging
from ._base import RetryPolicy, StreamName, _Model
from ._kinds import SUBSCRIBERS, ByKind, register_kind
from ._options import add_options, parse_options, to_argv

if TYPE_CHECKING:
    from ._topology import Topology

S = TypeVar("S", bound="Service")


class RestartMode(str, Enum):
    """When ``framebus run`` restarts a subscriber process that exited."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"  # only after a non-zero exit or a signal
    NEVER = "never"


class CommandSubscriber(_Model):
    """Any program that attaches to streams by name, run and supervised by ``framebus run``."""

    kind: Literal["command"]
    name: StreamName
    command: list[str] = Field(min_length=1, description="argv; '{python}' becomes this interpreter")
    reads: list[StreamName] = Field(default_factory=list, description="streams it subscribes to")
    publishes: list[StreamName] = Field(default_factory=list, description="derived streams it writes")
    env: dict[str, str] = Field(default_factory=dict)
    restart: RestartMode = RestartMode.ON_FAILURE
    backoff: RetryPolicy = RetryPolicy(initial_s=1.0, max_s=30.0)
    #: Its fields that name streams it reads and writes (the loader checks them, even on raw data).
    reads_fields: ClassVar[tuple[str, ...]] = ("reads",)
    publishes_fields: ClassVar[tuple[str, ...]] = ("publishes",)

    @field_validator("command")
    @classmethod
    def _program_not_empty(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the program (first element) must not be empty")
        return value

    def argv(self) -> list[str]:
        """The command line that runs it ('{python}' is expanded by whoever starts it)."""
        return list(self.command)


class Service(_Model):
    """A subscriber kind that is a Python module: a subclass declares ``kind: Literal["tag"]``
    and its options as fields, and implements :meth:`run`.

    Class attributes: ``command``, its ``framebus`` subcommand (default: the tag);
    ``reads_fields``/``publishes_fields``, its fields that name streams."""

    name: StreamName
    env: dict[str, str] = Field(default_factory=dict)
    restart: RestartMode = RestartMode.ON_FAILURE
    backoff: RetryPolicy = RetryPolicy(initial_s=1.0, max_s=30.0)

    command: ClassVar[str] = ""
    reads_fields: ClassVar[tuple[str, ...]] = ()
    publishes_fields: ClassVar[tuple[str, ...]] = ()
    #: Topology-only fields (how it is run, not what it does): not on its command line.
    RUN_FIELDS: ClassVar[frozenset[str]] = frozenset({"kind", "name", "env", "restart", "backoff"})

    @property
    def reads(self) -> list[str]:
        """Streams it subscribes to (for the loader's reference checks)."""
        return _names(self, self.reads_fields)

    @property
    def publishes(self) -> list[str]:
        """Derived streams it writes."""
        return _names(self, self.publishes_fields)

    def argv(self) -> list[str]:
        """``{python} -m <its module> <its options>``: what ``framebus run`` and systemd start."""
        return ["{python}", "-m", type(self).module(), *to_argv(self, self.RUN_FIELDS)]

    def problems(self, topology: Topology, index: int) -> list[str]:
        """What is wrong with this entry given the whole topology (it is ``subscribers[index]``)."""
        return []

    def run(self) -> int:
        """Do the work until stopped; the process's exit status."""
        raise NotImplementedError(f"{type(self).__name__}.run")

    @classmethod
    def module(cls) -> str:
        """The module that declares this kind (``python -m`` runs it)."""
        if cls.__module__ == "__main__":  # run as `python -m pkg.mod`: the spec knows its name
            spec = getattr(sys.modules["__main__"], "__spec__", None)
            return spec.name if spec is not None else "__main__"
        return cls.__module__

    @classmethod
    def subcommand(cls) -> str:
        """Its ``framebus`` subcommand."""
        return cls.command or _tag(cls)

    @classmethod
    def summary(cls) -> str:
        """One line for ``framebus --help``: its docstring's first line."""
        line = (cls.__doc__ or _tag(cls)).strip().splitlines()[0].rstrip(".")
        return line[:1].lower() + line[1:]

    @classmethod
    def parser(cls, prog: str | None = None) -> argparse.ArgumentParser:
        """Its command line: one option per field, checked by the field's own type and bounds."""
        parser = argparse.ArgumentParser(prog=prog or f"framebus {cls.subcommand()}", description=cls.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        add_options(parser, cls, cls.RUN_FIELDS)
        return parser

    @classmethod
    def from_command_line(cls: type[S], argv: Sequence[str] | None = None, prog: str | None = None) -> S:
        """This kind's options from `argv` (default: sys.argv[1:]); argparse exits on an error."""
        return parse_options(cls.parser(prog), cls, argv, {"kind": _tag(cls), "name": cls.subcommand()})

    @classmethod
    def main(cls, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
        """Parse the command line, set up logging, run: a service module's ``main``."""
        service = cls.from_command_line(argv, prog)
        configure_logging()
        return service.run()


def _tag(model: type[BaseModel]) -> str:
    from ._kinds import kind_of

    return kind_of(model)


def _names(entry: BaseModel, fields: Sequence[str]) -> list[str]:
    names: list[str] = []
    for field in fields:
        value = getattr(entry, field)
        names += [value] if isinstance(value, str) else list(value or [])
    return names


SubscriberConfig = Annotated[CommandSubscriber | Service, ByKind(SUBSCRIBERS, "subscriber")]
"""A subscriber entry: the kind its ``kind`` names (``command``, or a registered service)."""

register_kind(SUBSCRIBERS, CommandSubscriber)
