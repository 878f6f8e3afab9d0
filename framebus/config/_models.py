"""The topology config: pydantic models of streams, their sources, and subscribers.

One model per section, every model frozen and ``extra="forbid"`` so a typo is an error, not a
silently ignored key. Sources and subscribers are discriminated unions on ``kind``: a new kind
(the shipped recorder, analyzer and display) is one more model in the union, and every existing
config stays valid. Loading from a file and the cross-reference and memory checks live in
:mod:`framebus.config._load`; this module only describes shapes and per-field rules.
"""

from __future__ import annotations

import ipaddress
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._layout import DEFAULT_SLOTS, MAX_SLOTS, MIN_SLOTS
from .._names import NAME_PATTERN

# Same rule as the core's stream names: they become /dev/shm/framebus.<name>.
StreamName = Annotated[str, Field(pattern=NAME_PATTERN, description="letters, digits, '_', '-', '.'")]
_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
IMU_COLUMNS = 7  # per sample: offset from the frame timestamp (s), accel xyz (m/s^2), gyro xyz (rad/s)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PixelFormat(str, Enum):
    """How one frame's pixels are laid out in the stream."""

    BGR8 = "bgr8"  # (h, w, 3) uint8, OpenCV's native order
    RGB8 = "rgb8"  # (h, w, 3) uint8
    GRAY8 = "gray8"  # (h, w) uint8
    DEPTH16 = "depth16"  # (h, w) uint16, millimetres


class RestartMode(str, Enum):
    """When ``framebus run`` restarts a subscriber process that exited."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"  # only after a non-zero exit or a signal
    NEVER = "never"


class RetryPolicy(_Model):
    """Exponential backoff between attempts to (re)open a failing source or restart a process."""

    initial_s: float = Field(default=0.5, gt=0, le=3600, description="first wait, seconds")
    max_s: float = Field(default=10.0, gt=0, le=3600, description="longest wait, seconds")
    factor: float = Field(default=2.0, ge=1.0, le=10.0, description="each wait is the previous times this")

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryPolicy:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must not be below initial_s ({self.initial_s})")
        return self


class CameraSource(_Model):
    """A V4L2 camera through OpenCV; the daemon is the device's only owner."""

    kind: Literal["camera"]
    device: int | str = Field(description="index (0 for /dev/video0) or a device path")
    fourcc: str | None = Field(
        default=None, description="pixel format asked of the driver, e.g. MJPG or YUYV"
    )
    buffer_size: int = Field(
        default=1, ge=1, le=16, description="driver buffers; 1 means frames are never stale"
    )
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=2.0, gt=0, le=120)

    @field_validator("fourcc")
    @classmethod
    def _four_chars(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 4 or not value.isascii()):
            raise ValueError(f"fourcc must be exactly 4 ASCII characters, e.g. 'MJPG', not {value!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device_shape(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("device index must be 0 or more")
        if isinstance(value, str) and not value.startswith("/"):
            raise ValueError(f"device must be an index or an absolute path like /dev/video0, not {value!r}")
        return value


class FileSource(_Model):
    """A video file, looped or played once."""

    kind: Literal["file"]
    path: Path
    loop: bool = True
    pace: Literal["stream", "file"] = Field(
        default="stream", description="publish at the stream's fps, or at the rate stored in the file"
    )


class UrlSource(_Model):
    """A network camera (RTSP, HTTP MJPEG, ...) through OpenCV's FFmpeg backend."""

    kind: Literal["url"]
    url: str
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=5.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in _URL_SCHEMES:
            raise ValueError(f"url must start with one of {', '.join(s + '://' for s in _URL_SCHEMES)}")
        return value


class SyntheticSource(_Model):
    """A moving test pattern with the frame's sequence number and timestamp drawn into its top rows."""

    kind: Literal["synthetic"]
    speed_px: int = Field(default=4, ge=0, le=256, description="pixels the pattern moves per frame")
    stamp: bool = Field(default=True, description="draw the sequence number and timestamp as a bar code")


class ImuSource(_Model):
    """A simulated IMU: each frame is a batch of float32 samples (offset_s, ax, ay, az, gx, gy, gz)."""

    kind: Literal["imu"]
    rate_hz: float = Field(default=200.0, gt=0, le=100_000, description="samples per second")
    noise: float = Field(default=0.02, ge=0, le=100, description="standard deviation added to every axis")


class DepthSource(_Model):
    """A simulated depth camera: uint16 millimetres with a moving object."""

    kind: Literal["depth"]
    min_mm: int = Field(default=300, ge=0, le=65535)
    max_mm: int = Field(default=5000, ge=1, le=65535)

    @model_validator(mode="after")
    def _range(self) -> DepthSource:
        if self.min_mm >= self.max_mm:
            raise ValueError(f"min_mm ({self.min_mm}) must be below max_mm ({self.max_mm})")
        return self


class DerivedSource(_Model):
    """Published by a subscriber process (a pipeline stage), not captured by the daemon."""

    kind: Literal["derived"]


SourceConfig = Annotated[
    CameraSource | FileSource | UrlSource | SyntheticSource | ImuSource | DepthSource | DerivedSource,
    Field(discriminator="kind"),
]
_SYNTHETIC_MIN = (24, 64)  # (height, width): room for the 2 x 8-row, 64-cell stamp bar code


class StreamConfig(_Model):
    """One stream: its name, where its frames come from, and the ring that holds them."""

    name: StreamName
    source: SourceConfig
    width: int | None = Field(default=None, gt=0, le=16384, description="pixels; image and depth streams")
    height: int | None = Field(default=None, gt=0, le=16384, description="pixels; image and depth streams")
    format: PixelFormat | None = Field(default=None, description="default bgr8 for images, depth16 for depth")
    fps: float = Field(default=30.0, gt=0, le=1000, description="frames per second published")
    slots: int = Field(
        default=DEFAULT_SLOTS,
        ge=MIN_SLOTS,
        le=MAX_SLOTS,
        description="frames in the ring; slots - 2 zero-copy readers may hold one",
    )
    group: str | None = Field(default=None, description="POSIX group given read access (mode 0660)")
    retry: RetryPolicy = RetryPolicy()

    @model_validator(mode="after")
    def _geometry(self) -> StreamConfig:
        kind = self.source.kind
        if kind == "imu":
            if self.width is not None or self.height is not None or self.format is not None:
                raise ValueError("an imu stream takes no width, height or format (its shape is samples x 7)")
            if self.samples_per_frame() < 1:
                raise ValueError(f"imu rate_hz must be at least the stream fps ({self.fps})")
            return self
        if self.width is None or self.height is None:
            raise ValueError(f"a {kind} stream needs width and height")
        if kind == "depth" and self.format not in (None, PixelFormat.DEPTH16):
            raise ValueError("a depth stream's format must be depth16")
        if kind in ("camera", "file", "url", "synthetic") and self.format is PixelFormat.DEPTH16:
            raise ValueError(f"a {kind} stream cannot have format depth16")
        if kind == "synthetic" and (self.height < _SYNTHETIC_MIN[0] or self.width < _SYNTHETIC_MIN[1]):
            raise ValueError("a synthetic stream needs width >= 64 and height >= 24 for its stamp")
        return self

    def pixel_format(self) -> PixelFormat | None:
        """The effective pixel format (``None`` for imu streams)."""
        if self.source.kind == "imu":
            return None
        if self.format is not None:
            return self.format
        return PixelFormat.DEPTH16 if self.source.kind == "depth" else PixelFormat.BGR8

    def samples_per_frame(self) -> int:
        """IMU samples in one frame (0 for other kinds)."""
        if not isinstance(self.source, ImuSource):
            return 0
        return int(self.source.rate_hz / self.fps + 1e-9)

    def shape(self) -> tuple[int, ...]:
        """The numpy shape of one frame."""
        fmt = self.pixel_format()
        if fmt is None:
            return (self.samples_per_frame(), IMU_COLUMNS)
        assert self.height is not None and self.width is not None  # ensured by _geometry
        if fmt in (PixelFormat.BGR8, PixelFormat.RGB8):
            return (self.height, self.width, 3)
        return (self.height, self.width)

    def dtype(self) -> str:
        """The numpy dtype name of one frame."""
        fmt = self.pixel_format()
        if fmt is None:
            return "float32"
        return "uint16" if fmt is PixelFormat.DEPTH16 else "uint8"

    def captured(self) -> bool:
        """True if the daemon owns this stream (False for streams a subscriber publishes)."""
        return self.source.kind != "derived"


class CommandSubscriber(_Model):
    """Any program that attaches to streams by name, run and supervised by ``framebus run``."""

    kind: Literal["command"]
    name: StreamName
    command: list[str] = Field(min_length=1, description="argv; '{python}' becomes this interpreter")
    reads: list[StreamName] = Field(default_factory=list, description="streams it subscribes to")
    publishes: list[StreamName] = Field(default_factory=list, description="derived streams it writes")
    env: dict[str, str] = Field(default_factory=dict)
    restart: RestartMode = RestartMode.ON_FAILURE
    backoff: RetryPolicy = RetryPolicy(initial_s=1.0, max_s=30.0)

    @field_validator("command")
    @classmethod
    def _program_not_empty(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the program (first element) must not be empty")
        return value

    def argv(self) -> list[str]:
        """The command line that runs it ('{python}' is expanded by whoever starts it)."""
        return list(self.command)


class _Service(_Model):
    """A shipped subscriber (``framebus_services``): its fields say what it reads and publishes."""

    name: StreamName
    env: dict[str, str] = Field(default_factory=dict)
    restart: RestartMode = RestartMode.ON_FAILURE
    backoff: RetryPolicy = RetryPolicy(initial_s=1.0, max_s=30.0)

    @property
    def reads(self) -> list[str]:
        """Streams it subscribes to (for the loader's reference checks)."""
        stream = getattr(self, "stream", None)
        return [stream] if isinstance(stream, str) else []

    @property
    def publishes(self) -> list[str]:
        """Derived streams it writes."""
        return []


def _seconds(value: float) -> str:
    return f"{value:g}"


X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]


class RecorderSubscriber(_Service):
    """``framebus record``: segmented H.264 MP4 (video) or .npy (other arrays) with a sidecar each."""

    kind: Literal["recorder"]
    stream: StreamName
    out: Path = Field(description="directory of the segments; relative to where `framebus run` starts")
    segment_s: float = Field(default=60.0, gt=0, le=86400, description="seconds per segment")
    max_mb: float | None = Field(
        default=None, gt=0, description="retention: total MB of this stream's segments"
    )
    max_age_h: float | None = Field(
        default=None, gt=0, description="retention: delete segments older than this"
    )
    events: Path | None = Field(
        default=None, description="record clips on the events in this file (analyzer)"
    )
    triggers: list[str] = Field(default_factory=lambda: ["motion"], min_length=1, description="event types")
    pre_s: float = Field(default=5.0, ge=0, le=120, description="clip pre-roll, kept encoded in memory")
    post_s: float = Field(default=10.0, ge=0, le=3600, description="clip length after the last event")
    preset: X264Preset = Field(default="ultrafast", description="x264 speed/size trade-off")
    crf: int = Field(default=23, ge=0, le=51, description="x264 quality (lower is better, larger)")

    def argv(self) -> list[str]:
        argv = [
            "{python}",
            "-m",
            "framebus_services.recorder",
            self.stream,
            "--out",
            str(self.out),
            "--segment",
            _seconds(self.segment_s),
            "--preset",
            self.preset,
            "--crf",
            str(self.crf),
        ]
        if self.max_mb is not None:
            argv += ["--max-mb", _seconds(self.max_mb)]
        if self.max_age_h is not None:
            argv += ["--max-age-h", _seconds(self.max_age_h)]
        if self.events is not None:
            argv += [
                "--events",
                str(self.events),
                "--pre",
                _seconds(self.pre_s),
                "--post",
                _seconds(self.post_s),
            ]
            for trigger in self.triggers:
                argv += ["--trigger", trigger]
        return argv


class AnalyzerSubscriber(_Service):
    """``framebus analyze``: motion, quality and health events; optionally an annotated stream."""

    kind: Literal["analyzer"]
    stream: StreamName
    events: Path | None = Field(default=None, description="also append the events (JSON lines) to this file")
    publish: StreamName | None = Field(default=None, description="derived stream with motion boxes drawn")
    min_area: int = Field(default=400, ge=1, description="pixels (of the frame) a moving region must cover")
    threshold: int = Field(default=25, ge=1, le=255, description="grey-level change that counts as motion")
    cooldown_s: float = Field(default=5.0, ge=0, le=3600, description="seconds between two motion events")
    health_s: float = Field(default=10.0, gt=0, le=3600, description="seconds between health events")

    @property
    def publishes(self) -> list[str]:
        return [self.publish] if self.publish else []

    def argv(self) -> list[str]:
        argv = [
            "{python}",
            "-m",
            "framebus_services.analyzer",
            self.stream,
            "--min-area",
            str(self.min_area),
            "--threshold",
            str(self.threshold),
            "--cooldown",
            _seconds(self.cooldown_s),
            "--health",
            _seconds(self.health_s),
        ]
        if self.events is not None:
            argv += ["--events", str(self.events)]
        if self.publish is not None:
            argv += ["--publish", self.publish]
        return argv


class WebSubscriber(_Service):
    """``framebus web``: every stream in a browser (live view, fps, latency, snapshots)."""

    kind: Literal["web"]
    listen: str = Field(default="127.0.0.1:8080", description="HOST:PORT; loopback unless told otherwise")
    streams: list[StreamName] = Field(default_factory=list, description="only these (default: every stream)")
    max_clients: int = Field(default=16, ge=1, le=1024, description="live views served at once")
    quality: int = Field(default=80, ge=10, le=100, description="JPEG quality")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8080, not {value!r}")
        return value

    @property
    def reads(self) -> list[str]:
        return list(self.streams)

    def argv(self) -> list[str]:
        argv = [
            "{python}",
            "-m",
            "framebus_services.web",
            "--listen",
            self.listen,
            "--max-clients",
            str(self.max_clients),
            "--quality",
            str(self.quality),
        ]
        for stream in self.streams:
            argv += ["--stream", stream]
        return argv


class ViewSubscriber(_Service):
    """``framebus view``: a local window (needs a display and a GUI-enabled OpenCV)."""

    kind: Literal["view"]
    stream: StreamName
    restart: RestartMode = RestartMode.NEVER  # without a display, restarting cannot help

    def argv(self) -> list[str]:
        return ["{python}", "-m", "framebus_services.view", self.stream]


SubscriberConfig = Annotated[
    CommandSubscriber | RecorderSubscriber | AnalyzerSubscriber | WebSubscriber | ViewSubscriber,
    Field(discriminator="kind"),
]


def kinds(union: object) -> frozenset[str]:
    """The ``kind`` tags of a discriminated union such as SourceConfig or SubscriberConfig."""
    members = get_args(union)[0]  # Annotated[Union[...], Field(...)]; a one-member Union is the model
    models = get_args(members) or (members,)
    return frozenset(tag for model in models for tag in get_args(model.model_fields["kind"].annotation))


# A concrete Zenoh key: '/'-separated chunks, no wildcards ('*', '**', '$*'), so one key is one stream.
_KEY_PATTERN = r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$"
ZenohKey = Annotated[
    str, Field(pattern=_KEY_PATTERN, description="a Zenoh key such as site/cam0 (no wildcards)")
]
# A Zenoh locator: protocol/address[:port], e.g. tcp/192.168.1.20:7447 or tcp/[::1]:7447.
_ENDPOINT_PATTERN = r"^(tcp|udp|tls|quic|ws|unixsock-stream)/\S+$"
ZenohEndpoint = Annotated[str, Field(pattern=_ENDPOINT_PATTERN, description="e.g. tcp/192.168.1.20:7447")]


class BridgeMode(str, Enum):
    """How a bridge joins the Zenoh network."""

    PEER = "peer"  # connects to (and accepts) other peers directly
    CLIENT = "client"  # one connection to a Zenoh router (zenohd), which routes for it


class FrameEncoding(str, Enum):
    """How an exported stream's frames travel."""

    RAW = "raw"  # the array's bytes: exact, any dtype, the most bandwidth
    JPEG = "jpeg"  # uint8 gray or 3-channel images only; lossy, ~10-20x smaller


class BridgeExport(_Model):
    """A local stream published to a Zenoh key."""

    stream: StreamName
    key: ZenohKey
    encoding: FrameEncoding = FrameEncoding.RAW
    jpeg_quality: int = Field(default=90, ge=1, le=100, description="JPEG quality, with encoding: jpeg")
    max_fps: float | None = Field(
        default=None, gt=0, le=1000, description="send at most this many frames per second (newest first)"
    )


class BridgeImport(_Model):
    """A Zenoh key written into a local stream, under a local name, with the remote's shape."""

    key: ZenohKey
    stream: StreamName
    stall_after_s: float = Field(
        default=2.0, gt=0, le=3600, description="silence after which the local stream is marked stalled"
    )
    slots: int = Field(
        default=DEFAULT_SLOTS, ge=MIN_SLOTS, le=MAX_SLOTS, description="frames in the local ring"
    )
    group: str | None = Field(default=None, description="POSIX group given read access (mode 0660)")


class BridgeConfig(_Model):
    """One Zenoh session carrying streams between this box and others; runs as its own process."""

    name: StreamName
    mode: BridgeMode = BridgeMode.PEER
    listen: list[ZenohEndpoint] = Field(
        default_factory=list, description="endpoints to accept peers on, e.g. tcp/0.0.0.0:7447 (peer mode)"
    )
    connect: list[ZenohEndpoint] = Field(
        default_factory=list, description="peers or routers to connect to; retried while unreachable"
    )
    multicast_scouting: bool = Field(
        default=False, description="find peers by UDP multicast on the LAN (off: only listen/connect)"
    )
    exports: list[BridgeExport] = Field(default_factory=list)
    imports: list[BridgeImport] = Field(default_factory=list)
    backoff: RetryPolicy = RetryPolicy(initial_s=1.0, max_s=30.0)

    @model_validator(mode="after")
    def _reachable_and_useful(self) -> BridgeConfig:
        if not self.exports and not self.imports:
            raise ValueError("a bridge needs at least one entry under 'exports' or 'imports'")
        if self.mode is BridgeMode.CLIENT and self.listen:
            raise ValueError("a client does not listen; use mode: peer, or drop 'listen'")
        if not (self.listen or self.connect or self.multicast_scouting):
            raise ValueError("a bridge needs 'listen' or 'connect' endpoints (or multicast_scouting: true)")
        for what, keys in (
            ("exports", [e.key for e in self.exports]),
            ("imports", [i.key for i in self.imports]),
        ):
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise ValueError(f"{what}: key {repeated[0]!r} is listed twice")
        return self

    def streams_written(self) -> list[str]:
        """The local streams this bridge publishes (its imports)."""
        return [i.stream for i in self.imports]


class HttpConfig(_Model):
    """The daemon's control-plane HTTP API (health, streams, Prometheus metrics)."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="a loopback address; the API is never exposed")
    port: int = Field(default=8765, ge=0, le=65535, description="0 picks a free port")
    max_connections: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="connections served at once; more get 503 (fds are for capture)",
    )
    header_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="a connection must send a full request (or idle) within this"
    )

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"host must be an IP address or 'localhost', not {value!r}") from None
        if not address.is_loopback:
            raise ValueError(f"host must be a loopback address (127.0.0.1 or ::1), not {value}")
        return value


class DaemonConfig(_Model):
    """Settings of the capture daemon itself."""

    http: HttpConfig = HttpConfig()
    status_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="how often STATUS= and logs update"
    )
    ready_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="longest wait for first frames before READY=1 is sent anyway"
    )


class Topology(_Model):
    """The whole topology: the daemon, its streams, the subscribers reading them, and the bridges
    carrying streams to and from other hosts."""

    version: Literal[1] = 1
    daemon: DaemonConfig = DaemonConfig()
    streams: list[StreamConfig] = Field(default_factory=list)
    subscribers: list[SubscriberConfig] = Field(default_factory=list)
    bridges: list[BridgeConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_to_run(self) -> Topology:
        if not self.streams and not self.bridges:
            raise ValueError("a topology needs at least one entry under 'streams' or 'bridges'")
        return self

    def stream(self, name: str) -> StreamConfig:
        """The stream called `name`; KeyError if there is none."""
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise KeyError(name)
