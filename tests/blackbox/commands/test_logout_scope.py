"""`logout` and `erase` name every profile they affect besides the one named (issue 14, item 8):
profiles of the same client at the same identity provider share one saved sign-in, so signing
one out signs the others out; profiles with identical source settings share one cached (and
stored) credential, so erasing one erases it for all; a profile that reads a secret from a
keychain profile loses it with that entry. On a terminal gatekey asks first ([y/N], ``--yes``
for scripts); the result line always names them.

The installed gatekey runs against the real OpenID provider (support/oidc_peer.py), the real
Secret Service (gnome-keyring) and the counting command source; a person at a terminal is a
pseudo-terminal (support/pty_session.py).
"""

from __future__ import annotations

import pytest

from blackbox_env import Env
from idp_helpers import cc_profile, device_sign_in, idp_profile, printed_token
from oidc_peer import OidcProvider
from pty_session import TerminalRun, lines_shown

pytestmark = [pytest.mark.blackbox]

SHARED = "(they share its sign-in: the same client at the same identity provider)"
LINKED = '"kv" signs in through them and will need a login too'


def sharing_profiles(op: OidcProvider) -> str:
    """Five profiles of public-client at ``op`` (one saved sign-in), one of another client (svc)
    and a vault profile signing in through dc (kv): okta and okta2 differ only in min_ttl, dc
    signs in with a device code, alices and bobs choose an account by login_hint."""
    return "".join(
        [
            idp_profile(op, name="okta", flow="browser"),
            idp_profile(op, name="okta2", flow="browser", min_ttl="20m"),
            idp_profile(op, name="dc"),
            idp_profile(op, name="alices", extra='login_hint = "alice@example.test"'),
            idp_profile(op, name="bobs", extra='login_hint = "bob@example.test"'),
            cc_profile(op, '{ env = "GK_TEST_CLIENT_SECRET" }'),
            "[profiles.kv]\n"
            'source = "vault"\naddress = "https://vault.example.test"\npath = "secret/data/llm"\n'
            'auth = { method = "jwt", jwt_from = "dc", role = "llm" }\n',
        ]
    )


def signed_in_everywhere(gk: Env, op: OidcProvider) -> None:
    """alice signs in once (profile dc); okta, okta2, dc and alices then get tokens silently,
    each cached by gatekey; bobs has no account."""
    gk.write_config(sharing_profiles(op))
    assert device_sign_in(gk, op, ("login", "-p", "dc")).code == 0
    for name in ("okta", "okta2", "dc", "alices"):
        printed_token(gk.run("get", "-p", name, context="background"))
    gk.run("get", "-p", "bobs", context="background").assert_clean_failure(4)


@pytest.mark.oidc
def test_logout_names_every_profile_sharing_the_sign_in(gk: Env, oidc_provider: OidcProvider):
    signed_in_everywhere(gk, oidc_provider)
    r = gk.run("logout", "-p", "okta2")
    assert r.code == 0, r.err
    assert r.err == (
        'gatekey: profile "okta2": signed out; also signed out "alices", "dc" and "okta" '
        f"{SHARED}; {LINKED}\n"
    )
    # and they are: no saved sign-in, no cached token left to print
    for name in ("okta", "okta2", "dc", "alices"):
        gone = gk.run("get", "-p", name, context="background")
        gone.assert_clean_failure(4)
        assert "not signed in" in gone.err


@pytest.mark.oidc
def test_logout_asks_on_a_terminal_before_signing_out_others(gk: Env, oidc_provider: OidcProvider):
    signed_in_everywhere(gk, oidc_provider)
    t = TerminalRun(gk, ("logout", "-p", "okta2"))
    try:
        t.read_until(
            r'gatekey: signing out profile "okta2" also signs out "alices", "dc" and "okta" '
            r"\(they share its sign-in: the same client at the same identity provider\); "
            r'"kv" signs in through them and will need a login too\. Go on\? '
            r"\[y/N\] $"
        )
        t.type("\n")  # the default: no
        r = t.finish()
    finally:
        t.close()
    assert r.code == 1, r.err
    assert lines_shown(r.err)[-1] == 'gatekey: profile "okta2": nothing was signed out'
    for name in ("okta", "okta2", "dc", "alices"):  # all still signed in, silently
        printed_token(gk.run("get", "-p", name, context="background"))
    # --yes: no question; the result line names them
    t = TerminalRun(gk, ("logout", "-p", "okta2", "--yes"))
    try:
        r = t.finish()
    finally:
        t.close()
    assert r.code == 0, r.err
    assert "Go on?" not in r.err
    assert lines_shown(r.err) == [
        'gatekey: profile "okta2": signed out; also signed out "alices", "dc" and "okta" '
        f"{SHARED}; {LINKED}"
    ]


def test_erase_names_the_profiles_with_the_same_credential(gk: Env):
    gk.write_config(gk.counting_profile("a") + gk.counting_profile("b", 'output = "json"'))
    assert gk.run("get", "-p", "a").code == 0
    assert gk.count() == 1
    r = gk.run("erase", "-p", "b")
    assert r.code == 0, r.err
    assert r.err == (
        'gatekey: profile "b": erased its cached token; this also erases it for "a" '
        "(the same credential: identical source settings)\n"
    )
    assert gk.run("get", "-p", "a").code == 0
    assert gk.count() == 2  # a's cached token was gone: fetched again


def test_erase_asks_on_a_terminal_first(gk: Env):
    gk.write_config(gk.counting_profile("a") + gk.counting_profile("b", 'output = "json"'))
    assert gk.run("get", "-p", "a").code == 0
    t = TerminalRun(gk, ("erase", "-p", "b"))
    try:
        t.read_until(
            r'gatekey: erasing profile "b" also erases it for "a" \(the same credential: '
            r"identical source settings\)\. Go on\? \[y/N\] $"
        )
        t.type("n\n")
        r = t.finish()
    finally:
        t.close()
    assert r.code == 1, r.err
    assert lines_shown(r.err)[-1] == 'gatekey: profile "b": nothing was erased'
    assert gk.run("get", "-p", "a").code == 0
    assert gk.count() == 1  # still cached
    t = TerminalRun(gk, ("erase", "-p", "b", "-y"))
    try:
        r = t.finish()
    finally:
        t.close()
    assert r.code == 0, r.err
    assert "Go on?" not in r.err
    assert 'this also erases it for "a"' in r.err


def test_erase_of_a_profile_alone_asks_nothing_and_names_nobody(gk: Env):
    """A profile whose credential no other profile shares: as before, no question on a
    terminal, and a result line about itself only."""
    other = '[profiles.b]\nsource = "command"\ncommand = ["/bin/echo", "another-credential"]\n'
    gk.write_config(gk.counting_profile("a") + other)
    assert gk.run("get", "-p", "a").code == 0
    t = TerminalRun(gk, ("erase", "-p", "a"))
    try:
        r = t.finish()
    finally:
        t.close()
    assert r.code == 0, r.err
    assert lines_shown(r.err) == ['gatekey: profile "a": erased its cached token']


@pytest.mark.keychain
def test_erase_of_a_keychain_entry_names_the_profiles_that_read_it(
    secret_service: Env, oidc_provider: OidcProvider
):
    gk = secret_service
    config = '[profiles.ccsecret]\nsource = "keychain"\n\n' + cc_profile(
        oidc_provider, '{ keychain = "ccsecret" }'
    )
    gk.write_config(config)
    assert gk.run("store", "-p", "ccsecret", stdin=b"not-the-conf-secret-4242").code == 0
    r = gk.run("erase", "-p", "ccsecret")
    assert r.code == 0, r.err
    assert r.err.startswith('gatekey: profile "ccsecret": erased the keychain entry (')
    assert r.err.endswith('; this also takes the secret that "svc" reads\n'), r.err
