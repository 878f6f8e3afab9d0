"""Benchmarks: framebus beside the memcpy floor, its own futex wake-up floor and peer transports.

Run `python benchmarks/run.py` (full) or `python benchmarks/run.py --quick`; see README.md.
"""
