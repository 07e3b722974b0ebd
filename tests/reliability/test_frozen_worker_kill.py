"""A refresh killed mid-way loses no sign-in in the frozen bundle too (issue 16).

The venv's version of this guarantee is test_crash_safety.py's
``test_a_kill_while_the_provider_rotates_keeps_the_sign_in``. A frozen gatekey (PyInstaller, no
interpreter to run ``python -c``) once refreshed in the run itself, so a SIGKILL of the run while
the provider rotated the refresh token lost the sign-in; now it starts its own executable as the
refresh worker (helpers/gatekey/worker.py ``_worker_command``, entry.py ->
worker_main.frozen_main), which outlives the kill, saves the rotated token, and answers nothing to
a run that is gone.

Deterministic: a proxy holds the refresh request, the run is killed (SIGKILL, the run and then
its process group), then the proxy passes the request on and the provider rotates the token. The
rotated token must be saved and the next run must refresh silently with it.

Runs against the executables in GATEKEY_TEST_BIN_DIR (scripts/test.sh's BUNDLE_TESTS, against the
bundle); against the venv it is skipped, test_crash_safety.py holds the same there.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from blackbox_env import FROZEN, Env
from fault_proxy import FaultProxy
from gatekey.worker import WORKER_GRACE  # a refresh worker ends by its run's deadline plus this
from idp_helpers import (
    printed_token,
    read_msal,
    refresh_token,
)
from killed_runs import CONTEXT, cache_locked, proxied_sign_in, stale_everywhere, start
from oidc_peer import OidcProvider

pytestmark = [
    pytest.mark.slow,
    pytest.mark.blackbox,
    pytest.mark.oidc,
    pytest.mark.skipif(not FROZEN, reason="the bundle's case (GATEKEY_TEST_BIN_DIR); the venv's "
                       "is test_crash_safety.py's"),
]  # fmt: skip

SILENT_S = 20.0  # the profile's silent deadline: room for the held request, never waited in full
HELD_S = 2.0  # how long the proxy holds the refresh request before the provider sees it
SLACK = 1.0  # process start and exit beyond gatekey's own budget


def check_idp_cache(root: Path) -> None:
    """gatekey's token entries and MSAL's state parse; the sign-in is present."""
    for path in root.glob("tokens/*.json"):
        assert json.loads(path.read_text())["token"].count(".") == 2, path
    [state] = root.glob("msal/*.json")
    assert isinstance(json.loads(json.loads(json.loads(state.read_text())["blob"])["msal"]), dict)


def test_a_kill_while_the_provider_rotates_keeps_the_sign_in_in_the_bundle(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider], tmp_path: Path
):
    op = make_oidc_provider(DEBUG_EVENTS="1")
    with FaultProxy(tmp_path / "proxy", op.origin, upstream_ca=op.ca) as proxy:
        proxy.applies = proxied_sign_in(gk, op, proxy, SILENT_S)
        for group in (False, True):
            what = "the run's process group" if group else "the run"
            stale_everywhere(gk)
            rt_before = refresh_token(read_msal(gk))
            requests_before = op.token_requests()
            proxy.mode, proxy.delay = "slow", HELD_S
            before = proxy.count("POST", "/token")
            proc = start(gk, group=group)
            deadline = time.monotonic() + 15
            while proxy.count("POST", "/token") == before:
                assert proc.poll() is None, f"{what} ended before its refresh request"
                assert time.monotonic() < deadline, f"{what} never sent its refresh request"
                time.sleep(0.002)
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            assert proc.wait(15) == -signal.SIGKILL
            deadline = time.monotonic() + HELD_S + 15
            while op.token_requests() == requests_before:  # the proxy passes the request on
                assert time.monotonic() < deadline, "the held request never reached the provider"
                time.sleep(0.01)
            with cache_locked(gk, SILENT_S + WORKER_GRACE + SLACK):
                check_idp_cache(gk.cache_dir)
                assert op.token_requests() == requests_before + 1, what
                saved = refresh_token(read_msal(gk)) != rt_before  # a bool: no token shown
                assert saved, f"killed {what}: the provider rotated the refresh token, lost"
                proxy.mode = "forward"
                stale_everywhere(gk)
            r = gk.run(context=CONTEXT)
            printed_token(r)
            assert r.err == "", what
            assert op.token_requests() == requests_before + 2, (
                f"{what}: the next run did not refresh"
            )
