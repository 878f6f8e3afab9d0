"""A kind is declared once: its model gives its topology entry, schema, command line and --help.

The throwaway kinds below are each one module plus one entry-point line (a dist-info folder on
PYTHONPATH, as an installed plug-in package would have), and must show up everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel, ValidationError

from _daemonproc import JOIN_TIMEOUT_S, running, wait_until, write_config
from framebus.config import SUBSCRIBERS, Service, kinds
from framebus.testing import unique_name

SUBSCRIBER_MODULE = '''
"""A throwaway subscriber kind: counts a stream's frames into a file."""

import time
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

import framebus
from framebus.config import Arg, Service, StreamName


class TallySubscriber(Service):
    """Count a stream's frames into a file (a throwaway kind)."""

    kind: Literal["tally"]
    reads_fields: ClassVar[tuple[str, ...]] = ("stream",)
    stream: Annotated[StreamName, Arg(positional=True)] = Field(description="the stream to count")
    out: Path = Field(description="file the count goes to")
    frames: int = Field(default=3, ge=1, le=1000, description="frames to count before exiting")

    def run(self) -> int:
        deadline = time.monotonic() + 60
        while True:
            try:
                sub = framebus.Subscriber(self.stream)
                break
            except framebus.FramebusError:
                if time.monotonic() > deadline:
                    return 1
                time.sleep(0.1)
        values = []
        with sub:
            while len(values) < self.frames:
                values.append(int(sub.wait(timeout=30).array.flat[0]))
        self.out.write_text(" ".join(map(str, values)))
        return 0


if __name__ == "__main__":
    raise SystemExit(TallySubscriber.main())
'''

SOURCE_MODULE = '''
"""A throwaway source kind: frames filled with a value that counts up from `start`."""

import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from framebus.config import SourceKind, StreamConfig
from framebus.daemon.sources import Captured


class RampSource(SourceKind):
    """Frames filled with a counting value (a throwaway kind)."""

    kind: Literal["ramp"]
    start: int = Field(default=7, ge=0, le=200, description="value of the first frame")

    def capture(self, stream: StreamConfig) -> Any:
        return Ramp(stream, self.start)


class Ramp:
    self_timed = False
    media_fps = None

    def __init__(self, stream: StreamConfig, start: int) -> None:
        self._array = np.zeros(stream.shape(), np.uint8)
        self._value = start

    def open(self) -> None:
        pass

    def read(self) -> Captured:
        self._array[:] = self._value % 256
        self._value += 1
        return Captured(self._array, time.monotonic_ns())

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass
'''

ENTRY_POINTS = """
[framebus.subscribers]
tally = tally_kind:TallySubscriber

[framebus.sources]
ramp = ramp_kind:RampSource
"""


@pytest.fixture
def plugin(tmp_path: Path) -> dict[str, str]:
    """A folder holding the two kind modules and the entry points naming them; its environment."""
    folder = tmp_path / "plugin"
    (folder / "framebus_test_kinds-0.dist-info").mkdir(parents=True)
    (folder / "tally_kind.py").write_text(textwrap.dedent(SUBSCRIBER_MODULE))
    (folder / "ramp_kind.py").write_text(textwrap.dedent(SOURCE_MODULE))
    info = folder / "framebus_test_kinds-0.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: framebus-test-kinds\nVersion: 0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def framebus_cli(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framebus", *args], capture_output=True, text=True,
        timeout=JOIN_TIMEOUT_S, env={**os.environ, **env},
    )  # fmt: skip


def test_a_kind_from_one_module_is_in_help_schema_and_command_line(plugin: dict[str, str]) -> None:
    usage = framebus_cli(plugin, "--help")
    assert usage.returncode == 0 and "tally" in usage.stdout, usage.stdout + usage.stderr
    assert "count a stream's frames into a file" in usage.stdout
    helped = framebus_cli(plugin, "tally", "--help")
    assert helped.returncode == 0 and "--frames" in helped.stdout and "frames to count" in helped.stdout
    assert "(default 3)" in helped.stdout and "STREAM" in helped.stdout
    rejected = framebus_cli(plugin, "tally", "cam", "--out", "x", "--frames", "0")
    assert rejected.returncode == 2 and "argument --frames: '0': Input should be greater" in rejected.stderr
    schema = framebus_cli(plugin, "schema")
    assert schema.returncode == 0, schema.stderr
    text = json.dumps(json.loads(schema.stdout))
    for said in (
        '"tally"',
        '"ramp"',
        "frames to count",
        "value of the first frame",
        '"recorder"',
        '"camera"',
    ):
        assert said in text, said


def test_a_kind_from_one_module_runs_under_framebus_run(tmp_path: Path, plugin: dict[str, str]) -> None:
    name = unique_name("ramp")
    data = {
        "daemon": {"http": {"enabled": False}},
        "streams": [{"name": name, "source": {"kind": "ramp", "start": 40}, "width": 8, "height": 4,
                     "fps": 50}],
        "subscribers": [{"kind": "tally", "name": "tally", "stream": name, "out": str(tmp_path / "run.txt")}],
    }  # fmt: skip
    config = write_config(tmp_path / "kinds.yaml", data)
    checked = framebus_cli(plugin, "check", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with running(["run", str(config)], tmp_path, env=plugin) as run:
        wait_until(lambda: (tmp_path / "run.txt").exists(), 30, "the tally subscriber's count")
        by_hand = framebus_cli(plugin, "tally", name, "--out", str(tmp_path / "cli.txt"), "--frames", "2")
        code, _ = run.stop(signal.SIGINT)
        assert code == 0, run.output()
    counted = [int(v) for v in (tmp_path / "run.txt").read_text().split()]
    assert len(counted) == 3 and all(v >= 40 for v in counted), counted  # the ramp source's frames
    assert by_hand.returncode == 0, by_hand.stderr
    assert len((tmp_path / "cli.txt").read_text().split()) == 2


def _services() -> list[type[Service]]:
    return [m for m in kinds(SUBSCRIBERS).values() if issubclass(m, Service)]


def _required(model: type[Service]) -> dict[str, str]:
    """A value for each required option (every one is a path or a stream name)."""
    return {
        name: "x1" for name, info in model.model_fields.items()
        if info.is_required() and name not in Service.RUN_FIELDS
    }  # fmt: skip


def _argv(model: type[Service], values: dict[str, Any]) -> list[str]:
    entry = model.model_validate({"kind": _tag(model), "name": "n", **_required(model)})
    argv = entry.model_copy(update=values).argv()[3:]  # after {python} -m module
    return argv


def _tag(model: type[BaseModel]) -> str:
    from framebus.config._kinds import kind_of

    return kind_of(model)


def _bad_values(model: type[Service]) -> list[tuple[str, Any]]:
    """(field, a value just outside its bounds) for every bounded option of `model`."""
    bad: list[tuple[str, Any]] = []
    for name, info in model.model_fields.items():
        if name in Service.RUN_FIELDS:
            continue
        for rule in info.metadata:
            if isinstance(rule, annotated_types.Ge):
                bad.append((name, rule.ge - 1))
            elif isinstance(rule, annotated_types.Gt):
                bad.append((name, rule.gt))
            elif isinstance(rule, annotated_types.Le):
                bad.append((name, rule.le + 1))
            elif isinstance(rule, annotated_types.Lt):
                bad.append((name, rule.lt))
    return bad


def test_the_shipped_kinds_are_registered() -> None:
    assert {"recorder", "analyzer", "web", "view", "replay", "command"} <= set(kinds(SUBSCRIBERS))


@pytest.mark.parametrize("model", _services(), ids=lambda m: m.__name__)
def test_every_bound_of_a_shipped_kind_is_checked_alike_on_the_command_line(
    model: type[Service], capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _bad_values(model)
    assert cases or model.__name__ == "ViewSubscriber"
    for field, value in cases:
        data = {"kind": _tag(model), "name": "n", **_required(model), field: value}
        with pytest.raises(ValidationError) as topology:
            model.model_validate(data)
        said = topology.value.errors()[0]["msg"]
        flag = "--" + field.removesuffix("_s").replace("_", "-")
        argv = [*_argv(model, {}), flag, str(value)]
        with pytest.raises(SystemExit) as exc:
            model.from_command_line(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"argument {flag}: " in err and said in err, (field, value, err)


@pytest.mark.parametrize("model", _services(), ids=lambda m: m.__name__)
def test_a_topology_entry_runs_as_the_command_line_it_states(model: type[Service]) -> None:
    """argv() of an entry parses back to the same options (so `framebus run` runs what it says)."""
    entry = model.model_validate({"kind": _tag(model), "name": model.subcommand(), **_required(model)})
    for field, info in model.model_fields.items():
        if field in Service.RUN_FIELDS or info.is_required():
            continue
        parsed = model.from_command_line(entry.argv()[3:])
        assert getattr(parsed, field) == getattr(entry, field), field
    assert model.from_command_line(entry.argv()[3:]) == entry
