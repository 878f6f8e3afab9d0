"""Run the framebus benchmarks.

    python benchmarks/run.py            # full: every case and the scaling table, 3 runs (about 33 minutes)
    python benchmarks/run.py --quick    # the cases the targets need, 1 run (under 90 s)
    python benchmarks/run.py --scaling  # 1-16 subscribers of one stream, 1-8 streams (about 3 min)

Prints a table and writes JSON, a latency plot and RESULTS-<date>.md into benchmarks/results/.
Peers come from `pip install -e '.[bench]'`; a missing one is reported, not hidden.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    # Before numpy loads, here and in every spawned child: an idle OpenBLAS thread pool spins for
    # ~0.1 s after import, and that CPU would be billed to whichever process is being measured.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # spawned children inherit sys.path
    from benchmarks.driver import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
