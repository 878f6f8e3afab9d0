"""Topology text to plain data: YAML (strict) or TOML, with every failure a ConfigError.

Strict means: duplicate keys, complex keys and aliases that expand past a sane size are errors;
a FIFO or device named as the file is refused rather than read (which would block).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import yaml

from .._errors import ConfigError

__all__ = ["parse_toml", "parse_yaml", "read_text"]

_MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a topology is a few KiB; more is a mistake, not a config


def read_text(path: Path) -> str:
    """The file's text; a FIFO, device or directory named by mistake is an error, never a hang."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: cannot read config: not a regular file")
        if info.st_size > _MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: config is {info.st_size} bytes; more than {_MAX_CONFIG_BYTES} is refused"
            )
        data = os.read(fd, _MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


_MAX_NODES = 100_000  # YAML nodes once aliases are expanded: far above any topology


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml ships no type stubs
    """A SafeLoader that rejects duplicate keys instead of silently keeping the last one, and
    documents whose aliases expand past _MAX_NODES (an "alias bomb" would stall validation)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None and _expanded_size(node, {}) > _MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {_MAX_NODES} values", node.start_mark
            )
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` stands for with every alias expanded; memoized, so linear in the
    document even when the answer is astronomic (capped just past _MAX_NODES)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = _MAX_NODES + 1  # a cycle (a recursive alias) counts as too large
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    total = 1
    for child in children:
        total = min(total + _expanded_size(child, sizes), _MAX_NODES + 1)
    sizes[id(node)] = total
    return total


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue  # `<<: *anchor`: flatten_mapping merges it below, own keys overriding its keys
        key = loader.construct_object(key_node)
        try:
            hash(key)
        except TypeError:  # a complex key (`? [a]`): no topology key is a list or a mapping
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value, not a list or mapping", mark
            ) from None
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen[key] = True
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, filename: str) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except RecursionError:
        raise ConfigError(f"{filename}: YAML nested too deeply to read") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{filename}: YAML syntax error at {where}: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: YAML error: {exc}") from None


def parse_toml(text: str, filename: str) -> object:
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{filename}: TOML syntax error: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{filename}: TOML nested too deeply to read") from None
    raise ConfigError(f"{filename}: TOML configs need Python 3.11 or later; use YAML")
