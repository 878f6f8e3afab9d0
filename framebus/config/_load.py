"""Loading a topology: its text to models, then cross-references, groups and the memory budget.

Every problem found is collected into one :class:`ConfigError` whose message lists them all,
each prefixed with its field path (``streams[1].source.fourcc``), so one ``framebus check``
run shows everything to fix.
"""

from __future__ import annotations

import grp
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .._errors import ConfigError
from .._names import SHM_DIR, SHM_PREFIX
from ._base import MIB
from ._bridges import FrameEncoding
from ._kinds import SOURCES, SUBSCRIBERS, kinds
from ._options import message as validation_message
from ._parse import parse_toml, parse_yaml, read_text
from ._paths import check_files, resolve_paths
from ._subscribers import Service, SubscriberConfig
from ._topology import Topology

# What `framebus run` (and the systemd subscriber unit) tell each subscriber process it starts.
CONFIG_ENV = "FRAMEBUS_CONFIG"  # absolute path of the topology file
SUBSCRIBER_ENV = "FRAMEBUS_SUBSCRIBER"  # the subscriber's name in it

MAX_DEPTH = 32  # levels of nesting a topology may have (it needs 4); deeper is an error, not a crash


def load_config(path: str | os.PathLike[str], *, shm_dir: str = SHM_DIR) -> Topology:
    """Read, validate and budget-check the topology in `path`; ConfigError lists every problem.

    Relative paths (file sources, subscribers' folders and files) come back absolute, relative to
    the config file's folder; a `file` source whose file does not exist is a problem.
    """
    path = Path(path)
    text = read_text(path)
    topology = parse_config(text, str(path), toml=path.suffix.lower() == ".toml")
    topology = resolve_paths(topology, path)
    problems = check_groups(topology) + check_files(topology) + check_memory(topology, shm_dir=shm_dir)
    if problems:
        raise _invalid(str(path), problems)
    return topology


def parse_config(text: str, filename: str = "<config>", *, toml: bool = False) -> Topology:
    """Parse and validate one topology document (no memory check); ConfigError on any problem."""
    data = parse_toml(text, filename) if toml else parse_yaml(text, filename)
    if _too_deep(data):
        raise ConfigError(f"{filename}: nested deeper than {MAX_DEPTH} levels; a topology needs a few")
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: the top level must be a mapping with a 'streams' list")
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        # Report name problems too, read from the raw data as far as it makes sense.
        problems = _pydantic_problems(exc, data) + _reference_problems(_raw_names(data))
        raise _invalid(filename, problems) from None
    problems = check_references(topology)
    if problems:
        raise _invalid(filename, problems)
    return topology


def this_topology() -> Topology | None:
    """The topology this process was started from by ``framebus run``; else None."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return None
    return parse_config(Path(path).read_text(encoding="utf-8"), path, toml=path.lower().endswith(".toml"))


def this_subscriber() -> SubscriberConfig | None:
    """This process's own entry in the topology, when started by ``framebus run``; else None."""
    name = os.environ.get(SUBSCRIBER_ENV)
    topology = this_topology() if name else None
    if topology is None:
        return None
    return next((s for s in topology.subscribers if s.name == name), None)


def check_references(topology: Topology) -> list[str]:
    """Problems with names across sections: duplicates, unknown streams, pipeline cycles, and
    exports the stream cannot have (JPEG of a non-image stream)."""
    return (
        _reference_problems(
            _Names(
                streams=[(s.name, s.captured()) for s in topology.streams],
                subscribers=[(s.name, list(s.reads), list(s.publishes)) for s in topology.subscribers],
                bridges=[
                    (b.name, [e.stream for e in b.exports], [i.stream for i in b.imports])
                    for b in topology.bridges
                ],
            )
        )
        + _encoding_problems(topology)
        + _service_problems(topology)
    )


def _service_problems(topology: Topology) -> list[str]:
    """Each service kind's own whole-topology rules (Service.problems)."""
    return [
        problem
        for i, subscriber in enumerate(topology.subscribers)
        if isinstance(subscriber, Service)
        for problem in subscriber.problems(topology, i)
    ]


def _encoding_problems(topology: Topology) -> list[str]:
    known = {s.name: s for s in topology.streams}
    problems = []
    for i, bridge in enumerate(topology.bridges):
        for j, export in enumerate(bridge.exports):
            stream = known.get(export.stream)
            if export.encoding is not FrameEncoding.JPEG or stream is None:
                continue
            shape, dtype = stream.shape(), stream.dtype()
            if dtype != "uint8" or not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3))):
                problems.append(
                    f"bridges[{i}].exports[{j}].encoding (bridge {bridge.name!r}): stream {export.stream!r} "
                    f"is {'x'.join(map(str, shape))} {dtype}; JPEG carries only uint8 gray or 3-channel "
                    "images: use encoding: raw"
                )
    return problems


@dataclass(frozen=True)
class _Names:
    """The names that cross-reference each other, from the models or from raw data."""

    streams: list[tuple[str, bool]]  # (name, captured by the daemon)
    subscribers: list[tuple[str, list[str], list[str]]]  # (name, reads, publishes)
    bridges: list[tuple[str, list[str], list[str]]]  # (name, streams exported, streams imported)


def _raw_names(data: dict[str, Any]) -> _Names:
    def strings(value: object) -> list[str]:
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def items(section: str) -> list[dict[str, Any]]:
        return _items(data, section)

    def captured(entry: dict[str, Any]) -> bool:
        source = entry.get("source")
        model = kinds(SOURCES).get(str(source.get("kind"))) if isinstance(source, dict) else None
        return bool(getattr(model, "captured", True))

    streams = [(s["name"], captured(s)) for s in items("streams") if isinstance(s.get("name"), str)]

    def named(entry: dict[str, Any], direction: str) -> list[str]:
        # Each kind says which of its fields name streams (reads_fields, publishes_fields).
        model = kinds(SUBSCRIBERS).get(str(entry.get("kind")))
        values = [entry.get(field) for field in getattr(model, direction, ())]
        return [name for value in values for name in ([value] if isinstance(value, str) else strings(value))]

    subscribers = [
        (s["name"], named(s, "reads_fields"), named(s, "publishes_fields"))
        for s in items("subscribers")
        if isinstance(s.get("name"), str)
    ]
    bridges = [
        (
            b["name"],
            [e["stream"] for e in _items(b, "exports") if isinstance(e.get("stream"), str)],
            [i["stream"] for i in _items(b, "imports") if isinstance(i.get("stream"), str)],
        )
        for b in items("bridges")
        if isinstance(b.get("name"), str)
    ]
    return _Names(streams, subscribers, bridges)


def _items(data: dict[str, Any], section: str) -> list[dict[str, Any]]:
    value = data.get(section)
    return [i for i in value if isinstance(i, dict)] if isinstance(value, list) else []


def _reference_problems(names: _Names) -> list[str]:
    problems = _duplicates("stream", [name for name, _ in names.streams])
    problems += _duplicates("subscriber", [name for name, _, _ in names.subscribers])
    problems += _duplicates("bridge", [name for name, _, _ in names.bridges])
    problems += _bridge_problems(names)
    captured = dict(names.streams)
    # An imported stream is written by its bridge: subscribers may read it, never publish it.
    imported = {s: b for b, _, imports in names.bridges for s in imports}
    captured.update({stream: True for stream in imported if stream not in captured})
    writers: dict[str, list[str]] = {}
    for i, (sub, reads, publishes) in enumerate(names.subscribers):
        problems += _subscriber_references(
            f"subscribers[{i}] (subscriber {sub!r})", reads, publishes, captured, imported
        )
        for name in publishes:
            writers.setdefault(name, []).append(sub)
    for i, (name, is_captured) in enumerate(names.streams):
        owners = writers.get(name, [])
        if not is_captured and len(owners) != 1:
            who = "none" if not owners else ", ".join(repr(o) for o in owners)
            problems.append(
                f"streams[{i}] (stream {name!r}): a derived stream needs exactly one subscriber "
                f"that lists it under 'publishes', found {who}"
            )
    cycle = _find_cycle(names.subscribers)
    if cycle:
        problems.append(
            "subscribers: pipeline cycle "
            + " -> ".join(cycle)
            + " (each reads a stream the previous publishes)"
        )
    return problems


def check_groups(topology: Topology) -> list[str]:
    """Problems with stream groups that do not exist on this machine (the daemon needs them)."""
    problems = []
    for i, stream in enumerate(topology.streams):
        if stream.group is None:
            continue
        try:
            grp.getgrnam(stream.group)
        except KeyError:
            problems.append(
                f"streams[{i}].group (stream {stream.name!r}): group {stream.group!r} does not exist on "
                "this machine (create it, e.g. 'groupadd', or remove the key)"
            )
    return problems


def _too_deep(data: object) -> bool:
    """True if `data` nests deeper than MAX_DEPTH (checked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def _bridge_problems(names: _Names) -> list[str]:
    """Imported streams need names of their own; exports name streams this config knows (when it
    lists any: a bridge-only config exports streams that another topology captures)."""
    problems = []
    declared = {name for name, _ in names.streams}
    first_import: dict[str, str] = {}
    children = {f"bridge.{name}": name for name, _, _ in names.bridges}
    for i, (sub, _, _) in enumerate(names.subscribers):
        if sub in children:
            problems.append(
                f"subscribers[{i}].name: {sub!r} is the process name of bridge {children[sub]!r}; rename it"
            )
    for i, (bridge, _, imports) in enumerate(names.bridges):
        for j, stream in enumerate(imports):
            where = f"bridges[{i}].imports[{j}].stream (bridge {bridge!r})"
            if stream in declared:
                problems.append(
                    f"{where}: {stream!r} is also under 'streams'; an import needs a name of its own"
                )
            elif stream in first_import:
                problems.append(f"{where}: {stream!r} is already imported by bridge {first_import[stream]!r}")
            else:
                first_import[stream] = bridge
    if declared:
        known = declared | set(first_import)
        for i, (bridge, exports, _) in enumerate(names.bridges):
            for j, stream in enumerate(exports):
                if stream not in known:
                    problems.append(
                        f"bridges[{i}].exports[{j}].stream (bridge {bridge!r}): unknown stream {stream!r}"
                    )
    return problems


def check_memory(
    topology: Topology,
    *,
    shm_dir: str = SHM_DIR,
    ring_bytes: Callable[[tuple[int, ...], str, int], int] | None = None,
) -> list[str]:
    """Problems if the rings of every stream do not fit in the free space of `shm_dir`.

    Segments that already exist under the same names count as free: starting or reloading the
    daemon replaces them.
    """
    if ring_bytes is None:
        from .. import ring_bytes as core_ring_bytes

        ring_bytes = core_ring_bytes
    need = sum(ring_bytes(s.shape(), s.dtype(), s.slots) for s in topology.streams)
    try:
        stat = os.statvfs(shm_dir)
    except OSError as exc:
        return [f"memory: cannot inspect {shm_dir}: {exc.strerror or exc}"]
    free = stat.f_bavail * stat.f_frsize + _existing_bytes(shm_dir, (s.name for s in topology.streams))
    if need <= free:
        return []
    total = stat.f_blocks * stat.f_frsize
    suggest = -(-need * 5 // 4 // MIB)  # MiB, rounded up, with 25% headroom
    return [
        f"memory: the streams' rings need {need / MIB:.1f} MiB of shared memory but {shm_dir} has only "
        f"{free / MIB:.1f} MiB free (size {total / MIB:.0f} MiB). Fix: use fewer slots or smaller "
        f"frames, or enlarge {shm_dir}: 'mount -o remount,size={suggest}M {shm_dir}', or in Docker "
        f"'--shm-size={suggest}m' (the default is 64 MiB)"
    ]


def _existing_bytes(shm_dir: str, names: Iterable[str]) -> int:
    total = 0
    for name in names:
        try:
            total += os.stat(os.path.join(shm_dir, SHM_PREFIX + name)).st_blocks * 512
        except OSError:
            continue
    return total


def _subscriber_references(
    where: str, reads: list[str], publishes: list[str], captured: dict[str, bool], imported: dict[str, str]
) -> list[str]:
    problems = []
    for field, names in (("reads", reads), ("publishes", publishes)):
        for j, name in enumerate(names):
            if name not in captured:
                problems.append(f"{where}.{field}[{j}]: unknown stream {name!r}")
            elif field == "publishes" and name in imported:
                problems.append(
                    f"{where}.publishes[{j}]: stream {name!r} is written by bridge {imported[name]!r} "
                    "(it imports it); a subscriber can only publish a stream whose source is 'derived'"
                )
            elif field == "publishes" and captured[name]:
                problems.append(
                    f"{where}.publishes[{j}]: stream {name!r} is captured by the daemon; a subscriber "
                    "can only publish a stream whose source is 'derived'"
                )
    return problems


def _duplicates(noun: str, names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for i, name in enumerate(names):
        if name in seen:
            problems.append(
                f"{noun}s[{i}].name: duplicate {noun} name {name!r} (first used at {noun}s[{seen[name]}])"
            )
        else:
            seen[name] = i
    return problems


def _find_cycle(subscribers: Sequence[tuple[str, list[str], list[str]]]) -> list[str]:
    """One cycle of subscriber names (first name repeated last), or [] if the pipelines are acyclic."""
    readers: dict[str, list[str]] = {}
    for name, reads, _ in subscribers:
        for stream in reads:
            readers.setdefault(stream, []).append(name)
    feeds = {name: sorted({r for out in pub for r in readers.get(out, [])}) for name, _, pub in subscribers}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in feeds.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for name in feeds:
        if name not in state and (cycle := visit(name)):
            return cycle
    return []


def _pydantic_problems(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        path = _path(error["loc"], data)
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = validation_message(error)
        problems.append(f"{path}: {message}" if path else message)
    return problems


def _path(loc: Sequence[int | str], data: dict[str, Any]) -> str:
    """`streams[0].source.fourcc`, plus the item's name when the item has one."""
    if not loc:
        return ""  # a rule on the whole document
    parts: list[str] = []
    named = ""
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
            if i == 1 and isinstance(loc[0], str):
                named = _item_name(data, loc[0], item)
        else:
            parts.append(("." if parts else "") + item)
    text = "".join(parts)
    noun = {"streams": "stream", "subscribers": "subscriber", "bridges": "bridge"}.get(str(loc[0]), "item")
    return f"{text} ({noun} {named!r})" if named else text


def _item_name(data: dict[str, Any], section: str, index: int) -> str:
    items = data.get(section)
    if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
        name = items[index].get("name")
        if isinstance(name, str):
            return name
    return ""


def _invalid(filename: str, problems: list[str]) -> ConfigError:
    noun = "problem" if len(problems) == 1 else "problems"
    message = f"{filename}: {len(problems)} {noun}:\n" + "\n".join(f"  - {p}" for p in problems)
    return ConfigError(message, tuple(problems))
