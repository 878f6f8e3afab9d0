"""One POSIX shared-memory object: exclusive creation, safe opening, mapping and liveness locks.

Liveness uses open-file-description byte-range locks (F_OFD_SETLK). The kernel releases them
when the holder dies, so a SIGKILLed writer or reader is detected without PIDs (immune to PID
reuse and PID namespaces), the way iceoryx2 detects dead nodes.

Each Segment uses two open file descriptions of the object: `fd` carries the locks, and a
second one backs the mapping (mmap keeps its own duplicate of it). So the locks go away exactly
when `fd` is closed, although arrays may keep the mapping alive for longer, and a forked child
can drop its inherited copy of `fd` without touching the parent's locks.

The mapping itself is never unmapped explicitly: numpy arrays on it hold no buffer export, so an
explicit munmap could leave a caller's frame pointing at nothing. It goes when its last
reference (segment, ring or frame) does; so the owners of a dead ring drop theirs at once.

Ownership: a writer uses (creates, reclaims, takes over) only segments of its own uid; a reader
reads only segments of its own uid, or group-shared (0660) ones whose group it is in. Anything
else is SegmentForeign: another local user cannot feed us frames by squatting a stream's name.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import grp
import logging
import mmap
import os
import stat
import struct
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import posix_ipc

from ._errors import SegmentForeign, SharedMemoryFull, StreamNotFound, WriterBusy
from ._layout import RECLAIM_LOCK_BYTE, WRITER_LOCK_BYTE
from ._names import SHM_DIR, not_found_message, shm_name, shm_path

logger = logging.getLogger(__name__)

# struct flock on LP64 Linux (x86-64 and aarch64 alike): l_type, l_whence, l_start, l_len, l_pid.
_FLOCK = struct.Struct("hhqqi4x")
_MODE_PRIVATE = 0o600
_MODE_GROUP = 0o660
_CREATE_ATTEMPTS = 5
_MAX_GID = (1 << 32) - 2  # gid_t is 32 bits and (gid_t)-1 means "unchanged"
# A removed ring's pages are freed when its readers let go of their mappings (they do within a
# liveness interval, ~0.2 s, while they read). A writer short of space waits this long for them.
RELEASE_GRACE_S = 3.0
_RETRY_S = 0.02
MADV_POPULATE_READ = 22  # Linux >= 5.14; older kernels refuse it and pages fault in on first use

# Lock fds of every open segment, so a forked child can close its inherited copies.
_open_segments: weakref.WeakSet[Segment] = weakref.WeakSet()


@dataclass(eq=False)
class Segment:
    """A mapped segment and the open file description its locks live on."""

    name: str
    fd: int
    map: mmap.mmap
    size: int
    inode: int
    owner_uid: int
    _finalizer: weakref.finalize[[int], Segment] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # An owner that forgets close() still gets its fd closed (and its locks dropped) when freed.
        self._finalizer = weakref.finalize(self, os.close, self.fd)
        _open_segments.add(self)

    @classmethod
    def create(cls, name: str, size: int, group: str | int | None = None) -> Segment:
        """Create the segment exclusively, taking its writer lock; reclaim a dead writer's one.

        WriterBusy if a live writer owns the name, SegmentForeign if another user does,
        SharedMemoryFull if /dev/shm cannot hold `size` bytes.
        """
        gid = resolve_group(name, group)
        mode = _MODE_GROUP if gid is not None else _MODE_PRIVATE
        for _ in range(_CREATE_ATTEMPTS):
            try:
                fd = posix_ipc.SharedMemory(shm_name(name), posix_ipc.O_CREX, mode=mode).fd
            except posix_ipc.ExistentialError:
                _reclaim_stale(name)
                continue
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                raise SharedMemoryFull(
                    f"stream {name!r}: {SHM_DIR} has no free inodes left (too many files in it); "
                    "remove stale files or mount it with a larger nr_inodes="
                ) from exc
            # Until we hold the writer lock, a remover may take this fresh, unlocked object for a
            # dead writer's and unlink it: then our lock fails (it holds the byte) or the name no
            # longer leads to our inode (checked once locked), and we start over.
            if not try_lock(fd, WRITER_LOCK_BYTE):
                os.close(fd)
                continue
            try:
                _set_access(fd, mode, gid)
                _reserve(fd, name, size)
                if inode_at(name) != os.fstat(fd).st_ino:
                    raise FileNotFoundError  # unlinked by a remover before we locked it
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                # Our lock keeps removers off our inode, so the name cannot change under us here.
                if inode_at(name) == os.fstat(fd).st_ino:
                    _unlink_quietly(name)
                os.close(fd)
                raise
            return cls._mapped(name, fd, populate=True)
        raise WriterBusy(f"stream {name!r}: another writer keeps creating it at the same time")

    @classmethod
    def take_over(
        cls, name: str, size: int, group: str | int | None, fits: Callable[[Segment], bool]
    ) -> Segment | None:
        """Become the writer of a dead writer's segment in place, with its writer lock held.

        Only our own segment of exactly `size` bytes whose header `fits` qualifies: it needs no
        new memory, so a restart never fails for space its old readers still map. None if there
        is no such segment (the caller creates one); WriterBusy if a live writer owns the name.
        """
        gid = resolve_group(name, group)
        try:
            old = cls.open(name)
        except StreamNotFound:
            return None
        try:
            _check_writer_owns(old)
            if old.size == size:
                if not old.try_lock(WRITER_LOCK_BYTE):
                    if old.lock_holder(WRITER_LOCK_BYTE) == fcntl.F_WRLCK:
                        raise WriterBusy(f"stream {name!r} already has a live writer")
                    old.close()  # a remover holds it (shared): it is going; create() waits for that
                    return None
                if old.still_named() and fits(old):
                    _set_access(old.fd, _MODE_GROUP if gid is not None else _MODE_PRIVATE, gid)
                    logger.info("stream %r: taking over the segment of a writer that died or left", name)
                    return old
        except BaseException:
            old.close()
            raise
        old.close()  # (drops the writer lock we may have taken)
        return None

    @classmethod
    def open(cls, name: str, *, readonly: bool = False, any_owner: bool = False) -> Segment:
        """Open an existing segment: StreamNotFound if there is none, SegmentForeign if it is
        not a regular file we may use (or, unless `any_owner`, not our user's or our group's).
        Pages are not touched until `prefault()`."""
        # Not shm_open: O_NONBLOCK and the regular-file check keep a FIFO or device planted
        # in /dev/shm from hanging us, O_NOFOLLOW a symlink from redirecting us.
        access = os.O_RDONLY if readonly else os.O_RDWR
        try:
            fd = os.open(shm_path(name), access | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StreamNotFound(not_found_message(name)) from None
        except OSError as exc:
            raise SegmentForeign(f"stream {name!r}: cannot open {shm_path(name)}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SegmentForeign(f"stream {name!r}: {shm_path(name)} is not a regular file")
            if st.st_mode & 0o007:
                raise SegmentForeign(f"stream {name!r}: {shm_path(name)} is world-accessible; refusing it")
            if not any_owner:
                _check_reader_trusts(name, st)
            return cls._mapped(name, fd, readonly=readonly)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _mapped(cls, name: str, fd: int, *, readonly: bool = False, populate: bool = False) -> Segment:
        st = os.fstat(fd)
        if st.st_size == 0:  # a writer between creation and sizing; mmap refuses zero length
            return cls(name, fd, mmap.mmap(-1, 1), 0, st.st_ino, st.st_uid)
        # A second open file description of the same inode backs the mapping (see module doc).
        map_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY if readonly else os.O_RDWR)
        try:
            prot = mmap.PROT_READ if readonly else mmap.PROT_READ | mmap.PROT_WRITE
            flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if populate else 0)
            mapping = mmap.mmap(map_fd, st.st_size, flags=flags, prot=prot)
        finally:
            os.close(map_fd)
        return cls(name, fd, mapping, st.st_size, st.st_ino, st.st_uid)

    def prefault(self) -> None:
        """Map every page now, so first reads of each slot pay no page faults."""
        with contextlib.suppress(OSError):
            self.map.madvise(MADV_POPULATE_READ)

    def try_lock(self, byte: int, kind: int = fcntl.F_WRLCK) -> bool:
        return try_lock(self.fd, byte, kind)

    def unlock(self, byte: int) -> None:
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, byte, 1, 0))

    def is_locked(self, byte: int) -> bool:
        """True if another open file description (a live process) holds a lock on `byte`."""
        return self.lock_holder(byte) != fcntl.F_UNLCK

    def lock_holder(self, byte: int) -> int:
        """How another open file description holds `byte`: F_WRLCK, F_RDLCK or F_UNLCK (not at all)."""
        probe = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
        return int(_FLOCK.unpack(fcntl.fcntl(self.fd, fcntl.F_OFD_GETLK, probe))[0])

    def resized(self) -> bool:
        """True if someone changed the object's size since we mapped it (a SIGBUS hazard)."""
        return os.fstat(self.fd).st_size != self.size

    def still_named(self) -> bool:
        """True while /dev/shm/framebus.<name> is still this segment (not unlinked or replaced)."""
        return inode_at(self.name) == self.inode

    def unlink(self) -> None:
        """Remove the name if it still refers to this segment (never a successor's)."""
        if self.still_named():
            _unlink_quietly(self.name)
            _releasing.note(self.size)

    def close(self) -> None:
        """Close the lock fd, dropping this description's locks; the mapping outlives it while used."""
        self._finalizer()


def inode_at(name: str) -> int | None:
    """The inode now behind stream `name`, or None if there is none."""
    try:
        return os.stat(shm_path(name)).st_ino
    except FileNotFoundError:
        return None


def try_lock(fd: int, byte: int, kind: int = fcntl.F_WRLCK) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, byte, 1, 0))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


class Removal(enum.Enum):
    """What remove_if_dead() found and did."""

    REMOVED = "removed"  # it was a dead writer's segment and we unlinked it
    GONE = "gone"  # there was none, or another process removed it meanwhile
    LIVE = "live"  # a live writer holds it (or is creating or taking it over): left alone
    CONTENDED = "contended"  # another process is removing it right now: left to that one


def remove_if_dead(name: str, check: Callable[[Segment], None] | None = None) -> Removal:
    """Unlink stream `name` if no live writer holds it: the one rule for every remover (a new
    writer reclaiming the name, `framebus doctor --fix`, the daemon dropping a stream).

    `check(segment)` runs on the very inode about to go, locked, and may raise to keep it (the
    writer refuses another user's segment, doctor anything that is not a framebus segment).
    PermissionError or SegmentForeign if we may not open or remove it.

    Why nothing live is ever removed: the name changes only by an unlink, and every unlinker
    first holds a lock on the inode it unlinks, from its check that the name still leads there
    until the unlink itself:
    - a writer (closing, or failing to start) holds the writer byte exclusively;
    - a remover holds the writer byte shared, which no writer can lock while it is held, and
      RECLAIM_LOCK_BYTE exclusively, which no other remover can.
    So while we hold both, nobody else can unlink our inode, hence nobody can create a new
    segment under the name (creation is exclusive), and the name still leads to the inode we
    checked when we unlink it. A writer that created that inode but has not locked it yet fails
    its lock, or finds the name gone once locked, and starts over (Segment.create). A failed
    writer-byte lock means a writer holds it (LIVE); a failed reclaim-byte lock means another
    remover is at work (CONTENDED), so a new writer waits for it rather than giving up.
    """
    try:
        old = Segment.open(name, any_owner=True)  # writable: an exclusive lock needs it
    except StreamNotFound:
        return Removal.GONE
    try:
        if not old.try_lock(WRITER_LOCK_BYTE, fcntl.F_RDLCK):
            return Removal.LIVE
        if not old.try_lock(RECLAIM_LOCK_BYTE):
            return Removal.CONTENDED
        if check is not None:
            check(old)
        if not old.still_named():
            return Removal.GONE
        os.unlink(shm_path(name))  # its readers see the name go and let go of their mappings
        _releasing.note(old.size)
        return Removal.REMOVED
    finally:
        old.close()


def _reclaim_stale(name: str) -> None:
    """A new writer's way past an existing segment: remove it if its writer is dead, waiting
    briefly while another process removes it; WriterBusy if a live writer holds it,
    SegmentForeign if it is another user's."""
    deadline = time.monotonic() + RELEASE_GRACE_S
    while True:
        outcome = remove_if_dead(name, _check_writer_owns)
        if outcome is Removal.LIVE:
            raise WriterBusy(f"stream {name!r} already has a live writer")
        if outcome is Removal.REMOVED:
            logger.info("stream %r: reclaimed the segment of a writer that died", name)
        if outcome is not Removal.CONTENDED or time.monotonic() >= deadline:
            return
        time.sleep(_RETRY_S)


def _check_writer_owns(segment: Segment) -> None:
    if segment.owner_uid != os.geteuid():
        raise SegmentForeign(
            f"stream {segment.name!r}: {shm_path(segment.name)} belongs to uid {segment.owner_uid}; "
            "framebus will not replace another user's segment"
        )


def _check_reader_trusts(name: str, st: os.stat_result) -> None:
    """A reader's rule: our own uid's segment, or one shared (0660) with a group we are in."""
    if st.st_uid == os.geteuid():
        return
    if st.st_mode & 0o060 and (st.st_gid == os.getegid() or st.st_gid in os.getgroups()):
        return
    raise SegmentForeign(
        f"stream {name!r}: {shm_path(name)} belongs to uid {st.st_uid} and is not shared with a group "
        "of ours; framebus reads only its own user's streams and group-shared ones"
    )


def resolve_group(name: str, group: object) -> int | None:
    """The gid for a stream's `group` (a name or a gid); ValueError/TypeError naming a bad one."""
    if group is None:
        return None
    if isinstance(group, str):
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"stream {name!r}: group {group!r} does not exist on this machine") from None
    if isinstance(group, bool) or not isinstance(group, int):
        raise TypeError(f"stream {name!r}: group must be a group name or a gid, got {group!r}")
    if not 0 <= group <= _MAX_GID:
        raise ValueError(f"stream {name!r}: gid {group} is out of range (0 to {_MAX_GID})")
    return group


def _set_access(fd: int, mode: int, gid: int | None) -> None:
    if gid is not None:
        os.fchown(fd, -1, gid)
    os.fchmod(fd, mode)  # shm_open applied the umask; set exactly what was asked


class _Releasing:
    """Bytes of rings this process removed lately: freed as soon as their readers let go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._removed: list[tuple[float, int]] = []  # (monotonic s, bytes)

    def note(self, size: int) -> None:
        with self._lock:
            self._removed.append((time.monotonic(), size))

    def pending(self) -> int:
        """Bytes removed within the last RELEASE_GRACE_S: what readers are about to free."""
        cutoff = time.monotonic() - RELEASE_GRACE_S
        with self._lock:
            self._removed = [(t, n) for t, n in self._removed if t >= cutoff]
            return sum(n for _, n in self._removed)


_releasing = _Releasing()


def _reserve(fd: int, name: str, size: int) -> None:
    """Allocate every page now: a full /dev/shm is an error here, not a SIGBUS mid-frame later.

    Space held only by rings we just removed counts as free: their readers drop them within a
    liveness interval, so we retry for up to RELEASE_GRACE_S before giving up."""
    deadline = time.monotonic() + RELEASE_GRACE_S
    while True:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                raise
            vfs = os.statvfs(SHM_DIR)
            free, pending = vfs.f_bavail * vfs.f_frsize, _releasing.pending()
            if exc.errno != errno.EFBIG and free + pending >= size and time.monotonic() < deadline:
                time.sleep(_RETRY_S)
                continue
            held = (
                f" (+{pending / 2**20:.1f} MiB still mapped by readers of removed rings)" if pending else ""
            )
            used = vfs.f_blocks * vfs.f_frsize - free
            suggest = -(-(used + size) * 5 // 4 // 2**20)  # MiB, rounded up, with 25% headroom
            raise SharedMemoryFull(
                f"stream {name!r} needs {size / 2**20:.1f} MiB but {SHM_DIR} has {free / 2**20:.1f} MiB "
                f"free{held}: use fewer slots or smaller frames, or enlarge {SHM_DIR} to {suggest} MiB "
                f"('mount -o remount,size={suggest}M {SHM_DIR}'; Docker: '--shm-size={suggest}m')"
            ) from exc


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_shared_memory(shm_name(name))


def _close_inherited_locks() -> None:
    """In a forked child: drop our copies of the lock fds, or a parent's death would go unseen
    (the child would keep its writer or reader lock held). The parent's locks are untouched."""
    for segment in list(_open_segments):
        segment._finalizer.detach()
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        segment.fd = -1


os.register_at_fork(after_in_child=_close_inherited_locks)
