"""`gatekey inspect`: black-box, on the installed executable, against the real OpenID provider.

What is asserted is what a support engineer sees: the report on stdout (claims, absolute and
relative times, one verdict per check), the exit code, one stderr line on a failing check, and
that no byte of the token (nor its signature, nor any fragment) appears anywhere unless
``--show-token`` asks for it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import Env, Result, exe
from oidc_peer import API_AUDIENCE, CONF_CLIENT, OidcProvider

pytestmark = [pytest.mark.blackbox, pytest.mark.oidc]

SECRET_ENV = "CONF_SECRET"
SECRET = {SECRET_ENV: CONF_CLIENT[1]}
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((in \d+ (s|min)|\d+ (s|min) ago|now)\)"
ESC = b"\x1b["
OPAQUE = "opaque-gw-key-7f3a9c2e51b84d06a1e9b2c4d8f0"  # 42 characters


@pytest.fixture(autouse=True)
def claude_ttl(gk: Env) -> None:
    """Claude's managed settings for every test here (never this machine's own /etc): a TTL of
    1800 s, which the provider's 1 h tokens outlive, as doctor advises for such tokens (inspect
    judges the time left against it; tests/blackbox/commands/test_inspect_lifetime.py)."""
    path = gk.root / "managed-root/etc/claude-desktop/managed-settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"inferenceCredentialHelperTtlSec": "1800"}))
    gk.vars["GATEKEY_MANAGED_ROOT"] = str(gk.root / "managed-root")


# --- tokens and profiles ----------------------------------------------------------------------
def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unb64(part: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def crafted(**claims: Any) -> str:
    """A JWT-shaped token with a made-up signature (nothing here checks it without --verify),
    of the size an RS256 signature has (a 2048-bit key's): inspect fails a shorter one."""
    header = {"alg": "RS256", "kid": "made-up", "typ": "JWT"}
    signature = base64.urlsafe_b64encode(os.urandom(256)).rstrip(b"=").decode()
    return f"{b64(header)}.{b64(claims)}.{signature}"


def oidc_profile(op: OidcProvider, extra: str = "", name: str = "svc") -> str:
    return (
        f'[profiles.{name}]\nsource = "oidc"\nissuer = "{op.issuer}"\n'
        f'client_id = "{CONF_CLIENT[0]}"\nclient_secret = {{ env = "{SECRET_ENV}" }}\n'
        f'flow = "client-credentials"\nscopes = ["api.read"]\nca_bundle = "{op.ca}"\n'
        f'min_ttl = "10m"\n{extra}\n'
    )


def entra_profile(op: OidcProvider) -> str:
    return (
        f'[profiles.corp]\nsource = "entra"\ntenant = "{op.tenant}"\n'
        f'authority_host = "{op.origin}"\nclient_id = "{CONF_CLIENT[0]}"\n'
        f'client_secret = {{ env = "{SECRET_ENV}" }}\nflow = "client-credentials"\n'
        f'scopes = ["{API_AUDIENCE}/.default"]\nca_bundle = "{op.ca}"\nmin_ttl = "10m"\n'
    )


def current_token(gk: Env, profile: str) -> str:
    """The token `get` prints now (the one inspect obtained: it is cached)."""
    r = gk.run("get", "-p", profile, **SECRET)
    assert r.code == 0, r.err
    return r.out.strip()


def assert_no_token(r: Result, token: str) -> None:
    """Neither the token, its signature, nor any 16-character piece of it was printed."""
    printed = r.out + r.err
    assert token not in printed
    if token.count(".") == 2:
        assert token.rsplit(".", 1)[1] not in printed
    pieces = {token[i : i + 16] for i in range(len(token) - 15)}
    assert not any(piece in printed for piece in pieces), "a fragment of the token was printed"


def check_line(r: Result, name: str) -> str:
    """The report's line for one check: ``  OK    expiry     valid until ...``."""
    for line in r.out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("OK", "WARN", "FAIL", "SKIP") and parts[1] == name:
            return line.strip()
    raise AssertionError(f"no {name} check in:\n{r.out}")


def claim_line(r: Result, name: str) -> str:
    for line in r.out.splitlines():
        if line.strip().split(" ", 1)[0] == name:
            return line.strip()
    raise AssertionError(f"no {name} claim in:\n{r.out}")


# --- JWTs from the real provider -------------------------------------------------------------
def test_inspect_a_provider_jwt_shows_claims_and_times_never_the_token(
    gk: Env, oidc_provider: OidcProvider
):
    gk.write_config(oidc_profile(oidc_provider))
    r = gk.run("inspect", "-p", "svc", **SECRET)
    assert r.code == 0, r.err
    assert r.err == ""
    assert r.out.startswith('Credential of profile "svc" (source oidc): fetched from the source')
    assert claim_line(r, "iss").endswith(oidc_provider.issuer)
    assert claim_line(r, "aud").endswith(API_AUDIENCE)
    assert claim_line(r, "client_id").endswith(CONF_CLIENT[0])
    assert claim_line(r, "scope").endswith("api.read")
    assert re.search(rf"^  exp +{WHEN}$", r.out, re.M), r.out
    assert re.search(r"^  exp .*\(in (59|60) min\)$", r.out, re.M), r.out
    assert re.search(rf"^  iat +{WHEN}$", r.out, re.M), r.out
    assert re.search(r"^  alg +RS256$", r.out, re.M), r.out
    assert "OK    expiry" in check_line(r, "expiry")
    assert check_line(r, "issuer").startswith("OK")
    assert check_line(r, "audience").startswith("SKIP")  # the profile names no audience
    assert check_line(r, "signature").startswith("SKIP")
    assert "looks usable" in r.out
    assert ESC.decode() not in r.out  # a pipe: no colour
    token = current_token(gk, "svc")
    assert claim_line(r, "jti").endswith(unb64(token.split(".")[1])["jti"])  # the same token
    assert_no_token(r, token)
    # A second inspect reads gatekey's cache, as get would.
    again = gk.run("inspect", "-p", "svc", **SECRET)
    assert again.code == 0, again.err
    assert "from gatekey's cache" in again.out.splitlines()[0]
    assert_no_token(again, token)


def test_verify_against_the_providers_jwks(gk: Env, oidc_provider: OidcProvider):
    gk.write_config(oidc_profile(oidc_provider))
    r = gk.run("inspect", "-p", "svc", "--verify", **SECRET)
    assert r.code == 0, r.err
    line = check_line(r, "signature")
    assert line.startswith("OK"), line
    assert "RS256" in line
    assert "signature valid" in line
    assert f"{oidc_provider.issuer}/jwks" in line
    data = json.loads(gk.run("inspect", "-p", "svc", "--verify", "--json", **SECRET).stdout)
    kid = data["header"]["kid"]
    assert data["verification"]["kid"] == kid
    assert data["verification"]["kid_found"] is True
    assert data["verification"]["valid"] is True
    assert data["usable"] is True
    assert_no_token(r, current_token(gk, "svc"))


def test_a_tampered_token_fails_verification(gk: Env, oidc_provider: OidcProvider):
    gk.write_config(oidc_profile(oidc_provider))
    token = current_token(gk, "svc")
    cache_files = {p: p.stat().st_mtime_ns for p in gk.cache_dir.rglob("*") if p.is_file()}

    genuine = gk.run("inspect", "--stdin", "--verify", "-p", "svc", stdin=token.encode() + b"\n")
    assert genuine.code == 0, genuine.err
    assert genuine.out.startswith('Token from stdin, compared with profile "svc"')
    assert check_line(genuine, "signature").startswith("OK")

    header, payload, signature = token.split(".")
    claims = unb64(payload)
    claims["scope"] = "api.read api.write"  # more than was granted
    tampered = f"{header}.{b64(claims)}.{signature}"
    r = gk.run("inspect", "--stdin", "--verify", "-p", "svc", stdin=tampered.encode())
    assert r.code == 1
    line = check_line(r, "signature")
    assert line.startswith("FAIL"), line
    assert "INVALID signature" in line
    assert claim_line(r, "scope").endswith("api.read api.write")  # what it claims, decoded
    assert "a gateway would refuse it (signature)" in r.out
    assert r.err == "gatekey: the credential fails 1 check(s): signature\n"
    for result in (genuine, r):
        assert_no_token(result, token)
        assert_no_token(result, tampered)
    # --stdin asked nothing of the source and wrote no state
    assert {p: p.stat().st_mtime_ns for p in gk.cache_dir.rglob("*") if p.is_file()} == (
        cache_files
    )


def test_audience_not_the_profiles(gk: Env, oidc_provider: OidcProvider):
    """The profile asks for a gateway audience the provider does not issue (it ignores the
    parameter): inspect says so and fails."""
    gk.write_config(oidc_profile(oidc_provider, 'audience = "https://llm-gateway.example.test"'))
    r = gk.run("inspect", "-p", "svc", **SECRET)
    assert r.code == 1, r.err
    line = check_line(r, "audience")
    assert line.startswith("FAIL"), line
    assert API_AUDIENCE in line
    assert "https://llm-gateway.example.test" in line
    assert "the profile's audience" in line
    assert r.err == "gatekey: the credential fails 1 check(s): audience\n"
    assert_no_token(r, current_token(gk, "svc"))


def test_entra_audience_from_the_scopes_and_verify(gk: Env, entra_provider: OidcProvider):
    gk.write_config(entra_profile(entra_provider))
    r = gk.run("inspect", "-p", "corp", "--verify", **SECRET)
    assert r.code == 0, r.err
    line = check_line(r, "audience")
    assert line.startswith("OK"), line
    assert "the resource of the profile's scopes" in line
    assert check_line(r, "signature").startswith("OK")
    data = json.loads(gk.run("inspect", "-p", "corp", "--json", **SECRET).stdout)
    assert data["expected_audience"] == [API_AUDIENCE]
    assert data["source"] == "entra"
    assert_no_token(r, current_token(gk, "corp"))


# --- crafted tokens on stdin ------------------------------------------------------------------
def test_an_expired_token_fails(gk: Env):
    now = int(time.time())
    token = crafted(iss="https://idp.example.test", sub="alice", exp=now - 300, iat=now - 3900)
    r = gk.run("inspect", "--stdin", stdin=token.encode())
    assert r.code == 1
    line = check_line(r, "expiry")
    assert line.startswith("FAIL"), line
    assert re.search(rf"expired at {WHEN}", line), line
    assert "(5 min ago)" in line
    assert r.err == "gatekey: the credential fails 1 check(s): expiry\n"
    assert_no_token(r, token)
    assert not any(p.is_file() for p in gk.cache_dir.rglob("*"))  # nothing written


def test_graph_token_and_clock_skew(gk: Env):
    now = int(time.time())
    token = crafted(
        aud="https://graph.microsoft.com",
        iss="https://login.microsoftonline.com/t/v2.0",
        exp=now + 3600,
        iat=now + 600,
        scp="User.Read",
    )
    r = gk.run("inspect", "--stdin", stdin=b"Authorization: Bearer " + token.encode())
    assert r.code == 1
    assert "Microsoft Graph" in check_line(r, "audience")
    assert check_line(r, "audience").startswith("FAIL")
    assert check_line(r, "clock").startswith("WARN")
    assert "in the future" in check_line(r, "clock")
    assert check_line(r, "expiry").startswith("OK")
    assert_no_token(r, token)


ENTRA_APP = "22222222-aaaa-bbbb-cccc-333333333333"
ENTRA_TENANT = "11111111-2222-3333-4444-555555555555"
ENTRA_STDIN_PROFILE = f"""
[profiles.corp]
source = "entra"
tenant = "{ENTRA_TENANT}"
client_id = "{ENTRA_APP}"
scopes = ["api://{ENTRA_APP}/.default"]
"""


def jwe() -> str:
    header = b64({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k"})
    return ".".join([header] + [base64.urlsafe_b64encode(os.urandom(24)).decode()] * 4)


@pytest.mark.parametrize(
    ("token", "check", "verdict", "detail", "code"),
    [
        # Entra v2 tokens name the application by id, the scopes by its App ID URI
        (lambda now: crafted(aud=ENTRA_APP, exp=now + 3600), "audience", "OK", "as expected", 0),
        (lambda now: crafted(aud="api://other", exp=now + 600), "audience", "FAIL", "not the", 1),
        (
            lambda now: crafted(aud=ENTRA_APP, tid="99999999-0000-0000-0000-000000000000"),
            "tenant",
            "WARN",
            "not the profile's tenant",
            0,
        ),
        (lambda now: crafted(nbf=now + 600, exp=now + 1200), "not", "FAIL", "not valid until", 1),
        (lambda now: crafted(aud=ENTRA_APP, exp=10**20), "expiry", "FAIL", "not a valid time", 1),
        (lambda now: crafted(aud=ENTRA_APP, exp="1h"), "expiry", "FAIL", "not a valid time", 1),
        (lambda now: jwe(), "format", "WARN", "encrypted (JWE)", 0),
    ],
    ids=["app-id", "other-app", "tenant", "nbf", "huge-exp", "text-exp", "jwe"],
)
def test_crafted_tokens_against_an_entra_profile(gk, token, check, verdict, detail, code):
    gk.write_config(ENTRA_STDIN_PROFILE)
    value = token(int(time.time()))
    r = gk.run("inspect", "--stdin", stdin=value.encode())
    assert r.code == code, r.out + r.err
    line = check_line(r, check)
    assert line.startswith(verdict), line
    assert detail in line, line
    assert "Traceback" not in r.err
    assert_no_token(r, value)


def test_unsigned_and_unknown_key(gk: Env, oidc_provider: OidcProvider):
    gk.write_config(oidc_profile(oidc_provider))
    exp = int(time.time()) + 600
    unsigned = f"{b64({'alg': 'none'})}.{b64({'iss': oidc_provider.issuer, 'exp': exp})}."
    r = gk.run("inspect", "--stdin", stdin=unsigned.encode())
    assert r.code == 1
    assert check_line(r, "algorithm").startswith("FAIL")
    assert "unsigned" in check_line(r, "algorithm")
    foreign = crafted(iss=oidc_provider.issuer, exp=exp)  # kid "made-up"
    r = gk.run("inspect", "--stdin", "--verify", "-p", "svc", stdin=foreign.encode())
    assert r.code == 1
    line = check_line(r, "signature")
    assert line.startswith("FAIL"), line
    assert "kid made-up is not among" in line
    assert_no_token(r, foreign)


# --- opaque tokens ----------------------------------------------------------------------------
def test_opaque_token_from_a_command_profile(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    r = gk.run("inspect", "-p", "cmd", TOKEN=OPAQUE)
    assert r.code == 0, r.err
    assert "Opaque token (40-64 chars)" in r.out
    assert "(source command)" in r.out.splitlines()[0]
    assert re.search(rf"^  expires +{WHEN}$", r.out, re.M), r.out
    assert re.search(rf"^  obtained +{WHEN}$", r.out, re.M), r.out
    assert check_line(r, "expiry").startswith("OK")
    assert_no_token(r, OPAQUE)
    assert gk.count() == 1

    shown = gk.run("inspect", "-p", "cmd", "--show-token", TOKEN=OPAQUE)
    assert shown.code == 0, shown.err
    assert shown.out.endswith(f"\nToken (--show-token)\n{OPAQUE}\n")
    assert shown.out.count(OPAQUE) == 1
    assert OPAQUE not in shown.err
    assert gk.count() == 1  # both served from the cache, as get would


def test_json_is_complete_and_holds_no_token(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    r = gk.run("inspect", "-p", "cmd", "--json", TOKEN=OPAQUE)
    assert r.code == 0, r.err
    data = json.loads(r.stdout)
    assert data["kind"] == "opaque"
    assert data["length_class"] == "40-64 chars"
    assert data["source"] == "command"
    assert data["obtained_from"] == "fetched"
    assert data["cached"]["expires_at"] > time.time() + 7000
    assert data["usable"] is True
    assert {c["name"]: c["verdict"] for c in data["checks"]}["expiry"] == "ok"
    assert "token" not in data
    assert_no_token(r, OPAQUE)

    jwt = crafted(sub="alice", exp=int(time.time()) + 600)
    as_json = gk.run("inspect", "--stdin", "--json", stdin=jwt.encode())
    data = json.loads(as_json.stdout)
    assert data["kind"] == "jwt"
    assert data["claims"]["sub"] == "alice"
    assert data["times"]["exp"]["seconds_from_now"] in range(540, 601)
    assert data["times"]["exp"]["utc"].endswith("Z")
    assert_no_token(as_json, jwt)

    with_token = gk.run("inspect", "-p", "cmd", "--json", "--show-token")
    assert json.loads(with_token.stdout)["token"] == OPAQUE


# --- colour -----------------------------------------------------------------------------------
def run_on_terminal(gk: Env, stdin: bytes, *args: str, **extra: str) -> bytes:
    """gatekey with stdout on a pseudo-terminal (stdin a pipe): what a person sees."""
    env = {k: v for k, v in gk.vars.items() if k != "NO_COLOR"} | extra
    primary, replica = os.openpty()
    try:
        proc = subprocess.Popen(
            [exe(), *args],
            stdin=subprocess.PIPE,
            stdout=replica,
            stderr=subprocess.PIPE,
            env=env,
            cwd=gk.root,
        )
        os.close(replica)
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=30)
    finally:
        os.close(primary)
    return b"".join(chunks)


def test_colour_only_on_a_terminal_and_never_with_no_color(gk: Env, tmp_path: Path):
    token = crafted(sub="alice", exp=int(time.time()) - 60).encode()
    coloured = run_on_terminal(gk, token, "inspect", "--stdin")
    assert ESC in coloured, coloured
    assert b"FAIL" in coloured
    plain = run_on_terminal(gk, token, "inspect", "--stdin", NO_COLOR="1")
    assert b"FAIL" in plain
    assert ESC not in plain, plain
    piped = gk.run("inspect", "--stdin", stdin=token)
    assert ESC not in piped.stdout + piped.stderr
