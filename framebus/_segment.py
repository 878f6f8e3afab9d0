"""One POSIX shared-memory object: exclusive creation, safe opening, mapping and liveness locks.

Liveness uses open-file-description byte-range locks (F_OFD_SETLK) on the segment's own fd.
The kernel releases them when the holder dies, so a SIGKILLed writer or reader is detected
without PIDs (immune to PID reuse and PID namespaces), the way iceoryx2 detects dead nodes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import logging
import mmap
import os
import struct
import weakref
from dataclasses import dataclass, field

import posix_ipc

from ._errors import SegmentForeign, SharedMemoryFull, StreamNotFound, WriterBusy
from ._layout import WRITER_LOCK_BYTE
from ._names import SHM_DIR, shm_name, shm_path

logger = logging.getLogger(__name__)

# struct flock on LP64 Linux (x86-64 and aarch64 alike): l_type, l_whence, l_start, l_len, l_pid.
_FLOCK = struct.Struct("hhqqi4x")
_MODE_PRIVATE = 0o600
_MODE_GROUP = 0o660
_CREATE_ATTEMPTS = 5


@dataclass
class Segment:
    """A mapped segment and the open file description its locks live on."""

    name: str
    fd: int
    map: mmap.mmap
    size: int
    inode: int
    owner_uid: int
    _finalizer: weakref.finalize[[mmap.mmap, int], Segment] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # An owner that forgets close() still gets its fd closed (and its locks dropped) when freed.
        self._finalizer = weakref.finalize(self, _close, self.map, self.fd)

    @classmethod
    def create(cls, name: str, size: int, group: str | int | None = None) -> Segment:
        """Create the segment exclusively, taking its writer lock; reclaim a dead writer's one.

        WriterBusy if a live writer owns the name, SegmentForeign if another user does,
        SharedMemoryFull if /dev/shm cannot hold `size` bytes.
        """
        mode = _MODE_GROUP if group is not None else _MODE_PRIVATE
        for _ in range(_CREATE_ATTEMPTS):
            try:
                shm = posix_ipc.SharedMemory(shm_name(name), posix_ipc.O_CREX, mode=mode)
            except posix_ipc.ExistentialError:
                _reclaim_stale(name)
                continue
            fd = shm.fd
            if not try_lock(fd, WRITER_LOCK_BYTE):
                os.close(fd)  # a racing writer reclaimed and replaced it between our calls
                continue
            try:
                _set_access(fd, mode, group)
                _reserve(fd, name, size)
                if os.stat(shm_path(name)).st_ino != os.fstat(fd).st_ino:
                    raise FileNotFoundError  # a racing writer unlinked ours; start over
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                _unlink_quietly(name)
                os.close(fd)
                raise
            return cls._mapped(name, fd, size)
        raise WriterBusy(f"stream {name!r}: another writer keeps creating it at the same time")

    @classmethod
    def open(cls, name: str, *, readonly: bool = False) -> Segment:
        """Open an existing segment; StreamNotFound if there is none.

        The size comes from fstat (posix_ipc would re-truncate if given one).
        """
        try:
            shm = posix_ipc.SharedMemory(shm_name(name), 0, read_only=readonly)
        except posix_ipc.ExistentialError:
            raise StreamNotFound(f"no stream named {name!r} on this box") from None
        except posix_ipc.PermissionsError as exc:
            raise SegmentForeign(f"stream {name!r}: permission denied on {shm_path(name)}") from exc
        fd = shm.fd
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o007:
                raise SegmentForeign(f"stream {name!r}: {shm_path(name)} is world-accessible; refusing it")
            return cls._mapped(name, fd, st.st_size, readonly=readonly)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _mapped(cls, name: str, fd: int, size: int, readonly: bool = False) -> Segment:
        st = os.fstat(fd)
        if size == 0:  # a writer between creation and sizing; mmap refuses zero length
            return cls(name, fd, mmap.mmap(-1, 1), 0, st.st_ino, st.st_uid)
        prot = mmap.PROT_READ if readonly else mmap.PROT_READ | mmap.PROT_WRITE
        # MAP_POPULATE maps every page now, so the first frames pay no page faults (a read-only
        # look, as `framebus ls` takes, only touches the header).
        flags = mmap.MAP_SHARED if readonly else mmap.MAP_SHARED | mmap.MAP_POPULATE
        mapping = mmap.mmap(fd, size, flags=flags, prot=prot)
        return cls(name, fd, mapping, size, st.st_ino, st.st_uid)

    def try_lock(self, byte: int) -> bool:
        return try_lock(self.fd, byte)

    def unlock(self, byte: int) -> None:
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, byte, 1, 0))

    def is_locked(self, byte: int) -> bool:
        """True if another open file description (a live process) holds the lock on `byte`."""
        probe = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
        ltype = _FLOCK.unpack(fcntl.fcntl(self.fd, fcntl.F_OFD_GETLK, probe))[0]
        return bool(ltype != fcntl.F_UNLCK)

    def still_named(self) -> bool:
        """True while /dev/shm/framebus.<name> is still this segment (not unlinked or replaced)."""
        try:
            return os.stat(shm_path(self.name)).st_ino == self.inode
        except FileNotFoundError:
            return False

    def unlink(self) -> None:
        """Remove the name if it still refers to this segment (never a successor's)."""
        if self.still_named():
            _unlink_quietly(self.name)

    def close(self) -> None:
        """Unmap and close; the kernel drops this description's locks."""
        self._finalizer()


def _close(mapping: mmap.mmap, fd: int) -> None:
    # Frames handed out may still view the mapping: then it is unmapped when they are freed.
    with contextlib.suppress(BufferError):
        mapping.close()
    os.close(fd)


def try_lock(fd: int, byte: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _reclaim_stale(name: str) -> None:
    """Unlink a segment whose writer is dead; raise if a live writer or another user owns it."""
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
        if old.is_locked(WRITER_LOCK_BYTE):
            raise WriterBusy(f"stream {name!r} already has a live writer")
        logger.info("stream %r: reclaiming the segment of a writer that died", name)
        old.unlink()
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
