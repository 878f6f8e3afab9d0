"""``framebus doctor [--fix]``: what is wrong with the bus on this box, and what can safely be fixed.

Looks at every segment in /dev/shm (dead writers' leftovers, modes, who may read them) and, with a
config, at what it asks for (the /dev/shm budget, groups, a daemon writing its streams, the
daemon's HTTP API and subscribers restarting in a loop), and always for subscribers left running
by a `framebus run` that died. `--fix` only does what cannot hurt a live process: it removes
segments whose writer is dead (under the same lock protocol a new writer uses) and takes world
access away from our own segments.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .. import MIB, ConfigError, FramebusError, SegmentCorrupt, SegmentForeign, streams
from .._layout import DESCRIPTION_SIZE, MAGIC, VERSION, WRITER_LOCK_BYTE, Layout, magic_and_version
from .._names import SHM_DIR, SHM_PREFIX, listed_names, printable_name, shm_path, validate_name
from .._segment import Removal, Segment, remove_if_dead
from ._args import Commands
from ._exit import EXIT_FAILURE, EXIT_OK
from ._units import DEFAULT_CONFIG

__all__ = ["register"]

_LOOPING_RESTARTS = 3  # a subscriber restarted this often is reported as restarting in a loop
_HTTP_TIMEOUT_S = 2.0


def register(commands: Commands) -> None:
    doctor = commands.add_parser(
        "doctor", help="find stale segments, bad permissions, a missing daemon, looping subscribers",
        description="What is wrong with the bus on this box, and what can safely be fixed.",
    )  # fmt: skip
    doctor.add_argument(
        "streams", nargs="*", metavar="NAME", help="only look at these streams' segments (default: all)"
    )
    doctor.add_argument(
        "--fix", action="store_true",
        help="remove dead writers' segments and drop world access from ours; says what it did",
    )  # fmt: skip
    doctor.add_argument(
        "--config", metavar="PATH",
        help=f"also check this topology against the box (default {DEFAULT_CONFIG} if it exists)",
    )  # fmt: skip
    doctor.set_defaults(handler=_doctor)


@dataclass
class _Report:
    problems: int = 0

    def say(self, kind: str, message: str) -> None:
        if kind == "problem":
            self.problems += 1
        print(f"{kind.upper():8} {message}", flush=True)


def _doctor(args: argparse.Namespace) -> int:
    report = _Report()
    _check_shm(report)
    for name in listed_names():
        if not args.streams or name in args.streams:
            _check_segment(report, name, args.fix)
    _check_orphans(report)
    path = args.config or (DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None)
    if path is not None:
        _check_config(report, path)
    if report.problems:
        print(f"{report.problems} problem(s)")
        return EXIT_FAILURE
    print("no problems found")
    return EXIT_OK


def _check_orphans(report: _Report) -> None:
    """Subscribers (and bridges) whose `framebus run` or daemon died and left them running."""
    from ..daemon.orphans import find_children

    for child in find_children():
        if child.orphaned:
            report.say(
                "problem",
                f"{child.describe()}, runs unsupervised ({child.config}): `kill {child.pid}`; "
                "`framebus run` on that config stops it too",
            )


def _check_shm(report: _Report) -> None:
    vfs = os.statvfs(SHM_DIR)
    free, total = vfs.f_bavail * vfs.f_frsize / MIB, vfs.f_blocks * vfs.f_frsize / MIB
    report.say("ok", f"{SHM_DIR}: {free:.0f} MiB free of {total:.0f} MiB")


def _check_segment(report: _Report, name: str, fix: bool) -> None:
    """One framebus.* file. Any local user may plant one, named anything: its name is printed
    escaped, and only a valid stream name with a valid header can count as a dead writer's."""
    shown = f"{SHM_DIR}/{SHM_PREFIX}{printable_name(name)}"
    try:
        validate_name(name)
    except ValueError:
        report.say("warning", f"{shown}: not a framebus segment (not a stream name); left alone")
        return
    try:
        st = os.lstat(shm_path(name))
    except FileNotFoundError:
        return  # removed while we looked
    if not stat.S_ISREG(st.st_mode):
        report.say("problem", f"{shown} is not a regular file (planted?); framebus refuses it; not touched")
        return
    if st.st_mode & 0o007:
        _world_access(report, shm_path(name), st, fix)
    try:
        segment = Segment.open(name, readonly=True, any_owner=True)
    except FramebusError as exc:
        report.say("warning", f"{shown}: cannot inspect it ({exc}){_run_as(st)}")
        return
    try:
        alive = segment.is_locked(WRITER_LOCK_BYTE)
        invalid = None if alive else _not_a_segment(segment)
    finally:
        segment.close()
    if invalid:
        report.say("warning", f"{shown}: not a framebus segment ({invalid}); left alone")
    elif not alive:
        _stale(report, name, st, fix)
    elif not os.access(shm_path(name), os.R_OK | os.W_OK):
        report.say(
            "problem",
            f"stream {name!r}: you (uid {os.geteuid()}) cannot subscribe: {_owner(st)}; "
            "join its group or run as its owner",
        )
    else:
        report.say("ok", f"stream {name!r}: live writer, {_owner(st)}")


def _not_a_segment(segment: Segment) -> str | None:
    """Why `segment` is no framebus segment this version can vouch for, or None if it is one."""
    try:
        _check_header(segment)
    except SegmentCorrupt as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def _check_header(segment: Segment) -> None:
    """SegmentCorrupt unless `segment` has a valid header (read with pread: no mapping to SIGBUS).

    A segment of another framebus version (our magic, another layout version) passes: its
    writer is gone, and after an upgrade nothing else would ever remove it.
    """
    size = os.fstat(segment.fd).st_size
    raw = os.pread(segment.fd, DESCRIPTION_SIZE, 0).ljust(DESCRIPTION_SIZE, b"\0")
    magic, version = magic_and_version(raw)
    if magic == MAGIC and version != VERSION:
        return
    Layout.read_description(memoryview(raw), size, segment.name)


def _run_as(st: os.stat_result) -> str:
    if os.geteuid() in (0, st.st_uid):
        return ""  # running as the owner or root already: advice would not help
    return f"; run doctor as uid {st.st_uid} or root"


def _world_access(report: _Report, path: str, st: os.stat_result, fix: bool) -> None:
    if fix and st.st_uid == os.geteuid():
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o007)
        report.say("fixed", f"{path}: removed world access (was {_owner(st)})")
    else:
        report.say("problem", f"{path} is world-accessible ({_owner(st)}); subscribers refuse it")


def _stale(report: _Report, name: str, st: os.stat_result, fix: bool) -> None:
    what = f"stream {name!r}: segment of a dead writer ({st.st_size / MIB:.1f} MiB, {_owner(st)})"
    if not fix:
        report.say("problem", f"{what}; `framebus doctor --fix` removes it")
        return
    try:
        # The header is checked again on the very inode removed, under the removal's locks.
        outcome = remove_if_dead(name, _check_header)
    except SegmentCorrupt as exc:
        report.say("warning", f"stream {name!r}: no longer a framebus segment ({exc}); left alone")
        return
    except (PermissionError, SegmentForeign) as exc:
        report.say("problem", f"{what}; cannot remove it ({exc}){_run_as(st)}")
        return
    if outcome is Removal.REMOVED:
        report.say("fixed", f"{what}: removed")
    elif outcome is Removal.LIVE:
        report.say("ok", f"stream {name!r}: a writer came back while we looked; left alone")
    else:
        report.say("ok", f"stream {name!r}: another process removed it while we looked")


def _owner(st: os.stat_result) -> str:
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"uid {st.st_uid}, group {group}, mode {stat.S_IMODE(st.st_mode):04o}"


def _check_config(report: _Report, path: str) -> None:
    from ..config import check_memory, check_references, parse_config
    from ..config._paths import check_files, resolve_paths

    try:
        with open(path, encoding="utf-8") as file:
            topology = parse_config(file.read(), path, toml=path.lower().endswith(".toml"))
    except (OSError, UnicodeDecodeError, ConfigError) as exc:
        report.say("problem", f"{path}: {exc}")
        return
    topology = resolve_paths(topology, path)
    for problem in check_references(topology) + check_files(topology) + check_memory(topology):
        report.say("problem", f"{path}: {problem}")
    live = {s.name: s for s in streams() if s.writer_alive}
    for stream in topology.streams:
        if stream.name not in live:
            who = "the daemon" if stream.captured() else "its subscriber"
            report.say("problem", f"stream {stream.name!r}: no live writer: is {who} running?")
        elif stream.group is not None:
            _check_group(report, stream.name, stream.group)
    if topology.daemon.http.enabled:
        _check_daemon(report, topology.daemon.http.host, topology.daemon.http.port)
    _check_systemd(report, [s.name for s in topology.subscribers])


def _check_group(report: _Report, name: str, group: str) -> None:
    st = os.stat(shm_path(name))
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        report.say("problem", f"stream {name!r}: the config's group {group!r} does not exist on this box")
        return
    if st.st_gid != gid or stat.S_IMODE(st.st_mode) != 0o660:
        report.say(
            "problem",
            f"stream {name!r}: the config gives it group {group!r} (mode 0660) but it has {_owner(st)}; "
            "restart the daemon to re-create it",
        )


def _check_daemon(report: _Report, host: str, port: int) -> None:
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    try:
        status, health = _get_json(f"{base}/health")
        _, subscribers = _get_json(f"{base}/subscribers")
    except (OSError, ValueError) as exc:
        report.say("problem", f"no daemon answers on {base}/health ({exc}): is it running?")
        return
    if status == 200:
        report.say("ok", f"daemon on {base}: healthy")
    else:
        report.say("warning", f"daemon on {base}: degraded: {health.get('streams')}")
    for sub in subscribers if isinstance(subscribers, list) else []:
        if sub.get("restarts", 0) >= _LOOPING_RESTARTS:
            report.say(
                "problem",
                f"subscriber {sub['name']!r} restarted {sub['restarts']} times (last exit code "
                f"{sub.get('last_exit')}): restarting in a loop? see its output in the daemon's log",
            )


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), json.loads(exc.read())


def _check_systemd(report: _Report, subscribers: list[str]) -> None:
    """Subscribers under systemd: their units' restart counters (only where systemd runs)."""
    systemctl = shutil.which("systemctl")
    if not subscribers or systemctl is None or not os.path.isdir("/run/systemd/system"):
        return
    for name in subscribers:
        unit = f"framebus-subscriber@{name}.service"
        result = subprocess.run(
            [systemctl, "show", "--property=NRestarts", "--value", unit],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        restarts = int(result.stdout.strip() or 0) if result.stdout.strip().isdigit() else 0
        if restarts >= _LOOPING_RESTARTS:
            report.say("problem", f"{unit} restarted {restarts} times: `journalctl -u {unit}` says why")
