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
reference (segment, ring or frame) does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import logging
import mmap
import os
import stat
import struct
import weakref
from dataclasses import dataclass, field

import posix_ipc

from ._errors import SegmentForeign, SharedMemoryFull, StreamNotFound, WriterBusy
from ._layout import WRITER_LOCK_BYTE
from ._names import SHM_DIR, not_found_message, shm_name, shm_path

logger = logging.getLogger(__name__)

# struct flock on LP64 Linux (x86-64 and aarch64 alike): l_type, l_whence, l_start, l_len, l_pid.
_FLOCK = struct.Struct("hhqqi4x")
_MODE_PRIVATE = 0o600
_MODE_GROUP = 0o660
_CREATE_ATTEMPTS = 5
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
        mode = _MODE_GROUP if group is not None else _MODE_PRIVATE
        for _ in range(_CREATE_ATTEMPTS):
            try:
                fd = posix_ipc.SharedMemory(shm_name(name), posix_ipc.O_CREX, mode=mode).fd
            except posix_ipc.ExistentialError:
                _reclaim_stale(name)
                continue
            if not try_lock(fd, WRITER_LOCK_BYTE):
                os.close(fd)  # a racing writer is reclaiming it as stale; start over
                continue
            try:
                _set_access(fd, mode, group)
                _reserve(fd, name, size)
                if os.stat(shm_path(name)).st_ino != os.fstat(fd).st_ino:
                    raise FileNotFoundError  # unlinked by a racing reclaim before we locked it
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                _unlink_quietly(name)
                os.close(fd)
                raise
            return cls._mapped(name, fd, populate=True)
        raise WriterBusy(f"stream {name!r}: another writer keeps creating it at the same time")

    @classmethod
    def open(cls, name: str, *, readonly: bool = False) -> Segment:
        """Open an existing segment: StreamNotFound if there is none, SegmentForeign if it is
        not a regular file we may use. Pages are not touched until `prefault()`."""
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

    def try_lock(self, byte: int) -> bool:
        return try_lock(self.fd, byte)

    def unlock(self, byte: int) -> None:
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, byte, 1, 0))

    def is_locked(self, byte: int) -> bool:
        """True if another open file description (a live process) holds a lock on `byte`."""
        probe = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
        ltype = _FLOCK.unpack(fcntl.fcntl(self.fd, fcntl.F_OFD_GETLK, probe))[0]
        return bool(ltype != fcntl.F_UNLCK)

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


def _reclaim_stale(name: str) -> None:
    """Unlink a segment whose writer is dead; raise if a live writer or another user owns it.

    The writer byte stays locked (shared) across the check and the unlink, so a writer that
    just created the object and has not locked it yet fails its own lock and starts over,
    instead of both going on as writers.
    """
    try:
        old = Segment.open(name, readonly=True)
    except StreamNotFound:
        return  # vanished meanwhile: just try creating again
    try:
        if old.owner_uid != os.geteuid():
            raise SegmentForeign(
                f"stream {name!r}: {shm_path(name)} belongs to uid {old.owner_uid}; "
                "framebus will not replace another user's segment"
            )
        if not try_lock(old.fd, WRITER_LOCK_BYTE, fcntl.F_RDLCK):
            raise WriterBusy(f"stream {name!r} already has a live writer")
        logger.info("stream %r: reclaiming the segment of a writer that died", name)
        old.unlink()
    finally:
        old.close()


def remove_if_dead(name: str) -> bool:
    """Unlink stream `name` if no live writer holds it; False (and nothing changes) if one does.

    The same protocol as a new writer's reclaim, for `framebus doctor --fix`: the writer byte
    stays read-locked across the check and the unlink, so a writer creating the stream right
    now starts over instead of losing its segment. PermissionError if we may not remove it.
    """
    try:
        old = Segment.open(name, readonly=True)
    except StreamNotFound:
        return True  # gone already
    try:
        if not try_lock(old.fd, WRITER_LOCK_BYTE, fcntl.F_RDLCK):
            return False
        if old.still_named():
            os.unlink(shm_path(name))
        return True
    finally:
        old.close()


def _set_access(fd: int, mode: int, group: str | int | None) -> None:
    if group is not None:
        gid = group if isinstance(group, int) else grp.getgrnam(group).gr_gid
        os.fchown(fd, -1, gid)
    os.fchmod(fd, mode)  # shm_open applied the umask; set exactly what was asked


def _reserve(fd: int, name: str, size: int) -> None:
    """Allocate every page now: a full /dev/shm is an error here, not a SIGBUS mid-frame later."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
            raise
        vfs = os.statvfs(SHM_DIR)
        free = vfs.f_bavail * vfs.f_frsize
        raise SharedMemoryFull(
            f"stream {name!r} needs {size / 2**20:.1f} MiB but {SHM_DIR} has {free / 2**20:.1f} MiB free: "
            "use fewer slots or smaller frames, or enlarge /dev/shm (Docker: --shm-size=512m)"
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
