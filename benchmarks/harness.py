"""Run one case: a spawned publisher process and one spawned process per subscriber.

Every child is joined with a timeout and killed if it overstays; the transport's endpoint is
cleaned up whatever happened. A case that fails returns its error instead of numbers.
"""

from __future__ import annotations

import queue
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

from benchmarks.cases import WARMUP_S, Case
from benchmarks.metrics import summarize
from benchmarks.roles import START_TIMEOUT_S, Signals, publisher_main, subscriber_main
from benchmarks.transports import load

JOIN_TIMEOUT_S = 20.0
COLLECT_SLACK_S = 30.0  # beyond the case's own length, before a silent child counts as hung


class CaseFailed(Exception):
    """A child reported an error, died or hung."""


def run_case(case: Case, ctx: SpawnContext) -> dict[str, Any]:
    module = load(case.transport)
    eps = [module.endpoint(case, ctx) for _ in range(case.streams)]
    readers = case.subscribers * case.streams  # subscriber i reads stream i // case.subscribers
    sig = Signals(ctx.Event(), ctx.Event(), ctx.Event())
    out: Queue[Any] = ctx.Queue()
    procs: list[BaseProcess] = []
    try:
        for stream, ep in enumerate(eps):
            procs.append(_start(ctx, publisher_main, case, ep, stream, sig, out))
        _expect(out, "created", case.streams, START_TIMEOUT_S, procs)
        for index in range(readers):
            ep = eps[index // case.subscribers]
            procs.append(_start(ctx, subscriber_main, case, ep, index, sig, out))
        _expect(out, "ready", readers, START_TIMEOUT_S, procs)
        sig.go.set()
        pubs = _expect(out, "pub", case.streams, WARMUP_S + case.seconds + COLLECT_SLACK_S, procs)
        sig.stop.set()
        subs = _expect(out, "sub", readers, COLLECT_SLACK_S, procs)
        sig.done.set()
        return summarize(case, _by_index(pubs), _by_index(subs))
    except CaseFailed as exc:
        return {**case.as_dict(), "error": str(exc)}
    finally:
        sig.stop.set()
        sig.done.set()
        _join_all(procs)
        for ep in eps:
            module.cleanup(ep)
        out.close()


def _by_index(messages: list[Any]) -> list[dict[str, Any]]:
    """The results of ("kind", index, result) messages, in index order."""
    return [m[-1] for m in sorted(messages, key=lambda m: m[1])]


def _start(ctx: SpawnContext, target: Any, *args: Any) -> BaseProcess:
    proc = ctx.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _expect(out: Queue[Any], kind: str, count: int, timeout: float, procs: list[BaseProcess]) -> list[Any]:
    """`count` messages of `kind` from the children; CaseFailed on an error message or a timeout."""
    got: list[Any] = []
    while len(got) < count:
        try:
            message = out.get(timeout=timeout)
        except queue.Empty:
            codes = [p.exitcode for p in procs]
            raise CaseFailed(f"no {kind!r} message within {timeout:g} s; child exit codes {codes}") from None
        if message[0] == "error":
            raise CaseFailed(f"{message[1]}: {message[2]}")
        if message[0] != kind:
            raise CaseFailed(f"expected {kind!r}, got {message[0]!r}")
        got.append(message)
    return got


def _join_all(procs: list[BaseProcess]) -> None:
    for proc in procs:
        proc.join(JOIN_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(JOIN_TIMEOUT_S)
        proc.close()
