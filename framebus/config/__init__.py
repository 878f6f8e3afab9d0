"""The topology config: pydantic models (one per section) and the loader that reads them from files.

The models describe shapes and per-field rules (:mod:`framebus.config._models`); the loader adds
what needs the whole document or the machine: cross-references and the /dev/shm budget
(:mod:`framebus.config._load`). Services read files; the library takes these models.
"""

from ._load import CONFIG_ENV as CONFIG_ENV
from ._load import SUBSCRIBER_ENV as SUBSCRIBER_ENV
from ._load import check_groups as check_groups
from ._load import check_memory as check_memory
from ._load import check_references as check_references
from ._load import load_config as load_config
from ._load import parse_config as parse_config
from ._load import this_subscriber as this_subscriber
from ._models import IMU_COLUMNS as IMU_COLUMNS
from ._models import AnalyzerSubscriber as AnalyzerSubscriber
from ._models import BridgeConfig as BridgeConfig
from ._models import BridgeExport as BridgeExport
from ._models import BridgeImport as BridgeImport
from ._models import BridgeMode as BridgeMode
from ._models import CameraSource as CameraSource
from ._models import CommandSubscriber as CommandSubscriber
from ._models import DaemonConfig as DaemonConfig
from ._models import DepthSource as DepthSource
from ._models import DerivedSource as DerivedSource
from ._models import FileSource as FileSource
from ._models import FrameEncoding as FrameEncoding
from ._models import HttpConfig as HttpConfig
from ._models import ImuSource as ImuSource
from ._models import PixelFormat as PixelFormat
from ._models import RecorderSubscriber as RecorderSubscriber
from ._models import RestartMode as RestartMode
from ._models import RetryPolicy as RetryPolicy
from ._models import SourceConfig as SourceConfig
from ._models import StreamConfig as StreamConfig
from ._models import SubscriberConfig as SubscriberConfig
from ._models import SyntheticSource as SyntheticSource
from ._models import Topology as Topology
from ._models import UrlSource as UrlSource
from ._models import ViewSubscriber as ViewSubscriber
from ._models import WebSubscriber as WebSubscriber
from ._paths import check_devices as check_devices

__all__ = [
    "CONFIG_ENV",
    "IMU_COLUMNS",
    "SUBSCRIBER_ENV",
    "AnalyzerSubscriber",
    "BridgeConfig",
    "BridgeExport",
    "BridgeImport",
    "BridgeMode",
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
    "load_config",
    "parse_config",
    "this_subscriber",
]
