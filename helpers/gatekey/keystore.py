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
  larger: values above that are split into chunks (chunks.py, re-exported here). Chunking
  applies on every platform so behaviour does not depend on where a value was stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

# The chunking API lives in chunks.py; its users import it from here.
from gatekey.chunks import CHUNK_LIMIT as CHUNK_LIMIT
from gatekey.chunks import MANIFEST_PREFIX as MANIFEST_PREFIX
from gatekey.chunks import ChunkedStore as ChunkedStore
from gatekey.chunks import RawStore as RawStore
from gatekey.chunks import split_chunks as split_chunks
from gatekey.context import RunContext
from gatekey.errors import (
    DeadlineExceeded,
    HelperError,
    InteractionRequired,
    SourceUnavailable,
    TemporaryFailure,
)

log = logging.getLogger(__name__)

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
            f"gave up after {run.timeout:g} s ({run.name} time limit) while {doing}",
            fix="the keychain did not answer (is it waiting for a password prompt?)",
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
            f"keyring backend {path} cannot be loaded ({type(e).__name__})",
            fix="check the profile's backend setting, or install the package that provides it",
        ) from None
    try:
        # keyring's viability check: raises with the reason when the backend cannot work here.
        priority = cls.priority
    except Exception as e:
        raise SourceUnavailable(f"keyring backend {path} cannot run here: {e}") from None
    if path == SECRET_SERVICE and priority is not None and priority <= 0:
        raise SourceUnavailable("no Secret Service is available", fix=HEADLESS_FIX)
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
        # The collection of the session() in progress, per thread: a call abandoned at the
        # deadline may still be using its connection while another thread starts one.
        self._sessions: dict[int, Any] = {}

    @property
    def _open(self) -> Any:
        return self._sessions.get(threading.get_ident())

    @contextlib.contextmanager
    def session(self) -> Any:
        """One connection for every call inside the block (a chunked value takes many calls;
        each new connection costs a bus handshake that jeepney gives up on after 1 s)."""
        if self._open is not None:
            yield
            return
        with self._collection() as collection:
            self._sessions[threading.get_ident()] = collection
            try:
                yield
            finally:
                del self._sessions[threading.get_ident()]

    @contextlib.contextmanager
    def _collection(self) -> Any:
        """The unlocked default collection, or our error saying what to do."""
        import secretstorage
        from secretstorage.exceptions import SecretStorageException

        if self._open is not None:
            with _service_errors():
                yield self._open
            return
        try:
            connection = secretstorage.dbus_init()
        except TimeoutError:  # the bus is there, accepted us, and did not answer (hung)
            raise TemporaryFailure(
                "the D-Bus session bus accepted the connection but did not answer",
                fix="try again, or restart the desktop session's D-Bus",
            ) from None
        except (SecretStorageException, OSError, RuntimeError, ValueError):
            # RuntimeError/ValueError: an address jeepney cannot open (tcp:, unix:tmpdir=...)
            raise SourceUnavailable(
                "no D-Bus session bus, so no Secret Service (the Linux keychain) is reachable "
                f"(DBUS_SESSION_BUS_ADDRESS is {_bus_state()})",
                fix=HEADLESS_FIX,
            ) from None
        try:
            try:
                collection = secretstorage.get_default_collection(connection)
            except SecretStorageException:
                if not secretstorage.check_service_availability(connection):
                    raise SourceUnavailable(
                        "no Secret Service is running on the D-Bus session bus", fix=HEADLESS_FIX
                    ) from None
                raise TemporaryFailure(
                    "the Secret Service has no default keyring (collection)",
                    fix="create one with your desktop's keyring manager (e.g. Seahorse), then run "
                    "gatekey store",
                ) from None
            if collection.is_locked():
                self._unlock(collection)
            with _service_errors():
                yield collection
        except (SecretStorageException, OSError) as e:
            raise _failed(e) from None
        finally:
            connection.close()

    # Another process may delete an item between our search and our look at it (a concurrent
    # store replacing chunks, an erase): that is a race, not a keychain failure, so a vanished
    # item is skipped and the search made again.
    def get(self, service: str, account: str) -> str | None:
        with self._collection() as collection:

            def first_secret() -> str | None:
                for item in collection.search_items({"username": account, "service": service}):
                    if item.is_locked():
                        self._unlock(item)
                    return bytes(item.get_secret()).decode("utf-8")
                return None

            return _despite_vanishing(first_secret, None)

    def exists(self, service: str, account: str) -> bool:
        """Whether an item for (service, account) exists, found without reading its secret."""
        with self._collection() as collection:
            return bool(self._paths(collection, {"username": account, "service": service}))

    def set(self, service: str, account: str, value: str) -> None:
        attributes = {"application": self.APPLICATION, "service": service, "username": account}
        label = f"Password for '{account}' on '{service}'"
        with self._collection() as collection:
            item = collection.create_item(label, attributes, value, replace=True)
            # Items other tools wrote for the same service and account (secret-tool writes no
            # application attribute, so create_item did not replace them) would shadow ours.
            for path in self._paths(collection, {"username": account, "service": service}):
                if path != item.item_path:
                    self._delete_path(collection, path)

    def delete(self, service: str, account: str) -> bool:
        with self._collection() as collection:
            paths = self._paths(collection, {"username": account, "service": service})
            return sum(self._delete_path(collection, path) for path in paths) > 0

    def accounts(self, service: str, prefix: str) -> list[str]:
        """The accounts (usernames) of this service's items that start with ``prefix``."""
        with self._collection() as collection:
            names = (
                self._username(collection, path)
                for path in self._paths(collection, {"service": service})
            )
            return [name for name in names if name.startswith(prefix)]

    @staticmethod
    def _paths(collection: Any, attributes: dict[str, str]) -> list[str]:
        # The object paths alone: search_items() builds an Item for each, asking the service
        # about it, and one deleted meanwhile would end the whole search with an exception.
        from secretstorage.collection import COLLECTION_IFACE
        from secretstorage.util import DBusAddressWrapper

        wrapper = DBusAddressWrapper(
            collection.collection_path, COLLECTION_IFACE, collection.connection
        )
        paths: list[str] = wrapper.call("SearchItems", "a{ss}", attributes)[0]
        return list(paths)

    @staticmethod
    def _username(collection: Any, path: str) -> str:
        """The item's username attribute; "" if it was deleted meanwhile."""
        from secretstorage import Item

        def username() -> str:
            item = Item(collection.connection, path, collection.session)
            return str(item.get_attributes().get("username", ""))

        return _despite_vanishing(username, "", attempts=1)

    def _delete_path(self, collection: Any, path: str) -> bool:
        """Delete one item; False if it was already gone."""
        from secretstorage import Item

        def delete() -> bool:
            item = Item(collection.connection, path, collection.session)
            if item.is_locked():
                self._unlock(item)
            item.delete()
            return True

        return _despite_vanishing(delete, False, attempts=1)

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


def _failed(e: BaseException) -> TemporaryFailure:
    return TemporaryFailure(
        f"the Secret Service failed the request ({type(e).__name__})",
        fix="try again, or restart the keyring daemon",
    )


@contextlib.contextmanager
def _service_errors() -> Any:
    """Each call's Secret Service failure as our error, where it happens (so a caller that
    tolerates one failed call, like a chunk sweep, sees a HelperError). secretstorage passes
    the service's own errors (org.freedesktop.DBus.Error.Failed, ...) on as jeepney's
    DBusErrorResponse: a refused call too, not a crash."""
    from jeepney import DBusErrorResponse
    from secretstorage.exceptions import SecretStorageException

    try:
        yield
    except (SecretStorageException, DBusErrorResponse, OSError) as e:
        raise _failed(e) from None


def _despite_vanishing(fn: Callable[[], T], gone: T, attempts: int = 3) -> T:
    """``fn()``, again when an item it touched was deleted meanwhile; ``gone`` if that keeps
    happening. A dismissed prompt (a subclass of the same exception) is a real failure."""
    from secretstorage.exceptions import ItemNotFoundException, PromptDismissedException

    for _ in range(attempts):
        try:
            return fn()
        except PromptDismissedException:
            raise
        except ItemNotFoundException:
            continue
    return gone


def _bus_state() -> str:
    return "set but unreachable" if os.environ.get("DBUS_SESSION_BUS_ADDRESS") else "unset"


def open_store(backend_path: str, *, interactive: bool) -> RawStore:
    if backend_path == SECRET_SERVICE:
        return SecretServiceStore(interactive=interactive)
    return KeyringStore(backend_path)
