"""Secrets in the OS keychain through keyring, with an explicit backend and chunking for big values.

- The backend is chosen explicitly per platform (never keyring's auto-detection, which costs
  ~90 ms and can silently pick a plaintext file): Secret Service on Linux, the macOS Keychain,
  Windows Credential Manager. A ``backend`` setting names another keyring backend class; any
  backend that is not an OS keychain is refused unless the profile opts in.
- On Linux gatekey talks to the Secret Service through secretstorage, the library keyring's own
  SecretService backend uses, with the same item attributes (importing keyring would cost the
  helper ~100 ms per run). Items are interchangeable with ``keyring`` and
  ``secret-tool lookup service S username A``.
- Windows Credential Manager holds at most 2560 bytes per secret, and Entra tokens are often
  larger. Values above that are split into chunks under their own accounts, then a manifest is
  written last at the main account, so a half-written set reads as the previous value or absent.
  (Chunking applies on every platform so behaviour does not depend on where a value was stored.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gatekey.context import RunContext
from gatekey.errors import (
    DeadlineExceeded,
    HelperError,
    InteractionRequired,
    SourceUnavailable,
    TemporaryFailure,
)

log = logging.getLogger(__name__)

CHUNK_LIMIT = 2560  # bytes per secret in Windows Credential Manager (CRED_MAX_CREDENTIAL_BLOB_SIZE)
MANIFEST_PREFIX = "gatekey-chunked:v1:"

SECRET_SERVICE = "keyring.backends.SecretService.Keyring"  # noqa: S105 - a class path
DEFAULT_BACKENDS = {
    "linux": SECRET_SERVICE,
    "darwin": "keyring.backends.macOS.Keyring",
    "win32": "keyring.backends.Windows.WinVaultKeyring",
}
# OS keychains: secrets encrypted at rest and released only to the signed-in user.
SECURE_BACKENDS = frozenset(
    {
        *DEFAULT_BACKENDS.values(),
        "keyring.backends.libsecret.Keyring",
        "keyring.backends.kwallet.DBusKeyring",
        "keyring.backends.kwallet.DBusKeyringKWallet4",
    }
)

HEADLESS_FIX = (
    "on a desktop, sign in to a graphical session (GNOME Keyring and KeePassXC provide it); on a "
    "headless machine run gatekey under `dbus-run-session` with `gnome-keyring-daemon --unlock` "
    "started in it (see the README, 'Headless Linux'), or use a vault source"
)

T = TypeVar("T")


class RawStore(Protocol):
    """One keychain entry per (service, account); values are text."""

    def get(self, service: str, account: str) -> str | None: ...
    def set(self, service: str, account: str, value: str) -> None: ...
    def delete(self, service: str, account: str) -> bool: ...


def default_backend() -> str:
    return DEFAULT_BACKENDS.get(sys.platform, SECRET_SERVICE)


def is_secure(backend_path: str) -> bool:
    return backend_path in SECURE_BACKENDS


def call_with_deadline(fn: Callable[[], T], run: RunContext, doing: str) -> T:
    """Run a call that may block (D-Bus, a keychain prompt) no longer than the run's deadline."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=target, name="gatekey-keychain", daemon=True)
    thread.start()
    thread.join(max(run.check(doing), 0.0))
    if thread.is_alive():
        raise DeadlineExceeded(
            f"gave up after {run.timeout:g} s ({run.name} time limit) while {doing}; "
            "the keychain did not answer (is it waiting for a password prompt?)"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# --- backends -------------------------------------------------------------------------------
class KeyringStore:
    """Any keyring backend class, constructed explicitly (no auto-detection)."""

    def __init__(self, backend_path: str) -> None:
        self.backend_path = backend_path
        self._backend: Any = None

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = load_backend(self.backend_path)
        return self._backend

    def get(self, service: str, account: str) -> str | None:
        with _keyring_errors(self.backend_path):
            value = self.backend.get_password(service, account)
        return value if isinstance(value, str) else None

    def set(self, service: str, account: str, value: str) -> None:
        with _keyring_errors(self.backend_path):
            self.backend.set_password(service, account, value)

    def delete(self, service: str, account: str) -> bool:
        from keyring.errors import PasswordDeleteError

        with _keyring_errors(self.backend_path):
            try:
                self.backend.delete_password(service, account)
            except PasswordDeleteError:
                return False
        return True


def load_backend(path: str) -> Any:
    """Instantiate a keyring backend from its dotted class path, saying why it cannot run here."""
    import importlib

    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as e:
        raise SourceUnavailable(
            f"keyring backend {path} cannot be loaded ({type(e).__name__}); check the profile's "
            "backend setting, or install the package that provides it"
        ) from None
    try:
        # keyring's viability check: raises with the reason when the backend cannot work here.
        priority = cls.priority
    except Exception as e:
        raise SourceUnavailable(f"keyring backend {path} cannot run here: {e}") from None
    if path == SECRET_SERVICE and priority is not None and priority <= 0:
        raise SourceUnavailable(f"no Secret Service is available; {HEADLESS_FIX}")
    return cls()


@contextlib.contextmanager
def _keyring_errors(backend_path: str) -> Any:
    from keyring.errors import KeyringError, KeyringLocked

    try:
        yield
    except HelperError:
        raise
    except KeyringLocked:
        raise InteractionRequired(
            "the keychain is locked and no one unlocked it; sign in to the desktop session (or "
            "unlock the keyring), then run gatekey again"
        ) from None
    except (KeyringError, Exception) as e:
        # The type only: a backend's message could quote what it was given.
        raise TemporaryFailure(
            f"the keychain ({backend_path}) refused the request: {type(e).__name__}"
        ) from None


class SecretServiceStore:
    """Linux Secret Service through secretstorage, the library keyring's SecretService backend
    uses, with that backend's item attributes and label (so ``keyring`` and ``secret-tool`` see
    the same items). Used directly because importing keyring costs ~100 ms per run.
    """

    APPLICATION = "Python keyring library"  # keyring's SecretService appid

    def __init__(self, *, interactive: bool) -> None:
        self.interactive = interactive

    @contextlib.contextmanager
    def _collection(self) -> Any:
        """The unlocked default collection, or our error saying what to do."""
        import secretstorage
        from secretstorage.exceptions import SecretStorageException

        try:
            connection = secretstorage.dbus_init()
        except TimeoutError:  # the bus is there, accepted us, and did not answer (hung)
            raise TemporaryFailure(
                "the D-Bus session bus accepted the connection but did not answer; try again, "
                "or restart the desktop session's D-Bus"
            ) from None
        except (SecretStorageException, OSError, RuntimeError, ValueError):
            # RuntimeError/ValueError: an address jeepney cannot open (tcp:, unix:tmpdir=...)
            raise SourceUnavailable(
                "no D-Bus session bus, so no Secret Service (the Linux keychain) is reachable "
                f"(DBUS_SESSION_BUS_ADDRESS is {_bus_state()}); {HEADLESS_FIX}"
            ) from None
        try:
            try:
                collection = secretstorage.get_default_collection(connection)
            except SecretStorageException:
                if not secretstorage.check_service_availability(connection):
                    raise SourceUnavailable(
                        f"no Secret Service is running on the D-Bus session bus; {HEADLESS_FIX}"
                    ) from None
                raise TemporaryFailure(
                    "the Secret Service has no default keyring (collection); create one with "
                    "your desktop's keyring manager (e.g. Seahorse), then run gatekey store"
                ) from None
            if collection.is_locked():
                self._unlock(collection)
            yield collection
        except (SecretStorageException, OSError) as e:
            raise TemporaryFailure(
                f"the Secret Service failed the request ({type(e).__name__}); try again, or "
                "restart the keyring daemon"
            ) from None
        finally:
            connection.close()

    def get(self, service: str, account: str) -> str | None:
        with self._collection() as collection:
            for item in collection.search_items({"username": account, "service": service}):
                if item.is_locked():
                    self._unlock(item)
                return bytes(item.get_secret()).decode("utf-8")
            return None

    def set(self, service: str, account: str, value: str) -> None:
        attributes = {"application": self.APPLICATION, "service": service, "username": account}
        label = f"Password for '{account}' on '{service}'"
        with self._collection() as collection:
            item = collection.create_item(label, attributes, value, replace=True)
            # Items other tools wrote for the same service and account (secret-tool writes no
            # application attribute, so create_item did not replace them) would shadow ours.
            for other in collection.search_items({"username": account, "service": service}):
                if other.item_path != item.item_path:
                    other.delete()

    def delete(self, service: str, account: str) -> bool:
        with self._collection() as collection:
            items = list(collection.search_items({"username": account, "service": service}))
            for item in items:
                item.delete()
            return bool(items)

    def _unlock(self, thing: Any) -> None:
        if not self.interactive:
            raise InteractionRequired(
                "the keychain is locked and no one is present to unlock it; sign in to the "
                "desktop session (or unlock the keyring), then run gatekey again"
            )
        dismissed = thing.unlock()
        if dismissed or thing.is_locked():
            raise InteractionRequired(
                "the keychain stayed locked (the unlock prompt was dismissed); unlock the "
                "keyring (e.g. in Seahorse, or by signing in again), then run gatekey again"
            )


def _bus_state() -> str:
    return "set but unreachable" if os.environ.get("DBUS_SESSION_BUS_ADDRESS") else "unset"


def open_store(backend_path: str, *, interactive: bool) -> RawStore:
    if backend_path == SECRET_SERVICE:
        return SecretServiceStore(interactive=interactive)
    return KeyringStore(backend_path)


# --- chunking --------------------------------------------------------------------------------
def _fits(text: str) -> bool:
    # Windows stores text as UTF-16; other stores as UTF-8. A chunk must fit both.
    return len(text.encode("utf-16-le")) <= CHUNK_LIMIT and len(text.encode()) <= CHUNK_LIMIT


def split_chunks(value: str) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size16 = size8 = 0
    for ch in value:
        c16, c8 = len(ch.encode("utf-16-le")), len(ch.encode("utf-8", "surrogatepass"))
        if current and (size16 + c16 > CHUNK_LIMIT or size8 + c8 > CHUNK_LIMIT):
            chunks.append("".join(current))
            current, size16, size8 = [], 0, 0
        current.append(ch)
        size16 += c16
        size8 += c8
    if current:
        chunks.append("".join(current))
    return chunks


def _chunk_account(account: str, generation: str, index: int) -> str:
    return f"{account}#gatekey-chunk-{generation}-{index}"


_RETRY = object()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class ChunkedStore:
    """Values of any size over a RawStore: small ones as-is, large ones as chunks + manifest."""

    def __init__(self, raw: RawStore) -> None:
        self.raw = raw

    def _manifest(self, stored: str | None) -> dict[str, Any] | None:
        if stored is None or not stored.startswith(MANIFEST_PREFIX):
            return None
        try:
            data = json.loads(stored[len(MANIFEST_PREFIX) :])
        except ValueError:
            return {}
        ok = (
            isinstance(data, dict)
            and isinstance(data.get("gen"), str)
            and isinstance(data.get("n"), int)
            and 0 < data["n"] <= 1000
            and isinstance(data.get("sha256"), str)
        )
        return data if ok else {}

    def get(self, service: str, account: str) -> str | None:
        value = self._get_once(service, account)
        if value is _RETRY:
            # A concurrent store replaced the manifest and dropped the chunks we were reading.
            value = self._get_once(service, account)
        return None if value is _RETRY else value  # type: ignore[return-value]

    def _get_once(self, service: str, account: str) -> str | object | None:
        stored = self.raw.get(service, account)
        manifest = self._manifest(stored)
        if manifest is None:
            return stored
        if not manifest:
            log.debug("keychain entry has a damaged chunk manifest; treating it as absent")
            return None
        parts = []
        for i in range(manifest["n"]):
            part = self.raw.get(service, _chunk_account(account, manifest["gen"], i))
            if part is None:
                log.debug(
                    "keychain chunk %d of %d is missing; treating as absent", i, manifest["n"]
                )
                return None
            parts.append(part)
        value = "".join(parts)
        if _digest(value) != manifest["sha256"]:
            log.debug("keychain chunks do not match their manifest; treating as absent")
            return None
        return value

    def set(self, service: str, account: str, value: str) -> None:
        previous = self._manifest(self.raw.get(service, account))
        if _fits(value) and not value.startswith(MANIFEST_PREFIX):
            self.raw.set(service, account, value)
        else:
            generation = os.urandom(4).hex()
            chunks = split_chunks(value)
            for i, chunk in enumerate(chunks):
                self.raw.set(service, _chunk_account(account, generation, i), chunk)
            manifest = {"gen": generation, "n": len(chunks), "sha256": _digest(value)}
            # Written last: until this write lands, readers see the previous value (or nothing).
            self.raw.set(service, account, MANIFEST_PREFIX + json.dumps(manifest))
        self._drop_chunks(service, account, previous)

    def delete(self, service: str, account: str) -> bool:
        previous = self._manifest(self.raw.get(service, account))
        existed = self.raw.delete(service, account)  # first: a partial delete reads as absent
        self._drop_chunks(service, account, previous)
        return existed

    def _drop_chunks(self, service: str, account: str, manifest: dict[str, Any] | None) -> None:
        if not manifest:
            return
        for i in range(manifest["n"]):
            try:
                self.raw.delete(service, _chunk_account(account, manifest["gen"], i))
            except HelperError:
                log.warning("could not remove an old keychain chunk; it is unused and harmless")
