"""A keyring backend that enforces Windows Credential Manager's size limit, for chunking tests.

Entries live in a JSON file named by ``$LIMITED_KEYRING_FILE`` (``{"service\\x00account": value}``),
rewritten atomically on every change, so a test can read exactly what was left behind. Like
Windows Credential Manager (``CredWrite`` with a blob above ``CRED_MAX_CREDENTIAL_BLOB_SIZE``), it
refuses any value whose UTF-16-LE encoding is larger than 2560 bytes.

Knobs (environment):
  LIMITED_KEYRING_FILE        where the entries are kept (required)
  LIMITED_KEYRING_FAIL_AFTER  N: the first N ``set_password`` calls in this process succeed and
                              the next one fails, to simulate a crash in the middle of a
                              chunked write
  LIMITED_KEYRING_FAIL_MODE   how that write fails: ``raise`` (default, an exception from the
                              backend) or ``exit`` (the process dies on the spot, exit 137, as if
                              killed: no cleanup code runs)

Used in a gatekey profile as ``backend = "limited_backend.LimitedKeyring"`` together with
``allow_insecure_backend = true`` (it keeps secrets in a plaintext file, so gatekey must refuse it
otherwise). ``tests/support`` is on the subprocess's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import tempfile

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

BLOB_LIMIT = 2560  # CRED_MAX_CREDENTIAL_BLOB_SIZE, in bytes of UTF-16-LE
SEP = "\x00"


class CredentialTooLarge(Exception):
    """What Windows raises from CredWrite for an oversized blob (pywintypes.error 1783)."""

    winerror = 1783

    def __init__(self, size: int) -> None:
        super().__init__(
            1783, "CredWrite", f"The stub received bad data ({size} bytes > {BLOB_LIMIT})"
        )


class SimulatedCrash(Exception):
    """The write chosen by LIMITED_KEYRING_FAIL_AFTER."""


_writes = 0  # set_password calls in this process


def _path() -> str:
    return os.environ["LIMITED_KEYRING_FILE"]


def load_entries(path: str | None = None) -> dict[str, str]:
    """Every entry in the file, keyed ``service + "\\x00" + account`` (tests use this too)."""
    try:
        with open(path or _path(), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    assert isinstance(data, dict)
    return data


def _save(entries: dict[str, str]) -> None:
    path = _path()
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".limited-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(entries, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class LimitedKeyring(KeyringBackend):
    """A plaintext JSON-file keyring that refuses values above Windows' 2560-byte blob limit."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return load_entries().get(service + SEP + username)

    def set_password(self, service: str, username: str, password: str) -> None:
        global _writes
        fail_after = os.environ.get("LIMITED_KEYRING_FAIL_AFTER")
        if fail_after is not None and _writes >= int(fail_after):
            if os.environ.get("LIMITED_KEYRING_FAIL_MODE", "raise") == "exit":
                os._exit(137)
            raise SimulatedCrash(f"simulated failure of write number {_writes + 1}")
        size = len(password.encode("utf-16-le"))
        if size > BLOB_LIMIT:
            raise CredentialTooLarge(size)
        _writes += 1
        entries = load_entries()
        entries[service + SEP + username] = password
        _save(entries)

    def delete_password(self, service: str, username: str) -> None:
        entries = load_entries()
        if entries.pop(service + SEP + username, None) is None:
            raise PasswordDeleteError("no such entry")
        _save(entries)
