"""The systemd deployment: generated units verify, stay hardened, match systemd/, and install into a root.

Run as a script (`python tests/test_systemd.py`) to regenerate the reference files in systemd/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _daemonproc import JOIN_TIMEOUT_S, REPO
from framebus.cli import main
from framebus.cli._units import render_units
from framebus.config import load_config

MAX_EXPOSURE = 4.0  # issue 10: `systemd-analyze security --offline=yes` at most this, per unit
EXECUTABLE = Path(sys.executable).with_name("framebus")
UNITS = ("framebus.service", "framebus-subscriber@.service")
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def install(root: Path, *extra: str) -> Path:
    """`framebus install-systemd --prefix ROOT` with this venv's framebus; the units' folder."""
    config = root / "etc" / "framebus" / "topology.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "simulated.yaml", config)
    assert main(["install-systemd", "--prefix", str(root), "--executable", str(EXECUTABLE), *extra]) == 0
    return root / "etc" / "systemd" / "system"


def tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=JOIN_TIMEOUT_S)


def test_reference_units_are_the_rendered_templates() -> None:
    for unit in render_units():
        reference = REPO / "systemd" / unit.reference
        assert reference.read_text() == unit.text, f"{reference} is stale: run python tests/test_systemd.py"


def test_units_carry_paths_user_and_the_systemd_essentials(tmp_path: Path) -> None:
    units = install(tmp_path, "--user", "camops", "--config", "/srv/fb/topo.yaml")
    daemon = (units / "framebus.service").read_text()
    template = (units / "framebus-subscriber@.service").read_text()
    assert f"ExecStart={EXECUTABLE} daemon /srv/fb/topo.yaml\n" in daemon
    assert f"ExecStart={EXECUTABLE} subscriber /srv/fb/topo.yaml %i\n" in template
    for text in (daemon, template):
        assert "User=camops\n" in text and "RemoveIPC=no\n" in text
        assert not re.search(r"@[A-Z_]+@", text), "every placeholder filled in"
    essentials = (
        "Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=",
        "DevicePolicy=closed", "DeviceAllow=char-video4linux rw", "SupplementaryGroups=video",
    )  # fmt: skip
    for line in essentials:
        assert line in daemon
    assert "PartOf=framebus.service" in template and "Restart=on-failure" in template
    sysusers = (tmp_path / "etc" / "sysusers.d" / "framebus.conf").read_text()
    assert "u camops -" in sysusers and "m camops video" in sysusers
    assert "d /srv/fb 0750 root camops" in (tmp_path / "etc" / "tmpfiles.d" / "framebus.conf").read_text()


def test_bad_paths_and_users_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--config", "etc/topo.yaml"], ["--config", "/etc/my topo.yaml"], ["--user", "Root!"]):
        assert main(["install-systemd", "--dry-run", "--executable", str(EXECUTABLE), *extra]) == 2
        assert "framebus:" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-systemd", "--dry-run", "--prefix", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "### " in out and f"ExecStart={EXECUTABLE} daemon /etc/framebus/topology.yaml" in out
    assert not list(tmp_path.iterdir())


@needs_systemd
def test_generated_units_verify(tmp_path: Path) -> None:
    units = install(tmp_path)
    # An instance of the template, as systemctl would load it for `enable framebus-subscriber@rates`.
    instance = tmp_path / "framebus-subscriber@rates.service"
    shutil.copy(units / "framebus-subscriber@.service", instance)
    paths = [str(units / name) for name in UNITS] + [str(instance)]
    result = tool("systemd-analyze", "verify", *paths)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_systemd
@pytest.mark.parametrize("unit", ["framebus.service", "framebus-subscriber@rates.service"])
def test_exposure_stays_low(tmp_path: Path, unit: str) -> None:
    units = install(tmp_path)
    path = tmp_path / unit
    shutil.copy(units / ("framebus-subscriber@.service" if "@" in unit else unit), path)
    result = tool("systemd-analyze", "security", "--offline=yes", str(path))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


@needs_systemd
def test_install_into_a_root_as_the_readme_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's steps with --root: the user and group exist, the config folder is set up, units
    are enabled (the template once per subscriber of the config)."""
    install(tmp_path)
    steps = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    last = load_config(REPO / "config" / "simulated.yaml").subscribers[-1].name
    assert steps[-1] == f"systemctl --root={tmp_path} enable framebus-subscriber@{last}.service", steps
    for step in steps:
        result = tool(*step.split())
        assert result.returncode == 0, f"{step}: {result.stderr}"
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert passwd.startswith("framebus:x:") and ":/var/lib/framebus:" in passwd
    assert re.search(r"^video:x:\d+:framebus$", (tmp_path / "etc" / "group").read_text(), re.MULTILINE)
    assert (tmp_path / "etc" / "framebus").stat().st_mode & 0o777 == 0o750
    wants = tmp_path / "etc" / "systemd" / "system"
    assert (wants / "multi-user.target.wants" / "framebus.service").is_symlink()
    assert (wants / "framebus.service.wants" / "framebus-subscriber@rates.service").is_symlink()


def _regenerate() -> None:
    for unit in render_units():
        target = REPO / "systemd" / unit.reference
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(unit.text)
        print(f"wrote {target}")


if __name__ == "__main__":
    _regenerate()


def test_a_program_the_hardening_hides_is_named_and_the_template_step_always_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: a venv under /tmp or /home cannot run under PrivateTmp=/ProtectHome=: said, with
    the setting; and the dry run's next steps include enabling the subscriber template."""
    script = tmp_path / "venv" / "bin" / "framebus"  # (pytest's tmp_path is under /tmp)
    script.parent.mkdir(parents=True)
    script.write_text("#!/home/someone/venv/bin/python\n")
    assert main(["install-systemd", "--dry-run", "--prefix", str(tmp_path / "root"),
                 "--executable", str(script)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert (
        f"the framebus program, {script}, is under /tmp, which the units' PrivateTmp=yes hides"
        in captured.err
    )
    assert "its Python, /home/someone/venv/bin/python, is under /home, which the units' ProtectHome=yes" \
        in captured.err  # fmt: skip
    steps = [line.strip() for line in captured.out.splitlines() if line.startswith("  ")]
    assert "enable framebus-subscriber@NAME.service   (once per subscriber NAME" in steps[-1], steps
    assert main(["install-systemd", "--dry-run", "--prefix", str(tmp_path / "root"),
                 "--executable", "/opt/framebus/bin/framebus"]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err
