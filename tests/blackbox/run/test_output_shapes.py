"""The output shapes beside token and json (issue 17): ``headers`` (a flat JSON object of header
names to strings, for MCP's headersHelper and otlpHeadersHelper) and ``git-credential``
(``username=`` / ``password=`` lines, for a plugin marketplace's credentialHelper), from a
profile's ``output``, ``gatekey get --format`` and ``GATEKEY_OUTPUT``, on the installed executable
run as the app runs it: byte-exact stdout, on a fetch and on the cache hit, in every context;
nothing on stdout on any failure.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from blackbox_env import CONTEXTS, Env, exe
from header_claims import jwt

pytestmark = pytest.mark.blackbox

CLAIMS = {"oid": "0a1b", "preferred_username": "alice", "email": "alice@example.test"}
JWT = jwt(CLAIMS)


def profile(gk: Env, extra: str, *, name: str = "p", secure: bool = False) -> None:
    """The counting source (tok-1, tok-2, ... or $TOKEN) as the only profile, with ``extra``."""
    gk.write_config(gk.counting_profile(name, extra, secure=secure))


def headers_payload(**headers: str) -> bytes:
    return json.dumps(headers).encode() + b"\n"


@pytest.mark.parametrize(
    ("scheme", "credential"),
    [("bearer", {"Authorization": "Bearer tok-1"}), ("x-api-key", {"x-api-key": "tok-1"})],
)
def test_headers_shape_is_the_credential_under_its_scheme_then_the_profile_headers(
    gk: Env, scheme: str, credential: dict[str, str]
) -> None:
    profile(
        gk,
        f'output = "headers"\nauth_scheme = "{scheme}"\n'
        'headers = { X-Org-Route = "prod", x-portkey-metadata = \'{"_user":"alice"}\' }',
    )
    expected = headers_payload(
        **credential, **{"X-Org-Route": "prod", "x-portkey-metadata": '{"_user":"alice"}'}
    )
    for context in (*CONTEXTS, None):  # the first run fetches, every later one is a cache hit
        r = gk.run(context=context)
        assert (r.code, r.stdout, r.stderr) == (0, expected, b""), (context, r.err)
    assert gk.count() == 1
    # What the app does with it: one JSON object, every value a string.
    parsed = json.loads(expected)
    assert all(isinstance(v, str) for v in parsed.values())


def test_headers_shape_fills_claims_token_and_references_as_json_does(gk: Env) -> None:
    profile(
        gk,
        'output = "headers"\n'
        'headers = { X-User = "{claims.oid}", X-Again = "{token}", '
        'X-Route = { env = "ROUTE_KEY" } }',
        secure=True,  # a reference's value is kept with the credential, never in a plain file
    )
    expected = headers_payload(
        Authorization=f"Bearer {JWT}", **{"X-User": "0a1b", "X-Again": JWT, "X-Route": "rk-42"}
    )
    first = gk.run(context="interactive", TOKEN=JWT, ROUTE_KEY="rk-42")
    assert (first.code, first.stdout) == (0, expected), first.err
    hit = gk.run(context="background")  # served with the reference's value kept with the token
    assert (hit.code, hit.stdout, hit.stderr) == (0, expected, b"")
    assert gk.count() == 1


def test_git_credential_shape_is_two_lines_with_the_documented_username(gk: Env) -> None:
    profile(gk, 'output = "git-credential"')
    expected = b"username=x-access-token\npassword=tok-1\n"  # no blank line: git reads to EOF
    for context in (*CONTEXTS, None):
        r = gk.run(context=context)
        assert (r.code, r.stdout, r.stderr) == (0, expected, b""), (context, r.err)
    assert gk.count() == 1


def test_git_username_from_the_profile_may_insert_a_claim(gk: Env) -> None:
    profile(gk, 'output = "git-credential"\ngit_username = "{claims.preferred_username}"')
    expected = f"username=alice\npassword={JWT}\n".encode()
    first = gk.run(TOKEN=JWT)
    assert (first.code, first.stdout) == (0, expected), first.err
    hit = gk.run()
    assert (hit.code, hit.stdout, hit.stderr) == (0, expected, b"")
    assert gk.count() == 1


def test_a_claim_the_token_lacks_fails_naming_git_username(gk: Env) -> None:
    profile(gk, 'output = "git-credential"\ngit_username = "{claims.upn}"')
    r = gk.run(TOKEN=JWT)
    r.assert_clean_failure(78)
    assert 'key "git_username"' in r.err
    assert "upn" in r.err


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('"{token}"', "password"),  # the credential is never git's username
        ('"alice:admin"', "colon"),  # HTTP Basic would split it
        ('"alice\\nx"', "line breaks"),  # a second line for git to read
        ('""', "empty"),
    ],
    ids=["token", "colon", "newline", "empty"],
)
def test_config_validate_refuses_a_git_username_that_cannot_work(
    gk: Env, value: str, why: str
) -> None:
    profile(gk, f'output = "git-credential"\ngit_username = {value}')
    r = gk.run("config", "validate")
    r.assert_clean_failure(78)
    assert 'key "git_username"' in r.err
    assert why in r.err
    gk.run().assert_clean_failure(78)  # the app's run says the same, and prints nothing


def test_git_itself_reads_the_git_credential_shape(gk: Env, tmp_path: Path) -> None:
    """The real parser: git credential fill asks a helper that runs gatekey with no arguments
    for ``get`` (the way a marketplace entry does) and answers with what it printed."""
    profile(gk, 'output = "git-credential"')
    helper = f'!f() {{ test "$1" = get && exec {exe()} </dev/null; }}; f'
    env = dict(gk.vars, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    done = subprocess.run(
        ["git", "-c", f"credential.helper={helper}", "credential", "fill"],
        input=b"protocol=https\nhost=plugins.example.test\n\n",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    filled = dict(line.split("=", 1) for line in done.stdout.decode().splitlines())
    assert filled["username"] == "x-access-token"
    assert filled["password"] == "tok-1"
    gk.printed.append(done.stdout)  # a credential: kept out of the run log like the others


@pytest.mark.parametrize("shape", ["headers", "git-credential"])
def test_a_token_with_control_characters_is_refused_in_every_shape(gk: Env, shape: str) -> None:
    profile(gk, f'output = "{shape}"')
    r = gk.run(TOKEN="tok-1\r\nX-Injected: yes")
    r.assert_clean_failure(1)
    assert "cannot be sent in an HTTP header" in r.err


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("headers", b'{"Authorization": "Bearer tok-1", "X-Org-Route": "prod"}\n'),
        ("git-credential", b"username=x-access-token\npassword=tok-1\n"),
        ("token", b"tok-1\n"),
    ],
)
def test_get_format_offers_every_shape(gk: Env, shape: str, expected: bytes) -> None:
    profile(gk, 'output = "json"\nheaders = { X-Org-Route = "prod" }')
    r = gk.run("get", "--format", shape)
    assert (r.code, r.stdout) == (0, expected), r.err


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("headers", b'{"Authorization": "Bearer tok-1", "X-Org-Route": "prod"}\n'),
        ("git-credential", b"username=x-access-token\npassword=tok-1\n"),
        ("json", b'{"token": "tok-1", "headers": {"X-Org-Route": "prod"}}\n'),
    ],
)
def test_gatekey_output_pins_the_shape_on_a_fetch_and_on_the_cache_hit(
    gk: Env, shape: str, expected: bytes
) -> None:
    profile(gk, 'headers = { X-Org-Route = "prod" }')  # output = "token" by default
    first = gk.run(GATEKEY_OUTPUT=shape)
    assert (first.code, first.stdout) == (0, expected), first.err
    # One index entry serves every shape of the profile: the shape is read on every run.
    assert gk.run().stdout == b"tok-1\n"
    hit = gk.run(context="background", GATEKEY_OUTPUT=shape)
    assert (hit.code, hit.stdout, hit.stderr) == (0, expected, b"")
    assert gk.count() == 1
    # get --format still wins over GATEKEY_OUTPUT (wrapper get --format header).
    assert gk.run("get", "--format", "token", GATEKEY_OUTPUT=shape).stdout == b"tok-1\n"


def test_a_gatekey_output_that_is_no_shape_fails_even_on_a_warm_cache(gk: Env) -> None:
    profile(gk, "")
    assert gk.run().code == 0  # warm: a cache hit is ready
    for value in ("xml", "header", "env"):  # get's formats for people are not helper shapes
        r = gk.run(GATEKEY_OUTPUT=value)
        r.assert_clean_failure(78)
        assert "GATEKEY_OUTPUT" in r.err
        assert "headers, git-credential" in r.err


def test_config_commands_know_the_new_output_values(gk: Env) -> None:
    profile(gk, 'output = "headers"\ngit_username = "oauth2"')
    assert gk.run("config", "validate").code == 0
    shown = gk.run("config", "show")
    assert shown.code == 0, shown.err
    assert 'output = "headers"' in shown.out
    assert 'git_username = "oauth2"' in shown.out
    status = gk.run("status")
    assert status.code == 0, status.err
    profile(gk, 'output = "xml"')
    r = gk.run("config", "validate")
    r.assert_clean_failure(78)
    assert 'key "output"' in r.err
    assert "token, json, headers, git-credential" in r.err


def test_profile_headers_cannot_set_the_credential_header_of_the_headers_shape(gk: Env) -> None:
    """The credential's own header comes from auth_scheme; a profile header of that name
    (any case) would give the MCP server two of them: refused with the config."""
    profile(gk, 'output = "headers"\nheaders = { authorization = "Token {token}" }')
    r = gk.run()
    r.assert_clean_failure(78)
    assert 'key "headers"' in r.err


@pytest.mark.parametrize(
    ("output", "edit", "expected"),
    [
        ("headers", {"headers": {"AUTHORIZATION": "Bearer forged"}}, b'{"Authorization": '),
        ("git-credential", {"git_username": "{token}"}, b"username=x-access-token\n"),
    ],
    ids=["second-credential-header", "token-as-username"],
)
def test_an_index_entry_edited_to_print_more_than_the_config_says_is_a_miss(
    gk: Env, output: str, edit: dict[str, object], expected: bytes
) -> None:
    """The index sits in a user-writable directory: an entry that would make the cache hit
    print a second credential header, or the credential as git's username, is not served; the
    full path prints what the config says."""
    profile(gk, f'output = "{output}"')
    first = gk.run()
    assert first.code == 0, first.err
    index = gk.cache_dir / "index.json"
    data = json.loads(index.read_text())
    for entry in data.values():
        entry.update(edit)
    index.write_text(json.dumps(data))
    r = gk.run()
    assert (r.code, r.stdout) == (0, first.stdout), r.err
    assert r.stdout.startswith(expected)
    assert b"forged" not in r.stdout
