/*
 * framebus/packets.pml: the packet-ring protocol of _packet_ring.py and the reading contract of
 * _packet_subscriber.py, as a Promela model for Spin (issue 20). tests/test_packets_model.py
 * explores it exhaustively, clean and with each guard removed (MUT_* below):
 *     spin -a [-DMUT_...] framebus/packets.pml && cc -DSAFETY -DCOLLAPSE -o pan pan.c && ./pan
 *
 * What runs: one writer publishing P packets, each a keyframe or not (Spin tries both; the last
 * one is a keyframe, so a reader that was lapped always has one to resume at), into an index ring
 * of N descriptors and a byte ring of NB packet-sized cells (NB < N: the byte ring is what runs
 * out first, so the writer invalidates packets for their bytes as well as for their descriptors);
 * one reader that joins, reads, is lapped whenever the interleaving lets the writer run ahead, and
 * sleeps on the futex. A packet's bytes are two cells written in two steps, so a torn copy is a
 * state Spin can reach.
 *
 * Granularity, as in ring.pml: one step is one control-word access (one _atomic call) or one
 * step of a packet's bytes, each quoting its code in an "@map <file>: <code>" comment that
 * tests/test_model.py's rule checks. Memory model: Promela is sequentially consistent; the clean
 * model runs the accesses in the program order that _atomic's fences and acquire/release
 * orderings guarantee (the argument in _packet_ring.py's docstring), and each MUT_* flag lets
 * them happen in the order that removing the guard would allow.
 *
 * Mutations (-D<flag>): each removes one guard; Spin must find a counterexample for each.
 *   MUT_NO_RECHECK      read() returns its copy without re-loading the seq word after it
 *   MUT_INVALIDATE_LATE the writer overwrites bytes before it invalidates their old packet
 *   MUT_PUBLISH_EARLY   the seq word is published before the packet's last bytes
 *   MUT_RESUME_ANYWHERE a lapped reader resumes at the next packet, keyframe or not
 *   MUT_JOIN_ANYWHERE   a reader joins at the newest packet instead of the newest keyframe
 *   MUT_POLL_ORDER      the reader loads WAKE after HEAD (a publish in between is slept through)
 *
 * Properties (each assertion names its property):
 *   P1 no torn packet: every byte of a delivered packet is that packet's;
 *   P2 in order: each delivered seq is greater than the last, and the next one unless it skips;
 *   P3 keyframes: the first packet delivered is a keyframe, and so is every packet after a skip,
 *      whose `missed` is exactly the number of packets skipped;
 *   P4 no lost wake-up and the writer never waits: the reader always ends having delivered the
 *      last packet (a reader asleep with a packet to read is a deadlock: an invalid end state),
 *      and the writer's steps have no guard that a reader can hold false.
 */

#ifndef N
#define N 3     /* descriptors */
#endif
#ifndef NB
#define NB 2    /* byte cells */
#endif
#ifndef P
#define P 5     /* packets */
#endif

/* Property names: constants that are always true, so a failed assertion's text names its property. */
hidden byte P1_no_torn_packet = 1, P2_in_order = 1, P3_skips_to_a_keyframe = 1;
hidden byte P3_joins_at_a_keyframe = 1, P4_reader_finishes = 1;

byte dseq[N];       /* descriptor seq words: the packet's seq, or 0 (INVALID) */
bool dkey[N];       /* descriptor flags: keyframe */
byte b0[NB];        /* a packet's bytes, first and second half */
byte b1[NB];
byte head;          /* LATEST: seq of the newest packet */
byte key;           /* KEY: seq of the newest keyframe */
byte wake;          /* WAKE: bumped after every publish */
byte delivered;     /* the reader's last delivered seq */

inline write_bytes(s) {
    b0[s % NB] = s; /* @map framebus/_packet_ring.py: self._view[base : base + len(data)] = data */
#ifndef MUT_PUBLISH_EARLY
    b1[s % NB] = s  /* (the same copy, its second half) */
#else
    skip
#endif
}

inline invalidate(s) {
    if
    :: s > NB -> dseq[(s - NB) % N] = 0 /* @map framebus/_packet_ring.py: words.store(layout.descriptor_offset(live.popleft()[0]), INVALID) */
    :: else -> skip
    fi;
    dseq[s % N] = 0 /* @map framebus/_packet_ring.py: words.store(at, INVALID)  # (already, unless a dead writer left it otherwise) */
}

active proctype Writer() {
    byte s = 1;
    bool k;
    do
    :: s <= P ->
        if
        :: s == P -> k = 1
        :: s < P -> k = 1
        :: s < P -> k = 0
        fi;
#ifdef MUT_INVALIDATE_LATE
        write_bytes(s);
        invalidate(s);
#else
        invalidate(s);
        /* @map framebus/_packet_ring.py: words.fence()  # step 2: every INVALID is visible before any byte below changes */
        write_bytes(s);
#endif
        dkey[s % N] = k; /* @map framebus/_packet_ring.py: _FIELDS.pack_into(mapping, at + 8, offset, len(data), len(meta), flags, 0, *stamps) */
        /* @map framebus/_packet_ring.py: words.fence()  # step 4: bytes and fields before the seq word */
        dseq[s % N] = s; /* @map framebus/_packet_ring.py: words.store(at, seq) */
        if
        :: k -> key = s  /* @map framebus/_packet_ring.py: words.store(KEY, seq) */
        :: else -> skip
        fi;
        head = s;        /* @map framebus/_packet_ring.py: words.store(LATEST, seq) */
#ifdef MUT_PUBLISH_EARLY
        b1[s % NB] = s;  /* the packet's last bytes land after it is published */
#endif
        wake++;          /* @map framebus/_ring.py: self.words.fetch_add(WAKE, 1) */
        s++
    :: else -> break
    od
}

/* ring.flags(seq): a seqlock read of a descriptor's keyframe flag; ok = 0 if it is not intact. */
inline peek(s, ok, isk) {
    ok = (dseq[s % N] == s);    /* @map framebus/_packet_ring.py: if self.words.load(at) != seq: */
    isk = dkey[s % N];          /* @map framebus/_packet_ring.py: flags = _FIELDS.unpack_from(self._view, at + 8)[3] */
    ok = ok && (dseq[s % N] == s)  /* @map framebus/_packet_ring.py: return flags if self.words.load(at) == seq else None */
}

/* ring.read(seq): copy a packet out; ok = 0 if it was not intact before and after the copy. */
inline read(s, ok, c0, c1, isk) {
    ok = (dseq[s % N] == s);    /* @map framebus/_packet_ring.py: if words.load(at) != seq: */
    isk = dkey[s % N];          /* @map framebus/_packet_ring.py: offset, length, meta_len, flags, _, pts, dts, ts, wall = _FIELDS.unpack_from(self._view, at + 8) */
    c0 = b0[s % NB];            /* @map framebus/_packet_ring.py: data = bytes(self._view[base : base + length]) */
    c1 = b1[s % NB];
#ifndef MUT_NO_RECHECK
    /* @map framebus/_packet_ring.py: words.fence()  # the copies complete before the re-check */
    ok = ok && (dseq[s % N] == s)  /* @map framebus/_packet_ring.py: return None  # overwritten meanwhile: whatever we copied is not used */
#endif
}

active proctype Reader() {
    byte next = 0, last = 0, h, seen, s, c0, c1, missed, scanned;
    bool synced = 0, ok, isk, got;
    do
    :: last == P -> break
    :: else ->
#ifndef MUT_POLL_ORDER
        seen = wake;    /* @map framebus/_packet_subscriber.py: seen = att.ring.words.load_sc(WAKE) if att is not None else 0  # before HEAD (docstring) */
#endif
        h = head;       /* @map framebus/_packet_subscriber.py: head, count = ring.head(), self._layout.descriptor_count */
#ifdef MUT_POLL_ORDER
        seen = wake;
#endif
        got = 0;
        if
        :: h > 0 && next == 0 ->    /* join: @map framebus/_packet_subscriber.py: self._next = key if 0 < key <= head + 1 else max(1, head - count + 1) */
#ifdef MUT_JOIN_ANYWHERE
            next = h; synced = 1
#else
            s = key;
            if
            :: s > 0 && s <= h + 1 -> next = s
            :: else -> next = (h >= N -> h - N + 1 : 1)
            fi
#endif
        :: else -> skip
        fi;
        /* _next_record's loop, then the delivery (_poll_current) */
        do
        :: next == 0 || next > h -> break
        :: else ->
            if
            :: h - next >= N -> next = h - N + 1; synced = 0 /* @map framebus/_packet_subscriber.py: self._next, self._synced = head - count + 1, False */
            :: else -> skip
            fi;
            if
            :: synced ->
                read(next, ok, c0, c1, isk);
                if
                :: ok -> got = 1; break
                :: else ->
#ifdef MUT_RESUME_ANYWHERE
                    next++
#else
                    synced = 0  /* @map framebus/_packet_subscriber.py: self._synced = False  # lost: on to the next keyframe after it */
#endif
                fi
            :: else ->  /* _seek_key: the first intact keyframe at or after next */
                scanned = next;
                do
                :: scanned > h -> next = h + 1; break   /* @map framebus/_packet_subscriber.py: self._next = head + 1 */
                :: else ->
                    peek(scanned, ok, isk);
                    if
                    :: ok && isk -> next = scanned; synced = 1; break  /* @map framebus/_packet_subscriber.py: self._next, self._synced = seq, True */
                    :: else -> scanned++
                    fi
                od
            fi
        od;
        if
        :: got ->
            assert(P1_no_torn_packet && c0 == next && c1 == next);
            assert(P2_in_order && next > last);
            missed = (last > 0 -> next - last - 1 : 0); /* @map framebus/_packet_ring.py: missed = seq - last_seq - 1 if last_seq and seq > last_seq else 0 */
            assert(P3_skips_to_a_keyframe && (missed == 0 || isk));
            assert(P3_joins_at_a_keyframe && (last > 0 || isk));
            last = next; next++;  /* @map framebus/_packet_subscriber.py: self._last, self._next = record.seq, record.seq + 1 */
            delivered = last
        :: else ->
            /* futex: sleep while WAKE still equals what we loaded. @map framebus/_packet_subscriber.py: att.ring.words.sleep(WAKE, WAITERS, seen & 0xFFFFFFFF, min(remaining, LIVENESS_INTERVAL)) */
            (wake != seen)
        fi
    od;
    assert(P4_reader_finishes && delivered == P)
}
