"""Linux's kernel key retention service (keyrings(7)): the in-memory home of cached vault secrets.

Standard library only (ctypes), so the cache hit can read a cached secret without importing a
keychain library. Entries are "user" keys named ``gatekey:<cache key>`` in the user keyring
(``@u``: shared by this user's processes, never written to disk, gone at reboot), readable and
writable by this user only, and removed by the kernel itself when their timeout runs out. The
durable copy lives in the OS keychain (see securecache.py); this is the fast one.

Everything here is best effort: where the syscalls are missing or refused (not Linux, a seccomp
profile that blocks keyctl as Docker's does, a full quota), ``available()`` is False and callers
use the keychain alone.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the cache hit imports this module
if TYPE_CHECKING:
    from typing import Any

# x86_64, aarch64 (generic table), i386/arm: add_key, keyctl.
_SYSCALLS = {
    "x86_64": (248, 250),
    "aarch64": (217, 219),
    "arm64": (217, 219),
    "riscv64": (217, 219),
    "i386": (286, 288),
    "i686": (286, 288),
    "armv7l": (309, 311),
}
KEY_SPEC_USER_KEYRING = -4
KEYCTL_SETPERM = 5
KEYCTL_UNLINK = 9
KEYCTL_SEARCH = 10
KEYCTL_READ = 11
KEYCTL_SET_TIMEOUT = 15
KEYCTL_INVALIDATE = 21
# possessor: all; user (this uid): view, read, write, search, link, setattr; group/other: none
PERMISSIONS = 0x3F3F0000
MAX_PAYLOAD = 32767  # the "user" key type's limit
PREFIX = "gatekey:"

_lib: Any = None


def _calls() -> tuple[int, int] | None:
    """The (add_key, keyctl) syscall numbers of this machine, or None; loads libc once."""
    global _lib
    if not sys.platform.startswith("linux"):
        return None
    import os

    numbers = _SYSCALLS.get(os.uname().machine)
    if numbers is None:
        return None
    if _lib is None:
        import ctypes

        _lib = ctypes.CDLL(None, use_errno=True)
    return numbers


def _sys(number: int, *args: Any) -> int:
    """syscall(2) with every integer passed as a C long (the calls are variadic)."""
    import ctypes

    lib = _lib
    lib.syscall.restype = ctypes.c_long
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return int(lib.syscall(ctypes.c_long(number), *converted))


def _find(name: str) -> int | None:
    calls = _calls()
    if calls is None:
        return None
    _add, keyctl = calls
    found = _sys(keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, b"user", (PREFIX + name).encode(), 0)
    return found if found > 0 else None


def read(name: str) -> bytes | None:
    """The payload stored under ``name``, or None (absent, expired, or no kernel keyring)."""
    try:
        key = _find(name)
        if key is None:
            return None
        _add, keyctl = _calls()  # type: ignore[misc]
        import ctypes

        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = _sys(keyctl, KEYCTL_READ, key, buf, size)
            if n < 0:
                return None
            if n <= size:
                return buf.raw[:n]
            size = n  # the key grew between the calls, or was larger than the first guess
    except (OSError, AttributeError, ValueError):
        return None


def write(name: str, payload: bytes, *, timeout: int) -> bool:
    """Store ``payload`` under ``name`` (replacing any previous one) for ``timeout`` seconds."""
    if len(payload) > MAX_PAYLOAD or timeout <= 0:
        return False
    try:
        calls = _calls()
        if calls is None:
            return False
        add_key, keyctl = calls
        name_b = (PREFIX + name).encode()
        key = _sys(add_key, b"user", name_b, payload, len(payload), KEY_SPEC_USER_KEYRING)
        if key <= 0:
            return False
        ok = _sys(keyctl, KEYCTL_SETPERM, key, PERMISSIONS) == 0
        ok = ok and _sys(keyctl, KEYCTL_SET_TIMEOUT, key, timeout) == 0
        if not ok:
            _sys(keyctl, KEYCTL_INVALIDATE, key)
        return bool(ok)
    except (OSError, AttributeError, ValueError):
        return False


def delete(name: str) -> bool:
    """Remove ``name``; True if it was there."""
    try:
        key = _find(name)
        if key is None:
            return False
        _add, keyctl = _calls()  # type: ignore[misc]
        if _sys(keyctl, KEYCTL_INVALIDATE, key) == 0:
            return True
        return _sys(keyctl, KEYCTL_UNLINK, key, KEY_SPEC_USER_KEYRING) == 0
    except (OSError, AttributeError, ValueError):
        return False


def available() -> bool:
    """Whether this process can keep keys in the user keyring (checked by a write and delete)."""
    probe = "probe"
    if not write(probe, b"1", timeout=5):
        return False
    delete(probe)
    return True
