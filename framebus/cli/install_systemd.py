"""``framebus install-systemd``: write the unit files, sysusers.d and tmpfiles.d entries of a deployment.

It only writes files (and says which); the commands that act on the running system
(systemd-sysusers, systemctl enable) are printed for the operator to run, or run at boot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .. import ConfigError
from ._args import Commands
from ._exit import EXIT_FAILURE, EXIT_OK
from ._units import DEFAULT_CONFIG, DEFAULT_USER, UnitFile, render_units

__all__ = ["find_executable", "register"]


def register(commands: Commands) -> None:
    install = commands.add_parser(
        "install-systemd",
        help="write systemd units (daemon, subscriber template), sysusers.d and tmpfiles.d entries",
        description="Write the unit files of an edge-box deployment and print the commands that enable "
        "them. Units run this installation's framebus program (a venv's works) as a static user.",
    )
    install.add_argument(
        "--prefix", default="/", metavar="DIR",
        help="root to install under (default /; e.g. a staging folder, then use systemctl --root=DIR)",
    )  # fmt: skip
    install.add_argument("--dry-run", action="store_true", help="print the files instead of writing them")
    install.add_argument(
        "--config", default=DEFAULT_CONFIG, metavar="PATH",
        help=f"absolute path of the topology the units run, on the target system (default {DEFAULT_CONFIG})",
    )  # fmt: skip
    install.add_argument(
        "--user", default=DEFAULT_USER, metavar="NAME",
        help=f"static system user (and group) the services run as (default {DEFAULT_USER})",
    )  # fmt: skip
    install.add_argument(
        "--executable", metavar="PATH",
        help="the framebus program the units start (default: the one installed beside this Python)",
    )  # fmt: skip
    install.set_defaults(handler=_install)


def find_executable() -> str:
    """The installed `framebus` console script: beside this interpreter (a venv), else on PATH."""
    # Not resolved: a venv's bin/python is a symlink to the system's, but its scripts are its own.
    beside = Path(os.path.abspath(sys.executable)).with_name("framebus")
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("framebus")
    if found is None:
        raise ConfigError("cannot find the installed framebus program; pass --executable PATH")
    return os.path.abspath(found)


def _install(args: argparse.Namespace) -> int:
    executable = args.executable or find_executable()
    files = render_units(executable, args.config, args.user)
    for warning in _hidden_from_units(files, executable, own=args.executable is None):
        print(f"warning: {warning}", file=sys.stderr)
    root = Path(args.prefix)
    for unit in files:
        target = root / unit.path
        if args.dry_run:
            print(f"### {target}\n{unit.text}")
        else:
            try:
                print(f"{_write(target, unit)} {target}")
            except OSError as exc:  # (a read-only or missing --prefix, not root, a full disk)
                print(f"framebus: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_FAILURE
    local_config = root / args.config.lstrip("/")
    if not local_config.is_file():
        print(f"note: no config at {local_config} yet: put your topology there (e.g. config/simulated.yaml)")
    _print_next_steps(files, args.prefix, _subscriber_names(local_config))
    return EXIT_OK


# What the units' hardening hides from the service: a program (or its Python) there cannot start.
_HIDDEN = {
    "ProtectHome=yes": ("/home", "/root", "/run/user"),
    "PrivateTmp=yes": ("/tmp", "/var/tmp"),
}


def _hidden_from_units(files: list[UnitFile], executable: str, *, own: bool) -> list[str]:
    """Why the units could not run `executable`: it, its interpreter or (`own`: this installation)
    the framebus package lies in a folder a setting of the units hides."""
    settings = [s for s in _HIDDEN if any(s in f.text.splitlines() for f in files)]
    paths = {"the framebus program": executable}
    interpreter = _interpreter(executable)
    if interpreter:
        paths["its Python"] = interpreter
    if own:
        paths["the framebus package"] = str(Path(__file__).resolve().parent.parent)
    problems = []
    for what, path in paths.items():
        real = os.path.realpath(path)
        for setting in settings:
            hidden = next((d for d in _HIDDEN[setting] if real == d or real.startswith(d + "/")), None)
            if hidden is not None:
                shown = path if real == path else f"{path} (really {real})"
                problems.append(
                    f"{what}, {shown}, is under {hidden}, which the units' {setting} hides from the "
                    "service: it would not start; install into a venv outside it, e.g. /opt/framebus"
                )
    return problems


def _interpreter(executable: str) -> str | None:
    """The interpreter named on the script's #! line, if it has one."""
    try:
        with open(executable, "rb") as file:
            first = file.readline(4096)
    except OSError:
        return None
    words = first[2:].split() if first.startswith(b"#!") else []
    return os.fsdecode(words[0]) if words else None


def _write(target: Path, unit: UnitFile) -> str:
    if target.is_file() and target.read_text(encoding="utf-8") == unit.text:
        return "unchanged"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(unit.text, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(target)  # atomic: systemd never reads half a unit
    return "wrote"


def _subscriber_names(local: Path) -> list[str]:
    if not local.is_file():
        return []
    from ..config import load_config

    try:
        return [s.name for s in load_config(local).subscribers]
    except ConfigError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return []


def _print_next_steps(files: list[UnitFile], prefix: str, subscribers: list[str]) -> None:
    staged = os.path.abspath(prefix) != "/"
    root = f" --root={prefix}" if staged else ""
    sysusers = next(f for f in files if f.path.parts[1] == "sysusers.d")
    tmpfiles = next(f for f in files if f.path.parts[1] == "tmpfiles.d")
    steps = [  # by base name: searched in the (staged) root's sysusers.d and tmpfiles.d
        f"systemd-sysusers{root} {sysusers.path.name}",
        f"systemd-tmpfiles{root} --create {tmpfiles.path.name}",
        f"systemctl{root} enable framebus.service" + ("" if staged else " --now"),
    ]
    steps += [
        f"systemctl{root} enable framebus-subscriber@{name}.service" + ("" if staged else " --now")
        for name in subscribers or ["NAME"]
    ]
    if not subscribers:  # no config to read the names from yet
        steps[-1] += "   (once per subscriber NAME in your config)"
    if not staged:
        steps.insert(2, "systemctl daemon-reload")
    print("next:\n" + "\n".join(f"  {step}" for step in steps))
