"""Identity-provider helpers for black-box tests against the OpenID provider peer: profiles,
the printed token, gatekey's cache and MSAL's persisted state, and a device-code sign-in approved
at the provider.

MSAL's persisted state (refresh tokens) is read where gatekey keeps it: with
``token_cache = "file"`` a 0600 JSON file ``<cache>/msal/<key>.json`` holding
``{"blob": <json {"v", "account", "msal": <MSAL's serialized cache>}>}``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blackbox_env import Env, Result, exe
from deadlines import HARNESS_S
from oidc_peer import API_AUDIENCE, CONF_CLIENT, PUBLIC_CLIENT, OidcProvider, approve

JWT = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
DEVICE_URL = re.compile(r"\(or open (https://\S+)\)")


# --- tokens -----------------------------------------------------------------------------------
def claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT, unverified."""
    body = jwt.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return payload


def printed_token(r: Result) -> str:
    """The one token a successful run printed: exactly a JWT and a newline on stdout."""
    assert r.code == 0, f"exit {r.code}; stderr: {r.err}"
    # Described, never shown: stdout holds a token.
    lines = r.stdout.count(b"\n")
    shape = f"{len(r.stdout)} bytes, {r.stdout.count(b'.')} dots, {lines} line breaks"
    assert r.stdout.endswith(b"\n"), shape
    assert r.stdout.count(b"\n") == 1, shape
    assert JWT.fullmatch(r.stdout[:-1]), shape
    assert "Traceback" not in r.err, r.err
    return r.stdout[:-1].decode("ascii")


def assert_no_secrets(stderr: str, *secrets: str) -> None:
    """No secret (nor its signature part, for JWTs) appears on stderr."""
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        assert secret not in stderr, "a secret reached stderr"
        if secret.count(".") == 2:
            assert secret.rsplit(".", 1)[1] not in stderr, "a JWT signature reached stderr"


# --- profiles ---------------------------------------------------------------------------------
def idp_profile(
    op: OidcProvider,
    *,
    name: str = "user",
    kind: str = "oidc",
    flow: str | None = "device-code",
    client_id: str = PUBLIC_CLIENT,
    scopes: str = '["api.read"]',
    token_cache: str | None = "file",  # noqa: S107 - a setting, not a secret
    min_ttl: str = "10m",
    extra: str = "",
) -> str:
    """TOML for one ``oidc`` (or ``entra``) profile against ``op``."""
    lines = [f"[profiles.{name}]", f'source = "{kind}"']
    if kind == "oidc":
        lines.append(f'issuer = "{op.issuer}"')
    else:
        assert op.tenant, "an entra profile needs the Entra-style provider"
        lines += [f'tenant = "{op.tenant}"', f'authority_host = "{op.origin}"']
    lines += [f'client_id = "{client_id}"', f"scopes = {scopes}", f'ca_bundle = "{op.ca}"']
    if flow is not None:
        lines.append(f'flow = "{flow}"')
    if token_cache is not None:
        lines.append(f'token_cache = "{token_cache}"')
    lines.append(f'min_ttl = "{min_ttl}"')
    return "\n".join(lines) + "\n" + extra + "\n"


def cc_profile(op: OidcProvider, secret: str, *, kind: str = "oidc", name: str = "svc") -> str:
    """A client-credentials profile for conf-client; ``secret`` is the TOML of client_secret."""
    scopes = '["api.read"]' if kind == "oidc" else f'["{API_AUDIENCE}/.default"]'
    return idp_profile(
        op,
        name=name,
        kind=kind,
        flow="client-credentials",
        client_id=CONF_CLIENT[0],
        scopes=scopes,
        token_cache=None,
        extra=f"client_secret = {secret}",
    )


# --- gatekey's own cache and MSAL's persisted state ---------------------------------------------
def token_files(gk: Env) -> list[Path]:
    return sorted((gk.cache_dir / "tokens").glob("*.json"))


def drop_token_cache(gk: Env) -> None:
    """Delete gatekey's cached tokens (not MSAL's state)."""
    files = token_files(gk)
    assert files, "nothing cached"
    for path in files:
        path.unlink()


def make_stale(gk: Env) -> None:
    """gatekey's cached token: inside the refresh window (below min_ttl 10m), not recent."""
    now = time.time()
    gk.edit_entry(expires_at=now + 200, obtained_at=now - 3400)


def make_expired(gk: Env) -> None:
    """gatekey's cached token: expired, so no run may fall back to printing it."""
    now = time.time()
    gk.edit_entry(expires_at=now - 10, obtained_at=now - 3610)


def forget_failures(gk: Env) -> None:
    gk.forget_failures()


def msal_path(gk: Env) -> Path:
    return gk.msal_path()


def read_state(gk: Env) -> dict[str, Any]:
    """gatekey's saved sign-in ({"v", "account", "msal"}) from the file store."""
    state: dict[str, Any] = json.loads(json.loads(msal_path(gk).read_text())["blob"])
    return state


def read_msal(gk: Env) -> dict[str, Any]:
    """MSAL's token cache (AccessToken, RefreshToken, IdToken, Account, ...) from the file store."""
    cache: dict[str, Any] = json.loads(read_state(gk)["msal"])
    return cache


def write_msal(gk: Env, cache: dict[str, Any]) -> None:
    path = msal_path(gk)
    state = read_state(gk)
    state["msal"] = json.dumps(cache)
    tmp = path.with_name(path.name + ".edit")
    tmp.write_text(json.dumps({"blob": json.dumps(state)}))
    tmp.chmod(0o600)
    os.replace(tmp, path)


def secrets_of(cache: dict[str, Any], section: str) -> list[str]:
    return [entry["secret"] for entry in (cache.get(section) or {}).values()]


def refresh_token(cache: dict[str, Any]) -> str:
    [rt] = secrets_of(cache, "RefreshToken")
    return rt


def age_msal_access_token(gk: Env, remaining: float) -> None:
    """MSAL's cached access token: ``remaining`` seconds left (as time passing would)."""
    cache = read_msal(gk)
    assert cache["AccessToken"], "MSAL has no access token"
    now = int(time.time())
    for entry in cache["AccessToken"].values():
        entry["cached_at"] = str(now - 3000)
        entry["expires_on"] = str(int(now + remaining))
        entry["extended_expires_on"] = str(int(now + remaining))
        entry.pop("refresh_on", None)
    write_msal(gk, cache)


def revoke(op: OidcProvider, token: str) -> None:
    """Revoke a refresh token at the provider (RFC 7009), as an admin or a password reset would."""
    with op.session() as s:
        r = s.post(
            f"{op.issuer}/token/revocation",
            data={"token": token, "token_type_hint": "refresh_token", "client_id": PUBLIC_CLIENT},
            timeout=10,
        )
    assert r.status_code == 200, r.text


def replay(op: OidcProvider, token: str) -> dict[str, Any]:
    """Redeem a refresh token directly at the provider."""
    with op.session() as s:
        r = s.post(
            op.token_endpoint,
            data={
                "grant_type": "refresh_token",
                "refresh_token": token,
                "client_id": PUBLIC_CLIENT,
            },
            timeout=10,
        )
    body: dict[str, Any] = r.json()
    return body


# --- `gatekey login` with the device code, approved as alice ------------------------------------
def read_stderr_until(
    proc: subprocess.Popen[bytes], pattern: re.Pattern[str], timeout: float
) -> tuple[re.Match[str], bytes]:
    """Read the process's stderr until ``pattern`` matches; (the match, everything read)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while True:
        match = pattern.search(seen.decode("utf-8", "replace"))
        if match:
            return match, seen
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{pattern.pattern!r} not on stderr in {timeout} s: {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(
                    f"stderr closed (exit {proc.wait(5)}) before {pattern.pattern!r}: {seen!r}"
                )
            seen += chunk


def device_sign_in(
    gk: Env,
    op: OidcProvider,
    args: Sequence[str] = ("login", "-p", "user"),
    *,
    user: str = "alice",
    context: str | None = None,
    **env: str,
) -> Result:
    """Run ``gatekey <args>``, wait for the device-code URL on its stderr, approve it at the
    provider as ``user``, and wait for the run to end."""
    argv = [exe(), *args]
    environ = dict(gk.vars, **env)
    if context is not None:
        environ["CLAUDE_HELPER_CONTEXT"] = context
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
        cwd=gk.root,
    )
    try:
        match, seen = read_stderr_until(proc, DEVICE_URL, HARNESS_S)
        approve(match.group(1), op.ca, user=user)
        out, rest = proc.communicate(timeout=HARNESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(argv, proc.returncode, out, seen + rest, time.monotonic() - t0)


def login(gk: Env, op: OidcProvider, *args: str, **env: str) -> Result:
    """``gatekey [args] login -p user`` through the device code; asserts it signed in."""
    r = device_sign_in(gk, op, (*args, "login", "-p", "user"), **env)
    assert r.code == 0, r.err
    assert r.stdout == b"", "login must print nothing on stdout"
    assert 'gatekey: profile "user": signed in as alice@example.test' in r.err
    return r
