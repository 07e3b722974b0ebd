"""What the reliability tests that kill gatekey mid-refresh share (test_crash_safety.py for the
venv's executables, test_frozen_worker_kill.py for the bundle's): a run started as the app
starts it, the cache's locks taken as gatekey takes them, both caches made stale, and a
device-code sign-in through a fault proxy."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Callable, Iterator

from blackbox_env import Env, exe
from fault_proxy import FaultProxy
from idp_helpers import (
    DEVICE_URL,
    age_msal_access_token,
    idp_profile,
    make_expired,
    printed_token,
    read_stderr_until,
)
from oidc_peer import OidcProvider, approve

CONTEXT = "background"  # the runs' CLAUDE_HELPER_CONTEXT: no person is there


def start(gk: Env, *args: str, group: bool = False, pipes: bool = False) -> subprocess.Popen[bytes]:
    """A run as the app starts it; ``group``: in a process group of its own (to kill the group),
    ``pipes``: stdout and stderr on pipes (else /dev/null)."""
    out = subprocess.PIPE if pipes else subprocess.DEVNULL
    return subprocess.Popen(
        [exe(), *args],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        env=dict(gk.vars, CLAUDE_HELPER_CONTEXT=CONTEXT),
        cwd=gk.root,
        start_new_session=group,
    )


@contextlib.contextmanager
def cache_locked(gk: Env, within: float) -> Iterator[float]:
    """Hold every lock of ``gk``'s cache, as gatekey takes them (a profile's lock before MSAL's
    state lock), waiting at most ``within`` s for them: the refresh worker of a killed run holds
    its lock until it has saved and exited. Yields how long the wait took."""
    locks = gk.cache_dir / "locks"
    states = {path.stem for path in gk.cache_dir.glob("msal/*.json")}
    paths = sorted(locks.glob("*.lock"), key=lambda path: (path.stem in states, path.name))
    t0 = time.monotonic()
    fds: list[int] = []
    try:
        for path in paths:
            fds.append(os.open(path, os.O_RDWR))
            while True:
                try:
                    fcntl.flock(fds[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - t0
                    assert waited < within, f"a lock still held after {waited:.1f} s: a lingerer"
                    time.sleep(0.005)
        yield time.monotonic() - t0
    finally:
        for fd in fds:
            os.close(fd)  # releases its lock


def stale_everywhere(gk: Env) -> None:
    """Both caches too old to serve: the next run must redeem the refresh token."""
    if list((gk.cache_dir / "tokens").glob("*.json")):
        make_expired(gk)
    age_msal_access_token(gk, -60)


def proxied_sign_in(
    gk: Env, op: OidcProvider, proxy: FaultProxy, silent_s: float
) -> Callable[[str, str], bool]:
    """A device-code sign-in through ``proxy`` (issuer and CA the proxy's); returns the test of
    a refresh-token request as the proxy sees it, (method, path)."""
    profile = idp_profile(op).replace(op.issuer, proxy.origin + op.issuer_path)
    gk.write_config(f'[timeouts]\nsilent = "{silent_s:g}s"\n' + profile.replace(op.ca, proxy.ca))
    proc = subprocess.Popen(
        [exe(), "login", "-p", "user"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=gk.vars,
        cwd=gk.root,
    )
    try:
        match, _seen = read_stderr_until(proc, DEVICE_URL, 30)
        approve(match.group(1).replace(proxy.origin, op.origin), op.ca, user="alice")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (0, b""), err
    printed_token(gk.run(context=CONTEXT))
    token_path = f"{op.issuer_path}/token"
    return lambda method, path: method == "POST" and path == token_path
