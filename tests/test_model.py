"""The ring protocol, model-checked (issue 13): framebus/ring.pml under the Spin model checker.

Each configuration is explored exhaustively against every property of the model. Then each guard
of the real protocol is removed from the model, one at a time, and Spin must find a
counterexample that breaks the property the guard is there for: a model that cannot fail fails.
The model's quotes of the code must exist and come in the code's order, so that neither a step
nor its place in its function can change unnoticed (shown on code mutants below).
"""

from __future__ import annotations

import ast
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
# The module's checks share one fixture that runs every configuration and mutation (minutes: the
# in-place reuse configuration alone explores 65M states); its setup counts against the first test.
pytestmark = pytest.mark.timeout(1800)
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("FRAMEBUS_REQUIRE_TOOLS") == "1"

# Configurations (spin -D flags), each explored exhaustively. FR1 frames from the first writer
# (the round robin reuses a published slot from frame 4 on), FR2 = 1 from its replacement, which
# takes the dead writer's segment over in place (a new generation) or creates a new one.
# RELEASE_THREAD: the holder's frame is released by a second thread, at any step.
CONFIGS = {
    "steady": "-DFR1=4 -DNO_KILL_W -DNO_KILL_H -DRELEASE_THREAD",  # no crash; the ring wraps
    "reader-crash": "-DFR1=3 -DNO_KILL_W",  # the holder is SIGKILLed anywhere, replaced, reaped
    # the writer is SIGKILLed anywhere, mid-frame too; its replacement takes the segment over in
    # place (readers still attached see the generation change), or creates a new one
    "writer-crash-in-place": "-DFR1=1 -DFR2=2 -DNO_KILL_H -DTAKEOVER=1 -DRELEASE_THREAD",
    "writer-crash-new-segment": "-DFR1=2 -DNO_KILL_H -DTAKEOVER=2",
    "both-crash": "-DFR1=1 -DTAKEOVER=1 -DRELEASE_THREAD",  # both, in one run (the new segment: above)
    # a live writer whose loan() block raises once: the slot is given back, nothing published
    "loan-raises": "-DFR1=3 -DNO_KILL_W -DNO_KILL_H -DABANDON=1",
    # the replacement reuses the dead writer's slots and LATEST words (its seq 1 in the same slot,
    # then reclaimed): a stalled reader sees the same word twice across the takeover (issue 19).
    # The largest: minutes, so it starts first and overlaps the others.
    "writer-crash-in-place-reuse": "-DFR1=2 -DFR2=3 -DNO_KILL_H -DTAKEOVER=1",
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
    "MUT_UNPIN_PLAIN_STORE": ("steady", {"P1"}),
    "MUT_ACCEPT_EQUAL_SEQ": ("steady", {"P7"}),
    "MUT_VERDICT_BEFORE_GEN": ("writer-crash-in-place", {"P2"}),
    "MUT_ABANDON_RESTORES": ("loan-raises", {"P2"}),
}
# The issues name these; the list above must keep them.
REQUIRED_MUTATIONS = {
    "MUT_NO_RESCAN",
    "MUT_NO_PIN_RECHECK",
    "MUT_NO_WAITERS_FENCE",
    "MUT_NO_REAP_LOCK",
    "MUT_UNPIN_PLAIN_STORE",
    "MUT_ACCEPT_EQUAL_SEQ",
}

MEMORY_MB = 1500  # per check; the CI configurations need ~350 ...
LARGEST = "writer-crash-in-place-reuse"  # ... but this one, ~60M states: more memory and time
LARGEST_MEMORY_MB = 6000


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


def _run(flags: str, optimize: str, memory_mb: int = MEMORY_MB) -> Check:
    spin, cc = _tools()
    with tempfile.TemporaryDirectory(prefix="framebus-model-") as tmp:

        def step(*args: str) -> str:
            # (a guard against a hang, not a budget: a loaded box may need many times the usual)
            proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=3600)
            assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}{proc.stderr}"
            return proc.stdout

        step(spin, *flags.split(), "-a", str(MODEL))
        # SAFETY: assertions and deadlocks only; COLLAPSE: exhaustive, with compressed states
        step(cc, optimize, "-w", "-DSAFETY", "-DCOLLAPSE", f"-DMEMLIM={memory_mb}", "-o", "pan", "pan.c")
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
    jobs = {
        name: (flags, "-O1", LARGEST_MEMORY_MB if name == LARGEST else MEMORY_MB)
        for name, flags in configs.items()
    }
    for flag, (config, _) in MUTATIONS.items():
        # A counterexample comes early, so a fast compile beats a fast search.
        jobs[flag] = (f"{CONFIGS[config]} -D{flag}", "-O0", MEMORY_MB)
    with ThreadPoolExecutor(max_workers=2) as pool:  # (in order: the largest first)
        futures = {name: pool.submit(_run, *job) for name, job in sorted(jobs.items(), key=_cost)}
        yield {name: future.result() for name, future in futures.items()}


def _cost(job: tuple[str, tuple[str, str, int]]) -> int:
    return 0 if job[0] == LARGEST else 1


def test_every_guard_of_the_model_has_a_mutation_check() -> None:
    flags = set(re.findall(r"\bMUT_[A-Z_]+", MODEL.read_text()))
    assert flags == set(MUTATIONS)
    assert set(MUTATIONS) >= REQUIRED_MUTATIONS


QUOTE = re.compile(r"@(map|again) (framebus/\S+): (.*?)\s*(?:\*/|$)")
# A model block: an inline or a proctype, from its header to its closing brace.
BLOCK_START, BLOCK_END = re.compile(r"^(?:inline|active proctype|proctype)\b"), re.compile(r"^}")
C_FUNCTION = re.compile(r"\n(\w+)\([^;{]*?\)\n{\n.*?\n}\n", re.DOTALL)


def model_blocks(model: str) -> list[list[tuple[str, str, str]]]:
    """The model's quotes (kind, file, code), block by block, each in the model's order. A line
    outside every inline and proctype (a macro) is a block of its own. Lines that only a MUT_*
    flag compiles are left out: they describe the mutant, not the code."""
    blocks: list[list[tuple[str, str, str]]] = []
    inside, stack = False, []  # stack: per #if, [is a MUT_ condition, opened negated, inactive]
    for line in model.splitlines():
        directive = re.match(r"\s*#\s*(ifdef|ifndef|if|elif|else|endif)\b(.*)", line)
        if directive:
            kind, mut = directive.group(1), "MUT_" in directive.group(2)
            if kind in ("ifdef", "ifndef", "if"):
                stack.append([mut, kind == "ifndef", mut and kind != "ifndef"])
            elif kind == "elif":
                stack[-1][2] = stack[-1][0] or mut
            elif kind == "else":
                stack[-1][2] = stack[-1][0] and stack[-1][1]
            else:
                stack.pop()
            continue
        if BLOCK_START.match(line):
            inside = True
            blocks.append([])
        elif not inside:
            blocks.append([])
        if not any(entry[2] for entry in stack):
            blocks[-1] += QUOTE.findall(line)
        if BLOCK_END.match(line):
            inside = False
    return [block for block in blocks if block]


def _functions(path: str, text: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of each function of a source file, by character offset."""
    if path.endswith(".c"):
        return [(m.start(), m.end(), m.group(1)) for m in C_FUNCTION.finditer(text)]
    starts = [0, *(i + 1 for i, c in enumerate(text) if c == "\n")]
    return [
        (starts[node.lineno - 1], starts[min(node.end_lineno or node.lineno, len(starts) - 1)], node.name)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def _occurrences(code: str, text: str, functions: list[tuple[int, int, str]]) -> list[tuple[str, int]]:
    """(innermost function, offset) of each place `code` is in `text`, whatever its whitespace."""
    pattern = r"\s+".join(re.escape(token) for token in code.split())
    found = []
    for match in re.finditer(pattern, text):
        around = [f for f in functions if f[0] <= match.start() < f[1]]
        name = min(around, key=lambda f: f[1] - f[0])[2] if around else ""
        found.append((name, match.start()))
    return found


def quote_problems(model: str, sources: dict[str, str]) -> list[str]:
    """Quotes of code that is not there, and steps out of the code's order.

    Order: within one block of the model, the quotes of one function must be a subsequence of
    that function, in the model's order (the branches of one choice are written in the code's
    order); @again quotes name a retry of code quoted before (a loop back), so only their
    existence is checked. A quote that several functions contain is checked in the function
    that the block's other quotes pin down."""
    problems: list[str] = []
    functions = {path: _functions(path, text) for path, text in sources.items()}
    for block in model_blocks(model):
        located = []
        for kind, path, code in block:
            where = _occurrences(code, sources.get(path, ""), functions.get(path, []))
            if not where:
                problems.append(f"{path}: {code}: not in the code")
            elif kind == "map":
                located.append((path, code, where))
        homes = {(path, where[0][0]) for path, _, where in located if len({f for f, _ in where}) == 1}
        for path, function in sorted(homes):
            if not function:
                continue
            at = -1
            for quoted_path, code, where in located:
                places = [offset for f, offset in where if quoted_path == path and f == function]
                if not places:
                    continue
                after = [offset for offset in places if offset >= at]
                if not after:
                    problems.append(
                        f"{path}: {function}: {code!r} comes earlier in the code than the model says"
                    )
                    break
                at = min(after)
    return problems


def _sources() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text()
        for p in (ROOT / "framebus").rglob("*")
        if p.suffix in (".py", ".c")
    }


def test_the_model_quotes_code_that_exists_in_its_order() -> None:
    """Each "@map <file>: <code>" comment quotes a statement of that file, and the quoted steps
    of one function come in the function's order: the code cannot change, nor its statements
    move, without the model noticing."""
    model = MODEL.read_text()
    assert len(QUOTE.findall(model)) > 30
    problems = quote_problems(model, _sources())
    assert not problems, "the model and the code differ:\n" + "\n".join(problems)


# Changes of the code that the quote check must catch, deterministically. Moved: (file, a part
# of the first line, how many lines, a part of the line they move before).
MOVED_LINES = {
    # publish's LATEST store before its state store
    "swapped-publish-stores": ("framebus/_atomic.c", "store_n(latest, word", 1, "store_n(state, seq"),
    # rp_copy's fence and state re-check before its copy
    "re-check-before-memcpy": ("framebus/_atomic.c", "the copies complete before", 3, "memcpy(out->buf"),
    # the claim's hold re-scan before its exchange
    "rescan-before-exchange": ("framebus/_ring.py", "if slot in self._held_slots()", 3, "= words.exchange("),
}
# Changed: (file, text, its replacement wherever it is).
CHANGED_CODE = {
    # unpin as a plain store: it may clear a newer frame's hold (the model: MUT_UNPIN_PLAIN_STORE)
    "plain-store-unpin": (
        "framebus/_atomic.c",
        "return __atomic_compare_exchange_n(self->hold, &word, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);",
        "__atomic_store_n(self->hold, 0, __ATOMIC_RELEASE); return 1;",
    ),
    # wait() takes the same seq again (the model: MUT_ACCEPT_EQUAL_SEQ)
    "equal-seq": ("framebus/_atomic.c", ">> 8 > last_seq) {", ">> 8 >= last_seq) {"),
    # the verdict of corruption before the generation re-check (the model: MUT_VERDICT_BEFORE_GEN)
    "verdict-before-gen": ("framebus/_atomic.c", "FromLong(rp_verdict(self, word, -2))", "FromLong(-2)"),
}


def _moved(text: str, part: str, count: int, before: str) -> str:
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if part in line)
    moved, rest = lines[first : first + count], lines[:first] + lines[first + count :]
    at = next(i for i, line in enumerate(rest) if before in line)
    return "".join(rest[:at] + moved + rest[at:])


@pytest.mark.parametrize("mutant", [*MOVED_LINES, *CHANGED_CODE])
def test_the_quote_check_catches_a_changed_or_moved_step(mutant: str) -> None:
    sources = _sources()
    if mutant in MOVED_LINES:
        path, part, count, before = MOVED_LINES[mutant]
        sources[path] = _moved(sources[path], part, count, before)
    else:
        path, text, changed = CHANGED_CODE[mutant]
        assert text in sources[path]
        sources[path] = sources[path].replace(text, changed)
    assert quote_problems(MODEL.read_text(), sources), f"{mutant}: the quote check passes"


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
