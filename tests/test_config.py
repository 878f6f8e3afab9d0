"""One test per validation rule of the topology config, each checking the message."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from framebus._errors import ConfigError
from framebus.config import PixelFormat, StreamConfig, Topology, check_memory, load_config, parse_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
SYNTH = "{kind: synthetic}"


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "t.yaml")
    return str(info.value)


def command(name: str, *, reads: str = "[]", publishes: str = "[]") -> str:
    return f"  - {{kind: command, name: {name}, command: [x], reads: {reads}, publishes: {publishes}}}\n"


def stream(extra: str = "", source: str = SYNTH, name: str = "cam") -> str:
    return f"  - {{name: {name}, source: {source}, width: 640, height: 480{extra}}}\n"


def test_minimal_config_and_defaults() -> None:
    topology = parse_config("streams:\n" + stream())
    cam = topology.stream("cam")
    assert cam.shape() == (480, 640, 3) and cam.dtype() == "uint8"
    assert cam.fps == 30 and cam.slots == 6 and cam.pixel_format() is PixelFormat.BGR8
    assert topology.daemon.http.host == "127.0.0.1"


def test_shapes_of_every_kind() -> None:
    topology = parse_config(
        "streams:\n"
        + stream(", format: gray8", name="g")
        + "  - {name: imu, source: {kind: imu, rate_hz: 400}, fps: 100}\n"
        + stream(source="{kind: depth}", name="d")
    )
    assert topology.stream("g").shape() == (480, 640)
    assert (topology.stream("imu").shape(), topology.stream("imu").dtype()) == ((4, 7), "float32")
    assert (topology.stream("d").shape(), topology.stream("d").dtype()) == ((480, 640), "uint16")


def test_models_are_frozen() -> None:
    cam = parse_config("streams:\n" + stream()).stream("cam")
    with pytest.raises(ValueError, match="frozen"):
        cam.fps = 5  # type: ignore[misc]


def test_unknown_key_names_its_path() -> None:
    assert "streams[0].colour (stream 'cam'): unknown key" in problems("streams:\n" + stream(", colour: red"))


def test_unknown_key_in_source() -> None:
    msg = problems("streams:\n" + stream(source="{kind: synthetic, sped: 3}"))
    assert "streams[0].source.sped (stream 'cam'): unknown key" in msg


def test_unknown_top_level_key() -> None:
    assert "stream: unknown key" in problems("stream: []\nstreams:\n" + stream())


def test_negative_fps() -> None:
    assert "streams[0].fps (stream 'cam'): Input should be greater than 0" in problems(
        "streams:\n" + stream(", fps: -5")
    )


def test_zero_width() -> None:
    msg = problems("streams:\n  - {name: cam, source: {kind: synthetic}, width: 0, height: 480}\n")
    assert "streams[0].width (stream 'cam'): Input should be greater than 0" in msg


def test_too_few_slots() -> None:
    assert "streams[0].slots (stream 'cam'): Input should be greater than or equal to 3" in problems(
        "streams:\n" + stream(", slots: 1")
    )


def test_bad_stream_name() -> None:
    assert "streams[0].name" in problems("streams:\n" + stream(name="'bad/name'"))


def test_unknown_source_kind() -> None:
    msg = problems("streams:\n" + stream(source="{kind: webcam}"))
    assert "streams[0].source (stream 'cam'): Input tag 'webcam'" in msg
    assert "'camera'" in msg


def test_bad_fourcc() -> None:
    msg = problems("streams:\n" + stream(source="{kind: camera, device: 0, fourcc: MJPEG}"))
    assert "streams[0].source.fourcc (stream 'cam'): fourcc must be exactly 4 ASCII characters" in msg


def test_relative_camera_path() -> None:
    msg = problems("streams:\n" + stream(source="{kind: camera, device: video0}"))
    assert "device must be an index or an absolute path" in msg


def test_url_scheme() -> None:
    msg = problems("streams:\n" + stream(source="{kind: url, url: 'ftp://x/y'}"))
    assert "streams[0].source.url (stream 'cam'): url must start with one of rtsp://" in msg


def test_image_stream_needs_size() -> None:
    msg = problems("streams:\n  - {name: cam, source: {kind: camera, device: 0}}\n")
    assert "streams[0] (stream 'cam'): a camera stream needs width and height" in msg


def test_imu_takes_no_size() -> None:
    msg = problems("streams:\n  - {name: imu, source: {kind: imu}, width: 3, height: 3}\n")
    assert "an imu stream takes no width, height or format" in msg


def test_imu_rate_below_fps() -> None:
    msg = problems("streams:\n  - {name: imu, source: {kind: imu, rate_hz: 10}, fps: 30}\n")
    assert "imu rate_hz must be at least the stream fps" in msg


def test_depth_format() -> None:
    msg = problems("streams:\n" + stream(", format: bgr8", source="{kind: depth}"))
    assert "a depth stream's format must be depth16" in msg


def test_depth_range() -> None:
    msg = problems("streams:\n" + stream(source="{kind: depth, min_mm: 900, max_mm: 800}"))
    assert "min_mm (900) must be below max_mm (800)" in msg


def test_synthetic_minimum_size() -> None:
    msg = problems("streams:\n  - {name: s, source: {kind: synthetic}, width: 32, height: 16}\n")
    assert "a synthetic stream needs width >= 64 and height >= 24" in msg


def test_retry_policy_order() -> None:
    msg = problems("streams:\n" + stream(", retry: {initial_s: 5, max_s: 1}"))
    assert "streams[0].retry (stream 'cam'): max_s (1.0) must not be below initial_s (5.0)" in msg


def test_http_must_be_loopback() -> None:
    msg = problems("daemon: {http: {host: 0.0.0.0}}\nstreams:\n" + stream())
    assert "daemon.http.host: host must be a loopback address" in msg


def test_missing_streams() -> None:
    assert "a topology needs at least one entry under 'streams' or 'bridges'" in problems("daemon: {}\n")


def test_empty_command() -> None:
    msg = problems("streams:\n" + stream() + "subscribers:\n  - {kind: command, name: s, command: []}\n")
    assert "subscribers[0].command (subscriber 's'): List should have at least 1 item" in msg


def test_duplicate_stream_names() -> None:
    msg = problems("streams:\n" + stream() + stream())
    assert "streams[1].name: duplicate stream name 'cam' (first used at streams[0])" in msg


def test_duplicate_subscriber_names() -> None:
    sub = "  - {kind: command, name: s, command: [x], reads: [cam]}\n"
    msg = problems("streams:\n" + stream() + "subscribers:\n" + sub + sub)
    assert "subscribers[1].name: duplicate subscriber name 's'" in msg


def test_unknown_stream_read() -> None:
    msg = problems(
        "streams:\n" + stream() + "subscribers:\n  - {kind: command, name: s, command: [x], reads: [cma]}\n"
    )
    assert "subscribers[0] (subscriber 's').reads[0]: unknown stream 'cma'" in msg


def test_unknown_stream_published() -> None:
    msg = problems(
        "streams:\n"
        + stream()
        + "subscribers:\n  - {kind: command, name: s, command: [x], publishes: [nope]}\n"
    )
    assert "subscribers[0] (subscriber 's').publishes[0]: unknown stream 'nope'" in msg


def test_cannot_publish_a_captured_stream() -> None:
    msg = problems(
        "streams:\n"
        + stream()
        + "subscribers:\n  - {kind: command, name: s, command: [x], publishes: [cam]}\n"
    )
    assert "stream 'cam' is captured by the daemon" in msg


def test_derived_stream_needs_one_publisher() -> None:
    msg = problems("streams:\n" + stream() + stream(source="{kind: derived}", name="edges"))
    assert (
        "streams[1] (stream 'edges'): a derived stream needs exactly one subscriber" in msg and "none" in msg
    )


def test_derived_stream_with_two_publishers() -> None:
    subs = "".join(
        f"  - {{kind: command, name: {n}, command: [x], reads: [cam], publishes: [edges]}}\n" for n in "ab"
    )
    msg = problems(
        "streams:\n" + stream() + stream(source="{kind: derived}", name="edges") + "subscribers:\n" + subs
    )
    assert "found 'a', 'b'" in msg


def test_pipeline_cycle() -> None:
    text = (
        "streams:\n"
        + stream(source="{kind: derived}", name="x")
        + stream(source="{kind: derived}", name="y")
        + "subscribers:\n"
        + "  - {kind: command, name: a, command: [p], reads: [x], publishes: [y]}\n"
        + "  - {kind: command, name: b, command: [p], reads: [y], publishes: [x]}\n"
    )
    assert "subscribers: pipeline cycle a -> b -> a" in problems(text)


def test_pipeline_self_cycle() -> None:
    text = (
        "streams:\n"
        + stream(source="{kind: derived}", name="x")
        + "subscribers:\n  - {kind: command, name: a, command: [p], reads: [x], publishes: [x]}\n"
    )
    assert "pipeline cycle a -> a" in problems(text)


def test_acyclic_pipeline_is_fine() -> None:
    text = (
        "streams:\n"
        + stream()
        + stream(source="{kind: derived}", name="edges")
        + "subscribers:\n"
        + "  - {kind: command, name: a, command: [p], reads: [cam], publishes: [edges]}\n"
        + "  - {kind: command, name: b, command: [p], reads: [cam, edges]}\n"
    )
    assert len(parse_config(text).subscribers) == 2


def test_every_problem_is_listed_at_once() -> None:
    msg = problems(
        "streams:\n" + stream(", fps: 0") + stream(", bogus: 1")
        + "subscribers:\n  - {kind: command, name: s, command: [x], reads: [zz]}\n"
    )  # fmt: skip
    assert "3 problems" in msg or "4 problems" in msg
    assert "fps" in msg and "bogus" in msg and "duplicate stream name" in msg and "unknown stream 'zz'" in msg


def test_yaml_syntax_error_has_line_and_column() -> None:
    msg = problems("streams:\n  - name: cam\n   width: [\n")
    assert msg.startswith("t.yaml: YAML syntax error at line 3, column 4")
    assert "Traceback" not in msg


def test_yaml_duplicate_key() -> None:
    assert "YAML syntax error at line 2, column 1: duplicate key 'streams'" in problems(
        "streams: []\nstreams: []\n"
    )


def test_top_level_must_be_a_mapping() -> None:
    assert "the top level must be a mapping" in problems("- 1\n- 2\n")


def test_memory_budget_names_the_fix(tmp_path: Path) -> None:
    topology = parse_config("streams:\n" + stream())
    found = check_memory(topology, shm_dir=str(tmp_path), ring_bytes=lambda shape, dtype, slots: 1 << 60)
    assert len(found) == 1
    assert "memory: the streams' rings need" in found[0]
    assert "--shm-size=" in found[0] and "mount -o remount,size=" in found[0]
    assert check_memory(topology, shm_dir=str(tmp_path), ring_bytes=lambda shape, dtype, slots: 1) == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config: No such file"):
        load_config(tmp_path / "nope.yaml")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)  # a directory


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"streams: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is new in 3.11")
def test_toml_config() -> None:
    text = '[[streams]]\nname = "cam"\nwidth = 64\nheight = 24\nsource = { kind = "synthetic" }\n'
    assert parse_config(text, "t.toml", toml=True).stream("cam").shape() == (24, 64, 3)
    with pytest.raises(ConfigError, match="TOML syntax error"):
        parse_config("[[streams]\n", "t.toml", toml=True)


def test_schema_lists_every_kind() -> None:
    text = json.dumps(Topology.model_json_schema())
    for kind in ("camera", "file", "url", "synthetic", "imu", "depth", "derived", "command"):
        assert f'"{kind}"' in text


@pytest.mark.parametrize("name", ["simulated.yaml", "webcam.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    topology = parse_config((CONFIG_DIR / name).read_text(), name)
    assert topology.streams
    assert all(isinstance(s, StreamConfig) for s in topology.streams)


def test_shipped_subscriber_kinds_run_their_service_and_name_their_streams() -> None:
    from framebus_services.analyzer import AnalyzerSubscriber
    from framebus_services.recorder import RecorderSubscriber

    text = """
streams:
  - {name: cam, source: {kind: synthetic}, width: 64, height: 24}
  - {name: cam.motion, source: {kind: derived}, width: 64, height: 24}
subscribers:
  - {kind: analyzer, name: a, stream: cam, publish: cam.motion, events: ev.jsonl}
  - {kind: recorder, name: r, stream: cam, out: rec, events: ev.jsonl, max_mb: 50, pre_s: 2}
  - {kind: web, name: w, listen: "0.0.0.0:9000", allow_hosts: [cam.lan], idle_timeout_s: 30}
  - {kind: view, name: v, stream: cam.motion}
"""
    topology = parse_config(text)
    analyzer, recorder, web, view = topology.subscribers
    assert isinstance(analyzer, AnalyzerSubscriber) and analyzer.publishes == ["cam.motion"]
    assert analyzer.argv()[:4] == ["{python}", "-m", "framebus_services.analyzer", "cam"]
    assert "--publish" in analyzer.argv() and "ev.jsonl" in analyzer.argv()
    assert isinstance(recorder, RecorderSubscriber) and recorder.reads == ["cam"]
    argv = recorder.argv()
    assert argv[argv.index("--max-mb") + 1] == "50" and argv[argv.index("--pre") + 1] == "2"
    assert web.argv()[web.argv().index("--listen") + 1] == "0.0.0.0:9000" and web.reads == []
    assert web.argv()[web.argv().index("--allow-host") + 1] == "cam.lan"
    assert web.argv()[web.argv().index("--idle-timeout") + 1] == "30"
    assert view.argv() == ["{python}", "-m", "framebus_services.view", "cam.motion"]
    assert view.restart.value == "never"


def test_shipped_subscriber_kinds_are_checked_like_commands() -> None:
    text = """
streams:
  - {name: cam, source: {kind: synthetic}, width: 64, height: 24}
  - {name: cam.motion, source: {kind: derived}, width: 64, height: 24}
subscribers:
  - {kind: recorder, name: r, stream: nope, out: rec, crf: 99}
  - {kind: web, name: w, listen: "localhost"}
"""
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    problems = "\n".join(error.value.problems)
    assert "subscribers[0].crf" in problems and "subscribers[1].listen" in problems
    assert "unknown stream 'nope'" in problems, "names read from the raw data when validation fails"
    assert "(stream 'cam.motion'): a derived stream needs exactly one subscriber" in problems


def test_two_recorders_of_one_stream_into_one_directory_are_reported() -> None:
    text = """
streams:
  - {name: cam, source: {kind: synthetic}, width: 64, height: 24}
subscribers:
  - {kind: recorder, name: a, stream: cam, out: rec}
  - {kind: recorder, name: b, stream: cam, out: rec/other}
  - {kind: recorder, name: c, stream: cam, out: ./rec/}
"""
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert list(error.value.problems) == [
        "subscribers[2].out (subscriber 'c'): stream 'cam' is already recorded into 'rec' by "
        "subscribers[0]; use another directory"
    ]


def test_a_fifo_named_as_the_config_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "topology.yaml"
    os.mkfifo(fifo)  # opened for reading with no writer, a plain open() would block forever
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)


def test_an_alias_bomb_is_refused_before_validation() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join(levels) + "\nstreams: *a8\n"  # 10**9 values once expanded
    with pytest.raises(ConfigError, match="aliases expand to more than"):
        parse_config(text)


def test_aliases_of_a_real_topology_still_work() -> None:
    text = (
        "streams:\n"
        "  - &video {name: a, source: {kind: synthetic}, width: 64, height: 24}\n"
        "  - {<<: *video, name: b}\n"
    )
    assert [s.name for s in parse_config(text).streams] == ["a", "b"]


def test_simulated_config_fits_its_readers_and_states_its_real_size() -> None:
    import re

    import framebus

    text = (CONFIG_DIR / "simulated.yaml").read_text()
    topology = parse_config(text, "simulated.yaml")
    need = sum(framebus.ring_bytes(s.shape(), s.dtype(), s.slots) for s in topology.streams) / 2**20
    stated = re.search(r"([\d.]+) MiB of /dev/shm in all", text)
    assert stated is not None and abs(float(stated.group(1)) - need) < 0.1, f"the comment, not {need:.1f} MiB"
    assert need < 64, "Docker's default /dev/shm"
    # The analyzer and recorder read zero-copy (one holder place each, of slots - 2); the web
    # viewer reads copies. The README's own subscriber scripts need a place too.
    slots = {s.name: s.slots for s in topology.streams}
    for name in slots:
        zero_copy = [
            s for s in topology.subscribers if s.kind in ("analyzer", "recorder", "view") and name in s.reads
        ]
        assert len(zero_copy) + 1 <= slots[name] - 2, f"{name}: no holder place left for a script"
