"""A kind's command line, derived from its model: one statement of each option, bound and default.

Each field of the model becomes an option: ``segment_s`` is ``--segment SECONDS`` (the unit
suffix ``_s`` names the metavar), a list such as ``triggers`` is a repeatable ``--trigger``, a
bool is ``--x/--no-x`` (one named ``no_x`` is the plain switch ``--no-x``); :class:`Arg` in the
field's ``Annotated`` metadata makes it positional or renames it. Every value is checked by the
field's own type and bounds (a pydantic TypeAdapter), then the whole model validates, so the
command line accepts exactly what a topology file does, with argparse's error. :func:`to_argv` is
the inverse, for the process ``framebus run`` starts.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = ["Arg", "add_options", "parse_options", "to_argv"]

M = TypeVar("M", bound=BaseModel)
_UNITS = {"_s": "SECONDS", "_h": "HOURS", "_mb": "MiB"}  # field-name suffix: metavar (and unit)


@dataclass(frozen=True)
class Arg:
    """How a field appears on the command line, when not as ``--field-name``."""

    flag: str | None = None  # e.g. "--as"
    positional: bool = False
    metavar: str | None = None


@dataclass(frozen=True)
class _Option:
    field: str
    info: FieldInfo
    arg: Arg

    @property
    def repeated(self) -> bool:
        return get_origin(_plain(self.info.annotation)) is list

    @property
    def flag(self) -> str:
        if self.arg.flag:
            return self.arg.flag
        name = self.field.removesuffix("_s")
        return "--" + (name.removesuffix("s") if self.repeated else name).replace("_", "-")

    @property
    def metavar(self) -> str | None:
        if self.arg.metavar or self.arg.positional:
            return self.arg.metavar or self.field.upper()
        choices = _choices(self.info)
        if choices:
            return "{" + ",".join(choices) + "}"
        unit = next((unit for suffix, unit in _UNITS.items() if self.field.endswith(suffix)), None)
        return unit or self.flag.removeprefix("--").replace("-", "_").upper()


def _options(model: type[BaseModel], skip: Collection[str]) -> list[_Option]:
    return [
        _Option(name, info, next((m for m in info.metadata if isinstance(m, Arg)), Arg()))
        for name, info in model.model_fields.items()
        if name not in skip
    ]


def add_options(parser: argparse.ArgumentParser, model: type[BaseModel], skip: Collection[str]) -> None:
    """An option (or positional) per field of `model` but those in `skip`."""
    for option in _options(model, skip):
        kwargs: dict[str, Any] = {"help": _help(option), "default": argparse.SUPPRESS}
        if option.metavar:
            kwargs["metavar"] = option.metavar
        if option.arg.positional:
            parser.add_argument(option.field, type=_checker(option), **kwargs)
            continue
        if _plain(option.info.annotation) is bool:
            kwargs.pop("metavar", None)  # a switch takes no value (3.12+ deprecates a metavar on one)
            # A negative field (no_auth) is a plain switch: BooleanOptionalAction reads --no-auth as False.
            if option.flag.startswith("--no-"):
                kwargs["action"] = "store_true"
            else:
                kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _checker(option)
            kwargs["action"] = "append" if option.repeated else "store"
            kwargs["required"] = option.info.is_required()
        parser.add_argument(option.flag, dest=option.field, **kwargs)


def parse_options(
    parser: argparse.ArgumentParser, model: type[M], argv: Sequence[str] | None, fixed: dict[str, Any]
) -> M:
    """`model` from the command line plus `fixed` fields; a model-level rule broken is a usage error."""
    given = vars(parser.parse_args(argv))
    try:
        return model.model_validate({**fixed, **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        parser.error(f"{where}: {message(error)}" if where else message(error))


def to_argv(value: BaseModel, skip: Collection[str]) -> list[str]:
    """The command line that parses back to `value`: positionals, then options off their default."""
    positional, options = [], []
    for option in _options(type(value), skip):
        current = getattr(value, option.field)
        if option.arg.positional:
            positional.append(_text(current))
        elif current is None or (not option.info.is_required() and current == option.info.get_default(
            call_default_factory=True, validated_data={})):  # fmt: skip
            continue
        elif isinstance(current, bool):
            options.append(option.flag if current else "--no-" + option.flag.removeprefix("--"))
        elif option.repeated:
            options += [text for item in current for text in (option.flag, _text(item))]
        else:
            options += [option.flag, _text(current)]
    return positional + options


def _text(value: object) -> str:
    """A value as the command line spells it; numbers short, but exact (2, 0.5, 1e-09)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)


def message(error: ErrorDetails) -> str:
    """A validation error as the user should read it: a validator's own words without pydantic's
    "Value error, " prefix."""
    return str(error["msg"]).removeprefix("Value error, ")


def _checker(option: _Option) -> Callable[[str], Any]:
    """An argparse type: the field's own type and bounds (each item's, for a list)."""
    annotation: Any = option.info.rebuild_annotation()
    if option.repeated:
        annotation = get_args(_plain(option.info.annotation))[0]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def check(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {message(exc.errors()[0])}") from None

    check.__name__ = option.field  # argparse names the type in some messages
    return check


def _help(option: _Option) -> str:
    text = option.info.description or ""
    if option.repeated:
        text += " (repeat for more)"
    if not option.info.is_required():
        default = option.info.get_default(call_default_factory=True, validated_data={})
        if default not in (None, [], (), False):
            shown = " ".join(map(_text, default)) if isinstance(default, list) else _text(default)
            text += f" (default {shown})"
    return text.strip().replace("%", "%%")  # argparse formats help with %


def _choices(info: FieldInfo) -> list[str]:
    plain = _plain(info.annotation)
    if get_origin(plain) is Literal:
        return [str(choice) for choice in get_args(plain)]
    if isinstance(plain, type) and issubclass(plain, enum.Enum):
        return [str(member.value) for member in plain]
    return []


def _plain(annotation: Any) -> Any:
    """The annotation without ``| None`` (an optional option is one you can leave out)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if type(None) in get_args(annotation) and len(args) == 1:
        return args[0]
    return annotation
