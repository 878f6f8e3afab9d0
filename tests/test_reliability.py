"""Issue 8: the defects an adversarial probe found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import contextlib
import grp
import io
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framebus
from _daemonproc import JOIN_TIMEOUT_S, REPO
from _workers import lapped_copy_read, publish_as_another_user, read_as_another_user, write_every
from framebus.cli import main
from framebus.testing import frame_is_intact, tagged_frame, unique_name
from mp import CTX, children

SHAPE = (48, 64, 3)
NOBODY = 65534


def _marked(value: int) -> np.ndarray[Any, Any]:
    return np.full(SHAPE, value, np.uint8)


# -- the contract gap: every change of writer is reported once --------------------------------


@pytest.mark.parametrize("remove", [True, False], ids=["replaced", "taken-over-in-place"])
def test_every_change_of_writer_is_reported_once_however_fast(name: str, remove: bool) -> None:
    changes = 30
    pub = framebus.Publisher(name, SHAPE)
    pub.publish(_marked(0))
    sub = framebus.Subscriber(name)
    try:
        assert sub.wait(timeout=5).seq == 1
        for k in range(1, changes + 1):
            pub.close(remove=remove)
            pub = framebus.Publisher(name, SHAPE)  # the same shape, at once: no liveness interval passes
            pub.publish(_marked(k))
            with pytest.raises(framebus.WriterGone):
                sub.wait(timeout=5)
            frame = sub.wait(timeout=5)
            assert frame.seq == 1 and int(frame.array[0, 0, 0]) == k and not frame.stale
    finally:
        sub.close()
        pub.close()


def test_writer_killed_and_replaced_in_place_is_reported_every_time(name: str) -> None:
    kills, reported = 8, 0
    with children() as start:
        ready = CTX.Event()
        writer = start(write_every, name, SHAPE, ready, 0.005)
        assert ready.wait(30)
        with framebus.Subscriber(name) as sub:
            sub.wait(timeout=10)
            inode = os.stat(f"/dev/shm/framebus.{name}").st_ino
            for _ in range(kills):
                os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
                writer.join(10)
                ready = CTX.Event()
                writer = start(write_every, name, SHAPE, ready, 0.005)  # takes the segment over
                assert ready.wait(30)
                while True:
                    try:
                        frame = sub.wait(timeout=10)
                    except framebus.WriterGone:
                        reported += 1
                        continue
                    assert frame_is_intact(frame.array, frame.seq)
                    if reported and sub.writer_alive:
                        break
                frame = sub.wait(timeout=10)
                assert frame_is_intact(frame.array, frame.seq)
                with contextlib.suppress(framebus.WriterGone):
                    pass
            assert os.stat(f"/dev/shm/framebus.{name}").st_ino == inode, "taken over in place"
        os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
        writer.join(10)
    framebus.Publisher(name, SHAPE).close()  # (removes the last dead writer's segment)
    assert reported == kills


def test_a_held_frame_never_changes_across_a_takeover_in_place(name: str) -> None:
    pub = framebus.Publisher(name, SHAPE, slots=3)
    pub.publish(tagged_frame(SHAPE, 1))
    with framebus.Subscriber(name) as sub:
        held = sub.latest()
        assert held is not None
        pub.close(remove=False)
        with framebus.Publisher(name, SHAPE, slots=3) as again:
            for seq in range(1, 40):  # laps the 3-slot ring many times
                again.publish(tagged_frame(SHAPE, seq + 100))
            assert frame_is_intact(held.array, 1)
            with pytest.raises(framebus.WriterGone):
                sub.wait(timeout=5)
            frame = sub.wait(timeout=5)
            assert frame.seq == 39 and frame_is_intact(frame.array, 139)


def test_a_copy_read_is_bounded_when_the_writer_laps_every_copy(name: str) -> None:
    with children() as start:
        reader = start(lapped_copy_read, name)
        reader.join(30)
        assert reader.exitcode == 0, "the copy read spun instead of giving up (or failed)"


# -- items 5, 6, 9: the API refuses what it cannot honour, with typed errors ---------------------


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="stream name"):
        framebus.Publisher("x\n", SHAPE)
    with pytest.raises(ValueError, match="stream name"):
        framebus.Subscriber("x\n")


@pytest.mark.parametrize("meta", [[1, 2], "text", 5, {1: "int key"}], ids=repr)
def test_metadata_that_is_not_a_dict_is_refused_at_publish(name: str, meta: Any) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        with pytest.raises(TypeError, match="meta"):
            pub.publish(_marked(1), meta=meta)
        with pytest.raises(TypeError, match="meta"), pub.loan(meta=meta):
            pass
        assert pub.published == 0 and sub.latest() is None
        pub.publish(_marked(1), meta={"ok": [1, 2]})
        frame = sub.latest()
        assert frame is not None and frame.meta == {"ok": [1, 2]}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"shape": (2**40, 2**40)}, ValueError, "exceed"),
        ({"shape": (2.5, 3)}, TypeError, "integer"),
        ({"shape": (True, 3)}, TypeError, "integer"),
        ({"shape": 5}, TypeError, "tuple"),
        ({"slots": 3.5}, TypeError, "slots must be an integer"),
        ({"meta_capacity": 10.5}, TypeError, "meta_capacity"),
        ({"fps": True}, TypeError, "fps"),
        ({"fps": "30"}, TypeError, "fps"),
        ({"group": -5}, ValueError, "gid -5"),
        ({"group": 1.5}, TypeError, "group"),
        ({"group": "nosuchgroup-xyz"}, ValueError, "does not exist"),
    ],
)
def test_bad_arguments_give_typed_errors_not_coercions(
    name: str, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    args: dict[str, object] = {"shape": SHAPE, **kwargs}
    with pytest.raises(error, match=message):
        framebus.Publisher(name, **args)  # type: ignore[arg-type]
    assert not os.path.exists(f"/dev/shm/framebus.{name}")


def test_numpy_integers_still_make_a_shape(name: str) -> None:
    with framebus.Publisher(name, (np.int64(4), np.uint16(3))) as pub:
        assert pub.shape == (4, 3)


def test_bool_timestamps_and_stall_flags_are_refused(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub:
        with pytest.raises(ValueError, match="timestamp_ns"):
            pub.publish(_marked(1), timestamp_ns=True)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="bool"):
            pub.set_stalled("no")  # type: ignore[arg-type]
        assert pub.published == 0


# -- item 7: a reader applies the writers' ownership rule ---------------------------------------


def _nobody_can_run_python() -> str | None:
    if os.geteuid() != 0:
        return "needs root to act as a second user (CI runs as root)"
    probe = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c",
         "import framebus"], capture_output=True, text=True, timeout=JOIN_TIMEOUT_S, cwd="/",
    )  # fmt: skip
    return (
        None if probe.returncode == 0 else f"user nobody cannot import framebus here: {probe.stderr[-200:]}"
    )


def test_a_subscriber_refuses_another_users_stream() -> None:
    problem = _nobody_can_run_python()
    if problem:
        pytest.skip(problem)
    name = unique_name("squat")
    ready = CTX.Event()
    with children() as start:
        attacker = start(publish_as_another_user, name, NOBODY, ready)
        try:
            assert ready.wait(30)
            assert os.stat(f"/dev/shm/framebus.{name}").st_uid == NOBODY
            for copy in (False, True):
                with pytest.raises(framebus.SegmentForeign, match=f"uid {NOBODY}"):
                    framebus.Subscriber(name, copy=copy)
            with pytest.raises(framebus.SegmentForeign):
                framebus.Publisher(name, (4, 4))
        finally:
            os.kill(attacker.pid, signal.SIGKILL)  # type: ignore[arg-type]
            attacker.join(10)
            os.unlink(f"/dev/shm/framebus.{name}")


def test_a_group_shared_stream_is_read_by_a_member_only(name: str) -> None:
    problem = _nobody_can_run_python()
    if problem:
        pytest.skip(problem)
    group = grp.getgrnam("users").gr_gid if _group_exists("users") else 100
    results = CTX.Queue()
    with framebus.Publisher(name, (4, 4), group=group) as pub, children() as start:
        pub.publish(np.zeros((4, 4), np.uint8))
        member = start(read_as_another_user, name, NOBODY, [group], results)
        assert results.get(timeout=30) == "read"
        member.join(10)
        stranger = start(read_as_another_user, name, NOBODY, [], results)
        assert results.get(timeout=30) == "SegmentForeign"
        stranger.join(10)
    results.close()


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


# -- item 8: ls survives names any local user can plant ------------------------------------------


def test_ls_lists_a_planted_non_utf8_name_escaped() -> None:
    suffix = unique_name("planted").encode()
    planted = [b"/dev/shm/framebus.bad\xff" + suffix, b"/dev/shm/framebus.new\nline" + suffix]
    for path in planted:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
        for args in (["ls"], ["ls", "--json"]):
            result = subprocess.run(
                [sys.executable, "-m", "framebus", *args],
                capture_output=True, text=True, timeout=JOIN_TIMEOUT_S, cwd=REPO, env=env,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr
        listed = {s.name: s.error for s in framebus.streams() if suffix.decode() in s.name}
        assert listed == {
            f"bad\\xff{suffix.decode()}": "not a framebus stream name; planted by another program?",
            f"new\\nline{suffix.decode()}": "not a framebus stream name; planted by another program?",
        }
    finally:
        for path in planted:
            os.unlink(path)


# -- items 3, 4: `check` checks what it can know, and never prints a traceback ---------------------


def test_check_refuses_a_group_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "group.yaml"
    path.write_text(
        "streams:\n  - {name: g, source: {kind: synthetic}, width: 64, height: 24, group: nosuchgroup-xyz}\n"
    )
    for command in ("check", "daemon"):
        result = subprocess.run(
            [sys.executable, "-m", "framebus", command, str(path)],
            capture_output=True, text=True, timeout=JOIN_TIMEOUT_S, cwd=REPO,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "streams[0].group (stream 'g'): group 'nosuchgroup-xyz' does not exist" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "? [a]\n: 1\n"),
        (".yaml", "? {a: 1}\n: 1\n"),
        (".yaml", "a: " + "[" * 500 + "]" * 500 + "\n"),
        (".yaml", "streams: " + "[" * 100 + "]" * 100 + "\n"),
        (".toml", "a = " + "[" * 2000 + "]" * 2000 + "\n"),
        (".toml", "a = " + "{b = " * 100 + "1" + "}" * 100 + "\n"),
    ],
    ids=["complex-key", "mapping-key", "deep-yaml", "deep-streams", "deep-toml", "deep-toml-table"],
)
def test_malformed_configs_are_config_errors(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    assert _check_exit_code(path) == 2


def _check_exit_code(path: Path) -> int:
    """`framebus check PATH` in this process: an escaping exception fails the test."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(["check", str(path)])


_TOKENS = [
    "streams:", "\n", "  ", "- ", "name: a", "{", "}", "[", "]", "? ", ": ", ",", "&x ", "*x ", "<<: *x",
    "!!python/object:os.system ", "!!binary ", "source: {kind: synthetic}", "kind: imu", "width: 64",
    "height: 24", "group: ", "fps: 1e400", "fps: .nan", "slots: -1", "'", '"', "\t", "\x00", "\xff", "é",
    "daemon: {http: {port: 99999}}", "subscribers: [{kind: command, name: s, command: [x], reads: [a]}]",
    "[streams]", "a = 1", "= ", "[[streams]]", "0x10", "true", "~", "%YAML 1.1\n", "---\n", "...\n",
    "[" * 40, "]" * 40, "{a: " * 40, "? [a]\n: 1\n", "? {b: 1}\n",
]  # fmt: skip


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from(_TOKENS), max_size=40).map(
            lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
        ),
    ),
    suffix=st.sampled_from([".yaml", ".toml"]),
)
def test_fuzzed_config_files_give_config_errors_never_tracebacks(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        assert _check_exit_code(path) in (0, 2)
