"""The refresh worker: a source's fetch and save in a process that a kill of the run cannot stop.

Why: an identity provider rotates the refresh token on every use and, seeing a used one again,
revokes the whole sign-in. A run killed after the provider answered and before MSAL's new state
was saved has lost the sign-in. The app kills slow helpers (SIGKILL, or the whole process group),
so no signal handler can close that window inside the run's own process.

How: for a source whose fetch may rotate a saved sign-in (it says so: ``rotates_sign_in``, the
IdP sources' user flows), ``refresh()`` runs the fetch and the saves in a new Python process in
its own session (a kill of the run, or of the run's process group, does not reach it), handing
it a copy of the per-key lock's file descriptor. The lock (flock, shared by both copies) is then
held until the worker has saved and exited, even if the run is gone; the next run's lock() waits
for it and reads what it saved. The run waits for the worker's answer, relaying its stderr, and
takes the token (or the error) from it. It never kills the worker (the watchdog does not know it
either): the worker stops itself at the run's deadline plus WORKER_GRACE (SIGALRM's default
action), the time to save an answer that came at the end.

Spawned (fork + exec of this interpreter), not forked: after a fork, a process that has threads
(the watchdog) must not use macOS's system frameworks (the keychain, proxy settings; they crash
the child), and a fresh process inherits nothing of the run's (the app's stdout, other locks)
beyond what is passed on purpose. It costs the interpreter's start, ~30 ms on a refresh.

Protocol: the job, as JSON, on the worker's stdin; its stdout and stderr on a pipe that the run
copies to its own stderr (to a terminal directly, which nobody waits on for end-of-file); the
result, as JSON, on a separate pipe. POSIX only: elsewhere the fetch runs in the run's process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import HelperError, TemporaryFailure
from gatekey.token import Token

log = logging.getLogger(__name__)

WORKER_GRACE = 2.0  # beyond the run's deadline: time to save an answer that came at the end
_CHUNK = 1 << 16
# Reads the job before importing gatekey, so that the worker imports exactly what the run did
# (its sys.path); -I keeps the working directory and PYTHON* variables out of it.
_BOOTSTRAP = (
    "import json, sys\n"
    "job = json.load(sys.stdin)\n"
    "sys.path[:] = job['path']\n"
    "from gatekey.worker_main import main\n"
    "main(job)\n"
)
# A frozen gatekey (install/build-bundle.sh) has no interpreter to run ``-c``: its executable,
# started with this variable set, is the worker (install/bundle/entry.py reads the job).
FROZEN_WORKER_ENV = "GATEKEY_BUNDLE_WORKER"
in_worker = False  # this process is a worker: a nested refresh (jwt_from) runs in it directly


def wanted(source: object) -> bool:
    """Whether ``source``'s fetch belongs in a worker: it may rotate a saved sign-in (a refresh
    token; the source says so), and this platform can run one."""
    return (
        getattr(source, "rotates_sign_in", False) is True
        and not in_worker
        and sys.platform != "win32"
    )


# --- the run's side ------------------------------------------------------------------------
def refresh(
    profile: Profile,
    run: RunContext,
    *,
    cache_root: str | None,
    key: str,
    lock_fd: int | None,
    secrets: list[str],
    in_process: Callable[[], Token],
) -> Token:
    """Fetch (and, with a ``cache_root``, save) ``profile``'s token in a worker; its error is
    raised here. ``in_process`` does the same here, if no worker can be started."""
    run.check("starting to fetch a credential")
    job: dict[str, Any] = {
        "path": sys.path,
        "profile": [profile.name, profile.kind, profile.values, profile.origins],
        "run": [run.name, run.interactive, run.timeout, run.force_refresh, run.started],
        "fetches": run.fetches,
        "cache_root": cache_root,
        "key": key,
        "secrets": secrets,
        "log_level": logging.getLogger("gatekey").getEffectiveLevel(),
    }
    try:
        json.dumps(job)
    except (TypeError, ValueError):  # a value JSON cannot carry: not expected from the config
        log.debug("the profile cannot be handed to a refresh worker; refreshing here")
        return in_process()
    result_r, result_w = os.pipe()
    log_r, log_w = os.pipe() if not _isatty(2) else (None, 2)
    job["result_fd"] = result_w  # pass_fds keeps the number
    try:
        sys.stderr.flush()
        argv, env = _worker_command()
        worker = subprocess.Popen(  # this interpreter, fixed code, no shell
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=log_w,
            stderr=log_w,
            pass_fds=(result_w,) if lock_fd is None else (result_w, lock_fd),
            start_new_session=True,  # out of the run's process group and terminal
        )
    except OSError as e:
        os.close(result_r)
        if log_r is not None:
            os.close(log_r)
        log.debug("could not start a refresh worker (%s); refreshing here", e.strerror)
        return in_process()
    finally:
        os.close(result_w)
        if log_r is not None:
            os.close(log_w)
    stdin = worker.stdin
    assert stdin is not None  # noqa: S101 - stdin=PIPE
    with contextlib.suppress(OSError):  # a worker that died at once: no answer, said below
        stdin.write((json.dumps(job) + "\n").encode())
    with contextlib.suppress(OSError):
        stdin.close()
    answer = _await(worker, result_r, log_r, run)
    return _decode(answer, run, profile, worker.returncode)


def _worker_command() -> tuple[list[str], dict[str, str] | None]:
    """How to start a worker: this interpreter with the bootstrap, or the frozen executable."""
    if getattr(sys, "frozen", False):
        return [sys.executable], {**os.environ, FROZEN_WORKER_ENV: "1"}
    return [sys.executable, "-I", "-c", _BOOTSTRAP], None


def _await(
    worker: subprocess.Popen[bytes], result_r: int, log_r: int | None, run: RunContext
) -> bytes:
    """The worker's answer, relaying its output meanwhile.

    Not bounded by the run's deadline: leaving the lock before the worker ends would release
    the worker's copy too. The watchdog ends the run at its deadline (the worker carries on);
    the worker ends itself WORKER_GRACE after it. A Ctrl-C is passed on to the worker (in its own
    session, the terminal does not reach it), which saves what it must, answers, and stops.
    """
    answer = bytearray()
    reading = [result_r] if log_r is None else [result_r, log_r]
    interrupted = False
    hard_stop = run.deadline + WORKER_GRACE + 1.0
    try:
        while result_r in reading:
            wait = hard_stop - time.monotonic()
            if wait <= 0:  # the worker outlived its own alarm: never wait forever
                worker.kill()
                break
            try:
                ready, _, _ = select.select(reading, [], [], wait)
                for fd in ready:
                    chunk = os.read(fd, _CHUNK)
                    if not chunk:
                        reading.remove(fd)
                    elif fd == result_r:
                        answer += chunk
                    else:
                        _relay(chunk)
            except KeyboardInterrupt:
                interrupted = True
                with contextlib.suppress(OSError):
                    worker.send_signal(signal.SIGINT)
        worker.wait()  # the result pipe closes when the worker exits
        if log_r is not None and log_r in reading:
            while select.select([log_r], [], [], 0)[0] and (chunk := os.read(log_r, _CHUNK)):
                _relay(chunk)
    finally:
        os.close(result_r)
        if log_r is not None:
            os.close(log_r)
    if interrupted:
        raise KeyboardInterrupt
    return bytes(answer)


def _relay(chunk: bytes) -> None:
    """The worker's stderr (already redacted there) to ours; a closed stderr loses it."""
    with contextlib.suppress(OSError):
        while chunk:
            chunk = chunk[os.write(2, chunk) :]


def _decode(answer: bytes, run: RunContext, profile: Profile, status: int | None) -> Token:
    try:
        result = json.loads(answer)
        if not isinstance(result, dict):
            raise ValueError("not an object")
    except ValueError:
        run.fetches += 1  # it was started to ask the source; whether it did is unknown
        how = (
            f"was stopped by signal {-status}"
            if status is not None and status < 0
            else f"failed with status {status}"
        )
        raise TemporaryFailure(
            f"the refresh ended without an answer (its worker process {how})",
            profile=profile.name,
            fix="try again",
        ) from None
    fetches = result.get("fetches")
    run.fetches = fetches if isinstance(fetches, int) else run.fetches + 1
    if "token" in result:
        return Token.from_json(result["token"])
    if result.get("interrupted"):
        raise KeyboardInterrupt
    if "error" in result:
        raise _error(result["error"])
    crash = str(result.get("crash", "unknown"))
    raise type(crash if crash.isidentifier() else "WorkerCrash", (Exception,), {})()


def _error(data: dict[str, Any]) -> HelperError:
    """The worker's HelperError, rebuilt with its class and attributes (exit code, profile,
    retry_after, file and key...), so that fallback and exit codes work as in one process."""
    cls: type[HelperError] = HelperError
    with contextlib.suppress(Exception):
        module, name = str(data["class"]).rsplit(".", 1)
        if module.split(".")[0] == "gatekey":
            found = getattr(importlib.import_module(module), name)
            if isinstance(found, type) and issubclass(found, HelperError):
                cls = found
    error = cls.__new__(cls)
    attrs = data.get("attrs")
    attrs = attrs if isinstance(attrs, dict) else {}
    Exception.__init__(error, str(attrs.get("message", "")))
    error.__dict__.update(attrs)
    return error


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
