"""The topology config: pydantic models (one per section) and the loader that reads them from files.

The models describe shapes and per-field rules, one module per section (``_streams``,
``_subscribers``, ``_bridges``, ``_topology``); ``_parse`` turns text into data strictly; the
loader (``_load``) adds what needs the whole document or the machine: cross-references, groups
and the /dev/shm budget. Services read files; the library takes these models.
"""

from ._base import RetryPolicy as RetryPolicy
from ._bridges import BridgeConfig as BridgeConfig
from ._bridges import BridgeExport as BridgeExport
from ._bridges import BridgeImport as BridgeImport
from ._bridges import BridgeMode as BridgeMode
from ._bridges import FrameEncoding as FrameEncoding
from ._load import CONFIG_ENV as CONFIG_ENV
from ._load import SUBSCRIBER_ENV as SUBSCRIBER_ENV
from ._load import check_groups as check_groups
from ._load import check_memory as check_memory
from ._load import check_references as check_references
from ._load import load_config as load_config
from ._load import parse_config as parse_config
from ._load import this_subscriber as this_subscriber
from ._load import this_topology as this_topology
from ._paths import check_devices as check_devices
from ._security import BridgeTls as BridgeTls
from ._security import exposure_warnings as exposure_warnings
from ._streams import IMU_COLUMNS as IMU_COLUMNS
from ._streams import CameraSource as CameraSource
from ._streams import DepthSource as DepthSource
from ._streams import DerivedSource as DerivedSource
from ._streams import FileSource as FileSource
from ._streams import ImuSource as ImuSource
from ._streams import PixelFormat as PixelFormat
from ._streams import SourceConfig as SourceConfig
from ._streams import StreamConfig as StreamConfig
from ._streams import SyntheticSource as SyntheticSource
from ._streams import UrlSource as UrlSource
from ._subscribers import AnalyzerSubscriber as AnalyzerSubscriber
from ._subscribers import CommandSubscriber as CommandSubscriber
from ._subscribers import RecorderSubscriber as RecorderSubscriber
from ._subscribers import RestartMode as RestartMode
from ._subscribers import SubscriberConfig as SubscriberConfig
from ._subscribers import ViewSubscriber as ViewSubscriber
from ._subscribers import WebSubscriber as WebSubscriber
from ._topology import DaemonConfig as DaemonConfig
from ._topology import HttpConfig as HttpConfig
from ._topology import Topology as Topology

__all__ = [
    "CONFIG_ENV",
    "IMU_COLUMNS",
    "SUBSCRIBER_ENV",
    "AnalyzerSubscriber",
    "BridgeConfig",
    "BridgeExport",
    "BridgeImport",
    "BridgeMode",
    "BridgeTls",
    "CameraSource",
    "CommandSubscriber",
    "DaemonConfig",
    "DepthSource",
    "DerivedSource",
    "FileSource",
    "FrameEncoding",
    "HttpConfig",
    "ImuSource",
    "PixelFormat",
    "RecorderSubscriber",
    "RestartMode",
    "RetryPolicy",
    "SourceConfig",
    "StreamConfig",
    "SubscriberConfig",
    "SyntheticSource",
    "Topology",
    "UrlSource",
    "ViewSubscriber",
    "WebSubscriber",
    "check_devices",
    "check_groups",
    "check_memory",
    "check_references",
    "exposure_warnings",
    "load_config",
    "parse_config",
    "this_subscriber",
    "this_topology",
]
