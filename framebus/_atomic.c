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
cw_compare_exchange(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t expected, desired;
    if (check_nargs(nargs, 3, "compare_exchange") < 0) return NULL;
    uint64_t *w = word_at(self, args[0], 8, 1);
    if (!w || as_u64(args[1], &expected) < 0 || as_u64(args[2], &desired) < 0) return NULL;
    return PyBool_FromLong(__atomic_compare_exchange_n(w, &expected, desired, 0,
                                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
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

/* futex_wait(offset, expected, timeout_s) -> bool: True if woken or the word
 * already differed, False on timeout. Sleeps in the kernel without the GIL.
 * No FUTEX_PRIVATE_FLAG: the word is shared between processes. */
static PyObject *
cw_futex_wait(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t expected;
    if (check_nargs(nargs, 3, "futex_wait") < 0) return NULL;
    uint32_t *w = futex_at(self, args[0]);
    if (!w || as_u64(args[1], &expected) < 0) return NULL;
    double timeout = PyFloat_AsDouble(args[2]);
    if (timeout == -1.0 && PyErr_Occurred()) return NULL;
    if (timeout < 0) timeout = 0;
    struct timespec ts;
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    long rc;
    int err;
    Py_BEGIN_ALLOW_THREADS
    rc = syscall(SYS_futex, w, FUTEX_WAIT, (uint32_t)expected, &ts, NULL, 0);
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
 * Compound operations: the ring protocol's hot steps (_ring.py) as single calls, so the path
 * from "frame written" to "reader holds it" crosses the interpreter a few times rather than a
 * dozen (each crossing costs microseconds on the cold caches a reader wakes up to). Each is
 * exactly the sequence of the single-word calls above, with the same orderings.
 */

/* publish(state, seq, latest, latest_word, wake, waiters) -> bool
 * Writer steps 3-4: fence; state = seq (release); LATEST = latest_word (release);
 * WAKE += 1 (seq-cst); FUTEX_WAKE all if WAITERS > 0 (seq-cst load). True if it woke anyone. */
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
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(state, seq, __ATOMIC_RELEASE);
    __atomic_store_n(latest, word, __ATOMIC_RELEASE);
    __atomic_fetch_add(wake, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(waiters, __ATOMIC_SEQ_CST))
        Py_RETURN_FALSE;
    if (syscall(SYS_futex, (uint32_t *)wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_TRUE;
}

/* pin(hold, latest, states, slot_count, word) -> int
 * Zero-copy reader hand-shake: store `word` (a LATEST value the caller loaded with acquire)
 * into the hold word (seq-cst), load its slot's state (seq-cst); accept if it equals the word's
 * seq, else reload LATEST (acquire) and retry. Returns the pinned word, 0 if nothing was
 * published yet, -1 if LATEST names a slot >= slot_count, -2 if LATEST did not move between
 * two failed attempts (the writer never touches the LATEST slot: the segment is corrupt). */
static PyObject *
cw_pin(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t word, previous = 0;
    int retried = 0;
    if (check_nargs(nargs, 5, "pin") < 0) return NULL;
    uint64_t *hold = word_at(self, args[0], 8, 1);
    uint64_t *latest = hold ? word_at(self, args[1], 8, 0) : NULL;
    if (!latest) return NULL;
    Py_ssize_t states = PyLong_AsSsize_t(args[2]);
    Py_ssize_t slots = PyLong_AsSsize_t(args[3]);
    if (((states == -1 || slots == -1) && PyErr_Occurred()) || as_u64(args[4], &word) < 0)
        return NULL;
    for (;;) {
        if (word == 0)
            return PyLong_FromLong(0);
        uint64_t slot = word & 0xFF, seq = word >> 8;
        if ((Py_ssize_t)slot >= slots)
            return PyLong_FromLong(-1);
        uint64_t *state = word_at_offset(self, states + (Py_ssize_t)slot * 8, 8, 0);
        if (!state) return NULL;
        __atomic_store_n(hold, word, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(state, __ATOMIC_SEQ_CST) == seq)
            return PyLong_FromUnsignedLongLong(word);
        if (retried && word == previous)
            return PyLong_FromLong(-2);
        previous = word;
        retried = 1;
        word = __atomic_load_n(latest, __ATOMIC_ACQUIRE);
    }
}

/* sleep(wake, waiters, expected, timeout) -> bool
 * A reader's sleep: WAITERS += 1 (seq-cst), fence, FUTEX_WAIT on WAKE while it equals expected,
 * WAITERS -= 1. False on timeout. The writer bumps WAKE before it reads WAITERS, so either it
 * sees our increment and wakes us, or the kernel sees its new WAKE and does not sleep. */
static PyObject *
cw_sleep(ControlWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t expected;
    if (check_nargs(nargs, 4, "sleep") < 0) return NULL;
    uint32_t *wake = (uint32_t *)word_at(self, args[0], 8, 0);
    uint64_t *waiters = wake ? word_at(self, args[1], 8, 1) : NULL;
    if (!waiters || as_u64(args[2], &expected) < 0) return NULL;
    double timeout = PyFloat_AsDouble(args[3]);
    if (timeout == -1.0 && PyErr_Occurred()) return NULL;
    if (timeout < 0) timeout = 0;
    struct timespec ts;
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    long rc;
    int err;
    __atomic_fetch_add(waiters, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  /* the kernel's plain load of WAKE comes after */
    Py_BEGIN_ALLOW_THREADS
    rc = syscall(SYS_futex, wake, FUTEX_WAIT, (uint32_t)expected, &ts, NULL, 0);
    err = errno;
    Py_END_ALLOW_THREADS
    __atomic_fetch_sub(waiters, 1, __ATOMIC_SEQ_CST);
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
    {"compare_exchange", (PyCFunction)(void (*)(void))cw_compare_exchange, METH_FASTCALL,
     "Seq-cst compare-and-swap; True if the word held expected and now holds desired."},
    {"fence", (PyCFunction)cw_fence, METH_NOARGS, "Full (seq-cst) memory fence."},
    {"futex_wait", (PyCFunction)(void (*)(void))cw_futex_wait, METH_FASTCALL,
     "Sleep while the word's low 32 bits equal expected; False on timeout."},
    {"futex_wake", (PyCFunction)(void (*)(void))cw_futex_wake, METH_FASTCALL,
     "Wake every waiter on the word; returns how many woke."},
    {"publish", (PyCFunction)(void (*)(void))cw_publish, METH_FASTCALL,
     "Fence, store state and LATEST (release), bump WAKE, futex-wake if anyone sleeps."},
    {"pin", (PyCFunction)(void (*)(void))cw_pin, METH_FASTCALL,
     "Pin the newest frame into a hold word; the word, 0 if none, -1/-2 if corrupt."},
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

static struct PyModuleDef atomic_module = {
    PyModuleDef_HEAD_INIT, "_atomic", "Atomic control words and futexes for framebus segments.", -1, NULL,
};

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
    return m;
}
