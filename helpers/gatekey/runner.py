"""Running the helper (the app's no-argument run and ``gatekey get``), and the one place that
turns errors into a stderr line and an exit code. Does not import click: a cache miss on the
no-argument path should not pay for the CLI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from gatekey import config, context, logs, output, runlog, sources
from gatekey.errors import (
    ConfigError,
    HelperError,
    MissingClaim,
    SourceUnavailable,
    StdoutUnavailable,
)

if TYPE_CHECKING:
    from gatekey.cache import FileCache
    from gatekey.token import Token

log = logging.getLogger("gatekey")

WATCHDOG_GRACE = 0.5
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

_payload_lock = threading.Lock()  # the payload and the watchdog's verdict never both happen
_payload_written = threading.Event()
# The helper run in progress, for the run log: path, profile, family, RunContext (see runlog.py).
_run_log: dict[str, Any] = {}


def ensure_std_streams() -> None:
    """Give closed standard descriptors a harmless target (/dev/null).

    With fd 2 closed, Python sets sys.stderr to None and the first warning would crash the run
    after the payload was printed; with fd 0 or 1 closed, the next file opened would take its
    number and could receive output meant for stdout.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"gatekey: {logs.one_line(logs.redact(message))}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def guard(fn: Callable[[], None], *, debug: bool = False) -> None:
    """Run ``fn``; every failure becomes one stderr line and a documented exit code."""
    try:
        fn()
    except HelperError as e:
        if debug:
            log.debug("failure detail", exc_info=True)
        _log_failure(e.exit_code, type(e).__name__, logs.redact(str(e)))
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        _stop_children()
        _log_failure(EXIT_INTERRUPTED, "KeyboardInterrupt", "interrupted")
        fail("interrupted", EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except BrokenPipeError:
        # A human command's reader went away (`gatekey status | head -1`): the end of its
        # output, not an error. (A helper run's payload failure is StdoutUnavailable, above.)
        output.discard_stdout()
        raise SystemExit(0) from None
    except Exception as e:
        if debug:
            log.exception("internal error")
        _log_failure(EXIT_INTERNAL, "InternalError", type(e).__name__)
        fail(
            f"internal error ({type(e).__name__}); this is a bug in gatekey: rerun with "
            "--debug (or GATEKEY_LOG_LEVEL=debug) and report it",
            EXIT_INTERNAL,
        )


def _log_failure(code: int, cause: str, message: str) -> None:
    """A failed helper run's line in the run log (when one is configured)."""
    if not _run_log.get("path"):
        return
    run = _run_log.get("run")
    _append_log(
        _run_log["path"],
        runlog.line(
            profile=_run_log.get("profile"),
            family=_run_log.get("family"),
            outcome="error",
            exit_code=code,
            cache="miss",
            fetches=run.fetches if run is not None else 0,
            cause=cause,
            message=message,
        ),
    )


def _append_log(path: str | None, entry: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # the run log never changes a run's outcome
        runlog.append(path, entry)


def protect_stdout() -> int:
    """Point fd 1 at stderr for the rest of the run and return a private copy of the real stdout.

    Libraries that print, warnings, and child processes (a browser for sign-in) can then never
    put a byte on the app's stdout, nor hold it open; only the payload is written to the copy.
    """
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    payload_fd = os.dup(1)
    os.dup2(2, 1)
    runlog.PROTECTED_FDS.append(payload_fd)
    return payload_fd


# The run in progress, for the watchdog and the signal handlers: "run" (RunContext), "fd" (the
# payload's descriptor), "render" (Token -> payload bytes, once the profile is known), "profile".
_current: dict[str, Any] = {}
_timer: list[threading.Timer] = []


def start_watchdog(run: context.RunContext) -> None:
    """Safety net, (re)armed for ``run``'s deadline, which counts from process start.

    At the deadline, a cached credential that is still valid (``run.fallback``) is printed with
    a warning: no slowness at the source turns into a failed run while one exists. Otherwise,
    whatever blocks, the run ends shortly after with exit 75.
    """
    _current["run"] = run
    for old in _timer:
        old.cancel()
    _timer[:] = [threading.Timer(max(run.remaining(), 0), _at_deadline)]
    _timer[0].daemon = True
    _timer[0].start()


def _stop_children() -> None:
    run = _current.get("run")
    for pgid in list(run.children if run is not None else ()):
        with contextlib.suppress(OSError, AttributeError):
            os.killpg(pgid, signal.SIGKILL)  # POSIX; on Windows children die with us


def _at_deadline() -> None:
    run: context.RunContext = _current["run"]
    payload = _fallback_payload(run)
    if payload is None:
        timer = threading.Timer(WATCHDOG_GRACE, _expire)
        timer.daemon = True
        timer.start()
        return
    with _payload_lock:
        if _payload_written.is_set():
            return
        remember = _current.get("remember_failure")
        if remember is not None:
            with contextlib.suppress(Exception):  # spare the slow source the next runs' calls
                remember()
        from gatekey.durations import format_duration

        token = run.fallback
        remaining = token.remaining(time.time())
        left = (
            "has no known expiry"
            if remaining is None
            else f"expires in {format_duration(remaining)}"
        )
        _stderr(
            f'warning: profile "{_current.get("profile")}": the source did not answer within the '
            f"{run.name} time limit ({run.timeout:g} s); printing the cached token, which {left}"
        )
        try:
            output.write_payload(payload, _current["fd"])
        except OSError as e:
            _stderr(logs.one_line(str(output.undelivered(e))))
            os._exit(StdoutUnavailable.exit_code)
        _payload_written.set()
        _append_log(
            _run_log.get("path"),
            runlog.line(
                profile=_run_log.get("profile"),
                family=_run_log.get("family"),
                outcome="fallback",
                exit_code=0,
                cache="miss",
                fetches=run.fetches,
                cause="DeadlineExceeded",
            ),
        )
        _stop_children()  # last: the main thread must not see the kill and record it instead
        os._exit(0)


def _fallback_payload(run: context.RunContext) -> bytes | None:
    """The payload of the cached credential that may stand in for a late source, or None."""
    from gatekey.token import EXPIRED, state

    token, render = run.fallback, _current.get("render")
    if token is None or render is None or state(token, time.time(), 0.0) == EXPIRED:
        return None
    try:
        payload: bytes = render(token)
    except Exception:
        return None
    return payload


def _expire() -> None:
    run: context.RunContext = _current["run"]
    _stop_children()
    with _payload_lock:
        if _payload_written.is_set():
            return  # the run succeeded just in time; let it exit 0
        message = (
            f"gave up after {run.timeout:g} s ({run.name} time limit); "
            "run gatekey in a terminal to see what it is waiting for"
        )
        _stderr(message)
        _log_failure(75, "DeadlineExceeded", message)
        os._exit(75)


def _stderr(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"gatekey: {message}\n")
        sys.stderr.flush()


def _on_stop_signal(signum: int, _frame: object) -> None:
    """SIGTERM / SIGHUP (the app stopping a slow helper, a closed terminal): stop the command
    source's process group with us, then die of the same signal."""
    if context.hold_stop_signal(signum):
        return  # a command is being started: delivered again once its group is known
    _stop_children()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _handle_stop_signals() -> None:
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            with contextlib.suppress(ValueError, OSError):  # not the main thread / not allowed
                signal.signal(number, _on_stop_signal)


def require_family(family: str | None) -> None:
    if family is None:
        return
    if any(spec.family == family for spec in sources.BUILTIN.values()):
        return
    if any(spec.family == family for spec in sources.plugins().values()):
        return
    raise SourceUnavailable(
        f"gatekey-{family}: no {sources.FAMILIES[family]} source exists in this version of "
        "gatekey yet",
        fix="use gatekey (any profile) or gatekey-keychain",
    )


def helper_run(
    family: str | None = None,
    *,
    profile: str | None = None,
    fmt: str | None = None,
    min_ttl: float | None = None,
    force_refresh: bool = False,
    no_arguments: bool = False,
) -> NoReturn:
    """Print the selected profile's credential exactly as the app expects, then exit."""
    from gatekey import refresh
    from gatekey.cache import FileCache, selection_id
    from gatekey.paths import config_fingerprint

    payload_fd = protect_stdout()
    _current["fd"] = payload_fd
    _handle_stop_signals()
    # Armed before any file is read: the deadline covers the whole run from process start (the
    # config's own timeouts replace these defaults once it is read).
    start_watchdog(
        context.resolve(None, force_refresh=force_refresh, started=context.PROCESS_START)
    )
    config.locate()  # a location that cannot be resolved is a ConfigError, before the fingerprint
    fingerprint = config_fingerprint()  # before reading: an edit in between then reads as a miss
    cfg = config.load()
    require_family(family)
    name = config.select_profile(cfg, profile, family)
    prof = cfg.profile(name)
    run = context.resolve(cfg, force_refresh=force_refresh, started=context.PROCESS_START)
    _run_log.update(path=cfg.log_file[0], profile=name, family=family, run=run)
    fmt = fmt or output.pinned_shape() or prof.values["output"]  # get --format, a wrapper's

    def render(token: Token) -> bytes:
        try:
            return output.render(
                token.value,
                fmt,
                auth_scheme=prof.values["auth_scheme"],
                headers=prof.values["headers"],
                resolved=token.headers,
                git_username=prof.values["git_username"],
            )
        except MissingClaim as e:
            key = "git_username" if e.message.startswith("git_username") else "headers"
            where = prof.origins.get(key)
            raise ConfigError(e.message, file=where, profile=name, key=key) from None

    def remember_failure() -> None:
        from gatekey.errors import DeadlineExceeded
        from gatekey.refresh import profile_cache_key

        late = DeadlineExceeded(
            f"the {prof.kind} source did not answer within the {run.name} time limit "
            f"({run.timeout:g} s)"
        )
        FileCache().record_failure(profile_cache_key(prof), late, time.time(), run_name=run.name)

    _current.update(render=render, profile=name, remember_failure=remember_failure)
    start_watchdog(run)
    log.debug('profile "%s" (source %s): %s', name, prof.kind, run.describe())
    cache = FileCache()
    outcome = refresh.get_token(prof, run, min_ttl=min_ttl, cache=cache, links=refresh.Links(cfg))
    logs.register_secret(outcome.token.value)
    if no_arguments and prof.spec.file_cache and prof.values["cache"]:
        _remember_selection(cache, selection_id(family), fingerprint, prof, cfg)
    log.info('profile "%s": %s', name, _obtained_text(outcome.how, outcome.token, prof.kind))
    try:
        payload = render(outcome.token)
    except HelperError as e:
        e.profile = e.profile or name
        raise
    with _payload_lock:
        for warning in outcome.warnings:
            log.warning("%s", warning)
        try:
            output.write_payload(payload, payload_fd)
        except OSError as e:
            raise output.undelivered(e) from None
        _payload_written.set()
    sys.stderr.flush()
    cache_column = {refresh.Obtained.CACHE: "hit", refresh.Obtained.SOURCE: "off"}  # else miss
    _append_log(
        cfg.log_file[0],
        runlog.line(
            profile=name,
            family=family,
            outcome=outcome.how,
            exit_code=0,
            cache=cache_column.get(outcome.how, "miss"),
            fetches=run.fetches,
        ),
    )
    raise SystemExit(0)


def _obtained_text(how: str, token: Token, kind: str) -> str:
    """How the credential was got, as ``-v`` says it (a cache hit too): never the value."""
    from gatekey.durations import format_duration

    remaining = token.remaining(time.time())
    left = "no known expiry" if remaining is None else f"expires in {format_duration(remaining)}"
    text = {
        "cache": f"printing the cached token ({left})",
        "fetched": f"printing a new token from the {kind} source ({left})",
        "fallback": f"the {kind} source failed: printing the cached token ({left})",
        "source": f"printing the credential read from the {kind} source (not cached)",
    }
    return text.get(str(how), f"printing the credential ({how})")


def _remember_selection(
    cache: FileCache,
    selection: str,
    fingerprint: list[list[int] | None],
    prof: config.Profile,
    cfg: config.Config,
) -> None:
    """Record what this environment and config select, for the next no-argument cache hit."""
    from gatekey.cache import IndexEntry
    from gatekey.refresh import index_store, profile_cache_key
    from gatekey.schema import header_templates

    key = profile_cache_key(prof)
    store, kernel_name = index_store(prof, cache, key)
    entry = IndexEntry(
        config=fingerprint,
        profile=prof.name,
        key=key,
        store=store,
        kernel_name=kernel_name,
        environment={var: os.environ.get(var) for var in prof.env_inputs},
        min_ttl=prof.values["min_ttl"],
        output=prof.values["output"],
        auth_scheme=prof.values["auth_scheme"],
        headers=header_templates(prof.values["headers"]),  # never a reference's value
        timeouts={name: cfg.timeout(name) for name in context.DEFAULT_TIMEOUTS},
        log_file=cfg.log_file[0],
        git_username=prof.values["git_username"],
    )
    try:
        cache.record(selection, entry)
    except OSError as e:
        log.debug("could not update the cache index (%s)", e.strerror)


def no_argument_run(family: str | None) -> NoReturn:
    """The app's run: no arguments, profile from the environment or config."""
    stdout_open = output.stdout_open()
    ensure_std_streams()
    logs.setup()
    if not stdout_open:
        # Closed by whoever started us (`gatekey >&-`): nothing could receive the credential,
        # so do not pretend to succeed (and do not ask the source for nothing).
        fail(
            "stdout is closed, so there is nowhere to deliver the credential; run gatekey with "
            "its output connected",
            StdoutUnavailable.exit_code,
        )
    debug = logging.getLogger("gatekey").isEnabledFor(logging.DEBUG)
    guard(lambda: helper_run(family, no_arguments=True), debug=debug)
    raise SystemExit(0)  # pragma: no cover - helper_run always exits
