"""The ring protocol, model-checked (issue 13): framebus/ring.pml under the Spin model checker.

Each configuration is explored exhaustively against every property of the model. Then each guard
of the real protocol is removed from the model, one at a time, and Spin must find a
counterexample that breaks the property the guard is there for: a model that cannot fail fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "framebus" / "ring.pml"
# CI installs the tools (.ci/run); there a missing one is a failure, not a skip.
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("FRAMEBUS_REQUIRE_TOOLS") == "1"

# Configurations (spin -D flags), each explored exhaustively. FR1 frames from the first writer
# (the round robin reuses a published slot from frame 4 on), FR2 = 1 from its replacement, which
# takes the dead writer's segment over in place (a new generation) or creates a new one.
CONFIGS = {
    "steady": "-DFR1=4 -DNO_KILL_W -DNO_KILL_H",  # no crash; the ring wraps
    "reader-crash": "-DFR1=3 -DNO_KILL_W",  # the holder is SIGKILLed anywhere, replaced, reaped
    # the writer is SIGKILLed anywhere, mid-frame too; its replacement takes the segment over in
    # place (readers still attached see the generation change), or creates a new one
    "writer-crash-in-place": "-DFR1=1 -DFR2=2 -DNO_KILL_H -DTAKEOVER=1",
    "writer-crash-new-segment": "-DFR1=2 -DNO_KILL_H -DTAKEOVER=2",
    "both-crash": "-DFR1=1 -DTAKEOVER=1",  # both, in one run (the new segment: above)
}
# Bigger ones, minutes rather than seconds: FRAMEBUS_MODEL_DEEP=1 adds them.
DEEP_CONFIGS = {
    "steady-5": "-DFR1=5 -DNO_KILL_W -DNO_KILL_H",
    "reader-crash-4": "-DFR1=4 -DNO_KILL_W",
    "writer-crash-3": "-DFR1=3 -DNO_KILL_H",
    "writer-crash-in-place-2": "-DFR1=2 -DFR2=2 -DNO_KILL_H -DTAKEOVER=1",
    "both-crash-2": "-DFR1=2",
}

# Each guard of the real protocol, removed: the configuration that shows it, and the properties
# (P1-P6 in ring.pml) its counterexample may break.
MUTATIONS = {
    "MUT_NO_RESCAN": ("steady", {"P1"}),
    "MUT_NO_PIN_RECHECK": ("steady", {"P1", "P2"}),
    "MUT_NO_WAITERS_FENCE": ("steady", {"P4"}),
    "MUT_NO_REAP_LOCK": ("reader-crash", {"P5"}),
    "MUT_PIN_ACQ_REL": ("steady", {"P1", "P2"}),
    "MUT_CLAIM_ACQ_REL": ("steady", {"P1", "P2"}),
    "MUT_COPY_NO_FENCE": ("steady", {"P2"}),
    "MUT_PUBLISH_RELAXED": ("steady", {"P2"}),
    "MUT_POLL_ORDER": ("steady", {"P4"}),
    "MUT_REATTACH_KEEPS_SEQ": ("writer-crash-new-segment", {"P4"}),
    "MUT_NO_GEN_RECHECK": ("writer-crash-in-place", {"P6"}),
    "MUT_UNPIN_RELAXED": ("steady", {"P1"}),
}
# The issue names these four; the list above must keep them.
REQUIRED_MUTATIONS = {"MUT_NO_RESCAN", "MUT_NO_PIN_RECHECK", "MUT_NO_WAITERS_FENCE", "MUT_NO_REAP_LOCK"}

MEMORY_MB = 1500  # per check; the largest CI configuration needs ~350


@dataclass(frozen=True)
class Check:
    """One Spin run: `errors` counterexamples (it stops at the first), `states` explored."""

    flags: str
    errors: int
    states: int
    seconds: float
    exhaustive: bool
    violated: str  # the failed assertion as pan reports it, or ""
    output: str

    @property
    def properties(self) -> set[str]:
        if "invalid end state" in self.violated:
            return {"deadlock"}
        return set(re.findall(r"\b(P\d)_\w+", self.violated))


def _tools() -> tuple[str, str]:
    spin, cc = shutil.which("spin"), shutil.which("cc") or shutil.which("gcc")
    if spin and cc:
        return spin, cc
    why = "spin and a C compiler are needed (apt-get install spin gcc)"
    if REQUIRED:
        pytest.fail(why)
    pytest.skip(why)


def _run(flags: str, optimize: str) -> Check:
    spin, cc = _tools()
    with tempfile.TemporaryDirectory(prefix="framebus-model-") as tmp:

        def step(*args: str) -> str:
            proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}{proc.stderr}"
            return proc.stdout

        step(spin, *flags.split(), "-a", str(MODEL))
        # SAFETY: assertions and deadlocks only; COLLAPSE: exhaustive, with compressed states
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


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"no {pattern!r} in:\n{text}"
    return float(found.group(1))


@pytest.fixture(scope="module")
def checks() -> Iterator[dict[str, Check]]:
    """Every configuration and mutation, two at a time (the CI box has two cores)."""
    _tools()
    configs = {**CONFIGS, **(DEEP_CONFIGS if os.environ.get("FRAMEBUS_MODEL_DEEP") == "1" else {})}
    jobs = {name: (flags, "-O1") for name, flags in configs.items()}
    for flag, (config, _) in MUTATIONS.items():
        # A counterexample comes early, so a fast compile beats a fast search.
        jobs[flag] = (f"{CONFIGS[config]} -D{flag}", "-O0")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
        yield {name: future.result() for name, future in futures.items()}


def test_every_guard_of_the_model_has_a_mutation_check() -> None:
    flags = set(re.findall(r"\bMUT_[A-Z_]+", MODEL.read_text()))
    assert flags == set(MUTATIONS)
    assert set(MUTATIONS) >= REQUIRED_MUTATIONS


def test_the_model_quotes_code_that_exists() -> None:
    """Each "@map <file>: <code>" comment quotes a statement of that file (or, if the file has
    moved, of some file in framebus/): the code cannot change without the model noticing."""

    def flat(text: str) -> str:
        return " ".join(text.split())

    anywhere = flat(
        "\n".join(p.read_text() for p in (ROOT / "framebus").rglob("*") if p.suffix in (".py", ".c"))
    )
    quotes = re.findall(r"@map (framebus/\S+): (.*?)\s*(?:\*/|$)", MODEL.read_text(), re.MULTILINE)
    assert len(quotes) > 30
    missing = [
        f"{path}: {code}"
        for path, code in quotes
        if flat(code) not in (flat((ROOT / path).read_text()) if (ROOT / path).exists() else anywhere)
    ]
    assert not missing, "the model quotes code that changed:\n" + "\n".join(missing)


@pytest.mark.parametrize("config", CONFIGS)
def test_the_protocol_has_no_counterexample(checks: dict[str, Check], config: str) -> None:
    check = checks[config]
    assert check.errors == 0, f"{config}: {check.violated}\n{check.output}"
    assert check.exhaustive, check.output
    print(f"{config} ({check.flags}): {check.states} states, {check.seconds:.1f} s")


@pytest.mark.parametrize("flag", MUTATIONS)
def test_removing_a_guard_gives_a_counterexample(checks: dict[str, Check], flag: str) -> None:
    check, expected = checks[flag], MUTATIONS[flag][1]
    assert check.errors >= 1, f"{flag}: the model cannot tell this guard is missing"
    assert check.properties & expected, f"{flag} broke {check.violated}, expected {expected}"
    print(f"{flag}: {check.violated} after {check.states} states, {check.seconds:.1f} s")


@pytest.mark.skipif(os.environ.get("FRAMEBUS_MODEL_DEEP") != "1", reason="FRAMEBUS_MODEL_DEEP=1")
@pytest.mark.parametrize("config", DEEP_CONFIGS)
def test_the_protocol_has_no_counterexample_deep(checks: dict[str, Check], config: str) -> None:
    test_the_protocol_has_no_counterexample(checks, config)
