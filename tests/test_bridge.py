"""The Zenoh bridge: its wire format and config, then two bridges as real processes on 127.0.0.1.

Every Zenoh session in these tests listens or connects on 127.0.0.1 only, with multicast
scouting off, so no packet leaves the machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import framebus
from _daemonproc import REPO, FramebusProcess, free_port, wait_until, write_config
from framebus.bridge import Header, WireError
from framebus.bridge._codec import decode, encode
from framebus.bridge._wire import MAX_FRAME_BYTES
from framebus.config import FrameEncoding, StreamConfig, parse_config
from framebus.testing import SyntheticVideo, decode_stamp, shm_entries, unique_name
from mp import children, join_ok

STALL_S = 0.5  # the imports' stall_after_s in these tests
FLOW_TIMEOUT_S = 15.0  # generous: two processes start, connect, and Zenoh retries every <= 2 s


# -- wire format and codecs ------------------------------------------------------------------------


def header(**changes: Any) -> Header:
    fields: dict[str, Any] = dict(
        encoding=FrameEncoding.RAW, link_seq=7, seq=42, wall_time_ns=1_700_000_000_000_000_000,
        age_ns=1234, send_wall_ns=1_700_000_000_000_100_000, fps=29.97, shape=(4, 6, 3),
        dtype=np.dtype("uint16"), meta=b'{"exposure":3}',
    )  # fmt: skip
    fields.update(changes)
    return Header(**fields)


def test_header_round_trip() -> None:
    original = header()
    assert Header.unpack(original.pack()) == original
    assert original.meta_dict() == {"exposure": 3}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "wrong magic or too short"),
        (b"XXXX" + header().pack()[4:], "wrong magic"),
        (header().pack()[:-1], "its fields say"),
        (header().pack() + b"x", "its fields say"),
        (header(dtype=np.dtype("O")).pack(), "plain numbers only"),
        (header().pack().replace(b"<u2", b"zz9"), "cannot travel"),
        (header().pack().replace(b"<u2", b"<u3"), "names no numpy dtype"),
        (header(shape=(2**32, 2**32), dtype=np.dtype("uint8")).pack(), "over the 4294967296-byte limit"),
        (header(shape=(2**63 + 5, 1)).pack(), "over the"),
        (header(shape=(0, 4)).pack(), "at least 1"),
        (header(fps=float("nan")).pack(), "nan fps"),
    ],
)
def test_bad_headers_are_typed_errors(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        Header.unpack(data)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda shape, dtype, cut, flips: _mangled(header(shape=tuple(shape), dtype=dtype), cut, flips),
            st.lists(st.integers(0, 2**64 - 1), max_size=10),
            st.sampled_from([np.dtype(t) for t in ("u1", "<u2", ">i4", "<f8", "?", "<c8", "<M8[s]", "V4")]),
            st.integers(0, 200),
            st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=4),
        ),
    )
)
def test_the_decoder_takes_any_bytes_and_raises_only_wire_errors(data: bytes) -> None:
    try:
        parsed = Header.unpack(data)
    except WireError:
        return
    nbytes = parsed.nbytes()
    assert all(d >= 1 for d in parsed.shape) and nbytes <= MAX_FRAME_BYTES
    if nbytes <= 1 << 16:
        assert decode(bytes(nbytes), parsed).shape == parsed.shape
    with pytest.raises(WireError):
        decode(bytes(nbytes % 7), parsed) if nbytes > 6 else decode(bytes(nbytes + 1), parsed)


def _mangled(header: Header, cut: int, flips: list[tuple[int, int]]) -> bytes:
    """A header packed, then cut short (beyond its length: whole) and with some bytes replaced."""
    data = bytearray(header.pack())
    data = data[: max(cut, 4)] if cut < len(data) else data
    for at, value in flips:
        if at < len(data):
            data[at] = value
    return bytes(data)


def test_raw_codec_is_exact_and_checks_the_size() -> None:
    array = np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3)
    payload = encode(array, FrameEncoding.RAW, 90)
    assert np.array_equal(decode(payload, header()), array)
    with pytest.raises(WireError, match="needs 144"):
        decode(payload[:-2], header())


def test_jpeg_codec_is_close_and_refuses_what_it_cannot_carry() -> None:
    frame = synthetic_frames(640, 480)[0]
    payload = encode(frame, FrameEncoding.JPEG, 90)
    assert len(payload) < frame.nbytes / 5
    back = decode(payload, header(encoding=FrameEncoding.JPEG, shape=frame.shape, dtype=frame.dtype))
    assert np.abs(back.astype(np.int16) - frame).mean() < 3
    assert decode_stamp(back) == decode_stamp(frame)
    with pytest.raises(WireError, match="JPEG cannot carry"):
        decode(payload, header(encoding=FrameEncoding.JPEG, shape=(480, 640), dtype=np.dtype("uint16")))


def synthetic_frames(width: int, height: int, count: int = 1) -> list[np.ndarray[Any, Any]]:
    source = SyntheticVideo(StreamConfig(name="x", source={"kind": "synthetic"}, width=width, height=height))
    source.open()
    return [source.read().array.copy() for _ in range(count)]


# -- config ----------------------------------------------------------------------------------------


def problems(text: str) -> str:
    with pytest.raises(framebus.ConfigError) as info:
        parse_config(textwrap.dedent(text), "t.yaml")
    return str(info.value)


STREAMS = """\
streams:
  - {name: cam, source: {kind: synthetic}, width: 640, height: 480}
  - {name: depth, source: {kind: depth}, width: 64, height: 48}
"""


def test_a_bridge_only_config_is_valid_and_explicit() -> None:
    topology = parse_config(
        "bridges:\n  - {name: b, connect: [tcp/10.0.0.2:7447], imports: [{key: site/cam, stream: r.cam}]}\n"
    )
    bridge = topology.bridges[0]
    assert bridge.mode.value == "peer" and bridge.listen == [] and bridge.multicast_scouting is False
    assert bridge.imports[0].stall_after_s == 2.0


def test_imported_streams_are_readable_and_written_by_their_bridge() -> None:
    text = STREAMS + textwrap.dedent("""\
        bridges:
          - name: b
            listen: [tcp/127.0.0.1:7447]
            exports: [{stream: cam, key: site/cam, encoding: jpeg, max_fps: 5}]
            imports: [{key: site/other, stream: other}]
        subscribers:
          - {kind: command, name: viewer, command: [x], reads: [cam, other]}
    """)
    assert parse_config(text).bridges[0].exports[0].max_fps == 5
    msg = problems(text.replace("reads: [cam, other]", "publishes: [other]"))
    assert "subscribers[0] (subscriber 'viewer').publishes[0]: stream 'other' is written by bridge 'b'" in msg


@pytest.mark.parametrize(
    ("bridge", "message"),
    [
        ("{name: b, imports: [{key: k, stream: s}]}",
         "bridges[0] (bridge 'b'): a bridge needs 'listen' or 'connect'"),
        ("{name: b, connect: [tcp/h:1]}", "a bridge needs at least one entry under 'exports' or 'imports'"),
        ("{name: b, mode: client, listen: [tcp/h:1], connect: [tcp/h:2], imports: [{key: k, stream: s}]}",
         "a client does not listen"),
        ("{name: b, connect: [http://h:1], imports: [{key: k, stream: s}]}",
         "bridges[0].connect[0] (bridge 'b'): String should match pattern"),
        ("{name: b, connect: [tcp/h:1], imports: [{key: site/*, stream: s}]}",
         "bridges[0].imports[0].key (bridge 'b'): String should match pattern"),
        ("{name: b, connect: [tcp/h:1], exports: [{stream: cam, key: k}, {stream: depth, key: k}]}",
         "exports: key 'k' is listed twice"),
        ("{name: b, connect: [tcp/h:1], exports: [{stream: cam, key: k, jpeg_quality: 0}]}",
         "bridges[0].exports[0].jpeg_quality (bridge 'b'): Input should be greater than or equal to 1"),
        ("{name: b, connect: [tcp/h:1], exports: [{stream: camera, key: k}]}",
         "bridges[0].exports[0].stream (bridge 'b'): unknown stream 'camera'"),
        ("{name: b, connect: [tcp/h:1], exports: [{stream: depth, key: k, encoding: jpeg}]}",
         "stream 'depth' is 48x64 uint16; JPEG carries only uint8 gray or 3-channel images"),
        ("{name: b, connect: [tcp/h:1], imports: [{key: k, stream: cam}]}",
         "bridges[0].imports[0].stream (bridge 'b'): 'cam' is also under 'streams'"),
    ],
)  # fmt: skip
def test_bridge_config_problems_name_their_field(bridge: str, message: str) -> None:
    assert message in problems(STREAMS + f"bridges:\n  - {bridge}\n")


def test_two_bridges_cannot_import_into_one_stream() -> None:
    one = "{name: NAME, connect: [tcp/h:1], imports: [{key: KEY, stream: s}]}"
    text = f"bridges:\n  - {one.replace('NAME', 'a').replace('KEY', 'x')}\n  - {one.replace('NAME', 'b')}\n"
    assert "bridges[1].imports[0].stream (bridge 'b'): 's' is already imported by bridge 'a'" in problems(
        text.replace("KEY", "y")
    )


def test_publish_takes_the_capture_wall_time(name: str) -> None:
    with framebus.Publisher(name, (2, 2)) as pub, framebus.Subscriber(name) as sub:
        pub.publish(np.zeros((2, 2), np.uint8), wall_time_ns=123_456_789)
        frame = sub.latest()
        assert frame is not None and frame.wall_time_ns == 123_456_789
        with pytest.raises(ValueError, match="wall_time_ns must be the wall clock"):
            pub.publish(np.zeros((2, 2), np.uint8), wall_time_ns=-1)


# -- two bridges, two processes, 127.0.0.1 -----------------------------------------------------------


class Source:
    """Publishes stamped synthetic frames with metadata and an explicit wall time, in a thread;
    remembers what it sent by seq so receivers can compare byte for byte."""

    def __init__(self, name: str, width: int = 640, height: int = 480, fps: float = 25.0) -> None:
        self.name = name
        self.sent: dict[int, tuple[np.ndarray[Any, Any], int]] = {}  # seq -> (frame, wall_time_ns)
        self._frames = synthetic_frames(width, height, 32)
        self._period = 1 / fps
        self._stop = threading.Event()
        self._publisher = framebus.Publisher(name, self._frames[0].shape, fps=fps)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            seq = self._publisher.published + 1
            frame = self._frames[seq % len(self._frames)]
            wall = time.time_ns()
            self.sent[seq] = (frame, wall)
            self.sent.pop(seq - 500, None)
            self._publisher.publish(frame, {"n": seq, "by": "test"}, wall_time_ns=wall)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._publisher.close()


class Bridges:
    """Two hosts' worth of bridges: X listens on 127.0.0.1:PORT, Y connects to it."""

    def __init__(self, tmp_path: Path, prefix: str) -> None:
        self.port = free_port()
        self.tmp_path = tmp_path
        self.names = {n: f"{prefix}.{n}" for n in ("a", "a-in", "a-jpg", "b", "b-in")}
        endpoint = f"tcp/127.0.0.1:{self.port}"
        key = f"test/{prefix}"
        imports = {"stall_after_s": STALL_S}
        self.configs = {
            "x": {"name": "x", "listen": [endpoint],
                  "exports": [{"stream": self.names["a"], "key": f"{key}/a"},
                              {"stream": self.names["a"], "key": f"{key}/a-jpg", "encoding": "jpeg"}],
                  "imports": [{"key": f"{key}/b", "stream": self.names["b-in"], **imports}]},
            "y": {"name": "y", "connect": [endpoint],
                  "exports": [{"stream": self.names["b"], "key": f"{key}/b"}],
                  "imports": [{"key": f"{key}/a", "stream": self.names["a-in"], **imports},
                              {"key": f"{key}/a-jpg", "stream": self.names["a-jpg"], **imports}]},
        }  # fmt: skip
        self.procs: dict[str, FramebusProcess] = {}
        self.pids: list[int] = []
        self.starts = 0

    def start(self, side: str) -> None:
        config = write_config(self.tmp_path / f"{side}.yaml", {"bridges": [self.configs[side]]})
        self.starts += 1
        proc = FramebusProcess(["bridge", str(config)], self.tmp_path / f"{side}-{self.starts}.log")
        self.procs[side] = proc
        self.pids.append(proc.proc.pid)

    def kill(self, side: str) -> None:
        code, _ = self.procs[side].stop(signal.SIGKILL)
        assert code == -signal.SIGKILL

    def stop(self, side: str) -> None:
        proc = self.procs.pop(side)
        code, took = proc.stop(signal.SIGTERM)
        assert code == 0, proc.output()
        assert took < 3.0, f"bridge {side} took {took:.1f} s to stop"

    def close(self) -> None:
        for proc in self.procs.values():
            proc.close()


@pytest.fixture
def bridges(tmp_path: Path) -> Iterator[Bridges]:
    before = shm_entries()
    pair = Bridges(tmp_path, unique_name("br"))
    try:
        yield pair
    finally:
        pair.close()
    # Zenoh names its segments '<pid>.zenoh'; the bridge turns its shared-memory transport off.
    zenoh_left = {e for e in shm_entries() - before if e.endswith(".zenoh")}
    assert not zenoh_left, f"Zenoh left segments in /dev/shm: {sorted(zenoh_left)}"


def wait_flowing(sub: framebus.Subscriber, after_origin: int = 0) -> framebus.Frame:
    """The first fresh frame whose origin seq is beyond `after_origin`."""
    deadline = time.monotonic() + FLOW_TIMEOUT_S
    while True:
        try:
            frame = sub.wait(max(0.0, deadline - time.monotonic()))
        except framebus.WriterGone:
            continue
        if not frame.stale and frame.meta["origin_seq"] > after_origin:
            return frame


def attach(name: str) -> framebus.Subscriber:
    wait_until(lambda: any(s.name == name for s in framebus.streams()), FLOW_TIMEOUT_S, f"stream {name}")
    return framebus.Subscriber(name, copy=True)


def check_raw(sub: framebus.Subscriber, source: Source, frames: int = 5) -> int:
    """`frames` imported frames equal, byte for byte, to what the source sent, with their metadata
    and capture wall time; returns the last origin seq seen."""
    origin = 0
    for _ in range(frames):
        frame = wait_flowing(sub, origin)
        origin = frame.meta["origin_seq"]
        sent, wall = source.sent[origin]
        assert np.array_equal(frame.array, sent), f"frame {origin} differs"
        assert frame.meta == {"n": origin, "by": "test", "origin_seq": origin}
        assert frame.wall_time_ns == wall
        assert 0 <= frame.age_ns < 5e9  # rebuilt on this host's monotonic clock
    return origin


def wait_stale(sub: framebus.Subscriber) -> None:
    def stale() -> bool:
        frame = sub.latest()
        return frame is not None and frame.stale

    wait_until(stale, STALL_S + 5, f"{sub.name} marked stalled")


def test_two_bridges_both_ways_survive_restarts(bridges: Bridges) -> None:
    names = bridges.names
    a, b = Source(names["a"]), Source(names["b"], width=320, height=240)
    try:
        bridges.start("x")
        bridges.start("y")
        a_in, a_jpg, b_in = attach(names["a-in"]), attach(names["a-jpg"]), attach(names["b-in"])
        try:
            check_raw(a_in, a)
            last_b = check_raw(b_in, b)
            jpeg = wait_flowing(a_jpg)
            sent, _ = a.sent[jpeg.meta["origin_seq"]]
            assert np.abs(jpeg.array.astype(np.int16) - sent).mean() < 3
            assert decode_stamp(jpeg.array) == decode_stamp(sent)
            assert a_in.shape == (480, 640, 3) and b_in.shape == (240, 320, 3)

            bridges.kill("y")  # the connecting side dies: X's import stalls, then recovers
            wait_stale(b_in)
            bridges.start("y")
            last_b = check_raw(b_in, b, frames=2)
            check_raw(a_in, a, frames=2)

            bridges.kill("x")  # the listening side dies: Y reconnects when it is back
            wait_stale(a_in)
            bridges.start("x")
            check_raw(a_in, a, frames=2)
            assert check_raw(b_in, b, frames=2) > last_b
        finally:
            for sub in (a_in, a_jpg, b_in):
                sub.close()
        bridges.stop("x")
        bridges.stop("y")
    finally:
        a.close()
        b.close()
    left = {s.name for s in framebus.streams()} & set(names.values())
    assert not left, f"streams left behind: {left}"


def test_daemon_runs_bridges_and_survives_their_crash(tmp_path: Path) -> None:
    prefix, port = unique_name("brd"), free_port()
    endpoint = f"tcp/127.0.0.1:{port}"

    def host(me: str, other: str, bridge: dict[str, Any]) -> Path:
        config = {
            "daemon": {"http": {"enabled": False}},
            "streams": [{"name": f"{prefix}.{me}", "source": {"kind": "synthetic"}, "width": 256,
                         "height": 64, "fps": 30}],
            "bridges": [{"name": me, **bridge, "backoff": {"initial_s": 0.2},
                         "exports": [{"stream": f"{prefix}.{me}", "key": f"{prefix}/{me}"}],
                         "imports": [{"key": f"{prefix}/{other}", "stream": f"{prefix}.{other}-in",
                                      "stall_after_s": STALL_S}]}],
            "subscribers": [{"kind": "command", "name": "rates", "reads": [f"{prefix}.{other}-in"],
                             "command": ["{python}", "-m", "framebus_services.rates", "--interval", "1"]}],
        }  # fmt: skip
        return write_config(tmp_path / f"{me}.yaml", config)

    one = host("one", "two", {"listen": [endpoint]})
    two = host("two", "one", {"connect": [endpoint]})
    run_one = FramebusProcess(["run", str(one)], tmp_path / "one.log")
    run_two = FramebusProcess(["run", str(two)], tmp_path / "two.log")
    try:
        one_in, two_in = attach(f"{prefix}.one-in"), attach(f"{prefix}.two-in")
        try:
            for sub in (one_in, two_in):
                frame = wait_flowing(sub)
                # The synthetic source stamps its own count (from 0); the origin seq counts from 1.
                assert decode_stamp(frame.array)[0] + 1 == frame.meta["origin_seq"]
            bridge_pid = child_running(run_one.proc.pid, "bridge")
            os.kill(bridge_pid, signal.SIGKILL)  # the bridge crashes; capture goes on
            wait_stale(one_in)
            with framebus.Subscriber(f"{prefix}.one") as local:
                before = local.wait(5).seq
                assert local.wait(5).seq > before and run_one.proc.poll() is None
            wait_until(
                lambda: child_running(run_one.proc.pid, "bridge") != bridge_pid, 10, "bridge restarted"
            )
            frame = wait_flowing(one_in)
            assert decode_stamp(frame.array)[0] + 1 == frame.meta["origin_seq"]
        finally:
            one_in.close()
            two_in.close()
        for proc in (run_one, run_two):
            code, _ = proc.stop(signal.SIGTERM)
            assert code == 0, proc.output()
    finally:
        run_one.close()
        run_two.close()
    assert not {s.name for s in framebus.streams() if s.name.startswith(prefix)}


def child_running(parent: int, word: str) -> int:
    """The pid of `parent`'s child whose command line contains `word` (AssertionError if none)."""
    for task in os.listdir(f"/proc/{parent}/task"):
        for child in Path(f"/proc/{parent}/task/{task}/children").read_text().split():
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if word.encode() in argv:
                return int(child)
    raise AssertionError(f"no child of {parent} runs {word!r}")


def test_a_slow_importer_drops_old_frames_and_counts_them() -> None:
    from _bridge_workers import slow_importer_keeps_latest_only

    with children() as start:
        join_ok(start(slow_importer_keeps_latest_only, unique_name("slow"), free_port()))


def test_malformed_messages_from_a_peer_are_counted_and_dropped_not_fatal() -> None:
    from _bridge_workers import importer_survives_malformed_messages

    with children() as start:
        join_ok(start(importer_survives_malformed_messages, unique_name("evil"), free_port()))


def test_the_importer_leaves_a_dead_local_writers_name_alone() -> None:
    from _bridge_workers import importer_leaves_a_local_writers_name

    with children() as start:
        join_ok(start(importer_leaves_a_local_writers_name, unique_name("own"), free_port()))


def test_the_bridge_is_a_front_end_of_the_public_api() -> None:
    for path in (REPO / "framebus" / "bridge").glob("*.py"):
        assert not re.search(r"from \.\._|framebus\._", path.read_text()), (
            f"{path.name} uses the core's privates"
        )
    probe = "import sys, framebus, framebus.config; sys.exit('zenoh' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0, (
        "import framebus loads zenoh"
    )
