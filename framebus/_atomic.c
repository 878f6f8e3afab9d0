/*
 * framebus._atomic: the only code that touches a segment's control words.
 *
 * Why this is C: CPython offers no cross-process atomics or memory ordering.
 * struct.pack_into zeroes a field before writing it, and plain stores from
 * Python are unordered on aarch64. Every access here is a GCC/Clang __atomic
 * builtin on a naturally aligned 8-byte (or 4-byte futex) word, which is a
 * single-copy-atomic access on both x86-64 and aarch64.
 *
 * Orderings used by the ring protocol (see _ring.py for the protocol itself):
 *   load()   acquire  - later reads of frame bytes cannot move before it.
 *   store()  release  - earlier writes of frame bytes are visible first.
 *   exchange(), fetch_add() seq_cst - full barriers (x86 LOCK-prefixed
 *            instruction; aarch64 LDAXR/STLXR or LSE SWPAL/LDADDAL).
 *   load_sc()/store_sc() seq_cst - used for the Dekker-style hand-shake
 *            between a reader announcing a hold and the writer claiming a
 *            slot: each side stores, then loads the other's word, and
 *            sequential consistency guarantees at least one sees the other.
 *   fence()  seq_cst - x86 MFENCE, aarch64 DMB ISH. Also orders the
 *            non-temporal stores glibc's memcpy uses for large copies, which
 *            plain x86 release stores do not.
 *
 * Offsets are bounds- and alignment-checked on every call, so a corrupted
 * header can produce an exception but never an out-of-bounds access.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    int readonly;  /* a read-only mapping (stream listing): loads only */
} ControlWords;

static int
cw_init(ControlWords *self, PyObject *args, PyObject *kwds)
{
    PyObject *buffer;
    static char *kwlist[] = {"buffer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &buffer))
        return -1;
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    self->readonly = 0;
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        if (PyObject_GetBuffer(buffer, &self->view, PyBUF_SIMPLE) < 0)
            return -1;
        self->readonly = 1;
    }
    self->has_view = 1;
    return 0;
}

static void
cw_dealloc(ControlWords *self)
{
    if (self->has_view)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Returns the address of the aligned word at `offset`, or NULL with an exception set. */
static void *
word_at_offset(ControlWords *self, Py_ssize_t offset, Py_ssize_t width, int write)
{
    if (!self->has_view) {
        PyErr_SetString(PyExc_ValueError, "control words are released");
        return NULL;
    }
    if (write && self->readonly) {
        PyErr_SetString(PyExc_TypeError, "control words are in a read-only mapping");
        return NULL;
    }
    if (offset < 0 || offset > self->view.len - width || offset % width != 0) {
        PyErr_Format(PyExc_IndexError,
                     "control word offset %zd is outside or misaligned in a %zd-byte mapping",
                     offset, self->view.len);
        return NULL;
    }
    return (char *)self->view.buf + offset;
}

static void *
word_at(ControlWords *self, PyObject *arg, Py_ssize_t width, int write)
{
    Py_ssize_t offset = PyLong_AsSsize_t(arg);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    return word_at_offset(self, offset, width, write);
}

static int
check_nargs(Py_ssize_t nargs, Py_ssize_t want, const char *name)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want, nargs);
        return -1;
    }
    return 0;
}

static int
as_u64(PyObject *obj, uint64_t *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static PyObject *
cw_load(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 1, "load") < 0) return NULL;
    uint64_t *w = word_at(self, args[0], 8, 0);
    if (!w) return NULL;
    return PyLong_FromUnsignedLongLong(__atomic_load_n(w, __ATOMIC_ACQUIRE));
}

static PyObject *
cw_load_sc(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 1, "load_sc") < 0) return NULL;
    uint64_t *w = word_at(self, args[0], 8, 0);
    if (!w) return NULL;
    return PyLong_FromUnsignedLongLong(__atomic_load_n(w, __ATOMIC_SEQ_CST));
}

static PyObject *
cw_store(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t v;
    if (check_nargs(nargs, 2, "store") < 0) return NULL;
    uint64_t *w = word_at(self, args[0], 8, 1);
    if (!w || as_u64(args[1], &v) < 0) return NULL;
    __atomic_store_n(w, v, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *
cw_store_sc(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t v;
    if (check_nargs(nargs, 2, "store_sc") < 0) return NULL;
    uint64_t *w = word_at(self, args[0], 8, 1);
    if (!w || as_u64(args[1], &v) < 0) return NULL;
    __atomic_store_n(w, v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *
cw_exchange(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t v;
    if (check_nargs(nargs, 2, "exchange") < 0) return NULL;
    uint64_t *w = word_at(self, args[0], 8, 1);
    if (!w || as_u64(args[1], &v) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(__atomic_exchange_n(w, v, __ATOMIC_SEQ_CST));
}

static PyObject *
cw_fetch_add(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t v;
    if (check_nargs(nargs, 2, "fetch_add") < 0) return NULL;
    uint64_t *w = word_at(self, args[0], 8, 1);
    if (!w || as_u64(args[1], &v) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(__atomic_fetch_add(w, v, __ATOMIC_SEQ_CST));
}

static PyObject *
cw_fence(ControlWords *self, PyObject *Py_UNUSED(ignored))
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

/* The low 32 bits of an 8-byte word: futexes are 32-bit, and both supported
 * architectures are little-endian, so they sit at the word's own address. */
static uint32_t *
futex_at(ControlWords *self, PyObject *arg)
{
    return (uint32_t *)word_at(self, arg, 8, 0);
}

/* A timeout in seconds as a relative timespec; negative or NaN is 0, huge is a day (callers
 * loop anyway). -1 with an exception set if `arg` is not a number. */
static int
as_timespec(PyObject *arg, struct timespec *ts)
{
    double timeout = PyFloat_AsDouble(arg);
    if (timeout == -1.0 && PyErr_Occurred()) return -1;
    if (!(timeout >= 0)) timeout = 0;
    if (timeout > 86400.0) timeout = 86400.0;
    ts->tv_sec = (time_t)timeout;
    ts->tv_nsec = (long)((timeout - (double)ts->tv_sec) * 1e9);
    return 0;
}

/* FUTEX_WAIT without the GIL; True if woken (or the word already differed, or a signal came
 * and its handler did not raise), False on timeout. No FUTEX_PRIVATE_FLAG: the word is shared
 * between processes. */
static PyObject *
futex_wait_result(uint32_t *word, uint32_t expected, const struct timespec *ts)
{
    long rc;
    int err;
    Py_BEGIN_ALLOW_THREADS
    rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, ts, NULL, 0);
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc == 0 || err == EAGAIN)
        Py_RETURN_TRUE;
    if (err == ETIMEDOUT)
        Py_RETURN_FALSE;
    if (err == EINTR) {
        if (PyErr_CheckSignals() < 0) return NULL;
        Py_RETURN_TRUE;  /* spurious: the caller re-checks its condition */
    }
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* futex_wait(offset, expected, timeout_s) -> bool: sleep while the word's low 32 bits equal
 * expected. (Used by the benchmarks' bare wake-up floor; the ring uses sleep().) */
static PyObject *
cw_futex_wait(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t expected;
    struct timespec ts;
    if (check_nargs(nargs, 3, "futex_wait") < 0) return NULL;
    uint32_t *w = futex_at(self, args[0]);
    if (!w || as_u64(args[1], &expected) < 0 || as_timespec(args[2], &ts) < 0) return NULL;
    return futex_wait_result(w, (uint32_t)expected, &ts);
}

static PyObject *
cw_futex_wake(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 1, "futex_wake") < 0) return NULL;
    uint32_t *w = futex_at(self, args[0]);
    if (!w) return NULL;
    long rc = syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    if (rc < 0) return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(rc);
}

/*
 * Reader-table entry words, as offsets inside an entry (framebus/_layout.py owns them; the module
 * exports these as LAYOUT and tests/test_layout.py pins the two together). Statistics words are
 * written only by the entry's owner, with relaxed stores: they order nothing, and a listing
 * that reads one torn only misreports a number.
 */
#define R_FRAMES_READ 16
#define R_FRAMES_MISSED 24
#define R_LAST_READ_NS 32
#define R_HOLD_SINCE_NS 40
#define R_LAST_SEQ 64
#define R_LATENCY_EPOCHS 72       /* u64 window number per bank */
#define R_LATENCY_HIST 128        /* two banks of LATENCY_BUCKETS u32 counts */
#define READER_ENTRY 1024
#define LATENCY_BUCKETS 96
#define LATENCY_UNIT_SHIFT 10     /* buckets count in units of 1024 ns */
#define LATENCY_WINDOW_SHIFT 31   /* a bank counts one window of 2**31 ns */

#define STAT_WORD(entry, off) ((uint64_t *)((entry) + (off)))
#define STAT_SET(entry, off, v) __atomic_store_n(STAT_WORD(entry, off), (v), __ATOMIC_RELAXED)

/* _layout.latency_bucket(): below 4 units one bucket each, then 4 per octave, capped. */
static unsigned
latency_bucket(uint64_t ns)
{
    uint64_t units = ns >> LATENCY_UNIT_SHIFT;
    if (units < 4) return (unsigned)units;
    unsigned octave = 63u - (unsigned)__builtin_clzll(units);
    unsigned bucket = (octave - 1u) * 4u + (unsigned)((units >> (octave - 2u)) & 3u);
    return bucket < LATENCY_BUCKETS ? bucket : LATENCY_BUCKETS - 1;
}

static uint64_t
monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* The read path's bookkeeping in the reader's own entry (bounds checked by the caller): frames
 * read and missed, last read time, hold start (zero-copy), last seq, and the capture-to-read
 * latency in the current window's histogram bank. Returns the frames missed since last_seq. */
static uint64_t
count_read(char *entry, uint64_t seq, uint64_t last_seq, uint64_t timestamp_ns, int held)
{
    uint64_t now = monotonic_ns();
    uint64_t missed = last_seq && seq > last_seq ? seq - last_seq - 1 : 0;
    STAT_SET(entry, R_FRAMES_READ, *STAT_WORD(entry, R_FRAMES_READ) + 1);
    STAT_SET(entry, R_FRAMES_MISSED, *STAT_WORD(entry, R_FRAMES_MISSED) + missed);
    STAT_SET(entry, R_LAST_READ_NS, now);
    if (held) STAT_SET(entry, R_HOLD_SINCE_NS, now);
    STAT_SET(entry, R_LAST_SEQ, seq);
    if (timestamp_ns && timestamp_ns <= now) {
        uint64_t window = now >> LATENCY_WINDOW_SHIFT;
        unsigned bank = (unsigned)(window & 1u);
        uint32_t *hist = (uint32_t *)(entry + R_LATENCY_HIST) + bank * LATENCY_BUCKETS;
        if (*STAT_WORD(entry, R_LATENCY_EPOCHS + 8 * bank) != window) {  /* a new window */
            for (unsigned i = 0; i < LATENCY_BUCKETS; i++)
                __atomic_store_n(&hist[i], 0, __ATOMIC_RELAXED);
            STAT_SET(entry, R_LATENCY_EPOCHS + 8 * bank, window);
        }
        uint32_t *count = &hist[latency_bucket(now - timestamp_ns)];
        __atomic_store_n(count, *count + 1, __ATOMIC_RELAXED);
    }
    return missed;
}

/* The reader entry at `arg`, bounds-checked over its whole extent, or NULL with an exception. */
static char *
entry_at(ControlWords *self, PyObject *arg)
{
    Py_ssize_t offset = PyLong_AsSsize_t(arg);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    if (!word_at_offset(self, offset + READER_ENTRY - 8, 8, 1)) return NULL;
    return word_at_offset(self, offset, 8, 1);
}

/*
 * Compound operations: the ring protocol's hot steps (_ring.py) as single calls, so the path
 * from "frame written" to "reader holds it" crosses the interpreter a few times rather than a
 * dozen (each crossing costs microseconds on the cold caches a reader wakes up to). Each is
 * exactly the sequence of the single-word operations above, with the same orderings.
 */

/* publish(state, seq, latest, latest_word, wake, waiters) -> bool: the writer's commit.
 * fence; state = seq (release); LATEST = latest_word (release); WAKE += 1 (seq-cst);
 * FUTEX_WAKE all if WAITERS > 0 (seq-cst load). True if it made the wake-up syscall. */
static PyObject *
cw_publish(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t seq, word;
    if (check_nargs(nargs, 6, "publish") < 0) return NULL;
    uint64_t *state = word_at(self, args[0], 8, 1);
    if (!state || as_u64(args[1], &seq) < 0) return NULL;
    uint64_t *latest = word_at(self, args[2], 8, 1);
    if (!latest || as_u64(args[3], &word) < 0) return NULL;
    uint64_t *wake = word_at(self, args[4], 8, 1);
    uint64_t *waiters = wake ? word_at(self, args[5], 8, 0) : NULL;
    if (!waiters) return NULL;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  /* frame bytes, non-temporal stores too, first */
    __atomic_store_n(state, seq, __ATOMIC_RELEASE);
    __atomic_store_n(latest, word, __ATOMIC_RELEASE);
    __atomic_fetch_add(wake, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(waiters, __ATOMIC_SEQ_CST))
        Py_RETURN_FALSE;
    if (syscall(SYS_futex, (uint32_t *)wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_TRUE;
}

/* pin(hold, latest, states, slot_count, slots, stride, entry, last_seq)
 *     -> (word, timestamp_ns, wall_ns, meta_len, missed)
 * A zero-copy reader's hand-shake, then its frame's slot header, then its own statistics.
 * word = LATEST (acquire); hold = word (seq-cst); accept if its slot's state (seq-cst load)
 * equals its seq, else retry from LATEST. Once pinned, the slot header at slots + slot * stride
 * (seq, timestamp, wall clock, meta length: stable while held) is read. word is the pinned
 * LATEST value; 0 if nothing is published; -1 if LATEST names a slot >= slot_count; -2 if
 * LATEST did not move between two failed attempts (the writer never claims the LATEST slot);
 * -3 if the slot header's seq is not the pinned one. The last three mean a corrupt segment.
 * If the frame is not `last_seq` (the reader's previous frame), it is counted in the reader's
 * entry at `entry` (count_read), and `missed` counts the frames published between the two. */
static PyObject *
cw_pin(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t previous = 0, word, last_seq;
    int retried = 0;
    if (check_nargs(nargs, 8, "pin") < 0) return NULL;
    uint64_t *hold = word_at(self, args[0], 8, 1);
    uint64_t *latest = hold ? word_at(self, args[1], 8, 0) : NULL;
    if (!latest) return NULL;
    Py_ssize_t states = PyLong_AsSsize_t(args[2]), slots = PyLong_AsSsize_t(args[3]);
    Py_ssize_t base = PyLong_AsSsize_t(args[4]), stride = PyLong_AsSsize_t(args[5]);
    char *entry = entry_at(self, args[6]);
    if (!entry) return NULL;
    if (as_u64(args[7], &last_seq) < 0 || PyErr_Occurred()) return NULL;
    for (;;) {
        word = __atomic_load_n(latest, __ATOMIC_ACQUIRE);
        if (word == 0)
            return Py_BuildValue("(iiiii)", 0, 0, 0, 0, 0);
        uint64_t slot = word & 0xFF, seq = word >> 8;
        if ((Py_ssize_t)slot >= slots)
            return Py_BuildValue("(iiiii)", -1, 0, 0, 0, 0);
        uint64_t *state = word_at_offset(self, states + (Py_ssize_t)slot * 8, 8, 0);
        if (!state) return NULL;
        __atomic_store_n(hold, word, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(state, __ATOMIC_SEQ_CST) == seq)
            break;
        if (retried && word == previous)
            return Py_BuildValue("(iiiii)", -2, 0, 0, 0, 0);
        previous = word;
        retried = 1;
    }
    uint64_t *header = word_at_offset(self, base + (Py_ssize_t)(word & 0xFF) * stride, 32, 0);
    if (!header) return NULL;  /* (32-byte alignment holds: slots start on page boundaries) */
    uint64_t seq = word >> 8, missed = 0;
    if (header[0] != seq)
        return Py_BuildValue("(iiiii)", -3, 0, 0, 0, 0);
    if (seq != last_seq)
        missed = count_read(entry, seq, last_seq, header[1], 1);
    return Py_BuildValue("(KKKKK)", (unsigned long long)word, (unsigned long long)header[1],
                         (unsigned long long)header[2], (unsigned long long)header[3],
                         (unsigned long long)missed);
}

/* count_read(entry, seq, last_seq, timestamp_ns) -> missed: a copy reader's bookkeeping for a
 * frame it copied and validated (the same as pin's; no hold). */
static PyObject *
cw_count_read(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t seq, last_seq, timestamp_ns;
    if (check_nargs(nargs, 4, "count_read") < 0) return NULL;
    char *entry = entry_at(self, args[0]);
    if (!entry || as_u64(args[1], &seq) < 0 || as_u64(args[2], &last_seq) < 0
        || as_u64(args[3], &timestamp_ns) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(count_read(entry, seq, last_seq, timestamp_ns, 0));
}

/* sleep(wake, waiters, expected, timeout) -> bool: a reader's sleep. WAITERS += 1 (seq-cst),
 * fence (aarch64: the kernel's plain load of WAKE must not pass the increment), FUTEX_WAIT on
 * WAKE while its low 32 bits equal expected, WAITERS -= 1. False on timeout. The writer bumps
 * WAKE before it reads WAITERS, so either it sees our increment and wakes us, or the kernel
 * sees its new WAKE and does not sleep: no lost wake-up. */
static PyObject *
cw_sleep(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t expected;
    struct timespec ts;
    if (check_nargs(nargs, 4, "sleep") < 0) return NULL;
    uint32_t *wake = futex_at(self, args[0]);
    uint64_t *waiters = wake ? word_at(self, args[1], 8, 1) : NULL;
    if (!waiters || as_u64(args[2], &expected) < 0 || as_timespec(args[3], &ts) < 0) return NULL;
    __atomic_fetch_add(waiters, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    PyObject *result = futex_wait_result(wake, (uint32_t)expected, &ts);
    __atomic_fetch_sub(waiters, 1, __ATOMIC_SEQ_CST);
    return result;
}

static PyObject *
cw_release(ControlWords *self, PyObject *Py_UNUSED(ignored))
{
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    Py_RETURN_NONE;
}

static PyMethodDef cw_methods[] = {
    {"load", (PyCFunction)(void (*)(void))cw_load, METH_FASTCALL, "Acquire load of a u64."},
    {"load_sc", (PyCFunction)(void (*)(void))cw_load_sc, METH_FASTCALL, "Seq-cst load of a u64."},
    {"store", (PyCFunction)(void (*)(void))cw_store, METH_FASTCALL, "Release store of a u64."},
    {"store_sc", (PyCFunction)(void (*)(void))cw_store_sc, METH_FASTCALL, "Seq-cst store of a u64."},
    {"exchange", (PyCFunction)(void (*)(void))cw_exchange, METH_FASTCALL, "Seq-cst swap; returns the old value."},
    {"fetch_add", (PyCFunction)(void (*)(void))cw_fetch_add, METH_FASTCALL, "Seq-cst add; returns the old value."},
    {"fence", (PyCFunction)cw_fence, METH_NOARGS, "Full (seq-cst) memory fence."},
    {"futex_wait", (PyCFunction)(void (*)(void))cw_futex_wait, METH_FASTCALL,
     "Sleep while the word's low 32 bits equal expected; False on timeout."},
    {"futex_wake", (PyCFunction)(void (*)(void))cw_futex_wake, METH_FASTCALL,
     "Wake every waiter on the word; returns how many woke."},
    {"publish", (PyCFunction)(void (*)(void))cw_publish, METH_FASTCALL,
     "Commit a frame: fence, state and LATEST (release), bump WAKE, wake sleepers if any."},
    {"pin", (PyCFunction)(void (*)(void))cw_pin, METH_FASTCALL,
     "Pin the newest frame into a hold word; the word, 0 if none, -1/-2 if corrupt."},
    {"count_read", (PyCFunction)(void (*)(void))cw_count_read, METH_FASTCALL,
     "Count a copied frame in a reader entry's statistics; returns the frames missed."},
    {"sleep", (PyCFunction)(void (*)(void))cw_sleep, METH_FASTCALL,
     "Count in WAITERS and futex-wait on WAKE while it equals expected; False on timeout."},
    {"release", (PyCFunction)cw_release, METH_NOARGS, "Drop the buffer so the mapping can close."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ControlWordsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framebus._atomic.ControlWords",
    .tp_doc = "Atomic access to 8-byte control words inside a writable buffer.",
    .tp_basicsize = sizeof(ControlWords),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)cw_init,
    .tp_dealloc = (destructor)cw_dealloc,
    .tp_methods = cw_methods,
};

static PyObject *
mod_latency_bucket(PyObject *module, PyObject *arg)
{
    uint64_t ns;
    if (as_u64(arg, &ns) < 0) return NULL;
    return PyLong_FromUnsignedLong(latency_bucket(ns));
}

static PyMethodDef module_methods[] = {
    {"latency_bucket", mod_latency_bucket, METH_O, "The latency histogram bucket of ns (as _layout's)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef atomic_module = {
    PyModuleDef_HEAD_INIT, "_atomic", "Atomic control words and futexes for framebus segments.", -1,
    module_methods,
};

/* The layout constants compiled in here, for the test that pins them to _layout.py. */
static PyObject *
layout_constants(void)
{
    return Py_BuildValue(
        "{sisisisisisisisisisisi}", "READER_FRAMES_READ", R_FRAMES_READ,
        "READER_FRAMES_MISSED", R_FRAMES_MISSED, "READER_LAST_READ_NS", R_LAST_READ_NS,
        "READER_HOLD_SINCE_NS", R_HOLD_SINCE_NS, "READER_LAST_SEQ", R_LAST_SEQ,
        "READER_LATENCY_EPOCHS", R_LATENCY_EPOCHS, "READER_LATENCY_HIST", R_LATENCY_HIST,
        "READER_ENTRY", READER_ENTRY, "LATENCY_BUCKETS", LATENCY_BUCKETS,
        "LATENCY_UNIT_SHIFT", LATENCY_UNIT_SHIFT, "LATENCY_WINDOW_SHIFT", LATENCY_WINDOW_SHIFT);
}

PyMODINIT_FUNC
PyInit__atomic(void)
{
    if (PyType_Ready(&ControlWordsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&atomic_module);
    if (!m) return NULL;
    Py_INCREF(&ControlWordsType);
    if (PyModule_AddObject(m, "ControlWords", (PyObject *)&ControlWordsType) < 0) {
        Py_DECREF(&ControlWordsType);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *layout = layout_constants();
    if (!layout || PyModule_AddObject(m, "LAYOUT", layout) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
