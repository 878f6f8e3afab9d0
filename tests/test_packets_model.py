"""The packet ring's hand-over rules, model-checked (issue 20): framebus/packets.pml under Spin,
as tests/test_model.py does for the frame ring: explored exhaustively clean, and each guard
removed must give a counterexample breaking the property the guard is there for."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_model import MEMORY_MB, Check, _number, _tools

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "framebus" / "packets.pml"
CONFIGS = {
    "lapping": "-DP=5",  # 5 packets through 3 descriptors and 2 byte cells: the reader is lapped
    "roomy-index": "-DP=5 -DN=4",  # the byte ring alone runs out
}
MUTATIONS = {
    "MUT_NO_RECHECK": {"P1"},
    "MUT_INVALIDATE_LATE": {"P1"},
    "MUT_PUBLISH_EARLY": {"P1"},
    "MUT_RESUME_ANYWHERE": {"P3"},
    "MUT_JOIN_ANYWHERE": {"P3"},
    "MUT_POLL_ORDER": {"deadlock"},
}


def _run(flags: str, optimize: str) -> Check:
    spin, cc = _tools()
    with tempfile.TemporaryDirectory(prefix="framebus-packets-model-") as tmp:

        def step(*args: str) -> str:
            proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}{proc.stderr}"
            return proc.stdout

        step(spin, *flags.split(), "-a", str(MODEL))
        step(cc, optimize, "-w", "-DSAFETY", "-DCOLLAPSE", f"-DMEMLIM={MEMORY_MB}", "-o", "pan", "pan.c")
        out = step("./pan", "-m100000")
    violated = re.search(r"pan:1: (.*) \(at depth", out)
    return Check(
        flags=flags,
        errors=int(_number(r"errors: (\d+)", out)),
        states=int(_number(r"(\d+) states, stored", out)),
        seconds=_number(r"elapsed time ([\d.e+]+) seconds", out),
        exhaustive=not re.search(r"search depth too small|Search not completed|MEMLIM", out),
        violated=violated.group(1) if violated else "",
        output=out,
    )


@pytest.fixture(scope="module")
def checks() -> Iterator[dict[str, Check]]:
    _tools()
    jobs = {name: (flags, "-O1") for name, flags in CONFIGS.items()}
    jobs.update({flag: (f"{CONFIGS['lapping']} -D{flag}", "-O0") for flag in MUTATIONS})
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
        yield {name: future.result() for name, future in futures.items()}


def test_every_guard_of_the_model_has_a_mutation_check() -> None:
    assert set(re.findall(r"\bMUT_[A-Z_]+", MODEL.read_text())) == set(MUTATIONS)


def test_the_model_quotes_code_that_exists() -> None:
    """Each "@map <file>: <code>" quotes a statement of that file: the code cannot change
    without the model noticing."""

    def flat(text: str) -> str:
        return " ".join(text.split())

    quotes = re.findall(r"@map (framebus/\S+): (.*?)\s*(?:\*/|$)", MODEL.read_text(), re.MULTILINE)
    assert len(quotes) > 15
    missing = [
        f"{path}: {code}" for path, code in quotes if flat(code) not in flat((ROOT / path).read_text())
    ]
    assert not missing, "the model quotes code that changed:\n" + "\n".join(missing)


@pytest.mark.parametrize("config", CONFIGS)
def test_the_packet_protocol_has_no_counterexample(checks: dict[str, Check], config: str) -> None:
    check = checks[config]
    assert check.errors == 0, f"{config}: {check.violated}\n{check.output}"
    assert check.exhaustive, check.output
    print(f"{config} ({check.flags}): {check.states} states, {check.seconds:.1f} s")


@pytest.mark.parametrize("flag", MUTATIONS)
def test_removing_a_guard_gives_a_counterexample(checks: dict[str, Check], flag: str) -> None:
    check = checks[flag]
    assert check.errors >= 1, f"{flag}: the model cannot tell this guard is missing"
    assert check.properties & MUTATIONS[flag], f"{flag} broke {check.violated}, expected {MUTATIONS[flag]}"
    print(f"{flag}: {check.violated} after {check.states} states, {check.seconds:.1f} s")
