"""Spawned child processes that are always joined (with a timeout) or killed."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

CTX = mp.get_context("spawn")
JOIN_TIMEOUT = 60.0  # s; generous: CI machines are shared and noisy


@contextmanager
def children() -> Iterator[Callable[..., BaseProcess]]:
    """Start children with `start(target, *args)`; on exit each is joined or, failing that, killed."""
    started: list[BaseProcess] = []

    def start(target: Callable[..., Any], *args: Any) -> BaseProcess:
        proc = CTX.Process(target=target, args=args, daemon=True)
        proc.start()
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.is_alive():
                proc.kill()
            proc.join(JOIN_TIMEOUT)
            proc.close()


def join_ok(proc: BaseProcess) -> None:
    proc.join(JOIN_TIMEOUT)
    assert proc.exitcode == 0, f"child exited with {proc.exitcode}"
