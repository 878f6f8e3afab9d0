"""The topology config: pydantic models (one per section) and the loader that reads them from files.

The models describe shapes and per-field rules, one module per section (``_streams``,
``_subscribers``, ``_bridges``, ``_topology``); ``_parse`` turns text into data strictly; the
loader (``_load``) adds what needs the whole document or the machine: cross-references, groups
and the /dev/shm budget. Services read files; the library takes these models.
"""

from .._layout import DEFAULT_SLOTS as DEFAULT_SLOTS
from .._layout import MAX_SLOTS as MAX_SLOTS
from .._layout import MIN_SLOTS as MIN_SLOTS
from ._base import MIB as MIB
from ._base import RetryPolicy as RetryPolicy
from ._base import StreamName as StreamName
from ._bridges import BridgeConfig as BridgeConfig
from ._bridges import BridgeExport as BridgeExport
from ._bridges import BridgeImport as BridgeImport
from ._bridges import BridgeMode as BridgeMode
from ._bridges import FrameEncoding as FrameEncoding
from ._kinds import SOURCES as SOURCES
from ._kinds import SUBSCRIBERS as SUBSCRIBERS
from ._kinds import kinds as kinds
from ._kinds import register_kind as register_kind
from ._load import CONFIG_ENV as CONFIG_ENV
from ._load import SUBSCRIBER_ENV as SUBSCRIBER_ENV
from ._load import check_groups as check_groups
from ._load import check_memory as check_memory
from ._load import check_references as check_references
from ._load import load_config as load_config
from ._load import parse_config as parse_config
from ._load import this_subscriber as this_subscriber
from ._load import this_topology as this_topology
from ._options import Arg as Arg
from ._paths import check_devices as check_devices
from ._streams import DerivedSource as DerivedSource
from ._streams import PixelFormat as PixelFormat
from ._streams import SourceConfig as SourceConfig
from ._streams import SourceKind as SourceKind
from ._streams import StreamConfig as StreamConfig
from ._subscribers import CommandSubscriber as CommandSubscriber
from ._subscribers import RestartMode as RestartMode
from ._subscribers import Service as Service
from ._subscribers import SubscriberConfig as SubscriberConfig
from ._topology import DaemonConfig as DaemonConfig
from ._topology import HttpConfig as HttpConfig
from ._topology import Topology as Topology

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_SLOTS",
    "MAX_SLOTS",
    "MIB",
    "MIN_SLOTS",
    "SOURCES",
    "SUBSCRIBERS",
    "SUBSCRIBER_ENV",
    "Arg",
    "BridgeConfig",
    "BridgeExport",
    "BridgeImport",
    "BridgeMode",
    "CommandSubscriber",
    "DaemonConfig",
    "DerivedSource",
    "FrameEncoding",
    "HttpConfig",
    "PixelFormat",
    "RestartMode",
    "RetryPolicy",
    "Service",
    "SourceConfig",
    "SourceKind",
    "StreamConfig",
    "StreamName",
    "SubscriberConfig",
    "Topology",
    "check_devices",
    "check_groups",
    "check_memory",
    "check_references",
    "kinds",
    "load_config",
    "parse_config",
    "register_kind",
    "this_subscriber",
    "this_topology",
]
