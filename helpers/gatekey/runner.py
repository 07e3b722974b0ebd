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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from gatekey import config, context, logs, output, runlog, sources
from gatekey.errors import ConfigError, HelperError, SourceUnavailable

if TYPE_CHECKING:
    from gatekey.cache import FileCache

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
        _log_failure(EXIT_INTERRUPTED, "KeyboardInterrupt", "interrupted")
        fail("interrupted", EXIT_INTERRUPTED)
    except SystemExit:
        raise
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
    runlog.append(
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


def protect_stdout() -> int:
    """Point fd 1 at stderr for the rest of the run and return a private copy of the real stdout.

    Libraries that print, warnings, and child processes (a browser for sign-in) can then never
    put a byte on the app's stdout, nor hold it open; only the payload is written to the copy.
    """
    sys.stdout.flush()
    payload_fd = os.dup(1)
    os.dup2(2, 1)
    return payload_fd


def start_watchdog(run: context.RunContext) -> None:
    """Safety net: whatever blocks, the run ends shortly after its deadline with exit 75."""

    def expire() -> None:
        for pgid in list(run.children):
            with contextlib.suppress(OSError, AttributeError):
                os.killpg(pgid, signal.SIGKILL)  # POSIX; on Windows children die with us
        with _payload_lock:
            if _payload_written.is_set():
                return  # the run succeeded just in time; let it exit 0
            message = (
                f"gave up after {run.timeout:g} s ({run.name} time limit); "
                "run gatekey in a terminal to see what it is waiting for"
            )
            sys.stderr.write(f"gatekey: {message}\n")
            sys.stderr.flush()
            _log_failure(75, "DeadlineExceeded", message)
            os._exit(75)

    timer = threading.Timer(max(run.remaining(), 0) + WATCHDOG_GRACE, expire)
    timer.daemon = True
    timer.start()


def require_family(family: str | None) -> None:
    if family is None:
        return
    if any(spec.family == family for spec in sources.BUILTIN.values()):
        return
    if any(spec.family == family for spec in sources.plugins().values()):
        return
    raise SourceUnavailable(
        f"gatekey-{family}: no {sources.FAMILIES[family]} source exists in this version of "
        "gatekey yet; use gatekey (any profile) or gatekey-keychain"
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
    from gatekey.cache import FileCache, config_fingerprint, selection_id

    payload_fd = protect_stdout()
    fingerprint = config_fingerprint()  # before reading: an edit in between then reads as a miss
    cfg = config.load()
    require_family(family)
    name = config.select_profile(cfg, profile, family)
    prof = cfg.profile(name)
    run = context.resolve(cfg, force_refresh=force_refresh, started=context.PROCESS_START)
    _run_log.update(path=cfg.log_file[0], profile=name, family=family, run=run)
    start_watchdog(run)
    log.debug("profile %s (source %s), context %s", name, prof.kind, run)
    cache = FileCache()
    outcome = refresh.get_token(prof, run, min_ttl=min_ttl, cache=cache)
    logs.register_secret(outcome.token.value)
    if no_arguments and prof.spec.file_cache and prof.values["cache"]:
        _remember_selection(cache, selection_id(family), fingerprint, prof, cfg)
    log.debug("credential from %s", outcome.how)
    for warning in outcome.warnings:
        log.warning("%s", warning)
    try:
        payload = output.render(
            outcome.token.value,
            fmt or prof.values["output"],
            auth_scheme=prof.values["auth_scheme"],
            headers=prof.values["headers"],
        )
    except output.MissingClaim as e:
        raise ConfigError(
            e.message, file=prof.origins.get("headers"), profile=name, key="headers"
        ) from None
    with _payload_lock:
        output.write_payload(payload, payload_fd)
        _payload_written.set()
    sys.stderr.flush()
    runlog.append(
        cfg.log_file[0],
        runlog.line(
            profile=name,
            family=family,
            outcome=outcome.how,
            exit_code=0,
            cache={"cache": "hit", "source": "off"}.get(outcome.how, "miss"),
            fetches=run.fetches,
        ),
    )
    raise SystemExit(0)


def _remember_selection(
    cache: FileCache,
    selection: str,
    fingerprint: list[list[int] | None],
    prof: config.Profile,
    cfg: config.Config,
) -> None:
    """Record what this environment and config select, for the next no-argument cache hit."""
    from gatekey.refresh import index_store, profile_cache_key

    key = profile_cache_key(prof)
    entry = {
        "config": fingerprint,
        "profile": prof.name,
        "key": key,
        **index_store(prof, cache, key),
        "environment": {var: os.environ.get(var) for var in prof.spec.env_inputs},
        "min_ttl": prof.values["min_ttl"],
        "output": prof.values["output"],
        "auth_scheme": prof.values["auth_scheme"],
        "headers": prof.values["headers"],
        "timeouts": {key: cfg.timeout(key) for key in context.DEFAULT_TIMEOUTS},
        "log_file": cfg.log_file[0],
    }
    try:
        cache.write_index(selection, entry)
    except OSError as e:
        log.debug("could not update the cache index (%s)", e.strerror)


def no_argument_run(family: str | None) -> NoReturn:
    """The app's run: no arguments, profile from the environment or config."""
    ensure_std_streams()
    logs.setup()
    debug = logging.getLogger("gatekey").isEnabledFor(logging.DEBUG)
    guard(lambda: helper_run(family, no_arguments=True), debug=debug)
    raise SystemExit(0)  # pragma: no cover - helper_run always exits
