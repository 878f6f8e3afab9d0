/*
 * framebus/ring.pml: the slot-ring protocol of _ring.py, _atomic.c (cw_publish, ReadPort) and the
 * subscriber's generation checks, as a Promela model for the Spin model checker (issue 13).
 * tests/test_model.py explores it exhaustively, clean and with each guard removed (MUT_* below):
 *     spin -a -DFR1=4 [-DMUT_...] framebus/ring.pml && cc -DSAFETY -DCOLLAPSE -o pan pan.c && ./pan
 * Why Spin: it is a Debian package (no JVM, unlike TLA+'s TLC), it checks every interleaving of
 * processes that share variables, which is what the bus is, and its C preprocessor makes each
 * mutation a -D flag of the same file. The weak-memory checkers (herd7, GenMC) would take the
 * orderings from a memory model instead of from this file, but they are not packaged here and
 * check litmus-sized programs, not a protocol with crashes and futexes.
 *
 * What runs: 3 slots (so holder_count = slots - 2 = 1: the tightest ring); a writer that publishes
 * FR1 frames and may be SIGKILLed at any point, mid-frame included, and then its replacement (FR2
 * frames), which either takes the dead writer's segment over in place (Segment.take_over: a new
 * generation in GEN, the ring reset, live holds kept) or creates a new segment (-DTAKEOVER=1: in
 * place only, 2: new segment only, default both); one zero-copy holder that may be SIGKILLed at
 * any point, and then a new holder on the same entry; one copy reader. Both readers read through
 * ReadPort (wait: WAKE, LATEST, the futex; take: the pin or the bounded seqlock copy, then the
 * generation re-check, which comes before any verdict of corruption); a second thread of the
 * holder's process (Releaser, -DRELEASE_THREAD) may release its current frame at any step (the
 * unpin CAS); without it the holder releases its frame between its reads. A live writer's loan()
 * block may raise (-DABANDON=n times per writer): the slot is given back unpublished.
 * -DNO_KILL_W / -DNO_KILL_H leave one kind of crash out, to afford more frames for the other.
 *
 * Granularity: one Promela step is one control-word access (one _atomic operation, or the kernel's
 * futex compare or wake), together with the process's local work around it, or one step of a
 * frame's bytes; where two accesses share a step, a comment says why that hides nothing. Each step
 * quotes the code it stands for in an "@map <file>: <code>" comment, and tests/test_model.py
 * checks that the quoted code still exists and, within each inline or proctype, that the quotes
 * of one function come in that function's order (the branches of a choice are written in the
 * code's order; "@again" quotes a retry of code quoted before, a loop back, and is not ordered).
 *
 * Memory model. Promela is sequentially consistent. Where the argument rests on an ordering, the
 * clean model runs the two accesses in program order, as _atomic.c's seq-cst pair or fence
 * guarantees, and a MUT_* flag lets them happen the other way round, as C11 allows without that
 * guard (a load performed while an earlier store still sits in the store buffer, or a plain store
 * seen after a later one). So the clean model is exactly as strong as the guards, no stronger.
 *
 * Mutations (-D<flag>): each removes one guard; Spin must find a counterexample for each.
 *   MUT_NO_RESCAN          claim does not re-read the holds after marking the slot WRITING
 *   MUT_NO_PIN_RECHECK     rp_pin accepts LATEST's slot without re-reading its state
 *   MUT_NO_WAITERS_FENCE   rp_wait without its fence: the kernel's load of WAKE may pass the
 *                          WAITERS increment still in the store buffer
 *   MUT_NO_REAP_LOCK       the reaper sees the entry unlocked, then clears its hold without
 *                          taking the entry's lock
 *   MUT_PIN_ACQ_REL        rp_pin's hold store only release, its state load only acquire
 *   MUT_CLAIM_ACQ_REL      claim's exchange only acq_rel, its re-scan loads only acquire
 *   MUT_COPY_NO_FENCE      rp_copy re-checks the state without the fence after its copy
 *   MUT_PUBLISH_RELAXED    publish without fence or release: the frame's last bytes may land
 *                          after the state or LATEST store
 *   MUT_POLL_ORDER         rp_wait loads LATEST before WAKE
 *   MUT_REATTACH_KEEPS_SEQ a re-attaching subscriber keeps its last seq from the old writer
 *   MUT_NO_GEN_RECHECK     ReadPort does not re-load GEN after the read
 *   MUT_UNPIN_RELAXED      the unpin CAS without release: the hold is seen cleared before the
 *                          reader's last read of the frame
 *   MUT_UNPIN_PLAIN_STORE  unpin stores 0 instead of the CAS: a release racing with wait()'s
 *                          pin of a newer frame clears that frame's hold
 *   MUT_ACCEPT_EQUAL_SEQ   wait() takes a frame whose seq equals the last one delivered
 *   MUT_VERDICT_BEFORE_GEN a read that found the segment inconsistent (-2, -3, -4) is reported
 *                          corrupt before the generation re-check
 *   MUT_ABANDON_RESTORES   an abandoned loan puts the slot's old state back instead of EMPTY
 *
 * Properties (each assertion names its property; a violation comes with a trail):
 *   P1 a held slot is never claimed: a claim succeeds only on a slot no accepted pin names, and a
 *      pinned frame's bytes are unchanged when its hold is replaced or released;
 *   P2 a reader never accepts a slot whose state or bytes differ from the seq LATEST promised, nor
 *      a torn copy, and never reports corruption (ReadPort's -2, -3, -4: this model corrupts
 *      nothing, so a retry or a takeover must never look like it);
 *   P3 the writer never waits: a claim succeeds within holder_count + 2 attempts (and no claim or
 *      publish step has a guard that can block it: each has an enabled branch in every state);
 *   P4 no lost wake-up: at every step, a reader asleep in the futex while the live writer it
 *      attached to is between publishes has taken the newest frame; and once nothing can move,
 *      every live reader is attached to the newest writer and has its newest frame;
 *   P5 every reaped hold belonged to a dead reader;
 *   P6 every change of writer is noticed before any frame of the new writer is accepted: a
 *      subscriber delivers only frames of the writer it attached to (wait() raises WriterGone
 *      before it re-attaches);
 *   P7 the seqs a subscriber delivers strictly increase (per attachment: a new writer starts
 *      again from 1, after WriterGone).
 */

#ifndef FR1
#define FR1 4           /* frames the first writer publishes: the 4th reuses a published slot
                           under round robin, the 3rd under "reuse the previous slot" */
#endif
#ifndef FR2
#define FR2 1           /* frames the replacement writer publishes */
#endif
#ifndef TAKEOVER
#define TAKEOVER 0      /* 0: the replacement takes over in place or creates a new segment (both
                           explored), 1: in place whenever the dead writer's segment was published
                           (Publisher._fits), 2: a new segment only */
#endif
#ifndef ABANDON
#define ABANDON 0     /* loan() blocks of the writers that raise (each writer at most this many) */
#endif
#ifndef COPY_ATTEMPTS
#define COPY_ATTEMPTS 4 /* @map framebus/_atomic.c: #define COPY_ATTEMPTS 4 */
#endif

#define S 3             /* slot_count (_layout.MIN_SLOTS) */
#ifndef MAXATT
#define MAXATT 3        /* claim(): range(holder_count + 2), holder_count = S - 2 = 1 (a smaller
                           -DMAXATT tests how many attempts a claim really needs) */
#endif
#define WRITING 255     /* _layout.SLOT_WRITING (SLOT_EMPTY is 0) */
#define TORN 254        /* ghost: a slot's bytes while the writer changes them */
#define NONE 255

/* LATEST and hold words: _ring.pack_latest is (seq << 8) | slot; here seq * 4 + slot. */
#define WORD(q, s) ((q) * 4 + (s))
#define SEQ(w) ((w) / 4)
#define SLOT(w) ((w) % 4)
/* Ghost frame identity: a frame's bytes are its seq and the writer (1 first, 2 its replacement)
 * that wrote them, so that the same seq of two writers differs. */
#define FRAME(q, wid) ((q) + 16 * (wid))
#define FSEQ(c) ((c) % 16)
#define FWID(c) ((c) / 16)
/* The writer of segment g's generation n: segment 1 only ever has the replacement. */
#define WID(g, n) ((g) == 1 -> 2 : (n))

/* Two segments: 0 is the first writer's (and its replacement's, taken over in place), 1 the
 * replacement's new one (Segment.create after remove_if_dead, via _reclaim_stale, unlinks the dead writer's one). */
byte latest[2];         /* LATEST */
byte wake[2];           /* WAKE, the futex word */
byte waiters[2];        /* WAITERS */
byte copy_readers[2];   /* COPY_READERS */
byte gen[2];            /* GEN, the writer generation */
byte state[2 * S];      /* SLOT_STATES: the complete frame's seq, 0 (EMPTY) or WRITING */
byte hold[2];           /* HOLD of the one holder entry */
bit wlock[2];           /* the writer's OFD lock (WRITER_LOCK_BYTE): held while it lives */
bit ready[2];           /* the header's magic word is stored */
byte elock[2];          /* the holder entry's OFD lock: 0 free, a reader id, or REAPER */
#define REAPER 9

/* Futex queue and subscriber state; reader 0 is the holder, reader 1 the copy reader. */
bit asleep[2];
byte rg[2];             /* the segment reader r is attached to */
byte rgen[2];           /* Attachment.generation: the GEN it attached under */
byte rlast[2];          /* Subscriber._last_seq */
byte cur[2];            /* Subscriber._current: the holder's frame (its word), 0 if none */
byte hid = 1;           /* the holder incarnation's reader id (its Releaser thread dies with it) */
bit slock;              /* Subscriber._lock, as the Releaser holds it */

/* Ghosts, for the properties only. */
byte content[2 * S];    /* FRAME(seq, writer) whose bytes a slot holds, or TORN */
byte wslot[2];          /* slot + 1 the writer is changing (claim to publish), 0 if none */
bit publishing[2];      /* the writer is between its LATEST store and its futex wake-up */
byte live_gen[2];       /* the generation of the segment's live writer, 0 if none */
byte pinned[2];         /* slot + 1 of the holder entry's accepted pin, 0 if none */
byte pinned_seq[2];     /* its frame, FRAME(seq, writer) */
byte hold_by[2];        /* reader id that stored the hold word's value */
bit alive[4];           /* reader ids: 1 first holder, 2 its replacement, 3 copy reader */
bit kill_w, kill_h, w1_dead;

/* Each assertion names its property (a constant, outside the state vector), so that a
 * violation report says which one failed. */
hidden byte P1_held_slot_not_claimed = 1, P1_held_frame_unchanged = 1;
hidden byte P2_pin_accepts_promised_frame = 1, P2_copy_not_torn = 1, P2_retry_not_corruption = 1;
hidden byte P3_writer_never_waits = 1, P4_no_lost_wake_up = 1, P4_readers_up_to_date_at_end = 1;
hidden byte P5_reaped_hold_was_dead = 1, P6_new_writer_noticed_first = 1, P7_seqs_increase = 1;

/* A held frame's bytes are unchanged while held (RELIABILITY.md requirement 2). */
#define STABLE(g) (pinned[g] == 0 || content[(g) * S + pinned[g] - 1] == pinned_seq[g])

/* _held_slots() over the one holder entry, as a bit set. @map framebus/_ring.py: word = load(offset) */
#define HELD(g) (hold[g] != 0 -> (1 << SLOT(hold[g])) : 0)

/* ---- writer: Publisher._slot -> Ring.claim, the frame, Ring.commit -> cw_publish ---------- */

/* Ring._reap_dead_holders, whose turn comes at most once a second: `reaping` says whether it
 * came in this attempt. load_sc of the hold and try_lock of the entry are one step here: only
 * the entry's owner changes its hold, and the lock keeps out any new owner. */
inline reap(g) {
#ifndef MUT_NO_REAP_LOCK
    atomic { reaping && hold[g] != 0 && elock[g] == 0 -> elock[g] = REAPER; reaping = 0 };
    /* @map framebus/_ring.py: if self.words.load_sc(offset) and self.segment.try_lock(READER_LOCK_BASE + entry): */
#else
    atomic { reaping && hold[g] != 0 && elock[g] == 0 -> reaping = 0 };  /* unlocked, so no owner now */
#endif
    d_step {    /* @map framebus/_ring.py: self.words.store_sc(offset, 0) */
        assert(P5_reaped_hold_was_dead && (hold[g] == 0 || !alive[hold_by[g]]));
        hold[g] = 0; pinned[g] = 0
    };
#ifndef MUT_NO_REAP_LOCK
    elock[g] = 0;   /* @map framebus/_ring.py: self.segment.unlock(READER_LOCK_BASE + entry) */
#endif
    try_claim(g, true)
}

/* _try_claim's exchange and re-scan, once the search found slot s (s == NONE: every slot is
 * taken, and the attempt ends). Breaks out of the attempts on success. */
inline try_claim(g, guard) {
    if
    :: atomic { guard && s == NONE -> skip }
#ifdef MUT_CLAIM_ACQ_REL
    :: atomic { guard && s != NONE -> skip };   /* the acquire re-scan may be performed before
                                                   the exchange's store is visible */
        if
        :: d_step { old = state[g * S + s]; state[g * S + s] = WRITING }; held = HELD(g)
        :: held = HELD(g); d_step { old = state[g * S + s]; state[g * S + s] = WRITING }
        fi;
#define RESCAN_HELD held
#else
    :: atomic { guard && s != NONE -> old = state[g * S + s]; state[g * S + s] = WRITING };
        /* @map framebus/_ring.py: old = words.exchange(state, SLOT_WRITING) */
#ifndef MUT_NO_RESCAN
#define RESCAN_HELD HELD(g)     /* @map framebus/_ring.py: if slot in self._held_slots(): */
#else
#define RESCAN_HELD 0
#endif
#endif
        /* The re-scan's loads are one step with the store that follows them: nothing a reader
           does depends on which of the two it sees first. */
        if
        :: d_step { ((RESCAN_HELD >> s) & 1) -> state[g * S + s] = old; old = 0; held = 0 }
            /* pinned meanwhile: @map framebus/_ring.py: words.store(state, old) */
        :: d_step { ((RESCAN_HELD >> s) & 1) == 0 ->
                /* @map framebus/_ring.py: words.fence()  # WRITING is visible before any frame byte changes */
                assert(P1_held_slot_not_claimed && pinned[g] != s + 1);
                wslot[g] = s + 1; held = 0;
#ifndef MUT_ABANDON_RESTORES
                old = 0;
#endif
                nxt = (s + 1) % S;  /* @map framebus/_ring.py: self._next = slot + 1 */
                /* the frame's first bytes: @map framebus/_publisher.py: ring.fill(slot, array)  # shape and dtype checked: a plain copy */
                content[g * S + s] = TORN
            };
            break
        fi
    fi
}

/* Ring.wake(): WAKE += 1, then FUTEX_WAKE every sleeper if WAITERS > 0 (one step: a sleeper
 * queued in between would only be woken too). */
#define FUTEX_WAKE_ALL(g) \
    if \
    :: waiters[g] > 0 -> \
        if :: rg[0] == g -> asleep[0] = 0 :: else fi; \
        if :: rg[1] == g -> asleep[1] = 0 :: else fi \
    :: else \
    fi

/* Ring.open_stream on the dead writer's segment, taken over in place (Segment.take_over has
 * locked it): unpublish the header, a new generation, the ring reset, live holds kept, wake
 * every reader, publish. (Statistics, description and WRITER_STATE order nothing here: the
 * writer lock and GEN are what readers check.) */
inline open_in_place(g, wid) {
    ready[g] = 0;   /* @map framebus/_ring.py: words.store(0, 0) */
    /* @map framebus/_ring.py: words.fetch_add(GEN, 1) */
    d_step { gen[g]++; live_gen[g] = gen[g] };
    /* @map framebus/_ring.py: words.fence()  # the new generation is visible before any store below */
    latest[g] = 0;  /* @map framebus/_ring.py: words.store(LATEST, 0) */
    /* Every slot EMPTY, in one step: a reader's pin or copy compares only its own slot's state,
       and no claim comes before the last of these stores. @map framebus/_ring.py: self.abandon(slot) */
    d_step { state[g * S] = 0; state[g * S + 1] = 0; state[g * S + 2] = 0 };
    /* @map framebus/_ring.py: self.wake()  # readers of a previous writer notice the change now */
    wake[g]++;      /* @map framebus/_ring.py: self.words.fetch_add(WAKE, 1) */
    d_step { FUTEX_WAKE_ALL(g) };   /* @map framebus/_ring.py: self.words.futex_wake(WAKE) */
    ready[g] = 1    /* @map framebus/_ring.py: words.store(0, magic_word())  # release: readers accept the header from here on */
}

inline writer_body(g, frames, wid) {
    do
    :: seq < frames ->
        att = 0;
        do  /* Ring.claim: @map framebus/_ring.py: for _ in range(self.layout.holder_count + 2): */
        :: atomic {
                assert(P3_writer_never_waits && att < MAXATT);     /* else SegmentCorrupt */
                att++;
                held = HELD(g);         /* @map framebus/_ring.py: held = self._held_slots() */
                /* _try_claim's search (the reap in between only clears holds, so it may come first):
                   @map framebus/_ring.py: start = self._previous if words.load(COPY_READERS) == 0 else self._next */
                start = (copy_readers[g] == 0 -> prv : nxt);
                s = NONE; k = 0;
                do  /* @map framebus/_ring.py: if slot == latest_slot or slot in held: */
                :: k < S && s == NONE ->
                    if
                    :: (start + k) % S != lat && ((held >> ((start + k) % S)) & 1) == 0 -> s = (start + k) % S
                    :: else
                    fi;
                    k++
                :: else -> break
                od;
                k = 0; start = 0;
                if      /* @map framebus/_ring.py: self._reap_dead_holders() */
                :: held != 0 -> reaping = 1
                :: true -> reaping = 0
                fi
            };
            if
            :: reap(g)
            :: atomic { reaping && !(hold[g] != 0 && elock[g] == 0) -> reaping = 0 };    /* nothing to reap */
                try_claim(g, true)
            :: try_claim(g, !reaping)
            fi
        od;
#if ABANDON > 0
        if  /* a loan() block that raises, at most ABANDON times: the slot is given back EMPTY,
               its bytes half-written, nothing published. @map framebus/_publisher.py: ring.abandon(slot) */
        :: ab < ABANDON ->
#ifndef MUT_ABANDON_RESTORES
            d_step { state[g * S + s] = 0; wslot[g] = 0; s = 0; att = 0; ab++ };   /* @map framebus/_ring.py: self.words.store(self._states[slot], SLOT_EMPTY) */
#else
            d_step { state[g * S + s] = old; old = 0; wslot[g] = 0; s = 0; att = 0; ab++ };   /* its old state put back */
#endif
        :: true ->
#endif
        /* the last bytes, @map framebus/_ring.py: SLOT_HEADER.pack_into(mapping, start, seq, timestamp_ns, wall_ns, len(meta)) */
        atomic { prv = lat; lat = s };  /* @map framebus/_ring.py: self._previous, self._latest = self._latest, slot */
        /* then @map framebus/_atomic.c: full_fence();  /* frame bytes first, copy_frame's streaming stores too (MFENCE) */
#ifndef MUT_PUBLISH_RELAXED
        /* @map framebus/_atomic.c: __atomic_store_n(state, seq, __ATOMIC_RELEASE); */
        atomic { content[g * S + s] = FRAME(seq + 1, wid); state[g * S + s] = seq + 1; wslot[g] = 0 };
        d_step { latest[g] = WORD(seq + 1, s); publishing[g] = 1 }   /* @map framebus/_atomic.c: __atomic_store_n(latest, word, __ATOMIC_RELEASE); */
#else
        if
        :: d_step { content[g * S + s] = FRAME(seq + 1, wid); state[g * S + s] = seq + 1; wslot[g] = 0 };
            d_step { latest[g] = WORD(seq + 1, s); publishing[g] = 1 }
        :: d_step { state[g * S + s] = seq + 1; wslot[g] = 0 };
            content[g * S + s] = FRAME(seq + 1, wid); d_step { latest[g] = WORD(seq + 1, s); publishing[g] = 1 }
        :: d_step { state[g * S + s] = seq + 1; wslot[g] = 0 };
            d_step { latest[g] = WORD(seq + 1, s); publishing[g] = 1 }; content[g * S + s] = FRAME(seq + 1, wid)
        fi;
#endif
        /* @map framebus/_atomic.c: __atomic_fetch_add(wake, 1, __ATOMIC_SEQ_CST); */
        d_step { wake[g]++; seq++; s = 0; att = 0 };
        /* @map framebus/_atomic.c: if (!__atomic_load_n(waiters, __ATOMIC_SEQ_CST)) */
        d_step {    /* and FUTEX_WAKE of every sleeper. @map framebus/_atomic.c: FUTEX_WAKE, INT_MAX */
            FUTEX_WAKE_ALL(g);
            publishing[g] = 0
        }
#if ABANDON > 0
        fi
#endif
    :: else -> break
    od
}

active proctype Writer1() {
    byte seq, lat, prv, nxt, att, start, k, s, old, held, ab;
    bit reaping;
    {
        /* Publisher.__init__ on a new segment: Segment.create took the lock, open_stream made
           generation 1 and published it. @map framebus/_publisher.py: self._ring.open_stream(os.getpid(), time.time_ns()) */
        d_step { wlock[0] = 1; gen[0] = 1; live_gen[0] = 1; ready[0] = 1 };
        writer_body(0, FR1, 1);
end_idle:
        kill_w          /* published all it will; alive until killed, if it is */
    } unless {
        kill_w ->   /* SIGKILL: the kernel drops its lock; the segment stays as it was */
            d_step {
                wlock[0] = 0; live_gen[0] = 0; w1_dead = 1; publishing[0] = 0;
                if :: elock[0] == REAPER -> elock[0] = 0 :: else fi;  /* (a reaper's entry lock too) */
                seq = 0; lat = 0; prv = 0; nxt = 0; att = 0; start = 0; k = 0; s = 0; old = 0; held = 0; reaping = 0; ab = 0
            }
    }
}

active proctype Writer2() {
    byte seq, lat, prv, nxt, att, start, k, s, old, held, ab;
    bit reaping;
end_wait:
    if
#if TAKEOVER != 2
    :: atomic { w1_dead && ready[0] -> wlock[0] = 1 };  /* @map framebus/_segment.py: if not old.try_lock(WRITER_LOCK_BYTE): */
        /* (only a published segment fits: @map framebus/_publisher.py: return False  # (it died before publishing its header: replace it) */
        open_in_place(0, 2);
        writer_body(0, FR2, 2)
#endif
#if TAKEOVER == 1
    :: atomic { w1_dead && !ready[0] -> /* (in place only: unless nothing was published) */
#else
    :: atomic { w1_dead ->  /* only once the first writer's lock is free: @map framebus/_segment.py: if not old.try_lock(WRITER_LOCK_BYTE, fcntl.F_RDLCK): */
#endif
            wlock[1] = 1; gen[1] = 1; live_gen[1] = 1; ready[1] = 1 };
        writer_body(1, FR2, 2)
    fi
}

/* ---- readers: Subscriber.wait() in a loop, each read one ReadPort call -------------------- */

/* rp_wait's test: a frame newer than the last one delivered is taken, else it sleeps. */
#ifndef MUT_ACCEPT_EQUAL_SEQ
#define TAKE(r, g) (SEQ(latest[g]) > rlast[r])
#else
#define TAKE(r, g) (SEQ(latest[g]) >= rlast[r])  /* the same seq again too */
#endif

/* ReadPort's LATEST load (rp_pin's, rp_copy's; _wait's own load, before, only decides whether to
 * take). */
#define LOAD_LATEST(g) w = latest[g]; s = SLOT(w); q = SEQ(w)

/* rp_wait's sleep: WAITERS += 1, fence, FUTEX_WAIT on WAKE while it equals seen, WAITERS -= 1. */
inline sleep(r, g) {
#ifndef MUT_NO_WAITERS_FENCE
    waiters[g]++;   /* @map framebus/_atomic.c: __atomic_fetch_add(self->waiters, 1, __ATOMIC_SEQ_CST); */
    /* @map framebus/_atomic.c: __atomic_thread_fence(__ATOMIC_SEQ_CST); */
    /* the kernel's compare-and-queue: @map framebus/_atomic.c: PyObject *woke = futex_wait_result((uint32_t *)self->wake, (uint32_t)seen, &ts); */
    d_step { if :: wake[g] == seen -> asleep[r] = 1 :: else fi; seen = 0 };
#else
    if
    :: waiters[g]++; d_step { if :: wake[g] == seen -> asleep[r] = 1 :: else fi; seen = 0 }
    :: d_step { if :: wake[g] == seen -> asleep[r] = 1 :: else fi; seen = 0 }; waiters[g]++
    fi;
#endif
end_sleep:
    if
    :: atomic { !asleep[r] -> waiters[g]-- }  /* woken, or WAKE differed (EAGAIN): @map framebus/_atomic.c: __atomic_fetch_sub(self->waiters, 1, __ATOMIC_SEQ_CST); */
    :: atomic { asleep[r] && (!wlock[g] || gen[g] != rgen[r]) -> asleep[r] = 0; waiters[g]--; gone = 1 }
        /* the LIVENESS_INTERVAL timeout, modelled only once the writer it attached to is dead or
           replaced (no wake-up may rest on it); _refresh then finds it so:
           @map framebus/_subscriber.py: if not self._gone and att and (att.segment.resized() or not att.writer_still_ours()):
           @map framebus/_attachment.py: return self.ring.has_live_writer() and not self.replaced() */
    fi
}

/* Attachment.open: the newest published segment, its generation; a holder locks the entry and
 * clears a dead owner's hold. (Its magic/GEN re-check only guards the layout it read, which the
 * model has not: an attach that a takeover overtakes reads under the old generation, and its
 * first read's generation check finds that.) */
inline attach(r, g) {
    atomic {
        (ready[0] || ready[1]) && (r == 1 || elock[ready[1]] == 0) ->
        g = ready[1]; alive[id] = 1; rg[r] = g;
        rgen[r] = gen[g];   /* @map framebus/_attachment.py: return words.load(GEN) */
#ifndef MUT_REATTACH_KEEPS_SEQ
        rlast[r] = 0;   /* @map framebus/_subscriber.py: self._current, self._last_seq = None, 0 */
#endif
        if
        :: r == 0 -> elock[g] = id; hold[g] = 0; pinned[g] = 0  /* @map framebus/_attachment.py: if segment.try_lock(READER_LOCK_BASE + entry): */
            /* @map framebus/_ring.py: self.words.store_sc(self._entry_hold(entry), 0) */
        :: else -> copy_readers[g]++    /* @map framebus/_ring.py: self.words.fetch_add(COPY_READERS, 1) */
        fi
    }
}

/* The first writer's segment once its replacement created a new one and no live reader maps it
 * any more: it is unlinked and unmapped; its words are zeroed here only so that states differing
 * in them alone are not told apart. */
#define FORGET_SEGMENT_0 \
    if \
    :: ready[1] && !(rg[0] == 0 && (alive[1] || alive[2])) && !(rg[1] == 0 && alive[3]) -> \
        latest[0] = 0; wake[0] = 0; waiters[0] = 0; copy_readers[0] = 0; hold[0] = 0; elock[0] = 0; \
        gen[0] = 0; state[0] = 0; state[1] = 0; state[2] = 0; content[0] = 0; content[1] = 0; content[2] = 0; \
        wslot[0] = 0; pinned[0] = 0; pinned_seq[0] = 0; hold_by[0] = 0 \
    :: else \
    fi

/* Subscriber._try_reattach once there is a new writer (a new segment, or GEN moved on): let go of
 * the old attachment (detach: the hold cleared, the entry unlocked), then Attachment.open. */
inline reattach(r, g) {
    atomic {
        ((g == 0 && ready[1]) || gen[g] != rgen[r]) && (r == 1 || !slock) ->
        /* @map framebus/_subscriber.py: if att is not None and inode == att.segment.inode and not att.replaced(): */
        if  /* @map framebus/_subscriber.py: self._let_go(att) */
        :: r == 0 ->
            assert(P1_held_frame_unchanged && STABLE(g));
            hold[g] = 0; pinned[g] = 0; elock[g] = 0  /* @map framebus/_ring.py: self.words.store(self._entry_hold(entry), 0) */
        :: else -> copy_readers[g]--    /* @map framebus/_ring.py: self.words.fetch_add(COPY_READERS, MINUS_ONE) */
        fi;
        rg[r] = 0; gone = 0; cur[r] = 0; g = 0;
        FORGET_SEGMENT_0
    };
    attach(r, g)
}

/* rp_verdict, after a ReadPort read of word w (FRAME f): bad says the read found the segment
 * inconsistent (-2: the state never matched; -3/-4: the header's seq or meta length is off). The
 * GEN load comes first, after every load of the read: if GEN moved on since the attach, another
 * writer took the segment over in place, whose frames (from seq 1 again, in the same slots and
 * LATEST words) explain any mismatch, so the port drops the read (releasing its pin) and the
 * subscriber loses the writer; else a bad read is corruption, which the model never makes, so
 * reaching it is a violation (P2); else Subscriber._accept delivers the frame. */
#ifdef MUT_NO_GEN_RECHECK
#define REPLACED false
#else
#define REPLACED (gen[g] != rgen[r])
#endif
inline verdict(r, g, bad) {
#ifdef MUT_VERDICT_BEFORE_GEN
    /* the corruption verdict before the generation re-check */
    d_step { assert(P2_retry_not_corruption && !(bad)) };
#endif
    if
    :: d_step { !REPLACED && !(bad) ->
            /* @map framebus/_atomic.c: if (__atomic_load_n(self->gen, __ATOMIC_ACQUIRE) == self->generation) return code; */
            assert(P6_new_writer_noticed_first && FWID(f) == WID(g, rgen[r]));
            assert(P2_copy_not_torn && (r == 0 || (c1 == c2 && FSEQ(c2) == q)));
            assert(P7_seqs_increase && q > rlast[r]);
            rlast[r] = q;   /* @map framebus/_subscriber.py: self._last_seq, self._current = result.seq, result */
            cur[r] = (r == 0 -> w : 0);
            f = 0; w = 0; s = 0; q = 0; c1 = 0; c2 = 0
        }
    :: d_step { !REPLACED && (bad) -> assert(P2_retry_not_corruption && !(bad)) }   /* -2, -3 or -4: SegmentCorrupt */
    :: d_step { REPLACED ->
            if  /* @map framebus/_atomic.c: if (!self->copy) rp_release_hold(self, word); */
            :: r == 0 && hold[g] == w -> assert(P1_held_frame_unchanged && STABLE(g)); hold[g] = 0
            :: else
            fi;
            if :: r == 0 -> pinned[g] = 0 :: else fi;   /* (dropped: never read) */
            gone = 1;   /* @map framebus/_subscriber.py: self._lose_writer() */
            cur[r] = 0; f = 0; w = 0; s = 0; q = 0; c1 = 0; c2 = 0
        }
    fi
}

/* rp_pin after its LATEST load (w): store the hold, re-check the slot's state, retry on change;
 * the same word twice without a match goes to the verdict (-2). The state load is one step with
 * the decision it feeds. Once accepted, the header (-3/-4) is that of the pinned frame, which no
 * writer changes while held (P1): so P2_pin_accepts_promised_frame covers it, in any generation. */
#if defined(MUT_PIN_ACQ_REL)
#define PIN_STATE_OK (tmp == q)
#elif defined(MUT_NO_PIN_RECHECK)
#define PIN_STATE_OK true
#else
#define PIN_STATE_OK (state[g * S + s] == q)
#endif
inline pin(g) {
    do
    :: w == 0 -> break  /* nothing published (a takeover reset LATEST): None */
    :: else ->
#ifdef MUT_PIN_ACQ_REL
        if
        :: atomic { assert(P1_held_frame_unchanged && STABLE(g)); hold[g] = w; hold_by[g] = id; pinned[g] = 0 }; tmp = state[g * S + s]
        :: tmp = state[g * S + s]; d_step { assert(P1_held_frame_unchanged && STABLE(g)); hold[g] = w; hold_by[g] = id; pinned[g] = 0 }
        fi;
#else
        atomic { assert(P1_held_frame_unchanged && STABLE(g)); hold[g] = w; hold_by[g] = id; pinned[g] = 0 };
        /* @map framebus/_atomic.c: __atomic_store_n(self->hold, word, __ATOMIC_SEQ_CST); */
#endif
        if  /* @map framebus/_atomic.c: if (__atomic_load_n((uint64_t *)(self->states + 8 * slot), __ATOMIC_SEQ_CST) == seq) */
        :: d_step { !PIN_STATE_OK && prev == w ->
                /* @map framebus/_atomic.c: if (retried && word == previous) return PyLong_FromLong(rp_verdict(self, word, -2)); */
                prev = 0; tmp = 0
            };
            verdict(0, g, true);
            break
        :: d_step { !PIN_STATE_OK && prev != w -> prev = w; tmp = 0 };
            /* retry: @again framebus/_atomic.c: word = __atomic_load_n(self->latest, __ATOMIC_ACQUIRE); */
            d_step { LOAD_LATEST(g) }
        :: d_step { PIN_STATE_OK ->
                assert(P2_pin_accepts_promised_frame && FSEQ(content[g * S + s]) == q && wslot[g] != s + 1);
                pinned[g] = s + 1; pinned_seq[g] = content[g * S + s]; f = pinned_seq[g];
                seen = 0; tmp = 0; prev = 0
            };
            /* @map framebus/_atomic.c: long verdict = header[0] != seq ? -3 : header[3] > (uint64_t)self->meta_capacity ? -4 : 0; */
            verdict(0, g, FSEQ(content[g * S + s]) != q);
            break
        fi
    od;
    atomic { prev = 0; seen = 0; w = 0; s = 0; q = 0 }
}

/* rp_copy after its LATEST load (w): the copy's first read of the bytes (c1), its last (c2: the
 * slot header, copied last), the fence, the state re-check; retry on change, at most
 * COPY_ATTEMPTS tries (then -5: the read is dropped, Lapped); the same word twice without a
 * match goes to the verdict (-2), and so does an accepted copy (-3/-4 if its header's seq
 * differs: a torn header of a takeover's new writer, whose state may match again). With the
 * fence the last read comes before the re-check; a whole takeover fits between them. */
#ifdef MUT_COPY_NO_FENCE
#define COPY_STATE_OK (tmp == q)
#else
#define COPY_STATE_OK (state[g * S + s] == q)
#endif
inline copy(g) {
    do
    :: w == 0 -> break  /* nothing published: None */
    :: w != 0 && tries == COPY_ATTEMPTS -> break  /* @again framebus/_atomic.c: if (attempt == COPY_ATTEMPTS) return PyLong_FromLong(-5);  /* lapped every time: bounded */
    :: w != 0 && tries < COPY_ATTEMPTS ->
        c1 = content[g * S + s];    /* @map framebus/_atomic.c: memcpy(out->buf, base + self->frame_offset, (size_t)self->frame_nbytes); */
#ifndef MUT_COPY_NO_FENCE
        c2 = content[g * S + s];    /* @map framebus/_atomic.c: memcpy(header, base, sizeof header); */
        /* @map framebus/_atomic.c: __atomic_thread_fence(__ATOMIC_SEQ_CST);  /* the copies complete before the re-check */
#else
        if
        :: c2 = content[g * S + s]; tmp = state[g * S + s]
        :: tmp = state[g * S + s]; c2 = content[g * S + s]
        fi;
#endif
        if  /* @map framebus/_atomic.c: if (__atomic_load_n((uint64_t *)(self->states + 8 * slot), __ATOMIC_ACQUIRE) == seq) */
        :: d_step { !COPY_STATE_OK && prev == w ->
                /* @map framebus/_atomic.c: if (retried && word == previous) return PyLong_FromLong(rp_verdict(self, word, -2)); */
                prev = 0; tmp = 0; tries = 0
            };
            verdict(1, g, true);
            break
        :: d_step { !COPY_STATE_OK && prev != w -> prev = w; tmp = 0; c1 = 0; c2 = 0; tries++ };
            d_step { LOAD_LATEST(g) }    /* @again framebus/_atomic.c: word = __atomic_load_n(self->latest, __ATOMIC_ACQUIRE); */
        :: d_step { COPY_STATE_OK -> f = c2; seen = 0; tmp = 0; prev = 0; tries = 0 };
            /* @map framebus/_atomic.c: long verdict = header[0] != seq ? -3 : header[3] > (uint64_t)self->meta_capacity ? -4 : 0; */
            verdict(1, g, FSEQ(c2) != q);
            break
        fi
    od;
    atomic { prev = 0; seen = 0; tries = 0; w = 0; s = 0; q = 0; c1 = 0; c2 = 0 }
}

inline reader_loop(r) {
    do
    :: !gone ->
#ifndef MUT_POLL_ORDER
        seen = wake[g];     /* @map framebus/_atomic.c: uint64_t seen = __atomic_load_n(self->wake, __ATOMIC_SEQ_CST); */
        if      /* @map framebus/_atomic.c: if (__atomic_load_n(self->latest, __ATOMIC_ACQUIRE) >> 8 > last_seq) { */
        :: d_step { TAKE(r, g) -> skip };
#else
        if
        :: d_step { TAKE(r, g) -> skip }; seen = wake[g];
#endif
            d_step { LOAD_LATEST(g) };  /* rp_take_now: rp_pin's or rp_copy's first LATEST load */
            if :: r == 0 -> pin(g) :: else -> copy(g) fi
        :: d_step { !TAKE(r, g) -> skip };
#ifdef MUT_POLL_ORDER
            seen = wake[g];
#endif
            sleep(r, g)
        fi
#ifndef RELEASE_THREAD
    :: r == 0 && cur[0] != 0 ->    /* Frame.release() between reads: @map framebus/_subscriber.py: self._att.unpin(frame._word) */
        d_step {    /* the frame's last read, then the unpin CAS */
            assert(P1_held_frame_unchanged && STABLE(g));
            if :: hold[g] == cur[0] -> hold[g] = 0; pinned[g] = 0 :: else fi;
            cur[0] = 0
        }
#endif
    :: gone ->
end_gone:
        reattach(r, g)
    od
}

active proctype Holder() {
    byte id = 1, g, w, s, q, f, prev, tmp, seen, c1, c2, tries;   /* (c1, c2, tries: the copy path, unused) */
    bit gone;
incarnation:
    {
        attach(0, g);
        reader_loop(0)
    } unless {
        kill_h == id ->     /* SIGKILL at any point: the kernel drops its lock, its hold stays */
            d_step {
                alive[id] = 0; asleep[0] = 0;   /* (a killed sleeper leaves WAITERS raised) */
                if :: elock[g] == id -> elock[g] = 0 :: else fi;
                FORGET_SEGMENT_0;
                g = 0; w = 0; s = 0; q = 0; f = 0; prev = 0; tmp = 0; seen = 0; cur[0] = 0; gone = 0; slock = 0
            }
    };
    if
    :: id == 1 -> d_step { id = 2; hid = 2 }; goto incarnation  /* a new zero-copy subscriber takes the entry (it
                                               may come late: any state before it is explored) */
    :: else
    fi
}

/* Frame.release() on another thread of the holder's process, at any step of its wait(): under
 * the subscriber's lock (which wait()'s read path does not take), if the frame is still the
 * current one, the unpin CAS of its word. Meanwhile wait() may have pinned a newer frame: the CAS
 * leaves that hold alone. (The thread dies with the process: a kill ends its release.) */
#ifdef RELEASE_THREAD
active proctype Releaser() {
    byte rel, rid;
    bit relaxed;
end_release:
    do
    :: atomic { rel == 0 && cur[0] != 0 && !slock -> rel = cur[0]; rid = hid; slock = 1 }
        /* @map framebus/_subscriber.py: if frame is self._current and self._att is not None: */
#if defined(MUT_UNPIN_PLAIN_STORE)
    :: d_step { rel != 0 && alive[rid] ->   /* a plain store of 0, as Ring.unpin does */
            if :: hold[rg[0]] == rel -> assert(P1_held_frame_unchanged && STABLE(rg[0])); pinned[rg[0]] = 0 :: else fi;
            hold[rg[0]] = 0; cur[0] = 0; slock = 0; rel = 0; rid = 0
        }
#elif defined(MUT_UNPIN_RELAXED)
    :: d_step { rel != 0 && !relaxed && alive[rid] ->   /* the CAS seen before the frame's last read */
            if :: hold[rg[0]] == rel -> hold[rg[0]] = 0; relaxed = 1 :: else -> cur[0] = 0; slock = 0; rel = 0; rid = 0 fi
        }
    :: d_step { relaxed && alive[rid] ->
            assert(P1_held_frame_unchanged && STABLE(rg[0])); pinned[rg[0]] = 0;
            cur[0] = 0; slock = 0; rel = 0; rid = 0; relaxed = 0
        }
#else
    :: d_step { rel != 0 && alive[rid] ->   /* @map framebus/_subscriber.py: self._att.unpin(frame._word) */
            /* the frame's last read, then @map framebus/_atomic.c: return __atomic_compare_exchange_n(self->hold, &word, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED); */
            if :: hold[rg[0]] == rel -> assert(P1_held_frame_unchanged && STABLE(rg[0])); hold[rg[0]] = 0; pinned[rg[0]] = 0 :: else fi;
            cur[0] = 0; slock = 0; rel = 0; rid = 0   /* @map framebus/_subscriber.py: self._current = None */
        }
#endif
    :: atomic { rel != 0 && !alive[rid] -> rel = 0; rid = 0; relaxed = 0 }
    od
}
#endif

active proctype CopyReader() {
    byte id = 3, g, w, s, q, f, prev, tmp, seen, c1, c2, tries;
    bit gone;
    attach(1, g);
    reader_loop(1)
}

/* SIGKILL of the first writer and of the first holder, at any moment. ("Never" needs no branch
 * of its own: every state before the kill is explored, and P4 below is checked in each.) */
#ifndef NO_KILL_W
active proctype KillWriter() { kill_w = 1 }
#endif
#ifndef NO_KILL_H
active proctype KillHolder() { kill_h = 1 }
#endif

/* P4, at every step: a reader asleep in the futex while the live writer it attached to is
 * between publishes (so no wake-up is on its way) has taken the newest frame. */
#define LOST(r) (asleep[r] && live_gen[rg[r]] == rgen[r] && !publishing[rg[r]] && rlast[r] != SEQ(latest[rg[r]]))

active proctype NoLostWakeUp() {
end:
    atomic { LOST(0) || LOST(1) -> assert(P4_no_lost_wake_up && !(LOST(0) || LOST(1))) }
}

/* P4, at the end: once nothing can move, every live reader is attached to the newest writer
 * (the newest segment, its current generation) and has taken its newest frame. */
#define UP_TO_DATE(r) (rg[r] == ready[1] && rgen[r] == gen[rg[r]] && rlast[r] == SEQ(latest[rg[r]]))

active proctype Quiescence() {
    timeout ->
    assert(P4_readers_up_to_date_at_end && (!(alive[1] || alive[2]) || UP_TO_DATE(0)));
    assert(P4_readers_up_to_date_at_end && UP_TO_DATE(1))
}
