/*
 * framebus/_atomic.c's operations, run without an interpreter (tests/test_aarch64.py builds this
 * for aarch64 and runs it under qemu-aarch64, and natively as a control).
 *
 * The harness #includes the real _atomic.c, compiled against the Python headers, and supplies the
 * few C-API functions it calls: integers, buffers, tuples and exceptions as tiny fakes. So the
 * exact code a subscriber runs (bounds checks, orderings, futex syscalls with the aarch64 syscall
 * numbers) is exercised on the target ISA. It checks behaviour, not memory ordering: qemu runs
 * the guest on the host's (x86, TSO) memory, so it cannot show a weak-ordering bug (and qemu 7.2
 * even lets an LDAR pass an earlier STLR, which ARMv8 forbids), so it has no ordering stress
 * test; that is what the model check (framebus/ring.pml) and the disassembly audit are for.
 */
#include "_atomic.c"

#if PY_VERSION_HEX < 0x030B0000
#include <longintrepr.h>    /* PyLongObject, for the True and False singletons */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fakes ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    unsigned long long u;   /* an int */
    double d;               /* a float */
    unsigned long long items[24];   /* a tuple's numbers (PyArg_ParseTuple) */
    PyObject *objs[24];     /* and its objects */
    void *buf;              /* a buffer, or bytes */
    Py_ssize_t len;
    int readonly;
} Fake;

static PyTypeObject FakeType;
PyObject _Py_NoneStruct;
PyLongObject _Py_TrueStruct, _Py_FalseStruct;
static PyObject exc_index, exc_os, exc_type, exc_value;
PyObject *PyExc_IndexError = &exc_index, *PyExc_OSError = &exc_os;
PyObject *PyExc_TypeError = &exc_type, *PyExc_ValueError = &exc_value;
static __thread PyObject *pending;  /* the "raised" exception type, per thread */

static Fake *
fake(void)
{
    Fake *f = calloc(1, sizeof(Fake));
    Py_SET_REFCNT((PyObject *)f, 1 << 20);  /* never freed: a test's objects live until exit */
    Py_SET_TYPE((PyObject *)f, &FakeType);
    return f;
}

static PyObject *
num(unsigned long long u)
{
    Fake *f = fake();
    f->u = u;
    f->d = (double)u;
    return (PyObject *)f;
}

static PyObject *
seconds(double d)
{
    Fake *f = fake();
    f->d = d;
    return (PyObject *)f;
}

Py_ssize_t PyLong_AsSsize_t(PyObject *o) { return (Py_ssize_t)((Fake *)o)->u; }
unsigned long long PyLong_AsUnsignedLongLong(PyObject *o) { return ((Fake *)o)->u; }
PyObject *PyLong_FromUnsignedLongLong(unsigned long long u) { return num(u); }
PyObject *PyLong_FromLong(long v) { return num((unsigned long long)v); }
double PyFloat_AsDouble(PyObject *o) { return ((Fake *)o)->d; }

/* ReadPort's constructor arguments: a fake tuple whose objs/items are "O", "n", "K" and "p" */
int
PyArg_ParseTuple(PyObject *args, const char *format, ...)
{
    Fake *t = (Fake *)args;
    va_list ap;
    va_start(ap, format);
    for (int i = 0; format[i]; i++) {
        if (format[i] == 'O')
            *va_arg(ap, PyObject **) = t->objs[i];
        else if (format[i] == 'n')
            *va_arg(ap, Py_ssize_t *) = (Py_ssize_t)t->items[i];
        else if (format[i] == 'K')
            *va_arg(ap, unsigned long long *) = t->items[i];
        else
            *va_arg(ap, int *) = t->items[i] != 0;
    }
    va_end(ap);
    return 1;
}

PyObject *
PyBytes_FromStringAndSize(const char *data, Py_ssize_t len)
{
    Fake *f = fake();
    f->buf = calloc(1, (size_t)len + 1);
    if (data) memcpy(f->buf, data, (size_t)len);
    f->len = len;
    return (PyObject *)f;
}

PyObject *PyBool_FromLong(long v) { return v ? Py_True : Py_False; }
PyObject *PyLong_FromUnsignedLong(unsigned long v) { return num(v); }

int
PyObject_GetBuffer(PyObject *o, Py_buffer *view, int flags)
{
    Fake *f = (Fake *)o;
    if ((flags & PyBUF_WRITABLE) && f->readonly) {
        pending = PyExc_TypeError;
        return -1;
    }
    memset(view, 0, sizeof(*view));
    view->buf = f->buf;
    view->len = f->len;
    view->readonly = f->readonly;
    return 0;
}

void PyBuffer_Release(Py_buffer *view) { view->buf = NULL; }
Py_ssize_t PyTuple_Size(PyObject *o) { return ((Fake *)o)->len; }
PyObject *PyTuple_GetItem(PyObject *o, Py_ssize_t i) { return ((Fake *)o)->objs[i]; }
int PyType_IsSubtype(PyTypeObject *a, PyTypeObject *b) { (void)b; return a->tp_basicsize == sizeof(FrameBase); }

/* The Frame type a port builds its frames of: FrameBase-sized objects that are never freed. */
static PyObject *
frame_alloc(PyTypeObject *type, Py_ssize_t n)
{
    (void)n;
    PyObject *o = calloc(1, (size_t)type->tp_basicsize);
    Py_SET_REFCNT(o, 1 << 20);
    Py_SET_TYPE(o, type);
    return o;
}
static PyTypeObject MetaType = {.tp_flags = Py_TPFLAGS_TYPE_SUBCLASS};  /* PyType_Check() looks here */
static PyTypeObject FrameType = {PyVarObject_HEAD_INIT(&MetaType, 0) .tp_basicsize = sizeof(FrameBase),
                                 .tp_alloc = frame_alloc};
void PyErr_SetString(PyObject *type, const char *message) { (void)message; pending = type; }
PyObject *PyErr_Format(PyObject *type, const char *format, ...) { (void)format; pending = type; return NULL; }
PyObject *PyErr_SetFromErrno(PyObject *type) { pending = type; return NULL; }
PyObject *PyErr_Occurred(void) { return pending; }
void PyErr_Clear(void) { pending = NULL; }
int PyErr_CheckSignals(void) { return 0; }
PyThreadState *PyEval_SaveThread(void) { return NULL; }
void PyEval_RestoreThread(PyThreadState *state) { (void)state; }
void _Py_Dealloc(PyObject *o) { (void)o; }
void PyObject_GC_UnTrack(void *o) { (void)o; }
/* Referenced by the module's type and init code, which the harness never runs. */
#if PY_VERSION_HEX >= 0x030D0000
typedef char *const *Keywords;  /* 3.13 made the keyword list const */
#else
typedef char **Keywords;
#endif
int PyArg_ParseTupleAndKeywords(PyObject *a, PyObject *k, const char *f, Keywords kw, ...)
{ (void)a; (void)k; (void)f; (void)kw; return 0; }
PyObject *PyType_GenericNew(PyTypeObject *t, PyObject *a, PyObject *k) { (void)t; (void)a; (void)k; return NULL; }
int PyType_Ready(PyTypeObject *t) { (void)t; return 0; }
PyObject *PyModule_Create2(struct PyModuleDef *d, int v) { (void)d; (void)v; return NULL; }
PyObject *Py_BuildValue(const char *f, ...) { (void)f; return NULL; }
int PyModule_AddObject(PyObject *m, const char *n, PyObject *o) { (void)m; (void)n; (void)o; return 0; }

/* ---- the checks ----------------------------------------------------------------------------- */

static int failures;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* A fake segment: control words, a reader entry and a 3-slot ring, laid out like _layout's
 * (smaller): each slot is a 64-byte header (seq, timestamp, wall time, meta length), meta, frame. */
enum {
    LATEST = 0, WAKE = 64, WAITERS = 128, STALLED = 160, STATES = 192, HOLD = 256, GEN = 320,
    ENTRY = 1024, SLOTS = 2048, STRIDE = 256, SLOT_COUNT = 3, META = 32, FRAME = 128, NBYTES = 64,
    SIZE = SLOTS + SLOT_COUNT * STRIDE
};
#define GENERATION 0xFFFFFFFFFFFFFFF0ull  /* GEN is any u64 (past INT64_MAX too) */
static _Alignas(64) unsigned char memory[SIZE];
static ControlWords cw;

static uint64_t *word(Py_ssize_t offset) { return (uint64_t *)(memory + offset); }
static unsigned long long value(PyObject *o) { return ((Fake *)o)->u; }
static long long code(PyObject *o) { return (long long)((Fake *)o)->u; }

static PyObject *
call(PyObject *(*op)(ControlWords *, PyObject *const *, Py_ssize_t), int n, ...)
{
    PyObject *args[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        args[i] = va_arg(ap, PyObject *);
    va_end(ap);
    pending = NULL;
    return op(&cw, args, n);
}

static void
check_words(void)
{
    CHECK(call(cw_store, 2, num(LATEST), num(0x1234)) == Py_None);
    CHECK(value(call(cw_load, 1, num(LATEST))) == 0x1234);
    CHECK(call(cw_store_sc, 2, num(LATEST), num(UINT64_MAX)) == Py_None);
    CHECK(value(call(cw_load_sc, 1, num(LATEST))) == UINT64_MAX);
    CHECK(value(call(cw_exchange, 2, num(LATEST), num(7))) == UINT64_MAX);
    CHECK(value(call(cw_fetch_add, 2, num(LATEST), num(UINT64_MAX))) == 7);  /* minus one */
    CHECK(*word(LATEST) == 6);
    CHECK(cw_fence(&cw, NULL) == Py_None);
    /* out of bounds, misaligned, negative: an IndexError, never an access */
    CHECK(call(cw_load, 1, num(SIZE)) == NULL && pending == PyExc_IndexError);
    CHECK(call(cw_load, 1, num(SIZE - 4)) == NULL && pending == PyExc_IndexError);
    CHECK(call(cw_store, 2, num(4), num(1)) == NULL && pending == PyExc_IndexError);
    CHECK(call(cw_load, 1, num((unsigned long long)-8)) == NULL && pending == PyExc_IndexError);
    cw.readonly = 1;
    CHECK(call(cw_store, 2, num(0), num(1)) == NULL && pending == PyExc_TypeError);
    cw.readonly = 0;
    *word(LATEST) = 0;
}

/* ReadPort(buffer, hold, latest, wake, waiters, stalled, gen, states, slot_count, slots, stride,
 *          frame_offset, frame_nbytes, meta_capacity, entry, copy, generation, views, frame_type),
 * through rp_init; views: one fake array per slot (zero-copy) */
static Fake *views;

static int
port(ReadPort *rp, int copy, Py_ssize_t slot_count, Py_ssize_t entry)
{
    Fake *buffer = fake(), *args = fake();
    buffer->buf = memory, buffer->len = SIZE;
    unsigned long long items[17] = {0, HOLD, LATEST, WAKE, WAITERS, STALLED, GEN, STATES, slot_count, SLOTS,
                                    STRIDE, FRAME, NBYTES, META, entry, copy, GENERATION};
    memcpy(args->items, items, sizeof items);
    args->objs[0] = (PyObject *)buffer;
    views = fake();
    views->len = slot_count;
    for (int i = 0; i < slot_count && i < 16; i++)
        views->objs[i] = fake();
    args->objs[17] = copy ? Py_None : (PyObject *)views;
    args->objs[18] = (PyObject *)&FrameType;
    *word(GEN) = GENERATION;
    memset(rp, 0, sizeof *rp);
    pending = NULL;
    return rp_init(rp, (PyObject *)args, NULL);
}

static PyObject *
port_call(ReadPort *rp, PyObject *(*op)(ReadPort *, PyObject *const *, Py_ssize_t), int n, ...)
{
    PyObject *args[4];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        args[i] = va_arg(ap, PyObject *);
    va_end(ap);
    pending = NULL;
    return op(rp, args, n);
}

static PyObject *
out_buffer(Py_ssize_t len)
{
    Fake *f = fake();
    f->buf = calloc(1, (size_t)len), f->len = len;
    return (PyObject *)f;
}

static uint64_t *
slot_header(int slot)
{
    return word(SLOTS + slot * STRIDE);
}

/* The writer's side of a frame: header, meta and bytes, then the commit (cw_publish). */
static PyObject *
publish(int slot, uint64_t seq, const char *meta)
{
    uint64_t *header = slot_header(slot);
    header[0] = seq, header[1] = 111, header[2] = 222, header[3] = strlen(meta);
    memcpy((char *)header + 64, meta, strlen(meta));
    memset((char *)header + FRAME, (int)seq, NBYTES);
    *word(STATES + 8 * slot) = UINT64_MAX;  /* WRITING, as claim leaves it */
    return call(cw_publish, 6, num(STATES + 8 * slot), num(seq), num(LATEST), num(seq << 8 | slot),
                num(WAKE), num(WAITERS));
}

static uint64_t
histogram_total(void)
{
    uint64_t total = 0;
    for (int i = 0; i < 2 * LATENCY_BUCKETS; i++)
        total += ((uint32_t *)(memory + ENTRY + R_LATENCY_HIST))[i];
    return total;
}

static void
check_pin(void)
{
    ReadPort rp;
    CHECK(port(&rp, 0, SLOT_COUNT, ENTRY) == 0);
    CHECK(port_call(&rp, rp_take, 2, num(0), Py_None) == Py_None);   /* nothing published */
    CHECK(publish(1, 5, "abc") == Py_False);   /* nobody sleeps: no syscall */
    CHECK(*word(STATES + 8) == 5 && *word(LATEST) == (5 << 8 | 1) && *word(WAKE) == 1);
    PyObject *release = fake();
    FrameBase *f = (FrameBase *)port_call(&rp, rp_take, 2, num(3), release);
    CHECK(Py_TYPE(f) == &FrameType && f->array == views->objs[1] && f->release == release);
    CHECK(f->word == (5 << 8 | 1) && f->seq == 5 && f->timestamp_ns == 111 && f->wall_time_ns == 222);
    CHECK(((Fake *)f->meta_bytes)->len == 3 && memcmp(((Fake *)f->meta_bytes)->buf, "abc", 3) == 0);
    CHECK(f->missed == 1 && f->stale == 0 && f->meta == NULL);    /* frame 4 was missed; not stalled */
    CHECK(*word(HOLD) == (5 << 8 | 1));
    CHECK(*word(ENTRY + R_FRAMES_READ) == 1 && *word(ENTRY + R_FRAMES_MISSED) == 1);
    CHECK(*word(ENTRY + R_LAST_SEQ) == 5 && *word(ENTRY + R_HOLD_SINCE_NS) != 0);
    CHECK(histogram_total() == 1);
    /* the same frame again: pinned, not counted */
    *word(STALLED) = 1;
    f = (FrameBase *)port_call(&rp, rp_take, 2, num(5), Py_None);
    CHECK(f->word == (5 << 8 | 1) && f->missed == 0 && f->stale == 1 && f->release == NULL);
    CHECK(*word(ENTRY + R_FRAMES_READ) == 1 && histogram_total() == 1);
    *word(STALLED) = 0;
    /* unpin is a compare-and-swap: another frame's word clears nothing */
    CHECK(rp_unpin(&rp, num(4 << 8 | 2)) == Py_False && *word(HOLD) == (5 << 8 | 1));
    CHECK(rp_unpin(&rp, num(5 << 8 | 1)) == Py_True && *word(HOLD) == 0);
    /* another writer took the segment over (GEN moved on): no frame, no hold, not counted */
    *word(GEN) = GENERATION + 1;
    CHECK(code(port_call(&rp, rp_take, 2, num(0), Py_None)) == REPLACED);
    CHECK(*word(HOLD) == 0 && *word(ENTRY + R_FRAMES_READ) == 1);
    *word(GEN) = GENERATION;
    /* corrupt segments: LATEST past the ring, a state that never matches, a header that lies */
    *word(LATEST) = 5 << 8 | 7;
    CHECK(code(port_call(&rp, rp_take, 2, num(0), Py_None)) == -1);
    *word(LATEST) = 6 << 8 | 1;
    CHECK(code(port_call(&rp, rp_take, 2, num(0), Py_None)) == -2);
    *word(STATES + 8) = 6;
    CHECK(code(port_call(&rp, rp_take, 2, num(0), Py_None)) == -3);
    slot_header(1)[0] = 6, slot_header(1)[3] = META + 1;
    CHECK(code(port_call(&rp, rp_take, 2, num(0), Py_None)) == -4);
    slot_header(1)[3] = 0;
    /* closed: pins nothing */
    *word(HOLD) = 0;
    CHECK(rp_close(&rp, NULL) == Py_None);
    CHECK(port_call(&rp, rp_take, 2, num(0), Py_None) == Py_None && *word(HOLD) == 0);
    /* inconsistent geometry or regions outside the mapping: a ValueError, never an access */
    CHECK(port(&rp, 0, 0, ENTRY) == -1 && pending == PyExc_ValueError);
    CHECK(port_call(&rp, rp_take, 2, num(0), Py_None) == Py_None);   /* (a failed init: never open) */
    CHECK(port(&rp, 0, SLOT_COUNT, SIZE - 8) == -1 && pending == PyExc_ValueError);
}

static void
check_copy(void)
{
    ReadPort rp;
    CHECK(port(&rp, 1, SLOT_COUNT, ENTRY) == 0);
    memset(memory + ENTRY, 0, READER_ENTRY);
    CHECK(publish(2, 7, "") == Py_False);
    PyObject *out = out_buffer(NBYTES);
    FrameBase *f = (FrameBase *)port_call(&rp, rp_take, 3, num(0), Py_None, out);
    CHECK(f->array == out && f->word == (7 << 8 | 2) && ((Fake *)f->meta_bytes)->len == 0 && f->missed == 0);
    CHECK(((unsigned char *)((Fake *)out)->buf)[0] == 7 && ((unsigned char *)((Fake *)out)->buf)[NBYTES - 1] == 7);
    CHECK(*word(HOLD) == 0 && *word(ENTRY + R_FRAMES_READ) == 1 && *word(ENTRY + R_HOLD_SINCE_NS) == 0);
    /* a state that differs from LATEST's seq on both tries: corrupt (-2), not lapped */
    *word(STATES + 16) = 8;
    CHECK(code(port_call(&rp, rp_take, 3, num(0), Py_None, out)) == -2);
    *word(STATES + 16) = 7;
    /* a copy read across a takeover (GEN moved on) is dropped */
    *word(GEN) = GENERATION + 1;
    CHECK(code(port_call(&rp, rp_take, 3, num(0), Py_None, out)) == REPLACED);
    *word(GEN) = GENERATION;
    /* a copy port needs an output buffer of the frame's size */
    CHECK(port_call(&rp, rp_take, 2, num(0), Py_None) == NULL && pending == PyExc_TypeError);
    CHECK(port_call(&rp, rp_take, 3, num(0), Py_None, out_buffer(NBYTES - 1)) == NULL
          && pending == PyExc_ValueError);
}

/* Issue 19: after an in-place takeover the new writer starts again from seq 1 in the same slots,
 * so a stalled reader may load the LATEST word it loaded under the old writer (the new writer's
 * seq 1 in slot 1) while that slot is claimed again, or find a state or header of the new
 * writer's: the GEN re-check comes before every verdict of corruption, so each read is REPLACED
 * (WriterGone), never -2, -3 or -4 (SegmentCorrupt), and is not counted. Under the port's own
 * generation the same words are corruption. */
static void
check_verdicts_after_takeover(void)
{
    ReadPort pin, copy;
    PyObject *out = out_buffer(NBYTES);
    CHECK(port(&pin, 0, SLOT_COUNT, ENTRY) == 0 && port(&copy, 1, SLOT_COUNT, ENTRY) == 0);
    publish(1, 1, "");
    uint64_t reused = 1 << 8 | 1, read = *word(ENTRY + R_FRAMES_READ);
    for (int replaced = 1; replaced >= 0; replaced--) {
        *word(GEN) = replaced ? GENERATION + 1 : GENERATION;
        long long want[3] = {replaced ? REPLACED : -2, replaced ? REPLACED : -3, replaced ? REPLACED : -4};
        /* the state never matches (slot 1 claimed again: WRITING), the header's seq differs, its
           meta length is past the capacity */
        for (int verdict = 0; verdict < 3; verdict++) {
            *word(LATEST) = reused;
            *word(STATES + 8) = verdict == 0 ? UINT64_MAX : 1;
            slot_header(1)[0] = verdict == 1 ? 2 : 1;
            slot_header(1)[3] = verdict == 2 ? META + 1 : 0;
            *word(HOLD) = 0;
            CHECK(code(port_call(&pin, rp_take, 2, num(0), Py_None)) == want[verdict]);
            CHECK(*word(HOLD) == (replaced ? 0 : reused));   /* REPLACED releases the pin's hold */
            CHECK(code(port_call(&copy, rp_take, 3, num(0), Py_None, out)) == want[verdict]);
        }
    }
    CHECK(*word(ENTRY + R_FRAMES_READ) == read);
    *word(HOLD) = 0, *word(STATES + 8) = 1, slot_header(1)[0] = 1, slot_header(1)[3] = 0;
}

/* copy_frame: streaming stores on x86-64, memcpy elsewhere; odd sizes and offsets too */
static void
check_copy_frame(void)
{
    PyObject *dst = out_buffer(1000), *src = out_buffer(1000), *args[2] = {dst, src};
    ((Fake *)dst)->buf = (char *)((Fake *)dst)->buf + 3, ((Fake *)dst)->len = 997;
    ((Fake *)src)->len = 997;
    for (int i = 0; i < 997; i++)
        ((unsigned char *)((Fake *)src)->buf)[i] = (unsigned char)(i * 7);
    pending = NULL;
    CHECK(mod_copy_frame(NULL, args, 2) == Py_None);
    CHECK(memcmp(((Fake *)dst)->buf, ((Fake *)src)->buf, 997) == 0);
    ((Fake *)src)->len = 996;
    pending = NULL;
    CHECK(mod_copy_frame(NULL, args, 2) == NULL && pending == PyExc_ValueError);
}

static ReadPort waiting_port;

static void *
port_waiter(void *last_seq)
{
    return port_call(&waiting_port, rp_wait, 3, num(*(uint64_t *)last_seq), seconds(20.0), Py_None);
}

static void
check_port_wait(void)
{
    CHECK(port(&waiting_port, 0, SLOT_COUNT, ENTRY) == 0);
    uint64_t last = *word(LATEST) >> 8;
    /* newer already: taken at once; nothing newer: one sleep, then None */
    CHECK(((FrameBase *)port_call(&waiting_port, rp_wait, 3, num(last - 1), seconds(5.0), Py_None))->word
          == *word(LATEST));
    CHECK(port_call(&waiting_port, rp_wait, 3, num(last), seconds(0.05), Py_None) == Py_None);
    CHECK(*word(WAITERS) == 0);
    /* a publish wakes the sleeping port, which pins the new frame */
    pthread_t thread;
    void *result;
    pthread_create(&thread, NULL, port_waiter, &last);
    while (__atomic_load_n(word(WAITERS), __ATOMIC_SEQ_CST) == 0)
        sched_yield();
    publish(0, last + 1, "");
    pthread_join(thread, &result);
    CHECK(((FrameBase *)result)->word == ((last + 1) << 8 | 0) && *word(HOLD) == ((last + 1) << 8 | 0));
    CHECK(*word(WAITERS) == 0);
}

static void *
sleeper(void *timeout)
{
    uint64_t seen = *word(WAKE);
    return call(cw_sleep, 4, num(WAKE), num(WAITERS), num(seen), seconds(*(double *)timeout));
}

static void
check_sleep_and_wake(void)
{
    double long_wait = 20.0, short_wait = 0.05;
    pthread_t thread;
    void *woken;
    /* a publish wakes a sleeper through FUTEX_WAKE (the aarch64 futex syscall under qemu) */
    pthread_create(&thread, NULL, sleeper, &long_wait);
    while (__atomic_load_n(word(WAITERS), __ATOMIC_SEQ_CST) == 0)
        sched_yield();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* (if the sleeper is not in the kernel yet, its compare sees the new WAKE: also a wake-up) */
    PyObject *syscalled = call(cw_publish, 6, num(STATES + 8), num(6), num(LATEST), num(6 << 8 | 1),
                               num(WAKE), num(WAITERS));
    pthread_join(thread, &woken);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(syscalled == Py_True);
    CHECK(woken == Py_True);
    CHECK(t1.tv_sec - t0.tv_sec < 10);
    CHECK(*word(WAITERS) == 0);
    /* WAKE already moved on: no sleep at all; nothing moves it: a timeout */
    CHECK(call(cw_sleep, 4, num(WAKE), num(WAITERS), num(*word(WAKE) + 1), seconds(5)) == Py_True);
    CHECK(sleeper(&short_wait) == Py_False);
    CHECK(value(call(cw_futex_wake, 1, num(WAKE))) == 0);
    CHECK(*word(WAITERS) == 0);
}

int
main(void)
{
    cw.view.buf = memory, cw.view.len = SIZE, cw.has_view = 1, cw.readonly = 0;
    check_words();
    check_pin();
    check_copy();
    check_verdicts_after_takeover();
    check_port_wait();
    check_copy_frame();
    check_sleep_and_wake();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    puts("all _atomic.c checks passed");
    return 0;
}
