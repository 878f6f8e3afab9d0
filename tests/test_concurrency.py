"""Guarantees 1-3 across real processes: no torn frame, held frames stable, readers progress."""

from __future__ import annotations

import pytest

from _workers import check_frames, write_flat_out
from mp import CTX, children, join_ok

SECONDS = 3.0


@pytest.mark.parametrize("shape", [(120, 160, 3), (8, 1024)])
def test_unthrottled_writer_never_shows_a_torn_or_changing_frame(name: str, shape: tuple[int, ...]) -> None:
    ready, stop, results = CTX.Event(), CTX.Event(), CTX.Queue()
    with children() as start:
        writer = start(write_flat_out, name, shape, ready, stop)
        assert ready.wait(30)
        readers = [
            start(check_frames, name, False, SECONDS, 0.0, results),  # view, checks every byte
            start(check_frames, name, False, SECONDS, 0.02, results),  # view, holds frames while checking
            start(check_frames, name, True, SECONDS, 0.0, results),  # copy (seqlock) mode
        ]
        for reader in readers:
            join_ok(reader)
        stop.set()
        join_ok(writer)
        reports = [results.get(timeout=5) for _ in readers]
    results.close()
    for frames, torn, out_of_order, held_changed in reports:
        assert frames > 20, f"a reader made too little progress: {reports}"
        assert (torn, out_of_order, held_changed) == (0, 0, 0), reports
