"""The aarch64 code audit (issue 13): what the compiler makes of framebus/_atomic.c's orderings.

The ordering argument (_atomic.c, _ring.py, checked as a model in framebus/ring.pml) needs, on
aarch64: seq-cst and acquire loads as LDAR, release and seq-cst stores as STLR, full fences as
DMB ISH, and read-modify-writes as LDAXR/STLXR loops or LSE ...AL atomics (GCC's default
"outline atomics" calls a libgcc helper that picks one of the two at run time). The tests
cross-compile _atomic.c and check every control-word operation of every function against that
mapping, in program order; then they run _atomic.c's operations under qemu-aarch64 (see
tests/native/atomic_harness.c). qemu on x86 cannot show weak-memory reorderings (the guest runs
on the host's memory), so the run checks that the code builds and behaves on ARM, not its
ordering: that is what the disassembly and the model are for. (Nor is qemu 7.2 stronger than
ARM: it lets an LDAR pass an earlier STLR, which ARMv8 forbids, so an ordering stress test
under it would fail for qemu's sake.)
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "framebus" / "_atomic.c"
HARNESS = ROOT / "tests" / "native" / "atomic_harness.c"
CROSS = "aarch64-linux-gnu-gcc"
# CI installs the tools (.ci/run); there a missing one is a failure, not a skip.
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("FRAMEBUS_REQUIRE_TOOLS") == "1"
FLAGS = ["-O2", "-std=gnu11", "-fPIC", "-fwrapv", "-DNDEBUG"]  # as setup.py and Python's CFLAGS

# The argument: each function's control-word operations in program order (_atomic.c's comments).
ARGUMENT = {
    "cw_load": ["load-acquire"],
    "cw_load_sc": ["load-seq-cst"],
    "cw_store": ["store-release"],
    "cw_store_sc": ["store-seq-cst"],
    "cw_exchange": ["swap"],
    "cw_fetch_add": ["add"],
    "cw_fence": ["full-fence"],
    # full fence (frame bytes, streaming stores too); state = seq; LATEST = word; WAKE += 1;
    # WAITERS > 0?
    "cw_publish": ["full-fence", "store-release", "store-release", "add", "load-seq-cst"],
    # WAITERS += 1; fence; FUTEX_WAIT; WAITERS -= 1
    "cw_sleep": ["add", "fence", "add"],
    # ReadPort.take/wait, zero-copy: LATEST; hold = word; the slot's state (retry from LATEST);
    # then the header, the verdict (rp_verdict, not inlined), relaxed statistics (count_read)
    "rp_pin": ["load-acquire", "store-seq-cst", "load-seq-cst"],
    # copy: LATEST; the copies; fence; the slot's state (retry from LATEST); verdict; statistics
    "rp_copy": ["load-acquire", "fence", "load-acquire"],
    # the verdict on every read, right or wrong: GEN (a takeover: rp_release_hold)
    "rp_verdict": ["load-acquire"],
    # the Frame of either: STALLED
    "rp_frame": ["load-acquire"],
    # seen = WAKE; LATEST newer? (then rp_pin or rp_copy, not inlined); WAITERS += 1; fence;
    # FUTEX_WAIT; WAITERS -= 1
    "rp_wait": ["load-seq-cst", "load-acquire", "add", "fence", "add"],
    # hold: word -> 0, release on success, relaxed on failure (ReadPort.unpin, and rp_pin's
    # release of a frame read across a takeover)
    "rp_release_hold": ["cas-release"],
    # copy_frame (stream_copy inlined): x86 streaming stores, then SFENCE; elsewhere memcpy
    "mod_copy_frame": ["stream-store", "stream-fence"],
}
# Every other function (count_read's relaxed statistics among them, wherever GCC puts them) must
# compile to no ordering instruction at all: mismatches() checks each label of the assembly.

# What each may compile to where the argument holds. aarch64: an LDAR after an STLR is ordered
# (RCsc), so a seq-cst pair needs nothing more, while an acquire load may also be the weaker
# LDAPR (RCpc); the RMWs are acq_rel, as GCC maps seq-cst ones.
AARCH64 = {
    "load-acquire": ("ldar", "ldapr"),
    "load-seq-cst": ("ldar",),
    "store-release": ("stlr",),
    "store-seq-cst": ("stlr",),
    "fence": ("dmb ish",),
    "full-fence": ("dmb ish",),
}
VARIANTS = {  # name: (compiler flags, what swap, add and a release CAS compile to)
    # the default build (Debian, Raspberry Pi OS, Ubuntu): libgcc picks LSE or LL/SC at run time
    "armv8-a": (
        ["-march=armv8-a"],
        "bl __aarch64_swp8_acq_rel",
        "bl __aarch64_ldadd8_acq_rel",
        "bl __aarch64_cas8_rel",
    ),
    # GCC before 10 (e.g. an old Jetson toolchain) inlines LL/SC loops (a release CAS: a plain
    # exclusive load, a store-release exclusive)
    "armv8-a-inline": (
        ["-march=armv8-a", "-mno-outline-atomics"],
        "ldaxr/stlxr",
        "ldaxr/stlxr",
        "ldxr/stlxr",
    ),
    # ARMv8.1 and later (Pi 5, Orin) with LSE inline
    "armv8.1-a": (["-march=armv8.1-a"], "swpal", "ldaddal", "casl"),
    # with RCpc (Orin, Pi 5): GCC >= 13 compiles acquire loads to LDAPR, which an earlier STLR
    # does not order, so a load the argument needs seq-cst (LDAR) shows here if it was weakened
    # to acquire. (GCC 12 still emits LDAR: test_rcpc_shows_a_seq_cst_load_weakened says so.)
    "armv8.2-a+rcpc": (["-march=armv8.2-a+rcpc"], "swpal", "ldaddal", "casl"),
}
# x86-64 (native compiler), where TSO loads and stores are plain moves: it shows what aarch64
# cannot, a seq-cst store or fence weakened to release (both are STLR / DMB ISH on aarch64).
X86 = {
    "store-seq-cst": ("xchg",),
    "swap": ("xchg",),
    "add": ("lock rmw",),
    "cas-release": ("lock rmw",),
    "fence": ("fence", "mfence"),
    # fence() and publish(): MFENCE, which orders streaming stores (a LOCKed no-op need not)
    "full-fence": ("mfence",),
    "stream-store": ("stream",),
    "stream-fence": ("sfence",),
}
# The libgcc helpers behind "outline atomics": the LSE instruction, else an LL/SC loop.
HELPERS = {
    "__aarch64_swp8_acq_rel": ("swpal", "ldaxr", "stlxr"),
    "__aarch64_ldadd8_acq_rel": ("ldaddal", "ldaxr", "stlxr"),
    "__aarch64_cas8_rel": ("casl", "ldxr", "stlxr"),
}
Lowering = dict[str, tuple[str, ...]]


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    why = f"{names[0]} is not installed (.ci/run installs it with apt-get)"
    if REQUIRED:
        pytest.fail(why)
    pytest.skip(why)


def _compile(source: Path, compiler: str, flags: list[str], *extra: str) -> str:
    include = sysconfig.get_paths()["include"]  # x86 headers: the same LP64 layout on aarch64
    proc = subprocess.run(
        [compiler, *FLAGS, *flags, f"-I{include}", *extra, str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _assembly(source: Path, compiler: str, flags: list[str]) -> str:
    return _compile(source, compiler, flags, "-S", "-o", "-")


def ordering_instructions(assembly: str) -> dict[str, list[str]]:
    """Each function's ordering instructions, in text order."""
    functions: dict[str, list[str]] = {}
    current: list[str] = []
    for line in assembly.splitlines():
        label = re.match(r"([A-Za-z_]\w*)(?:\.\w+)*:", line)  # (GCC's clones: name.isra.0)
        if label:
            current = functions.setdefault(label.group(1), [])
        elif line.split() and not line.split()[0].startswith("."):
            op, *rest = line.split()
            token = _ordering(op, " ".join(rest), current[-1:])
            if token and not (token == "stream" and current[-1:] == ["stream"]):  # one per run
                current.append(token)
    return {name: [op for op in ops if op not in ("ldaxr", "ldxr")] for name, ops in functions.items()}


def _ordering(op: str, operands: str, previous: list[str]) -> str | None:
    """The instruction as a token if it orders memory (or is weakly ordered): an LL/SC pair as one
    "ldaxr/stlxr" (its load half is dropped later), x86 MFENCE as "mfence", LOCK OR on the stack
    (GCC's seq-cst fence) as "fence", other LOCK-prefixed RMWs as "lock rmw", streaming stores
    (MOVNT*) as "stream", SFENCE as "sfence"."""
    if op in ("ldar", "ldapr", "stlr", "ldaxr", "ldxr"):
        return op
    if op in ("stlxr", "stxr"):
        return f"{previous[0] if previous else '?'}/{op}"
    if op == "dmb":
        return f"dmb {operands}"
    if re.fullmatch(r"(swp|ldadd|ldclr|ldeor|ldset|cas)(a|l|al)?", op):
        return op
    if op in ("bl", "call") and "__aarch64_" in operands:
        return "bl " + operands.split("@")[0]
    if op.startswith("xchg"):
        return "xchg"
    if op in ("mfence", "sfence"):
        return op
    if op.startswith("movnt"):
        return "stream"
    if op == "lock" and operands.startswith("or") and "(%rsp)" in operands:
        return "fence"
    return "lock rmw" if op == "lock" else None


def expected(function: str, lowering: Lowering) -> list[tuple[str, ...]]:
    """The function's operations as the instructions each may be (those with none dropped)."""
    return [lowering[op] for op in ARGUMENT.get(function, []) if op in lowering]


def mismatches(assembly: str, lowering: Lowering) -> list[str]:
    """Functions whose ordering instructions are not the argument's: the argument's sequence,
    possibly repeated (paths the compiler duplicated) and rotated (a loop entered mid-body)."""
    functions = ordering_instructions(assembly)
    wrong = [f"{name}: not found" for name in sorted(set(ARGUMENT) - set(functions))]
    for name, found in functions.items():
        want = expected(name, lowering)
        if not _is_repetition(found, want):
            needs = " ; ".join("|".join(choices) for choices in want) or "nothing"
            wrong.append(f"{name}: {' ; '.join(found) or 'nothing'}, the argument needs {needs}")
    return wrong


def _is_repetition(found: list[str], want: list[tuple[str, ...]]) -> bool:
    if not want or not found:
        return not want and not found
    if len(found) % len(want):
        return False
    for turn in range(len(want)):
        rotated = want[turn:] + want[:turn]
        if all(op in rotated[i % len(want)] for i, op in enumerate(found)):
            return True
    return False


def _lowering(variant: str) -> Lowering:
    _, swap, add, cas = VARIANTS[variant]
    return {**AARCH64, "swap": (swap,), "add": (add,), "cas-release": (cas,)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_aarch64_instructions_match_the_argument(variant: str) -> None:
    cross = _tool(CROSS)
    assembly = _assembly(SOURCE, cross, VARIANTS[variant][0])
    assert not mismatches(assembly, _lowering(variant))
    for name in ARGUMENT:
        print(f"{variant:15} {name:13} {' ; '.join(ordering_instructions(assembly)[name])}")


def test_x86_64_instructions_match_the_argument() -> None:
    cc = _tool("cc", "gcc")
    assembly = _assembly(SOURCE, cc, [])
    assert not mismatches(assembly, X86)
    for name in ARGUMENT:
        print(f"{'x86-64':15} {name:13} {' ; '.join(ordering_instructions(assembly)[name])}")


def test_outline_atomics_helpers_are_lse_or_ll_sc() -> None:
    """The default build calls libgcc's helpers; each is the LSE instruction of its order when
    the CPU has it, else an exclusive loop of that order (LDAXR/STLXR, or LDXR/STLXR for release)."""
    cross, objdump = _tool(CROSS), _tool("aarch64-linux-gnu-objdump")
    libgcc = subprocess.run([cross, "-print-libgcc-file-name"], capture_output=True, text=True).stdout
    listing = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", libgcc.strip()], capture_output=True, text=True, timeout=120
    ).stdout
    for helper, instructions in HELPERS.items():
        body = re.search(rf"<{helper}>:\n(.*?)\n\n", listing, re.DOTALL)
        assert body, f"{helper} is not in {libgcc}"
        ops = [line.split("\t")[1].split()[0] for line in body.group(1).splitlines() if "\t" in line]
        assert all(op in ops for op in instructions), f"{helper}: {ops}"


# Changes of one memory order (or one fence) in _atomic.c: (function, text, replacement).
# Each must make the audit fail on some ISA: x86 sees weakened seq-cst stores and fences, which
# are STLR and DMB ISH on aarch64 either way; aarch64 sees the rest.
WEAKENED = [
    ("cw_load", "__ATOMIC_ACQUIRE", "__ATOMIC_RELAXED"),
    ("cw_store_sc", "__ATOMIC_SEQ_CST", "__ATOMIC_RELEASE"),
    ("cw_fence", "full_fence();", ";"),
    ("cw_fetch_add", "__ATOMIC_SEQ_CST", "__ATOMIC_RELAXED"),
    ("cw_exchange", "__ATOMIC_SEQ_CST", "__ATOMIC_ACQUIRE"),
    (
        "cw_publish",
        "__atomic_store_n(latest, word, __ATOMIC_RELEASE)",
        "__atomic_store_n(latest, word, __ATOMIC_RELAXED)",
    ),
    ("cw_publish", "full_fence();", ";"),
    # (inlined: shows in its callers) the x86 MFENCE left to GCC (LOCK OR), copy_frame's SFENCE
    (
        "full_fence",
        '__asm__ __volatile__("mfence" ::: "memory");',
        "__atomic_thread_fence(__ATOMIC_SEQ_CST);",
    ),
    ("stream_copy", "_mm_sfence();", ";"),
    ("cw_sleep", "__atomic_thread_fence(__ATOMIC_SEQ_CST);", ";"),
    (
        "rp_pin",
        "__atomic_store_n(self->hold, word, __ATOMIC_SEQ_CST)",
        "__atomic_store_n(self->hold, word, __ATOMIC_RELEASE)",
    ),
    ("rp_pin", "8 * slot), __ATOMIC_SEQ_CST)", "8 * slot), __ATOMIC_RELAXED)"),
    ("rp_pin", "self->latest, __ATOMIC_ACQUIRE", "self->latest, __ATOMIC_RELAXED"),
    ("rp_copy", "__atomic_thread_fence(__ATOMIC_SEQ_CST);", ";"),
    ("rp_copy", "8 * slot), __ATOMIC_ACQUIRE)", "8 * slot), __ATOMIC_RELAXED)"),
    ("rp_wait", "__atomic_thread_fence(__ATOMIC_SEQ_CST);", ";"),
    (
        "rp_wait",
        "__atomic_load_n(self->wake, __ATOMIC_SEQ_CST)",
        "__atomic_load_n(self->wake, __ATOMIC_RELAXED)",
    ),
    ("rp_verdict", "self->gen, __ATOMIC_ACQUIRE", "self->gen, __ATOMIC_RELAXED"),
    ("rp_frame", "self->stalled, __ATOMIC_ACQUIRE", "self->stalled, __ATOMIC_RELAXED"),
    ("rp_release_hold", "__ATOMIC_RELEASE, __ATOMIC_RELAXED", "__ATOMIC_RELAXED, __ATOMIC_RELAXED"),
]


def _mutant(tmp_path: Path, function: str, text: str, weaker: str) -> Path:
    source = SOURCE.read_text()
    start = source.index(f"\n{function}(")
    end = source.index("\n}\n", start)
    assert text in source[start:end]
    mutant = tmp_path / "_atomic.c"
    mutant.write_text(source[:start] + source[start:end].replace(text, weaker, 1) + source[end:])
    return mutant


SHOWN_IN = {"full_fence": "cw_publish", "stream_copy": "mod_copy_frame"}  # inlined functions


@pytest.mark.parametrize("function, text, weaker", WEAKENED)
def test_the_audit_catches_a_weakened_order(tmp_path: Path, function: str, text: str, weaker: str) -> None:
    cross, cc = _tool(CROSS), _tool("cc", "gcc")
    mutant = _mutant(tmp_path, function, text, weaker)
    found = mismatches(_assembly(mutant, cross, VARIANTS["armv8-a"][0]), _lowering("armv8-a"))
    found += mismatches(_assembly(mutant, cc, []), X86)
    shown_in = SHOWN_IN.get(function, function)
    assert any(line.startswith(f"{shown_in}:") for line in found), f"{function} with {weaker}"


# Seq-cst loads weakened to acquire: LDAR either way, except where acquire loads become LDAPR.
WEAKENED_TO_ACQUIRE = [
    ("cw_load_sc", "__ATOMIC_SEQ_CST", "__ATOMIC_ACQUIRE"),
    ("rp_pin", "8 * slot), __ATOMIC_SEQ_CST)", "8 * slot), __ATOMIC_ACQUIRE)"),
    (
        "cw_publish",
        "__atomic_load_n(waiters, __ATOMIC_SEQ_CST)",
        "__atomic_load_n(waiters, __ATOMIC_ACQUIRE)",
    ),
    (
        "rp_wait",
        "__atomic_load_n(self->wake, __ATOMIC_SEQ_CST)",
        "__atomic_load_n(self->wake, __ATOMIC_ACQUIRE)",
    ),
]


def test_rcpc_shows_a_seq_cst_load_weakened(tmp_path: Path) -> None:
    """(test_source_orders_are_the_arguments catches these with any compiler.)"""
    cross = _tool(CROSS)
    flags = VARIANTS["armv8.2-a+rcpc"][0]
    probe = tmp_path / "probe.c"
    probe.write_text("unsigned long f(unsigned long *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }\n")
    if "ldapr" not in _assembly(probe, cross, flags):
        pytest.skip(f"{cross} compiles acquire loads to LDAR even with +rcpc (GCC < 13)")
    for function, text, weaker in WEAKENED_TO_ACQUIRE:
        found = mismatches(
            _assembly(_mutant(tmp_path, function, text, weaker), cross, flags), _lowering("armv8.2-a+rcpc")
        )
        assert any(line.startswith(f"{function}:") for line in found), f"{function} with {weaker}"


def builtin_orders(source: str) -> dict[str, list[str]]:
    """Each function's __atomic builtins in source order, with every memory order each names
    (a compare-and-swap names two); STAT_SET (count_read's statistics) is a relaxed store, and a
    call of full_fence() is named as such."""
    orders: dict[str, list[str]] = {}
    for function in re.finditer(r"\n(\w+)\([^;{]*?\)\n{\n.*?\n}\n", source, re.DOTALL):
        body, ops = function.group(0), []
        for call in re.finditer(r"__atomic_(\w+)\(|STAT_SET\(|full_fence\(\);", body):
            if call.group(1) is None:
                ops.append("store_n relaxed" if call.group(0) == "STAT_SET(" else "full_fence")
                continue
            depth, end = 1, call.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(body[end], 0)
                end += 1
            named = re.findall(r"__ATOMIC_(\w+)", body[call.end() : end])
            ops.append(" ".join([call.group(1), *(order.lower() for order in named)]))
        if ops:
            orders[function.group(1)] = ops
    return orders


def test_source_orders_are_the_arguments() -> None:
    """The memory order of every builtin, per function: catches what no instruction shows with
    this compiler (a seq-cst load weakened to acquire is LDAR either way, until a compiler uses
    LDAPR for acquire loads; a relaxed statistic made seq-cst)."""
    source = SOURCE.read_text()
    assert re.search(r"#define STAT_SET\(entry, off, v\) __atomic_store_n\(.*__ATOMIC_RELAXED\)\n", source)
    assert re.search(
        r"\nfull_fence\(void\)\n{\n#if defined\(__x86_64__\)\n"
        r'    __asm__ __volatile__\("mfence" ::: "memory"\);\n#else\n',
        source,
    )
    assert builtin_orders(source) == {
        "cw_load": ["load_n acquire"],
        "cw_load_sc": ["load_n seq_cst"],
        "cw_store": ["store_n release"],
        "cw_store_sc": ["store_n seq_cst"],
        "cw_exchange": ["exchange_n seq_cst"],
        "cw_fetch_add": ["fetch_add seq_cst"],
        "full_fence": ["thread_fence seq_cst"],  # (not x86-64: MFENCE there)
        "cw_fence": ["full_fence"],
        "cw_publish": [
            "full_fence",
            "store_n release",
            "store_n release",
            "fetch_add seq_cst",
            "load_n seq_cst",
        ],
        "cw_sleep": ["fetch_add seq_cst", "thread_fence seq_cst", "fetch_sub seq_cst"],
        # frames read, missed, last read time, hold start, last seq; a new window's bucket
        # reset and its epoch; the bucket's count
        "count_read": ["store_n relaxed"] * 8,
        "rp_pin": ["load_n acquire", "store_n seq_cst", "load_n seq_cst"],
        "rp_copy": ["load_n acquire", "thread_fence seq_cst", "load_n acquire"],
        "rp_verdict": ["load_n acquire"],
        "rp_wait": [
            "load_n seq_cst",
            "load_n acquire",
            "fetch_add seq_cst",
            "thread_fence seq_cst",
            "fetch_sub seq_cst",
        ],
        "rp_frame": ["load_n acquire"],
        "rp_release_hold": ["compare_exchange_n release relaxed"],
    }


# The Python side's control-word operations (_atomic.ControlWords: load is acquire, load_sc
# seq-cst, store release, store_sc seq-cst, exchange and fetch_add seq-cst RMWs, fence seq-cst),
# with the calls that order them against each other (the claim's hold re-scan, the reap's entry
# lock), per function in source order, as the argument (_ring.py's docstring, ring.pml) needs.
PYTHON_SOURCES = ["_ring.py", "_attachment.py"]
WORD_OPERATIONS = {
    "load",
    "load_sc",
    "store",
    "store_sc",
    "exchange",
    "fetch_add",
    "fence",
    "futex_wake",
    "publish",
}
ORDERING_CALLS = {"_held_slots", "abandon", "wake", "try_lock", "unlock"}


def python_orders(source: str) -> dict[str, list[str]]:
    """Each function's ControlWords operations (an attribute of `words`, called or bound to a
    name) and ordering calls (name()), in source order."""
    orders: dict[str, list[str]] = {}
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef):
            continue
        ops = []
        for node in ast.walk(function):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
            if owner == "words" and node.attr in WORD_OPERATIONS:
                ops.append((node.lineno, node.col_offset, node.attr))
            elif node.attr in ORDERING_CALLS and owner in ("self", "segment"):
                ops.append((node.lineno, node.col_offset, f"{node.attr}()"))
        if ops:
            orders[function.name] = [op for *_, op in sorted(ops)]
    return orders


def test_python_orders_are_the_arguments() -> None:
    """As test_source_orders_are_the_arguments for C: an order weakened in Python (the claim's
    hold re-scan as load, not load_sc: LDAR either way with GCC 12, not once acquire loads are
    LDAPR) or a step moved fails here, whatever the compiler."""
    orders = {}
    for name in PYTHON_SOURCES:
        orders.update(python_orders((ROOT / "framebus" / name).read_text()))
    assert orders == {
        # unpublish; GEN; fence; writer state, LATEST, STALLED; every slot EMPTY; live; wake; publish
        "open_stream": [
            "store",
            "fetch_add",
            "fence",
            "store",
            "store",
            "store",
            "abandon()",
            "store",
            "wake()",
            "store",
        ],
        "generation": ["load"],
        "close_stream": ["store", "wake()"],
        "set_stalled": ["store", "wake()"],
        "stalled": ["load"],
        "has_live_writer": ["load"],
        "closed_by_writer": ["load"],
        "holding": ["load"],
        "claim": ["_held_slots()"],
        # COPY_READERS; WRITING (seq-cst); the holds re-scanned (seq-cst); put back; or fence
        "_try_claim": ["load", "exchange", "_held_slots()", "store", "fence"],
        "commit": ["publish"],
        "abandon": ["store"],
        "wake": ["fetch_add", "load_sc", "futex_wake"],
        "_held_slots": ["load_sc"],
        # the hold (seq-cst), the entry's lock, the hold cleared (seq-cst), unlocked
        "_reap_dead_holders": ["load_sc", "try_lock()", "store_sc", "unlock()"],
        "add_reader": ["store_sc", "fetch_add"],
        "remove_reader": ["fetch_add"],
        "latest_word": ["load"],
        "unpin": ["store"],
        "corrupt": ["load"],
        # (re-checking) fence; the magic (acquire: the header before it); GEN
        "check_published": ["fence", "load", "load"],
        "_claim_entry": ["try_lock()"],
    }


@pytest.mark.parametrize("cpu", ["cortex-a53", "max"])  # ARMv8.0 (LL/SC path), then with LSE
def test_atomic_operations_run_on_aarch64_under_qemu(tmp_path: Path, cpu: str) -> None:
    cross, qemu = _tool(CROSS), _tool("qemu-aarch64", "qemu-aarch64-static")
    binary = tmp_path / "harness"
    # static: qemu needs no aarch64 sysroot and no binfmt registration
    _compile(HARNESS, cross, ["-static", "-pthread", f"-I{ROOT / 'framebus'}", "-o", str(binary)])
    proc = subprocess.run([qemu, "-cpu", cpu, str(binary)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_atomic_operations_run_natively(tmp_path: Path) -> None:
    """The same harness on this machine: a failure here is the harness's, not aarch64's."""
    cc = _tool("cc", "gcc")
    binary = tmp_path / "harness"
    _compile(HARNESS, cc, ["-pthread", f"-I{ROOT / 'framebus'}", "-o", str(binary)])
    proc = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
