"""Streams between hosts over Zenoh: export local streams to keys, import keys as local streams.

A front-end of the bus, not part of it: it uses the public Publisher/Subscriber API, and needs
the optional dependency (``pip install 'framebus[bridge]'``). Run it with ``framebus bridge
CONFIG`` or from a topology's ``bridges:`` section under ``framebus run``/``daemon``.
"""

from ._bridge import Bridge as Bridge
from ._bridge import LinkStats as LinkStats
from ._wire import Header as Header
from ._wire import WireError as WireError

__all__ = ["Bridge", "Header", "LinkStats", "WireError"]
