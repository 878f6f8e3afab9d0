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
 *   ReadPort's GEN re-check: an acquire load after every pin or copy, so a frame read
 *            across another writer's in-place takeover is never delivered as ours, nor
 *            a read it disturbed reported as corruption (rp_verdict).
 *   ReadPort.unpin() compare-and-swap of a hold word to 0: release on success
 *            (the reads of the frame happen before the writer may reuse its slot),
 *            relaxed on failure (the hold names a newer frame; nothing is stored).
 *   fence()  seq_cst - full_fence(): aarch64 DMB ISH; x86-64 MFENCE, written out
 *            because for a seq-cst fence GCC emits a locked no-op (`lock orq
 *            $0,(%rsp)`), a full barrier for ordinary write-back memory that
 *            Intel does not document as ordering non-temporal stores. publish()
 *            starts with it too, so it orders copy_frame's streaming stores
 *            before the slot's state and LATEST stores even without their SFENCE.
 *   copy_frame() is no control-word access: it writes a claimed slot's frame
 *            bytes (step 2 of the protocol) with x86 streaming stores, which are
 *            weakly ordered; it ends with SFENCE, and publish()'s MFENCE orders
 *            them before the slot's state and LATEST stores in any case.
 *
 * Offsets are bounds- and alignment-checked on every call, so a corrupted
 * header can produce an exception but never an out-of-bounds access.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
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

/* A full fence (module comment): MFENCE on x86-64, which orders streaming stores too. */
static inline void
full_fence(void)
{
#if defined(__x86_64__)
    __asm__ __volatile__("mfence" ::: "memory");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

static PyObject *
cw_fence(ControlWords *self, PyObject *Py_UNUSED(ignored))
{
    full_fence();
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
 * exports these as LAYOUT and tests/test_telemetry.py pins the two together). Statistics words are
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
    full_fence();  /* frame bytes first, copy_frame's streaming stores too (MFENCE) */
    __atomic_store_n(state, seq, __ATOMIC_RELEASE);
    __atomic_store_n(latest, word, __ATOMIC_RELEASE);
    __atomic_fetch_add(wake, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(waiters, __ATOMIC_SEQ_CST))
        Py_RETURN_FALSE;
    if (syscall(SYS_futex, (uint32_t *)wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_TRUE;
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

/*
 * FrameBase: a frame as a read hands it out. framebus.Frame derives from it (meta decoding,
 * release(), repr), so a read builds its Frame here, without running any Python code.
 */
typedef struct {
    PyObject_HEAD
    PyObject *array, *meta_bytes, *meta, *release;
    unsigned long long seq, timestamp_ns, wall_time_ns, missed, word;
    char stale;
} FrameBase;

static int
fb_traverse(FrameBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->array);
    Py_VISIT(self->meta_bytes);
    Py_VISIT(self->meta);
    Py_VISIT(self->release);
    return 0;
}

static int
fb_clear(FrameBase *self)
{
    Py_CLEAR(self->array);
    Py_CLEAR(self->meta_bytes);
    Py_CLEAR(self->meta);
    Py_CLEAR(self->release);
    return 0;
}

static void
fb_dealloc(FrameBase *self)
{
    PyObject_GC_UnTrack(self);
    fb_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* FrameBase(array, seq, timestamp_ns, wall_time_ns, meta_bytes, missed, stale, release=None) */
static int
fb_init(FrameBase *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"array", "seq", "timestamp_ns", "wall_time_ns", "meta_bytes", "missed",
                             "stale", "release", NULL};
    PyObject *array, *meta_bytes, *release = Py_None;
    unsigned long long seq, timestamp_ns, wall_time_ns, missed;
    int stale;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKKSKp|O", kwlist, &array, &seq, &timestamp_ns,
                                     &wall_time_ns, &meta_bytes, &missed, &stale, &release))
        return -1;
    fb_clear(self);
    self->array = Py_NewRef(array);
    self->meta_bytes = Py_NewRef(meta_bytes);
    self->release = release == Py_None ? NULL : Py_NewRef(release);
    self->seq = seq, self->timestamp_ns = timestamp_ns, self->wall_time_ns = wall_time_ns;
    self->missed = missed, self->word = 0, self->stale = (char)stale;
    return 0;
}

static PyMemberDef fb_members[] = {
    {"array", T_OBJECT_EX, offsetof(FrameBase, array), READONLY,
     "The pixels or samples: a read-only view into the slot (zero-copy) or the caller's own array."},
    {"seq", T_ULONGLONG, offsetof(FrameBase, seq), READONLY,
     "Sequence number, 1 for the first frame of a writer; consecutive per published frame."},
    {"timestamp_ns", T_ULONGLONG, offsetof(FrameBase, timestamp_ns), READONLY,
     "Capture time, CLOCK_MONOTONIC ns (comparable with time.monotonic_ns() in any process)."},
    {"wall_time_ns", T_ULONGLONG, offsetof(FrameBase, wall_time_ns), READONLY,
     "Capture time, wall clock (CLOCK_REALTIME) ns."},
    {"missed", T_ULONGLONG, offsetof(FrameBase, missed), READONLY,
     "Frames published between the previous frame this subscriber returned and this one."},
    {"stale", T_BOOL, offsetof(FrameBase, stale), 0,
     "True if the source was stalled or the writer gone when this frame was read."},
    {"_meta_bytes", T_OBJECT, offsetof(FrameBase, meta_bytes), READONLY, NULL},
    {"_meta", T_OBJECT, offsetof(FrameBase, meta), 0, NULL},
    {"_release", T_OBJECT, offsetof(FrameBase, release), 0, NULL},
    {"_word", T_ULONGLONG, offsetof(FrameBase, word), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject FrameBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framebus._atomic.FrameBase",
    .tp_doc = "A frame's array and header; framebus.Frame derives from it.",
    .tp_basicsize = sizeof(FrameBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fb_init,
    .tp_dealloc = (destructor)fb_dealloc,
    .tp_traverse = (traverseproc)fb_traverse,
    .tp_clear = (inquiry)fb_clear,
    .tp_members = fb_members,
};

/*
 * ReadPort: one subscriber's whole read path as single calls (_ring.py's reader steps, in C),
 * from the futex sleep to a ready Frame. Built once per attachment with every offset it will
 * use, all bounds- and alignment-checked there, plus the slots' array views and the Frame type,
 * so a call does no parsing beyond its arguments and runs no Python code. The orderings are
 * those of the single-word operations above:
 *   pin (zero-copy):  word = LATEST (acquire); hold = word (seq-cst); state (seq-cst) == seq, else
 *                     retry from LATEST; then the slot header and meta, stable while held.
 *   copy (seqlock):   word = LATEST (acquire); copy frame, header and meta; fence (seq-cst);
 *                     state (acquire) == seq, else retry from LATEST.
 *   GEN re-check:     after either, GEN (acquire) must still be the generation the port was
 *                     attached under: else another writer took the segment over in place, the
 *                     frame may be the new writer's, so the hold is released and REPLACED (-6)
 *                     returned (the subscriber reports the change of writer first). It comes
 *                     before every verdict of corruption too (-2 to -4, rp_verdict).
 *   wait:             seen = WAKE (seq-cst), then LATEST: a newer frame is taken at once;
 *                     otherwise WAITERS += 1 (seq-cst), fence, FUTEX_WAIT on WAKE while it equals
 *                     seen (GIL released), WAITERS -= 1, and LATEST once more. (As sleep(): the
 *                     writer bumps WAKE before it reads WAITERS, so no wake-up is lost.)
 *   unpin(word):      compare-and-swap hold from `word` to 0 (release on success, relaxed on
 *                     failure): it clears a hold only if it still pins that very frame, so a
 *                     release of an old frame racing with the pin of a newer one (another
 *                     thread) cannot drop the newer frame's hold. Release orders every read of
 *                     the frame before the writer can see the slot free.
 * close() marks the port closed; a call that wakes up afterwards pins nothing (the flag is read
 * with the GIL held, and close() runs under the GIL too, before the hold is cleared).
 */
#define REPLACED (-6)

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    int open;  /* set by a complete __init__, cleared by close(): a port that is not open reads nothing */
    int copy;
    uint64_t *hold, *latest, *wake, *waiters, *stalled, *gen;
    uint64_t generation;
    char *states, *slots, *entry;
    Py_ssize_t slot_count, stride, frame_offset, frame_nbytes, meta_capacity;
    PyObject *views;  /* zero-copy: each slot's read-only frame array, built once at attach */
    PyTypeObject *frame_type;  /* framebus.Frame */
} ReadPort;

static void
rp_dealloc(ReadPort *self)
{
    if (self->has_view)
        PyBuffer_Release(&self->view);
    Py_XDECREF(self->views);
    Py_XDECREF(self->frame_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An aligned `width`-byte region at offset inside the view, or NULL (ValueError set). */
static char *
rp_region(ReadPort *self, Py_ssize_t offset, Py_ssize_t width, Py_ssize_t align)
{
    if (offset < 0 || width < 0 || offset > self->view.len - width || offset % align != 0) {
        PyErr_Format(PyExc_ValueError, "read port: region %zd+%zd is outside or misaligned in a %zd-byte mapping",
                     offset, width, self->view.len);
        return NULL;
    }
    return (char *)self->view.buf + offset;
}

/* ReadPort(buffer, hold, latest, wake, waiters, stalled, gen, states, slot_count, slots, stride,
 *          frame_offset, frame_nbytes, meta_capacity, entry, copy, generation, views, frame_type)
 * views: a tuple of slot_count arrays (zero-copy) or None (copy); frame_type: a FrameBase type. */
static int
rp_init(ReadPort *self, PyObject *args, PyObject *kwds)
{
    PyObject *buffer, *views, *frame_type;
    Py_ssize_t hold, latest, wake, waiters, stalled, gen, states, slots, entry;
    unsigned long long generation;  /* any u64: GEN is the segment's word, whatever it holds */
    if (!PyArg_ParseTuple(args, "OnnnnnnnnnnnnnnpKOO", &buffer, &hold, &latest, &wake, &waiters, &stalled,
                          &gen, &states, &self->slot_count, &slots, &self->stride, &self->frame_offset,
                          &self->frame_nbytes, &self->meta_capacity, &entry, &self->copy, &generation,
                          &views, &frame_type))
        return -1;
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    Py_CLEAR(self->views);
    Py_CLEAR(self->frame_type);
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->has_view = 1;
    self->open = 0;  /* until every check below has passed */
    self->generation = (uint64_t)generation;
    if (self->slot_count < 1 || self->slot_count > 256 || self->stride <= 0 || self->frame_nbytes < 0
        || self->meta_capacity < 0 || self->frame_offset < 64 + self->meta_capacity
        || self->frame_offset + self->frame_nbytes > self->stride) {
        PyErr_SetString(PyExc_ValueError, "read port: inconsistent slot geometry");
        return -1;
    }
    if (self->copy ? views != Py_None : PyTuple_Size(views) != self->slot_count) {
        PyErr_SetString(PyExc_ValueError, "read port: views must be one array per slot (zero-copy) or None (copy)");
        return -1;
    }
    if (!PyType_Check(frame_type) || !PyType_IsSubtype((PyTypeObject *)frame_type, &FrameBaseType)) {
        PyErr_SetString(PyExc_TypeError, "read port: frame_type must derive from FrameBase");
        return -1;
    }
    self->views = Py_NewRef(views);
    self->frame_type = (PyTypeObject *)Py_NewRef(frame_type);
    if (!(self->hold = (uint64_t *)rp_region(self, hold, 8, 8))
        || !(self->latest = (uint64_t *)rp_region(self, latest, 8, 8))
        || !(self->wake = (uint64_t *)rp_region(self, wake, 8, 8))
        || !(self->waiters = (uint64_t *)rp_region(self, waiters, 8, 8))
        || !(self->stalled = (uint64_t *)rp_region(self, stalled, 8, 8))
        || !(self->gen = (uint64_t *)rp_region(self, gen, 8, 8))
        || !(self->states = rp_region(self, states, 8 * self->slot_count, 8))
        || !(self->slots = rp_region(self, slots, self->stride * self->slot_count, 64))
        || !(self->entry = rp_region(self, entry, READER_ENTRY, 8)))
        return -1;
    self->open = 1;
    return 0;
}

/* The Frame of a read of `word` (header: its slot header), or NULL with an exception set.
 * (Not inlined into rp_pin and rp_copy, so the audit finds each function's orderings.) */
static __attribute__((noinline)) PyObject *
rp_frame(ReadPort *self, uint64_t word, const uint64_t *header, PyObject *meta, uint64_t missed,
         PyObject *array, PyObject *release)
{
    if (!meta || !array) {
        Py_XDECREF(meta);
        return NULL;
    }
    FrameBase *frame = (FrameBase *)self->frame_type->tp_alloc(self->frame_type, 0);
    if (!frame) {
        Py_DECREF(meta);
        return NULL;
    }
    frame->array = Py_NewRef(array);
    frame->meta_bytes = meta;
    frame->release = release == Py_None ? NULL : Py_NewRef(release);
    frame->seq = word >> 8, frame->timestamp_ns = header[1], frame->wall_time_ns = header[2];
    frame->missed = missed, frame->word = word;
    frame->stale = __atomic_load_n(self->stalled, __ATOMIC_ACQUIRE) != 0;
    return (PyObject *)frame;
}

static PyObject *
rp_meta(ReadPort *self, const char *slot, uint64_t len)
{
    if (!len) return PyBytes_FromStringAndSize(NULL, 0);
    return PyBytes_FromStringAndSize(slot + 64, (Py_ssize_t)len);
}

/* Clear the hold if it still pins the frame of `word` (see unpin above); true if it did. Not
 * inlined, so the audit sees its one ordering wherever it is used. */
static __attribute__((noinline)) int
rp_release_hold(ReadPort *self, uint64_t word)
{
    return __atomic_compare_exchange_n(self->hold, &word, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* The verdict on a read of `word` that found the segment inconsistent (code -2: the state never
 * matched; -3: the header's seq differs; -4: its meta length is too long) or consistent (0): the
 * generation re-check comes first. If GEN moved on since the attach, another writer took the
 * segment over in place and starts again from seq 1 in the same slots, so its frames explain
 * any mismatch (the same LATEST word again, a state or header of its own) and the frame may be
 * its: REPLACED, and a zero-copy read's hold is released (the pin moved it: the previous frame
 * is unpinned too). Only under the port's own generation is a mismatch corruption. Every
 * load of the read comes before GEN's (ring.pml: verdict). Not inlined: the audit finds its
 * one ordering. */
static __attribute__((noinline)) long
rp_verdict(ReadPort *self, uint64_t word, long code)
{
    if (__atomic_load_n(self->gen, __ATOMIC_ACQUIRE) == self->generation) return code;
    if (!self->copy) rp_release_hold(self, word);
    return REPLACED;
}

/* Zero-copy: pin the newest frame into the hold (module comment above). */
static PyObject *
rp_pin(ReadPort *self, uint64_t last_seq, PyObject *release)
{
    uint64_t previous = 0, word, seq, slot;
    int retried = 0;
    for (;;) {
        word = __atomic_load_n(self->latest, __ATOMIC_ACQUIRE);
        if (word == 0) Py_RETURN_NONE;
        slot = word & 0xFF, seq = word >> 8;
        if ((Py_ssize_t)slot >= self->slot_count) return PyLong_FromLong(-1);
        __atomic_store_n(self->hold, word, __ATOMIC_SEQ_CST);
        if (__atomic_load_n((uint64_t *)(self->states + 8 * slot), __ATOMIC_SEQ_CST) == seq)
            break;
        if (retried && word == previous) return PyLong_FromLong(rp_verdict(self, word, -2));
        previous = word;
        retried = 1;
    }
    const char *base = self->slots + (Py_ssize_t)slot * self->stride;
    const uint64_t *header = (const uint64_t *)base;
    long verdict = header[0] != seq ? -3 : header[3] > (uint64_t)self->meta_capacity ? -4 : 0;
    verdict = rp_verdict(self, word, verdict);
    if (verdict) return PyLong_FromLong(verdict);
    uint64_t missed = seq != last_seq ? count_read(self->entry, seq, last_seq, header[1], 1) : 0;
    return rp_frame(self, word, header, rp_meta(self, base, header[3]), missed,
                    PyTuple_GetItem(self->views, (Py_ssize_t)slot), release);
}

/* A copy reader's tries per read: a writer that overwrites the frame during every copy (big
 * frames on few slots) gets -5 back instead of holding the reader for up to 0.2-0.8 s. */
#define COPY_ATTEMPTS 4

/* Copy mode: seqlock-copy the newest frame into `out` (module comment above); out_array is
 * the object whose buffer `out` is, which becomes the Frame's array. */
static PyObject *
rp_copy(ReadPort *self, uint64_t last_seq, Py_buffer *out, PyObject *out_array)
{
    uint64_t previous = 0, word, seq, slot, header[4];
    int retried = 0;
    PyObject *meta;
    for (int attempt = 0;; attempt++) {
        if (attempt == COPY_ATTEMPTS) return PyLong_FromLong(-5);  /* lapped every time: bounded */
        word = __atomic_load_n(self->latest, __ATOMIC_ACQUIRE);
        if (word == 0) Py_RETURN_NONE;
        slot = word & 0xFF, seq = word >> 8;
        if ((Py_ssize_t)slot >= self->slot_count) return PyLong_FromLong(-1);
        const char *base = self->slots + (Py_ssize_t)slot * self->stride;
        memcpy(out->buf, base + self->frame_offset, (size_t)self->frame_nbytes);
        memcpy(header, base, sizeof header);
        uint64_t len = header[3] < (uint64_t)self->meta_capacity ? header[3] : (uint64_t)self->meta_capacity;
        meta = rp_meta(self, base, len);  /* bounded even when torn; checked once accepted */
        if (!meta) return NULL;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);  /* the copies complete before the re-check */
        if (__atomic_load_n((uint64_t *)(self->states + 8 * slot), __ATOMIC_ACQUIRE) == seq)
            break;
        Py_DECREF(meta);
        if (retried && word == previous) return PyLong_FromLong(rp_verdict(self, word, -2));
        previous = word;
        retried = 1;
    }
    long verdict = header[0] != seq ? -3 : header[3] > (uint64_t)self->meta_capacity ? -4 : 0;
    verdict = rp_verdict(self, word, verdict);
    if (verdict) {
        Py_DECREF(meta);
        return PyLong_FromLong(verdict);
    }
    uint64_t missed = seq != last_seq ? count_read(self->entry, seq, last_seq, header[1], 0) : 0;
    return rp_frame(self, word, header, meta, missed, out_array, Py_None);
}

/* The arguments every read takes: last_seq first, release (a zero-copy Frame's) after the others,
 * and a copy port's out last: the array the frame is copied into, which becomes its Frame's.
 * want: the count with out. */
static int
rp_args(ReadPort *self, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *name,
        uint64_t *last_seq, Py_buffer *out)
{
    if (self->copy && nargs == want - 1) {
        PyErr_Format(PyExc_TypeError, "%s(): a copy port needs an output buffer", name);
        return -1;
    }
    if (check_nargs(nargs, self->copy ? want : want - 1, name) < 0 || as_u64(args[0], last_seq) < 0) return -1;
    if (!self->copy) return 0;
    if (PyObject_GetBuffer(args[want - 1], out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (out->len != self->frame_nbytes) {
        PyErr_Format(PyExc_ValueError, "%s(): output buffer is %zd bytes, frames are %zd", name, out->len,
                     self->frame_nbytes);
        PyBuffer_Release(out);
        return -1;
    }
    return 0;
}

static PyObject *
rp_take_now(ReadPort *self, uint64_t last_seq, Py_buffer *out, PyObject *out_array, PyObject *release)
{
    if (!self->open) Py_RETURN_NONE;
    return self->copy ? rp_copy(self, last_seq, out, out_array) : rp_pin(self, last_seq, release);
}

/* take(last_seq, release[, out]) -> Frame | None | error code: the newest frame, even if it is
 * last_seq again (then it is not counted as a read). None if nothing is published or the port
 * is closed. `release`: a zero-copy Frame's release; `out` (copy ports only): see rp_args. */
static PyObject *
rp_take(ReadPort *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t last_seq;
    Py_buffer out = {0};
    if (rp_args(self, args, nargs, 3, "take", &last_seq, &out) < 0) return NULL;
    PyObject *result = rp_take_now(self, last_seq, &out, self->copy ? args[2] : NULL, args[1]);
    if (self->copy) PyBuffer_Release(&out);
    return result;
}

/* wait(last_seq, timeout_s, release[, out]) -> Frame | None | error code: the newest frame if it
 * is newer than last_seq; else one sleep of at most timeout_s until WAKE changes, then the same
 * check. None if still nothing newer (timeout, a wake-up for another reason, or the port closed). */
static PyObject *
rp_wait(ReadPort *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t last_seq;
    struct timespec ts;
    Py_buffer out = {0};
    PyObject *result = NULL;
    if (rp_args(self, args, nargs, 4, "wait", &last_seq, &out) < 0) return NULL;
    if (as_timespec(args[1], &ts) < 0) goto done;
    for (int slept = 0;; slept = 1) {
        if (!self->open) {
            result = Py_NewRef(Py_None);
            break;
        }
        uint64_t seen = __atomic_load_n(self->wake, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(self->latest, __ATOMIC_ACQUIRE) >> 8 > last_seq) {
            result = rp_take_now(self, last_seq, &out, self->copy ? args[3] : NULL, args[2]);
            break;
        }
        if (slept || (ts.tv_sec == 0 && ts.tv_nsec == 0)) {
            result = Py_NewRef(Py_None);
            break;
        }
        __atomic_fetch_add(self->waiters, 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        PyObject *woke = futex_wait_result((uint32_t *)self->wake, (uint32_t)seen, &ts);
        __atomic_fetch_sub(self->waiters, 1, __ATOMIC_SEQ_CST);
        if (!woke) break;  /* a signal handler raised */
        Py_DECREF(woke);
    }
done:
    if (self->copy) PyBuffer_Release(&out);
    return result;
}

static PyObject *
rp_unpin(ReadPort *self, PyObject *arg)
{
    uint64_t word;
    if (as_u64(arg, &word) < 0) return NULL;
    return PyBool_FromLong(rp_release_hold(self, word));
}

static PyObject *
rp_close(ReadPort *self, PyObject *Py_UNUSED(ignored))
{
    self->open = 0;
    Py_RETURN_NONE;
}

static PyMethodDef rp_methods[] = {
    {"take", (PyCFunction)(void (*)(void))rp_take, METH_FASTCALL,
     "The newest Frame (pinned, or copied into out), counted unless it is last_seq again."},
    {"wait", (PyCFunction)(void (*)(void))rp_wait, METH_FASTCALL,
     "A Frame newer than last_seq, sleeping at most once (GIL released) until one is published."},
    {"unpin", (PyCFunction)rp_unpin, METH_O, "Clear the hold if it still pins this LATEST word."},
    {"close", (PyCFunction)rp_close, METH_NOARGS, "Pin nothing from now on."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReadPortType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framebus._atomic.ReadPort",
    .tp_doc = "One subscriber's read path (wait, pin or copy, checks, statistics, Frame) as single calls.",
    .tp_basicsize = sizeof(ReadPort),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)rp_init,
    .tp_dealloc = (destructor)rp_dealloc,
    .tp_methods = rp_methods,
};

/* copy_frame(dst, src): copy a whole frame into a slot, the GIL released. On x86-64 with
 * non-temporal (streaming) stores: a slot is rewritten long after a reader last touched it, so
 * loading its old lines into the cache first (the read-for-ownership of plain stores) is a third
 * of the memory traffic for nothing, and glibc's memcpy streams only copies larger than its
 * threshold (3/4 of the shared cache, far beyond a frame). Streaming stores are weakly ordered:
 * the SFENCE here and the seq-cst fence that starts publish() order them before the slot's
 * state and LATEST stores, as for any frame byte. Elsewhere: memcpy. */
#if defined(__x86_64__)
#include <emmintrin.h>
static void
stream_copy(char *dst, const char *src, size_t n)
{
    while (n && ((uintptr_t)dst & 15u)) {  /* head up to a 16-byte boundary */
        *dst++ = *src++;
        n--;
    }
    for (; n >= 64; n -= 64, src += 64, dst += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)src);
        __m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
        _mm_stream_si128((__m128i *)dst, a);
        _mm_stream_si128((__m128i *)(dst + 16), b);
        _mm_stream_si128((__m128i *)(dst + 32), c);
        _mm_stream_si128((__m128i *)(dst + 48), d);
    }
    memcpy(dst, src, n);
    _mm_sfence();
}
#else
static void
stream_copy(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
}
#endif

static PyObject *
mod_copy_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer dst, src;
    if (check_nargs(nargs, 2, "copy_frame") < 0) return NULL;
    if (PyObject_GetBuffer(args[0], &dst, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &src, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&dst);
        return NULL;
    }
    if (dst.len != src.len) {
        PyErr_Format(PyExc_ValueError, "copy_frame: %zd bytes into %zd", src.len, dst.len);
    } else {
        Py_BEGIN_ALLOW_THREADS
        stream_copy(dst.buf, src.buf, (size_t)dst.len);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyObject *
mod_latency_bucket(PyObject *module, PyObject *arg)
{
    uint64_t ns;
    if (as_u64(arg, &ns) < 0) return NULL;
    return PyLong_FromUnsignedLong(latency_bucket(ns));
}

/* keep_private(buffer, offset, length): the pages of buffer[offset:offset+length] (rounded out
 * to whole pages) become this process's own copy, with the same addresses and bytes: arrays
 * over them keep reading what they read now, whatever the shared object behind them does
 * next. For a held frame whose subscriber closes: called while the hold still protects the
 * slot, so the copy is whole. The copy is built beside the mapping, then moved over those
 * pages in one mremap(), so another thread reading them sees the old pages or the copy, never
 * a page in between. No control word is involved. */
static PyObject *
mod_keep_private(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    if (check_nargs(nargs, 3, "keep_private") < 0) return NULL;
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]), length = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) return NULL;
    if (offset < 0 || length <= 0 || offset > view.len - length) {
        PyErr_Format(PyExc_ValueError, "keep_private: %zd+%zd is outside a %zd-byte mapping", offset, length,
                     view.len);
        PyBuffer_Release(&view);
        return NULL;
    }
    /* (a mapping starts on a page and spans whole pages, so the rounded range stays inside it) */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), at = (uintptr_t)view.buf + (uintptr_t)offset;
    uintptr_t start = at & ~(page - 1), end = (at + (uintptr_t)length + page - 1) & ~(page - 1);
    size_t size = end - start;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    void *copy = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED) {
        failed = errno;
    } else {
        memcpy(copy, (const void *)start, size);
        if (mremap(copy, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)start) == MAP_FAILED) {
            failed = errno;
            munmap(copy, size);
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (failed) {
        errno = failed;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"copy_frame", (PyCFunction)(void (*)(void))mod_copy_frame, METH_FASTCALL,
     "Copy a C-contiguous frame into a slot (streaming stores on x86-64), the GIL released."},
    {"keep_private", (PyCFunction)(void (*)(void))mod_keep_private, METH_FASTCALL,
     "Make the pages of buffer[offset:offset+length] this process's own copy, in place."},
    {"latency_bucket", mod_latency_bucket, METH_O, "The latency histogram bucket of ns (as _layout's)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef atomic_module = {
    PyModuleDef_HEAD_INIT, "_atomic", "Atomic control words and futexes for framebus segments.", -1,
    module_methods, NULL, NULL, NULL, NULL,
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
    if (PyType_Ready(&ControlWordsType) < 0 || PyType_Ready(&ReadPortType) < 0
        || PyType_Ready(&FrameBaseType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&atomic_module);
    if (!m) return NULL;
    Py_INCREF(&ControlWordsType);
    if (PyModule_AddObject(m, "ControlWords", (PyObject *)&ControlWordsType) < 0) {
        Py_DECREF(&ControlWordsType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ReadPortType);
    if (PyModule_AddObject(m, "ReadPort", (PyObject *)&ReadPortType) < 0) {
        Py_DECREF(&ReadPortType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&FrameBaseType);
    if (PyModule_AddObject(m, "FrameBase", (PyObject *)&FrameBaseType) < 0) {
        Py_DECREF(&FrameBaseType);
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
