"""systemd unit files for an edge box, rendered from the templates shipped in framebus/cli/units/.

The templates are package data, so `framebus install-systemd` works from any installation (a
venv is the common case). The repository's systemd/ folder holds the same files rendered with
the defaults; a test keeps the two equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

from .. import ConfigError

__all__ = ["DEFAULT_CONFIG", "DEFAULT_EXECUTABLE", "DEFAULT_USER", "UnitFile", "render_units"]

DEFAULT_CONFIG = "/etc/framebus/topology.yaml"
DEFAULT_EXECUTABLE = "/usr/local/bin/framebus"
DEFAULT_USER = "framebus"

# (template in framebus/cli/units/, where it goes under the root, its name in the repo's systemd/)
_FILES = (
    ("framebus.service.in", "etc/systemd/system/framebus.service", "framebus.service"),
    ("framebus-subscriber@.service.in", "etc/systemd/system/framebus-subscriber@.service",
     "framebus-subscriber@.service"),
    ("sysusers.conf.in", "etc/sysusers.d/framebus.conf", "sysusers.d/framebus.conf"),
    ("tmpfiles.conf.in", "etc/tmpfiles.d/framebus.conf", "tmpfiles.d/framebus.conf"),
)  # fmt: skip
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")  # what useradd and systemd-sysusers accept
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9_./@+-]*$")  # needs no quoting or escaping in a unit file


@dataclass(frozen=True)
class UnitFile:
    """One rendered file: where it goes (relative to the root), its text, and its reference name."""

    path: PurePosixPath
    text: str
    reference: str  # its name under the repository's systemd/ folder


def render_units(
    executable: str = DEFAULT_EXECUTABLE, config: str = DEFAULT_CONFIG, user: str = DEFAULT_USER
) -> list[UnitFile]:
    """Every file of the installation with the `framebus` program, config path and user filled in.

    ConfigError if a path is not absolute or needs quoting in a unit file, or the user name is
    not one systemd-sysusers accepts.
    """
    for what, path in (("the framebus program", executable), ("the config", config)):
        if not _PLAIN_PATH.match(path) or "/../" in path + "/":
            raise ConfigError(
                f"{what} must be an absolute path of letters, digits and _ . / @ + - "
                f"(unit files would need quoting otherwise), not {path!r}"
            )
    if not _USER.match(user):
        raise ConfigError(f"user name {user!r} must match {_USER.pattern} (systemd-sysusers' rule)")
    values = {
        "@FRAMEBUS@": executable,
        "@CONFIG@": config,
        "@CONFIG_DIR@": str(PurePosixPath(config).parent),
        "@USER@": user,
    }
    templates = resources.files(__package__).joinpath("units")
    rendered = []
    for template, target, reference in _FILES:
        text = templates.joinpath(template).read_text(encoding="utf-8")
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        rendered.append(UnitFile(PurePosixPath(target), text, reference))
    return rendered
