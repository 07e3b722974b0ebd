"""The file cache: atomic 0600 JSON entries, a lock per key, and remembered failures.

Standard library only (the cache hit reads it). Layout under the cache directory (0700):

    index.json            for no-argument runs: which profile and cache key a given environment
                          and config (by stat fingerprint) select, so the cache hit need not
                          parse TOML; written by the full path after it validated the config
                          (an IndexEntry per selection: FileCache.record() and lookup())
    tokens/<key>.json     a Token (see token.py); written atomically, read as a miss if damaged
    locks/<key>.lock      held (flock / msvcrt) across re-read → fetch → persist; never deleted
    failures/<key>.json   the source's last failure and when the next attempt may be made

``<key>`` is a hash of every input that changes the credential, so file names reveal nothing.
"""

from __future__ import annotations

# Not contextlib either: importing it costs the cache hit 0.4 ms (try/except and a class do).
import errno
import json
import os
import sys
import time

from gatekey import context, errors, output, paths, regular
from gatekey.errors import CacheUnusable, NotRegular, TooLarge, Unresolvable
from gatekey.token import Token, is_time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the cache hit ~3 ms
if TYPE_CHECKING:
    from typing import Any


MAX_ENTRY_BYTES = 1 << 20
INDEX_MAX_ENTRIES = 32
# Locks this process holds for the rest of its life (taken early by the cache hit; see hold()).
_held: dict[str, int] = {}
BACKOFF_BASE = 5.0  # first failure: wait 5 s, then 10, 20, 40, capped at BACKOFF_MAX
BACKOFF_MAX = 60.0
LOCK_POLL = 0.02
REMEMBERED_EXIT_CODES = frozenset({1, 3, 4, 69, 75})
REMEMBERED_KINDS: dict[str, type[errors.HelperError]] = {
    cls.__name__: cls
    for cls in (
        errors.AccessDenied,
        errors.CommandNotFound,
        errors.CredentialNotFound,
        errors.InteractionRequired,
        errors.SourceUnavailable,
        errors.TemporaryFailure,
    )
}


def cache_key(kind: str, settings: dict[str, Any]) -> str:
    """A stable name for a credential: the source kind plus every setting that changes it."""
    import hashlib  # not on the cache hit, which reads the key from the index

    canonical = json.dumps(
        {"v": 1, "kind": kind, "settings": settings}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


class IndexEntry:
    """What a no-argument run selected, for the next one's cache hit: one entry of index.json.

    The full path records it after validating the config (runner.py); the cache hit looks it up
    (fastpath.py) and serves the token at ``key`` from ``store`` as ``output`` (or the shape
    GATEKEY_OUTPUT pins) with these headers and git username, if the config files still have
    the stat fingerprint ``config`` (paths.py's) and ``environment`` still holds these values.
    A plain class: the hit imports neither typing nor dataclasses.
    """

    __slots__ = FIELDS = (
        "config", "profile", "key", "store", "kernel_name", "environment", "min_ttl", "output",
        "auth_scheme", "headers", "timeouts", "log_file", "git_username",
    )  # fmt: skip

    def __init__(
        self,
        *,
        config: list[list[int] | None],
        profile: str,
        key: str,
        store: str,
        kernel_name: str | None = None,
        environment: dict[str, str | None],
        min_ttl: float,
        output: str,
        auth_scheme: str,
        headers: dict[str, str],
        timeouts: dict[str, float],
        log_file: str | None,
        git_username: str | None = None,
    ) -> None:
        self.config, self.profile, self.key, self.store = config, profile, key, store
        self.kernel_name, self.environment, self.min_ttl = kernel_name, environment, min_ttl
        self.output, self.auth_scheme, self.headers = output, auth_scheme, headers
        self.timeouts, self.log_file, self.git_username = timeouts, log_file, git_username

    def to_json(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in self.FIELDS
            if getattr(self, name) is not None or name not in ("kernel_name", "git_username")
        }

    @classmethod
    def from_json(cls, entry: Any) -> IndexEntry | None:
        """The entry, or None unless every value is one the full path could have written.

        The index sits in a user-writable directory; an edited entry must not make the cache hit
        print a payload the config would never produce (an Authorization line, shell exports,
        headers with line breaks, a run log on stdout). Anything unexpected is a miss, and the
        full path, which reads the config itself, decides.
        """
        if not isinstance(entry, dict):
            return None
        headers, timeouts, environment = (
            entry.get("headers"),
            entry.get("timeouts"),
            entry.get("environment"),
        )
        log_file, store, key = entry.get("log_file"), entry.get("store"), entry.get("key")
        usable = (
            isinstance(entry.get("config"), list)
            and isinstance(entry.get("profile"), str)
            and isinstance(key, str)
            and len(key) == 40
            and all(c in "0123456789abcdef" for c in key)
            and is_time(entry.get("min_ttl"))
            and entry["min_ttl"] >= 0
            and entry.get("output") in output.SHAPES
            and entry.get("auth_scheme") in ("bearer", "x-api-key")
            and isinstance(headers, dict)
            and all(
                output.header_name_problem(name) is None
                and output.header_value_problem(value) is None
                for name, value in headers.items()
            )
            and isinstance(timeouts, dict)
            and set(timeouts) <= set(context.DEFAULT_TIMEOUTS)
            and all(is_time(v) and 0 < v <= 600 for v in timeouts.values())
            and isinstance(environment, dict)
            and all(
                isinstance(k, str) and (v is None or isinstance(v, str))
                for k, v in environment.items()
            )
            and (log_file is None or (isinstance(log_file, str) and os.path.isabs(log_file)))
            and _git_username_usable(entry.get("git_username"))
            and (
                store == "file"
                or (
                    store == "kernel"
                    and isinstance(entry.get("kernel_name"), str)
                    and entry["kernel_name"].endswith(":" + key)
                )
            )
        )
        if not usable:
            return None
        values: dict[str, Any] = {name: entry.get(name) for name in cls.FIELDS}
        return cls(**values)


def _git_username_usable(name: object) -> bool:
    return name is None or (
        output.git_username_problem(name) is None and output.TOKEN_MARK not in str(name)
    )


def selection_id(family: str | None) -> str:
    """Everything outside the config files that decides which profile a no-argument run uses;
    the leading 2 means "checked by rules that refuse literal credential headers" (issue 15)."""
    files = [path for path, _ in paths.config_files()]
    return json.dumps([2, family or "", os.environ.get("GATEKEY_PROFILE", ""), files])


class FileCache:
    def __init__(self, root: str | None = None) -> None:
        self._refused: str | None = None
        self._checked = False
        if root is None:
            try:
                root = paths.cache_dir()
            except Unresolvable as e:
                # Never a cache relative to the working directory: run without one.
                root, self._refused, self._checked = "", str(e), True
        self.root = root

    def _path(self, area: str, key: str, suffix: str) -> str:
        return os.path.join(self.root, area, key + suffix)

    def refused(self) -> str | None:
        """Why this cache directory must not be used, or None: one owned by another user (a
        link into someone else's directory, or one they created first where GATEKEY_CACHE_DIR
        points) could feed gatekey their tokens and read ours. Checked once per process."""
        if not self._checked:
            self._checked = True
            self._refused = _foreign(self.root)
        return self._refused

    def _load(self, path: str) -> tuple[Any, str | None]:
        refused = self.refused()
        if refused is not None:
            return None, f"cache directory ignored: {refused}"
        return _read_json(path)

    # --- tokens -------------------------------------------------------------------------
    def read(self, key: str) -> tuple[Token | None, str | None]:
        """The cached token, or (None, why) for a miss; a damaged entry is a miss, not a crash."""
        data, why = self._load(self._path("tokens", key, ".json"))
        if data is None:
            return None, why or "cache entry damaged (null)"
        try:
            return Token.from_json(data), None
        except ValueError as e:
            return None, f"cache entry unusable ({e})"

    def write(self, key: str, token: Token) -> None:
        self._write_json("tokens", key, token.to_json())

    def describe(self) -> str:
        """Where tokens live, for ``gatekey status``."""
        return "file cache (0600, not encrypted)"

    def delete(self, key: str) -> bool:
        if self.refused() is not None:
            return False
        removed = False
        for area, suffix in (("tokens", ".json"), ("failures", ".json")):
            try:
                os.unlink(self._path(area, key, suffix))
            except (FileNotFoundError, NotADirectoryError):  # none there
                continue
            removed = removed or area == "tokens"
        return removed

    # --- opaque blobs (e.g. MSAL's token cache when it may not live in the keychain) -----------
    def read_blob(self, area: str, key: str) -> tuple[str | None, str | None]:
        data, why = self._load(self._path(area, key, ".json"))
        blob = data.get("blob") if isinstance(data, dict) else None
        return (blob, None) if isinstance(blob, str) else (None, why or "damaged")

    def write_blob(self, area: str, key: str, blob: str) -> None:
        self._write_json(area, key, {"blob": blob})

    def delete_blob(self, area: str, key: str) -> bool:
        return self.refused() is None and _remove(self._path(area, key, ".json"))

    # --- the no-argument index -----------------------------------------------------------
    def record(self, selection: str, entry: IndexEntry) -> None:
        """Remember what ``selection`` (see selection_id()) chose, for the next cache hit."""
        self.write_index(selection, entry.to_json())

    def lookup(self, selection: str) -> IndexEntry | None:
        """What ``selection`` chose last time, if the entry is one the full path could have
        written (anything else, damaged or edited, is a miss)."""
        return IndexEntry.from_json(self.read_index(selection))

    def read_index(self, selection: str) -> dict[str, Any] | None:
        data, _ = self._load(os.path.join(self.root, "index.json"))
        entry = data.get(selection) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    def write_index(self, selection: str, entry: dict[str, Any]) -> None:
        data, _ = self._load(os.path.join(self.root, "index.json"))
        index = data if isinstance(data, dict) else {}
        index.pop(selection, None)
        index[selection] = entry  # most recent last; the oldest are dropped beyond the cap
        while len(index) > INDEX_MAX_ENTRIES:
            index.pop(next(iter(index)))
        self._write_json("", "index", index)

    # --- remembered failures (negative cache) -------------------------------------------
    def read_failure(self, key: str, now: float) -> tuple[errors.HelperError, float] | None:
        """The failure still in force for ``key`` and when it ends, or None."""
        data, _ = self._load(self._path("failures", key, ".json"))
        if not isinstance(data, dict):
            return None
        until, message, code = data.get("until"), data.get("message"), data.get("exit")
        if not is_time(until) or not isinstance(message, str):
            return None
        if until <= now or until > now + BACKOFF_MAX + 5:  # over, or a clock that jumped
            return None
        kind = REMEMBERED_KINDS.get(str(data.get("kind")), errors.HelperError)
        fix = data.get("fix")  # absent in records from before the step was a field
        error = kind(message, fix=fix if isinstance(fix, str) else None)
        if isinstance(code, bool) or not isinstance(code, int) or code not in REMEMBERED_EXIT_CODES:
            code = 75  # damage (75.0, [75], true) reads as the temporary failure it most likely was
        error.exit_code = code
        return error, float(until)

    def record_failure(
        self, key: str, error: errors.HelperError, now: float, *, run_name: str | None = None
    ) -> float:
        """Remember a source failure with exponential backoff; returns when to try again.
        Later runs read it: what it says of the failed run's context (``run_name``, its
        RunContext.name) is worded as an earlier run's."""
        data, _ = self._load(self._path("failures", key, ".json"))
        count = 1
        if isinstance(data, dict) and isinstance(data.get("count"), int):
            # Consecutive failures (the previous record is recent) double the wait.
            last = data.get("at")
            if is_time(last) and now - last < BACKOFF_MAX * 4:
                count = min(max(int(data["count"]), 0) + 1, 16)
        wait = min(BACKOFF_BASE * 2 ** (count - 1), BACKOFF_MAX)
        asked = getattr(error, "retry_after", None)  # a 429's Retry-After, within our bounds
        if is_time(asked):
            wait = max(wait, min(float(asked), BACKOFF_MAX))
        record = {
            "at": now,
            "until": now + wait,
            "count": count,
            "exit": error.exit_code,
            "kind": type(error).__name__,  # deleted/denied must stay so (no stale fallback)
            "message": context.as_earlier(error.message, run_name),
        }
        if error.fix is not None:
            record["fix"] = error.fix
        self._write_json("failures", key, record)
        return float(now + wait)

    def clear_failure(self, key: str) -> None:
        if self.refused() is None:
            _remove(self._path("failures", key, ".json"))

    # --- locking -----------------------------------------------------------------------
    def hold(self, key: str) -> bool:
        """Take ``key``'s lock without waiting and keep it until this process exits.

        The cache hit does this on a miss: the first process to miss becomes the one that
        refreshes (its full path's lock() then returns at once), while the others wait in the
        cache hit and print what it obtained, without loading the full path at all.
        """
        if key in _held:
            return True
        fd = regular.open_lock(os.path.join(self._ensure_dir("locks"), key + ".lock"))
        if regular.try_lock(fd):
            _held[key] = fd
            return True
        os.close(fd)
        return False

    def lock(self, key: str, run: context.RunContext) -> _Locked:
        """Hold the per-key lock (``with``); waits no longer than the run's deadline. Gives the
        lock's file descriptor: a refresh worker given a copy holds the lock until it exits."""
        return _Locked(self, key, run)

    # --- files -------------------------------------------------------------------------
    def _ensure_dir(self, area: str) -> str:
        refused = self.refused()
        if refused is not None:
            raise CacheUnusable(refused)
        for directory in (self.root, os.path.join(self.root, area)) if area else (self.root,):
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(directory, 0o700, exist_ok=True)
        _tighten(self.root)
        if area:
            _tighten(os.path.join(self.root, area))
        return os.path.join(self.root, area)

    def _write_json(self, area: str, key: str, data: dict[str, Any]) -> None:
        """Atomic replace: temp file in the same directory (0600 from creation), fsync, rename."""
        directory = self._ensure_dir(area)
        target = os.path.join(directory, key + ".json")
        tmp = f"{target}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        body = json.dumps(data, separators=(",", ":")).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            _replace(tmp, target)
        except BaseException:
            _remove(tmp)
            raise
        regular.fsync_dir(directory)


class _Locked:
    """FileCache.lock()'s context manager: the per-key lock, taken within the run's deadline."""

    def __init__(self, cache: FileCache, key: str, run: context.RunContext) -> None:
        self.cache, self.key, self.run = cache, key, run
        self.fd: int | None = None  # ours to unlock and close (not one hold() keeps)

    def __enter__(self) -> int:
        if self.key in _held:  # taken earlier in this process (hold())
            return _held[self.key]
        try:
            directory = self.cache._ensure_dir("locks")
            fd = regular.open_lock(os.path.join(directory, self.key + ".lock"))
        except CacheUnusable:
            raise
        except OSError as e:
            raise CacheUnusable(f"{self.cache.root}: {e.strerror}") from None
        run = self.run
        try:
            while not regular.try_lock(fd):
                if run.remaining() <= 0:
                    raise errors.LockTimeout(
                        f"gave up after {run.timeout:g} s ({run.name} time limit) waiting for "
                        "another gatekey process to finish refreshing"
                    )
                time.sleep(min(LOCK_POLL, max(run.remaining(), 0.001)))
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return fd

    def __exit__(self, *exc_info: object) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                regular.unlock(fd)
            finally:
                os.close(fd)


def _read_json(path: str) -> tuple[Any, str | None]:
    # Not following a symbolic link (one planted to feed us another file) and never blocking on
    # a FIFO or device put in an entry's place: both are a miss, decided at once.
    try:
        raw = regular.read(path, MAX_ENTRY_BYTES, follow=False)
    except FileNotFoundError:
        return None, "no cache entry"
    except NotRegular as e:
        return None, f"cache entry unreadable ({e.what}, not a regular file)"
    except TooLarge:
        return None, "cache entry too large"
    except OSError as e:
        if e.errno == getattr(errno, "ELOOP", None):
            return None, "cache entry is a symbolic link (ignored)"
        return None, f"cache entry unreadable ({e.strerror})"
    try:
        return json.loads(raw), None
    except (ValueError, RecursionError):
        return None, "cache entry damaged (not JSON)"


def _foreign(directory: str) -> str | None:
    if sys.platform == "win32":
        return None
    try:
        owner = os.stat(directory).st_uid
    except OSError:
        return None  # absent (created, ours, when first written) or unusable (said then)
    if owner != os.getuid():
        return f"{directory} belongs to another user (uid {owner}), not to you"
    return None


def _tighten(directory: str) -> None:
    """Make an existing cache directory user-only (it may predate us, or a umask widened it)."""
    if sys.platform == "win32":
        return
    try:
        st = os.stat(directory)
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(directory, 0o700)
    except OSError:
        return  # gone, or not ours to change: the write that follows says so


def _remove(path: str) -> bool:
    """Unlink ``path``; False if it is not there or cannot go."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


_O_BINARY = getattr(os, "O_BINARY", 0)
_replace = regular.replace  # looked up per write: a test makes it fail (a full disk)
