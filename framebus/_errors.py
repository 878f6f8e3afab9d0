"""The framebus exception tree: one root, each subclass says who broke what."""

from __future__ import annotations


class FramebusError(Exception):
    """Base class for every framebus error."""


class StreamNotFound(FramebusError):
    """No stream of that name exists on this box (or its writer has not created it yet)."""


class InvalidStreamName(FramebusError, ValueError):
    """A stream name that framebus refuses (empty, too long, or a character outside [A-Za-z0-9_.-]);
    also a ValueError, as it is an argument the caller got wrong."""


class NotOwner(FramebusError):
    """A zero-copy Subscriber used from a thread other than its first reader's, or in a forked
    child: each thread (and each process) needs its own, or copy=True."""


class WriterGone(FramebusError):
    """The stream's writer died or closed; the subscriber re-attaches when a writer returns."""


class WriterBusy(FramebusError):
    """Another live process already writes this stream; a stream has exactly one writer."""


class SegmentCorrupt(FramebusError):
    """A segment's bytes are not a valid framebus layout: corrupted, truncated or foreign."""


class StreamKindMismatch(SegmentCorrupt):
    """The stream exists but carries another kind of data: frames where encoded packets were
    expected, or the other way round. The message names the class that reads it."""


class SegmentForeign(FramebusError):
    """The segment belongs to another user; framebus refuses to use or replace it."""


class TooManySubscribers(FramebusError):
    """Every subscriber entry (or every zero-copy holder entry) of the stream is taken."""


class SharedMemoryFull(FramebusError):
    """/dev/shm has too little free space for the requested ring."""


class ConfigError(FramebusError):
    """A topology config is invalid; the message lists every problem with its field path."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        #: Each problem on its own, prefixed with its field path (empty for file-level errors).
        self.problems = problems
