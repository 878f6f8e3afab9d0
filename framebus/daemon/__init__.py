"""The capture daemon: one owner per device, a paced capture loop per stream, and the control plane.

Import :class:`framebus.daemon.daemon.Daemon` where it is needed; this package imports nothing at
load, so ``framebus.testing`` can take a synthetic source without pulling in aiohttp.
"""
