"""Concurrency under load (issue 7, item 2), black box: 32 installed ``gatekey`` processes at once,
16 per profile across two signed-in ``oidc`` device-code profiles whose refresh tokens rotate on
every use, repeated on expired tokens: 20 rounds in benchmarks/figures.py (the README's figure),
``GATEKEY_CONCURRENCY_ROUNDS`` (6 in CI) otherwise.

Each round must cost the provider exactly one token request per profile (single flight across
processes), no refresh token may ever be replayed (node-oidc-provider answers a replay with
``invalid_grant`` and revokes the whole grant, so one lost rotation fails every later round), and
every process prints the fresh token of its own profile (its own user, ``sub``), each inside its
context's documented deadline.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import Env, exe
from deadlines import HARNESS_S, deadline_of, ends_by
from idp_helpers import device_sign_in, idp_profile
from oidc_peer import OidcProvider
from rounds import rounds

pytestmark = [pytest.mark.slow, pytest.mark.oidc, pytest.mark.blackbox]

PROFILES = ("alice", "bob")  # profile name = the user it signs in as: two separate grants
PER_PROFILE = 16
# 20 in benchmarks/figures.py. CI's 6 still catch a regression: every round puts 16 processes
# per profile on one expired token at once, so each round exercises the single-flight lock and
# the rotation's save; a lost rotation fails that round and every later one (the provider
# revokes the grant on a replay), and a second token request shows in the round it happens.
ROUNDS = rounds("GATEKEY_CONCURRENCY_ROUNDS", ci=6)
# Half of each profile's processes run as a background refresh, half mid-session.
CONTEXTS = ("background", "mid-session-refresh")


def sub_of(jwt: str) -> str:
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return str(claims["sub"])


def token_files(gk: Env) -> set[Path]:
    return set((gk.cache_dir / "tokens").glob("*.json"))


def expire_entry(path: Path) -> None:
    """gatekey's cached token: expired and not recent, so every run must refresh or wait."""
    now = time.time()
    data = json.loads(path.read_text())
    data.update(expires_at=now - 100, obtained_at=now - 3700)
    replace_json(path, data)


def expire_msal_access_tokens(gk: Env) -> None:
    """MSAL's own access tokens (every saved sign-in): expired, so a refresh is a real
    refresh-token grant at the provider, not an answer from MSAL's cache."""
    files = sorted((gk.cache_dir / "msal").glob("*.json"))
    assert files, "no saved sign-in"
    now = int(time.time())
    for path in files:
        outer = json.loads(path.read_text())
        state = json.loads(outer["blob"])
        cache = json.loads(state["msal"])
        assert cache.get("AccessToken"), "MSAL has no access token"
        for entry in cache["AccessToken"].values():
            entry["cached_at"] = str(now - 3700)
            entry["expires_on"] = str(now - 100)
            entry["extended_expires_on"] = str(now - 100)
            entry.pop("refresh_on", None)
        state["msal"] = json.dumps(cache)
        outer["blob"] = json.dumps(state)
        replace_json(path, outer)


def replace_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".edit")
    tmp.write_text(json.dumps(data))
    tmp.chmod(0o600)
    os.replace(tmp, path)


def run_round(gk: Env) -> tuple[list[tuple[str, int, str, str, float]], float]:
    """Every process of the round started before any is waited on: (profile, exit code, stdout,
    stderr, seconds from its own start to its exit past its context's deadline) of each, and the
    round's wall time."""
    t0 = time.monotonic()
    started = []
    for i in range(PER_PROFILE):
        for profile in PROFILES:
            context = CONTEXTS[i % 2]
            env = dict(gk.vars, GATEKEY_PROFILE=profile, CLAUDE_HELPER_CONTEXT=context)
            at = time.monotonic()
            proc = subprocess.Popen(
                [exe()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=gk.root,
            )
            started.append((profile, context, proc, at))

    def wait(entry: tuple[str, str, subprocess.Popen[bytes], float]) -> tuple[Any, ...]:
        profile, context, proc, at = entry
        out, err = proc.communicate(timeout=HARNESS_S)
        took = time.monotonic() - at
        return (
            profile,
            proc.returncode,
            out.decode(),
            err.decode(),
            took - ends_by(deadline_of(context)),
        )

    with ThreadPoolExecutor(len(started)) as pool:  # each one's own end, not the one before's
        results = list(pool.map(wait, started))
    return results, time.monotonic() - t0


@pytest.mark.parametrize(
    "idps",
    [
        # two accounts sharing MSAL's saved state: refreshes take the state's own lock too
        pytest.param(1, id="one-idp"),
        pytest.param(2, id="two-idps"),
    ],
)
def test_thirty_two_processes_two_profiles_in_rounds(
    gk: Env,
    make_oidc_provider: Callable[..., OidcProvider],
    idps: int,
    record_property: Callable[[str, object], None],
):
    """``one-idp``: alice and bob are two accounts of the same client at one provider (told apart
    by login_hint); ``two-idps``: each profile signs in at its own provider."""
    # DEBUG_EVENTS: the provider logs every grant error (e.g. "grant.error invalid_grant").
    ops = [make_oidc_provider(DEBUG_EVENTS="1") for _ in range(idps)]
    op_of = {name: ops[i % idps] for i, name in enumerate(PROFILES)}
    # login_hint: what tells two profiles of one client apart (and picks the account in MSAL's
    # cache); without it two profiles with identical settings are the same credential.
    gk.write_config(
        "".join(
            idp_profile(op_of[name], name=name, extra=f'login_hint = "{name}@example.test"')
            for name in PROFILES
        )
    )

    entries: dict[str, Path] = {}
    tokens: dict[str, str] = {}
    for name in PROFILES:
        before = token_files(gk)
        r = device_sign_in(gk, op_of[name], ("login", "-p", name), user=name)
        assert r.code == 0, r.err
        assert f"signed in as {name}@example.test" in r.err, r.err
        r = gk.run(context="interactive", GATEKEY_PROFILE=name)
        assert r.code == 0, r.err
        tokens[name] = r.out.rstrip("\n")
        assert sub_of(tokens[name]) == name
        [entries[name]] = token_files(gk) - before  # this profile's cache entry

    log_at = {op: len(op.stderr_log.read_bytes()) for op in ops}
    walls: list[float] = []
    for round_no in range(1, ROUNDS + 1):
        for path in entries.values():
            expire_entry(path)
        expire_msal_access_tokens(gk)
        requests_before = {op: op.token_requests() for op in ops}

        results, wall = run_round(gk)
        walls.append(wall)

        where = f"round {round_no}"
        failures = [(p, code, err) for p, code, _, err, _ in results if code != 0]
        assert not failures, f"{where}: {failures}"
        for _, _, _, err, _ in results:
            assert "invalid_grant" not in err, f"{where}: {err}"
            assert "Traceback" not in err, f"{where}: {err}"
        # Each process ends inside its context's documented deadline (10 s / 15 s: no
        # [timeouts] in this config; deadlines.ends_by), counted from its own start: waiting in
        # line for the lock behind 15 others is part of that budget.
        late = [round(over, 2) for *_, over in results if over >= 0]
        assert not late, f"{where}: processes ended {late} s after their deadline"
        printed: dict[str, str] = {}
        for name in PROFILES:
            outs = {out for p, _, out, _, _ in results if p == name}
            assert len(outs) == 1, f"{where}: profile {name} printed {len(outs)} tokens"
            out = outs.pop()
            assert out.endswith("\n"), f"{where}: {out!r}"
            assert out.count("\n") == 1, f"{where}: {out!r}"
            printed[name] = out.rstrip("\n")
            assert printed[name] != tokens[name], f"{where}: {name}'s expired token printed again"
            assert sub_of(printed[name]) == name, f"{where}: {name} got another user's token"
            gk.printed.append(out.encode())
        assert printed["alice"] != printed["bob"]

        for op in ops:
            expected = sum(1 for name in PROFILES if op_of[name] is op)  # one per profile
            new_requests = op.token_requests() - requests_before[op]
            log = op.stderr_log.read_bytes()
            new_log, log_at[op] = log[log_at[op] :].decode("utf-8", "replace"), len(log)
            assert "invalid_grant" not in new_log, f"{where}: the provider saw a replay:\n{new_log}"
            assert new_requests == expected, (
                f"{where}: {new_requests} token requests at {op.issuer}, expected {expected}"
            )
        tokens = printed

    total = sum(walls)
    print(
        f"\n[concurrency rounds, {idps} IdP] {ROUNDS} rounds x {len(PROFILES) * PER_PROFILE} "
        f"processes: {ROUNDS * len(PROFILES)} token requests, 0 invalid_grant; wall per round "
        f"median {sorted(walls)[ROUNDS // 2]:.2f} s, max {max(walls):.2f} s, total {total:.1f} s"
    )
    print("per-round wall (s): " + " ".join(f"{w:.2f}" for w in walls))
    for name, value in (
        ("rounds", ROUNDS),
        ("processes", len(PROFILES) * PER_PROFILE),
        ("token_requests", ROUNDS * len(PROFILES)),  # exactly one per profile per round
        ("invalid_grant", 0),
        ("round_wall_median_s", round(sorted(walls)[ROUNDS // 2], 2)),
        ("round_wall_max_s", round(max(walls), 2)),
    ):
        record_property(f"concurrency_{name}", value)
