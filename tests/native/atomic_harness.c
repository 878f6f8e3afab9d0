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
    unsigned long long items[5];    /* a 5-tuple from Py_BuildValue */
    void *buf;              /* a buffer */
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

PyObject *
Py_BuildValue(const char *format, ...)
{
    /* the two shapes _atomic.c builds: "(iiiii)" and "(KKKKK)" */
    Fake *f = fake();
    va_list ap;
    va_start(ap, format);
    for (int i = 0; i < 5; i++)
        f->items[i] = format[1] == 'i' ? (unsigned long long)(long long)va_arg(ap, int)
                                       : va_arg(ap, unsigned long long);
    va_end(ap);
    return (PyObject *)f;
}

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
void PyErr_SetString(PyObject *type, const char *message) { (void)message; pending = type; }
PyObject *PyErr_Format(PyObject *type, const char *format, ...) { (void)format; pending = type; return NULL; }
PyObject *PyErr_SetFromErrno(PyObject *type) { pending = type; return NULL; }
PyObject *PyErr_Occurred(void) { return pending; }
void PyErr_Clear(void) { pending = NULL; }
int PyErr_CheckSignals(void) { return 0; }
PyThreadState *PyEval_SaveThread(void) { return NULL; }
void PyEval_RestoreThread(PyThreadState *state) { (void)state; }
void _Py_Dealloc(PyObject *o) { (void)o; }
/* Referenced by the module's type and init code, which the harness never runs. */
int PyArg_ParseTupleAndKeywords(PyObject *a, PyObject *k, const char *f, char **kw, ...)
{ (void)a; (void)k; (void)f; (void)kw; return 0; }
PyObject *PyType_GenericNew(PyTypeObject *t, PyObject *a, PyObject *k) { (void)t; (void)a; (void)k; return NULL; }
int PyType_Ready(PyTypeObject *t) { (void)t; return 0; }
PyObject *PyModule_Create2(struct PyModuleDef *d, int v) { (void)d; (void)v; return NULL; }
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

/* A fake segment: control words and a 3-slot ring, laid out like _layout's (smaller). */
enum {
    LATEST = 0, WAKE = 64, WAITERS = 128, STATES = 192, HOLD = 256, STATS = 320,
    SLOTS = 512, STRIDE = 256, SLOT_COUNT = 3, SIZE = SLOTS + SLOT_COUNT * STRIDE
};
static _Alignas(64) unsigned char memory[SIZE];
static ControlWords cw;

static uint64_t *word(Py_ssize_t offset) { return (uint64_t *)(memory + offset); }
static unsigned long long value(PyObject *o) { return ((Fake *)o)->u; }

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

static PyObject *
pin(unsigned long long last_seq)
{
    return call(cw_pin, 8, num(HOLD), num(LATEST), num(STATES), num(SLOT_COUNT), num(SLOTS),
                num(STRIDE), num(STATS), num(last_seq));
}

static void
check_publish_and_pin(void)
{
    Fake *t = (Fake *)pin(0);
    CHECK(t->items[0] == 0);    /* nothing published */
    uint64_t *header = word(SLOTS + 1 * STRIDE);
    header[0] = 5, header[1] = 111, header[2] = 222, header[3] = 0;     /* seq, ts, wall, meta */
    *word(STATES + 8) = UINT64_MAX;     /* WRITING, as claim leaves it */
    CHECK(call(cw_publish, 6, num(STATES + 8), num(5), num(LATEST), num(5 << 8 | 1), num(WAKE),
               num(WAITERS)) == Py_False);  /* nobody sleeps: no syscall */
    CHECK(*word(STATES + 8) == 5 && *word(LATEST) == (5 << 8 | 1) && *word(WAKE) == 1);
    t = (Fake *)pin(3);
    CHECK(t->items[0] == (5 << 8 | 1) && t->items[1] == 111 && t->items[2] == 222);
    CHECK(t->items[4] == 1);    /* frame 4 was missed */
    CHECK(*word(HOLD) == (5 << 8 | 1));
    CHECK(*word(STATS) == 1 && *word(STATS + 8) == 1);  /* frames read, frames missed */
    /* corrupt segments: LATEST past the ring, a state that never matches, a header that lies */
    *word(LATEST) = 5 << 8 | 7;
    CHECK((long long)((Fake *)pin(0))->items[0] == -1);
    *word(LATEST) = 6 << 8 | 1;
    CHECK((long long)((Fake *)pin(0))->items[0] == -2);
    *word(STATES + 8) = 6;
    CHECK((long long)((Fake *)pin(0))->items[0] == -3);
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
    check_publish_and_pin();
    check_sleep_and_wake();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    puts("all _atomic.c checks passed");
    return 0;
}
