"""Reading, appending to, locking and atomically replacing files that must be regular files.

Standard library only.

Every file gatekey reads or appends to (configs, cache entries, the run log, secret files) may
have been replaced by a FIFO, a device or a socket: a plain open() of a FIFO blocks until a
writer appears, which would hang a silent run forever. Files are therefore opened non-blocking
and checked with fstat on the open descriptor (no window between check and use) before a byte is
read or written; anything that is not a regular file is refused with NotRegular, decided
without waiting.
"""

from __future__ import annotations

import os
import stat
import sys
import time

from gatekey.errors import NotRegular, TooLarge

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def describe(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str, flags: int, mode: int = 0o600, *, follow: bool = True) -> int:
    """``os.open`` that never blocks on a special file and returns only a regular file's fd.

    O_NONBLOCK makes opening a FIFO return at once (or fail with ENXIO for a writer with no
    reader); it is then refused by the fstat check. ``follow=False`` also refuses a symbolic
    link as the last component (ELOOP).
    """
    flags |= _O_NONBLOCK | _O_BINARY | _O_CLOEXEC
    if not follow:
        flags |= _O_NOFOLLOW
    fd = os.open(path, flags, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, describe(st.st_mode))
        if _O_NONBLOCK:  # regular files ignore it; clear it so later reads behave normally
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read(path: str, limit: int, *, follow: bool = True) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes.

    FileNotFoundError, NotRegular, TooLarge or another OSError otherwise.
    """
    fd = open_regular(path, os.O_RDONLY, follow=follow)
    try:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"{path} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


# --- lock files ------------------------------------------------------------------------------
def open_lock(path: str) -> int:
    """A lock file: a regular file of ours, not a link or FIFO planted in its place."""
    return open_regular(path, os.O_RDWR | os.O_CREAT, follow=False)


# try_lock(fd): take the file's exclusive lock if no other process holds it; unlock(fd).
if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def replace(src: str, dst: str) -> None:
    """os.replace, retried briefly on Windows, which refuses to replace a file another process
    has open (readers hold it only briefly)."""
    for attempt in range(50):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == 49:
                raise
            time.sleep(0.01)


def fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable, where the OS allows."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        return  # a directory some filesystems cannot sync: the rename stands
