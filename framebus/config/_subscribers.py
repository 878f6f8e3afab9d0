"""Subscribers: any command, or a shipped service (recorder, analyzer, web, view) by ``kind``.

A new subscriber kind is one more model in SubscriberConfig whose ``argv()`` says how it runs
and whose ``reads``/``publishes`` name its streams for the loader's reference checks.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ._base import RetryPolicy, StreamName, _Model


class RestartMode(str, Enum):
    """When ``framebus run`` restarts a subscriber process that exited."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"  # only after a non-zero exit or a signal
    NEVER = "never"


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


HostName = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")]
X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]


class RecorderSubscriber(_Service):
    """``framebus record``: segmented H.264 MP4 (video) or .npy (other arrays) with a sidecar each."""

    kind: Literal["recorder"]
    stream: StreamName
    out: Path = Field(description="directory of the segments; relative to the config file's folder")
    segment_s: float = Field(default=60.0, ge=0.1, le=86400, description="seconds per segment")
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
    threads: int = Field(default=2, ge=1, le=64, description="x264 threads (2: 1080p30 keeps up)")

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
            "--threads",
            str(self.threads),
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
    events_max_mb: float = Field(
        default=10.0, gt=0, le=100_000, description="rotate the events file to FILE.1 beyond this size"
    )
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
            argv += ["--events", str(self.events), "--events-max-mb", _seconds(self.events_max_mb)]
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
    allow_hosts: list[HostName] = Field(
        default_factory=list,
        description="host names it may be reached by besides IP addresses, localhost and the box's name",
    )
    idle_timeout_s: float = Field(
        default=15.0, gt=0, le=3600, description="close a live view that asks for no frame this long"
    )

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
            "--idle-timeout",
            _seconds(self.idle_timeout_s),
        ]
        for stream in self.streams:
            argv += ["--stream", stream]
        for host in self.allow_hosts:
            argv += ["--allow-host", host]
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
