"""`gatekey inspect --stdin` with what people actually paste (issue 14, item 3), black-box.

A JWT cut short when copied (a terminal, a log line, a browser panel that shortens long values)
starts like a JWT and does not decode: inspect says so and fails (exit 1), instead of calling it a
usable opaque token. gatekey's own output is read as it is: the helper's ``{"token", "headers"}``
JSON (piped from ``gatekey``), ``get --format env`` and ``--format header``; the headers that go
with the token are checked by the rules a helper run applies, and shown by name, never by value.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time

import pytest

from blackbox_env import Env, Result
from hygiene import Recorder
from inspect_tokens import (
    assert_no_token,
    b64,
    check_line,
    check_lines,
    crafted,
    fixes_of,
    managed_settings,
)

pytestmark = pytest.mark.blackbox

TRUNCATED = "starts like a JWT but does not decode: truncated?"
# Header values long enough for the suite's hygiene check to hold them as secrets once a helper
# run has printed them (support/hygiene.py): none may reach inspect's report.
ROUTE = "route-prod-7f3a9c2e"
USER_KEY = "portkey-key-51b84d06a1e9"


@pytest.fixture(autouse=True)
def no_managed_settings(gk: Env) -> None:
    managed_settings(gk, {})  # the app's defaults, never this machine's own /etc


def long_jwt() -> str:
    """A realistic access token: 2 h left, a dozen claims, a 2048-bit RS256 signature."""
    now = int(time.time())
    return crafted(
        iss="https://login.example.test/tenant/v2.0",
        aud="api://llm-gateway",
        sub="alice",
        oid="0a1b2c3d-1111-2222-3333-444455556666",
        scp="gateway.use",
        name="Alice Example",
        email="alice@example.test",
        groups=["engineering", "ml-platform", "gateway-users"],
        exp=now + 7200,
        iat=now,
        nbf=now,
    )


def jwe(parts: int) -> str:
    header = b64({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k"})
    body = [base64.urlsafe_b64encode(os.urandom(24)).rstrip(b"=").decode()] * (parts - 1)
    return ".".join([header, *body])


def assert_truncated(r: Result, value: str) -> None:
    assert r.code == 1, r.out + r.err
    line = check_line(r, "format")
    assert line.startswith("FAIL"), line
    assert "truncated?" in line, line
    assert "copy the whole token" in fixes_of(r, "format")[0]
    assert "Opaque token" not in r.out
    assert "looks usable" not in r.out
    assert r.err.startswith("gatekey: the credential fails"), r.err
    assert r.err.count("\n") == 1, r.err
    assert "format" in r.err
    assert "Traceback" not in r.err
    assert_no_token(r, value)


# --- JWTs cut short ------------------------------------------------------------------------------
CUTS = {
    # the issue's own case: header and the start of the claims (one dot)
    "first-150": lambda t: t[:150],
    # stopped inside the header: no dot at all
    "inside-header": lambda t: t[:25],
    # the header and its dot, nothing after
    "header-and-dot": lambda t: t.split(".")[0] + ".",
    # three parts, but the claims do not decode (cut inside, then the signature pasted on)
    "broken-claims": lambda t: ".".join([t.split(".")[0], t.split(".")[1][:-7], t.split(".")[2]]),
    # the whole of header and claims, the signature cut (what a 1000-character log field keeps)
    "cut-signature": lambda t: t[: len(t) - 120],
    # everything up to the last dot: no signature at all
    "no-signature": lambda t: t.rsplit(".", 1)[0] + ".",
    # shortened for display, with an ellipsis
    "ellipsis": lambda t: t[:40] + "\u2026",
    "three-dots": lambda t: t[:40] + "...",
}


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_a_jwt_cut_short_is_called_truncated_and_fails(gk: Env, cut):
    token = long_jwt()
    value = cut(token)
    r = gk.run("inspect", "--stdin", stdin=value.encode() + b"\n")
    assert_truncated(r, value)
    assert_no_token(r, token)


def test_the_first_150_characters_say_what_is_missing_and_json_says_malformed(gk: Env):
    token = long_jwt()
    r = gk.run("inspect", "--stdin", stdin=token[:150].encode())
    assert_truncated(r, token[:150])
    assert r.out.splitlines()[1].startswith(f"S{TRUNCATED[1:]} (129-512 chars)"), r.out
    assert "the signature is missing" in check_line(r, "format")
    assert re.search(r"^  alg +RS256$", r.out, re.M), r.out  # the header that did decode
    assert "Claims (decoded)" not in r.out
    assert check_line(r, "expiry").startswith("SKIP")
    assert "Verdict: FAIL, a gateway would refuse it (format)" in r.out

    data = json.loads(gk.run("inspect", "--stdin", "--json", stdin=token[:150].encode()).stdout)
    assert data["kind"] == "malformed"
    assert "signature is missing" in data["malformed"]
    assert data["length_class"] == "129-512 chars"
    assert data["header"]["alg"] == "RS256"
    assert data["claims"] == {}
    assert data["usable"] is False
    (fmt,) = [c for c in data["checks"] if c["name"] == "format"]
    assert fmt["verdict"] == "fail"
    assert TRUNCATED in fmt["detail"]
    assert fmt["fixes"]


def test_a_cut_signature_still_shows_the_claims(gk: Env):
    token = long_jwt()
    value = token[: len(token) - 120]
    r = gk.run("inspect", "--stdin", stdin=value.encode())
    assert_truncated(r, value)
    assert re.search(r"^  sub +alice$", r.out, re.M), r.out  # header and claims decode
    assert "RS256" in check_line(r, "format")


@pytest.mark.parametrize("parts", [2, 3, 4], ids=["2-parts", "3-parts", "4-parts"])
def test_an_encrypted_jwt_missing_a_part(gk: Env, parts: int):
    value = jwe(parts)
    r = gk.run("inspect", "--stdin", stdin=value.encode())
    assert_truncated(r, value)
    assert "(JWE) has 5 parts" in check_line(r, "format")
    assert f"this one has {parts}" in check_line(r, "format")


def test_a_signature_shorter_than_its_algorithm_fails(gk: Env):
    """ES256 signatures are always 64 bytes: 40 means the copy lost the end."""
    now = int(time.time())
    header = b64({"alg": "ES256", "kid": "k", "typ": "JWT"})
    signature = base64.urlsafe_b64encode(os.urandom(40)).rstrip(b"=").decode()
    value = f"{header}.{b64({'sub': 'alice', 'exp': now + 7200})}.{signature}"
    r = gk.run("inspect", "--stdin", stdin=value.encode())
    assert_truncated(r, value)
    assert "a ES256 signature is 64 bytes; this one is 40" in check_line(r, "format")


def test_whole_tokens_are_not_called_truncated(gk: Env):
    """The rule names no false culprits: a whole JWT, an opaque key, and an opaque token that
    happens to be base64url JSON (no alg: not a JOSE header) all pass."""
    token = long_jwt()
    whole = gk.run("inspect", "--stdin", stdin=token.encode())
    assert whole.code == 0, whole.out + whole.err
    assert check_line(whole, "format").startswith("OK")
    assert "256-byte RS256 signature" in check_line(whole, "format")
    for value in ("sk-live-7f3a9c2e51b84d06a1e9b2c4d8f0", b64({"key": "v1", "org": "acme"})):
        r = gk.run("inspect", "--stdin", stdin=value.encode())
        assert r.code == 0, r.out + r.err
        assert "Opaque token" in r.out
        assert TRUNCATED not in r.out
        assert_no_token(r, value)


# --- gatekey's own output, piped in --------------------------------------------------------------
def json_profile(gk: Env, token: str, extra: str = "") -> None:
    gk.write_config(
        gk.counting_profile(
            "gw",
            'output = "json"\n'
            # a credential header by reference: a literal one is refused (exit 78)
            f'headers = {{ "X-Org-Route" = "{ROUTE}", '
            '"x-portkey-api-key" = { env = "PK_KEY" } }\n' + extra,
        )
    )
    gk.vars["TOKEN"] = token
    gk.vars["PK_KEY"] = USER_KEY


def test_the_helpers_json_output_piped_into_inspect(gk: Env):
    """`gatekey | gatekey inspect --stdin` for a profile with output = "json"."""
    token = long_jwt()
    json_profile(gk, token)
    helper = gk.run(context="interactive")  # as the app runs it: no arguments
    assert helper.code == 0, helper.err
    assert json.loads(helper.stdout)["headers"]["X-Org-Route"] == ROUTE

    r = gk.run("inspect", "--stdin", stdin=helper.stdout)
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines()[0] == (
        "Token from stdin (gatekey's JSON output: its token and 2 header(s)), compared with "
        'profile "gw" (source command)'
    )
    assert "Headers it would send (names only: values are never shown)" in r.out
    assert re.search(r"^  X-Org-Route$", r.out, re.M), r.out
    assert re.search(r"^  x-portkey-api-key$", r.out, re.M), r.out
    line = check_line(r, "headers")
    assert line.startswith("OK"), line
    assert "2 valid header(s)" in line
    assert re.search(r"^  sub +alice$", r.out, re.M), r.out  # the token itself was inspected
    for value in (ROUTE, USER_KEY):
        assert value not in r.out + r.err
    assert_no_token(r, token)

    data = json.loads(gk.run("inspect", "--stdin", "--json", stdin=helper.stdout).stdout)
    assert data["stdin_format"] == "json"
    assert data["headers_sent"] == ["X-Org-Route", "x-portkey-api-key"]
    assert data["kind"] == "jwt"
    assert data["claims"]["sub"] == "alice"
    assert ROUTE not in json.dumps(data)
    assert USER_KEY not in json.dumps(data)


def test_get_format_env_and_header_output_piped_into_inspect(gk: Env):
    token = long_jwt()
    json_profile(gk, token, 'auth_scheme = "x-api-key"\n')
    env = gk.run("get", "-p", "gw", "--format", "env")
    assert env.code == 0, env.err
    assert env.out.startswith("export ANTHROPIC_API_KEY=")
    r = gk.run("inspect", "--stdin", stdin=env.stdout)
    assert r.code == 0, r.out + r.err
    assert "(gatekey's env output: its token and 2 header(s))" in r.out.splitlines()[0]
    assert check_line(r, "headers").startswith("OK")
    assert re.search(r"^  X-Org-Route$", r.out, re.M), r.out
    for value in (ROUTE, USER_KEY):
        assert value not in r.out + r.err
    assert_no_token(r, token)

    header = gk.run("get", "-p", "gw", "--format", "header")
    assert header.code == 0, header.err
    assert header.out.startswith("x-api-key: ")
    r = gk.run("inspect", "--stdin", stdin=header.stdout)
    assert r.code == 0, r.out + r.err
    assert "(a header line: the token in it)" in r.out.splitlines()[0]
    assert re.search(r"^  sub +alice$", r.out, re.M), r.out
    assert_no_token(r, token)


def test_bad_headers_in_a_json_payload_fail_by_name_never_by_value(
    gk: Env, secret_hygiene: Recorder
):
    """Another helper's JSON (or a hand-made one) is held to what a gatekey run would print."""
    token = long_jwt()
    # Made of runs the report never holds otherwise: the hygiene check looks for any 6 of them.
    secret_name = "sk-9a8b7c6d5e4fq2"  # a value pasted where a name goes
    values = {
        "crlf": "tnt-91x\r\nX-Injected: 4q7z8w",
        "name": "vbn-123q9z8x",
        "auth": "bov-7788aabbq1",
    }
    for origin, value in values.items():
        secret_hygiene.register(value, f"test header value ({origin})")
    secret_hygiene.register(secret_name, "test header name")
    payload = {
        "token": token,
        "headers": {
            "X-Tenant": values["crlf"],
            secret_name + " x": values["name"],
            "X-Count": 3,
            "Authorization": values["auth"],
            "x-tenant": "duplicate-in-case",
        },
        "expires_at": 1,
    }
    r = gk.run("inspect", "--stdin", stdin=json.dumps(payload).encode())
    assert r.code == 1, r.out + r.err
    lines = check_lines(r, "headers")
    assert any(
        line.startswith("FAIL") and 'header "X-Tenant"' in line and "line breaks" in line
        for line in lines
    ), lines
    assert any(line.startswith("FAIL") and "header #2: a header name" in line for line in lines)
    assert any(
        line.startswith("FAIL") and 'header "X-Count": a header value must be a string' in line
        for line in lines
    ), lines
    assert any(line.startswith("WARN") and '"Authorization"' in line for line in lines), lines
    assert any(line.startswith("WARN") and "differ only in case" in line for line in lines)
    assert "the app reads only token and headers; it ignores expires_at" in r.out
    assert "the headers with it cannot be sent (headers)" in r.out
    assert r.err == "gatekey: the credential fails 1 check(s): headers\n"
    for value in [*values.values(), secret_name]:
        assert value not in r.out + r.err
    assert_no_token(r, token)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (b'{"token": "abc", "headers": ', "starts like JSON but is not valid JSON"),
        (b'{"value": "sk-live-7f3a9c2e51b84d06"}', 'JSON without a "token"'),
        (b'{"token": 12345678901234}', 'the JSON\'s "token" is not a string'),
        (b"sk-live-7f3a9c2e51b84d06 and more words", "expected one token, got text with spaces"),
    ],
    ids=["cut-json", "no-token-key", "token-not-a-string", "words"],
)
def test_what_is_not_a_token_is_refused_in_one_line(gk: Env, given: bytes, message: str):
    r = gk.run("inspect", "--stdin", stdin=given)
    r.assert_clean_failure(1)
    assert message in r.err, r.err
    assert "sk-live" not in r.err
    assert "12345678901234" not in r.err


def test_a_quoted_token_is_read_without_its_quotes(gk: Env):
    """Copied from a shell command or a JSON file: the quotes are not part of the token."""
    token = long_jwt()
    for given in (f"'{token}'", json.dumps(token)):
        r = gk.run("inspect", "--stdin", stdin=given.encode())
        assert r.code == 0, r.out + r.err
        assert re.search(r"^  sub +alice$", r.out, re.M), r.out
        assert check_line(r, "format").startswith("OK")
        assert_no_token(r, token)


def test_a_value_no_http_header_can_carry_fails(gk: Env):
    """A file saved by a Windows editor starts with a byte-order mark: the app could not send
    that value, and gatekey itself would never print it."""
    value = "sk-live-7f3a9c2e51b84d06a1e9b2c4d8f0"
    r = gk.run("inspect", "--stdin", stdin="\ufeff".encode() + value.encode())
    assert r.code == 1, r.out + r.err
    line = check_line(r, "format")
    assert line.startswith("FAIL"), line
    assert "not usable in an HTTP header: it starts with a byte-order mark (BOM)" in line
    assert r.err == "gatekey: the credential fails 1 check(s): format\n"
    assert_no_token(r, value)
