"""framebus: the newest camera and sensor frames between processes, through shared memory."""

from typing import TYPE_CHECKING

from ._errors import ConfigError as ConfigError
from ._errors import FramebusError as FramebusError
from ._errors import InvalidStreamName as InvalidStreamName
from ._errors import NotOwner as NotOwner
from ._errors import SegmentCorrupt as SegmentCorrupt
from ._errors import SegmentForeign as SegmentForeign
from ._errors import SharedMemoryFull as SharedMemoryFull
from ._errors import StreamKindMismatch as StreamKindMismatch
from ._errors import StreamNotFound as StreamNotFound
from ._errors import TooManySubscribers as TooManySubscribers
from ._errors import WriterBusy as WriterBusy
from ._errors import WriterGone as WriterGone
from ._frame import Frame as Frame
from ._layout import MIB as MIB
from ._layout import ring_bytes as ring_bytes
from ._listing import STREAM_STATES as STREAM_STATES
from ._listing import Headline as Headline
from ._listing import StreamInfo as StreamInfo
from ._listing import SubscriberInfo as SubscriberInfo
from ._listing import figures as subscriber_figures
from ._listing import streams as streams
from ._logs import configure_logging as configure_logging
from ._packet import Packet as Packet
from ._packet_publisher import PacketPublisher as PacketPublisher
from ._packet_subscriber import PacketSubscriber as PacketSubscriber
from ._publisher import Publisher as Publisher
from ._subscriber import Subscriber as Subscriber

__all__ = [
    "MIB",
    "STREAM_STATES",
    "ConfigError",
    "Frame",
    "FramebusError",
    "Headline",
    "InvalidStreamName",
    "NotOwner",
    "Packet",
    "PacketPublisher",
    "PacketSubscriber",
    "Publisher",
    "SegmentCorrupt",
    "SegmentForeign",
    "SharedMemoryFull",
    "StreamInfo",
    "StreamKindMismatch",
    "StreamNotFound",
    "Subscriber",
    "SubscriberInfo",
    "TooManySubscribers",
    "VideoCapture",
    "WriterBusy",
    "WriterGone",
    "configure_logging",
    "ring_bytes",
    "streams",
    "subscriber_figures",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # VideoCapture needs OpenCV: loaded on first use, so a subscriber that never asks for it
    # does not pay for importing cv2.
    if name == "VideoCapture":
        from ._capture import VideoCapture

        return VideoCapture
    raise AttributeError(f"module 'framebus' has no attribute {name!r}")


if TYPE_CHECKING:
    from ._capture import VideoCapture as VideoCapture
