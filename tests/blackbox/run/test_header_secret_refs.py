"""A profile's header values by reference ({ env | file | keychain | profile }) and the {token}
placeholder, on the installed executable run as the app runs it.

What is decided here: a reference is resolved when the credential is obtained and kept with it
in the secure cache (kernel keyring + keychain, never a plain file), so the no-argument cache hit
prints it without reading the keychain, the file or the variable again; it is read again with
the next credential. A changed reference is another cache entry, never a stale value. The value
is never in stderr (debug level included), the run log, the config, the index or a file name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from blackbox_env import Env
from hit_modules import HIT_MODULES, imported

pytestmark = pytest.mark.blackbox

PORTKEY = "pk-ref-secret-7f3a91c2d4e5"
UPSTREAM = "up-linked-secret-0c9d8e7f6a5b"


def main_profile(gk: Env, headers: str, extra: str = "") -> str:
    """The counting source (tokens tok-1, tok-2, ...) with JSON output and these headers; its
    secret is cached the vault way (kernel keyring + keychain), as any profile with a
    header by reference is."""
    return 'default_profile = "main"\n' + gk.counting_profile(
        "main", f'output = "json"\nheaders = {headers}\n{extra}', secure=True
    )


def printing(name: str, value: str) -> str:
    """A command profile whose credential is ``value``."""
    program = json.dumps([sys.executable, "-c", f"print({value!r})"])
    return f'[profiles.{name}]\nsource = "command"\ncommand = {program}\n'


def payload(token: str, **headers: str) -> bytes:
    return json.dumps({"token": token, "headers": headers}).encode() + b"\n"


def cache_files(gk: Env) -> str:
    """Every file under the cache directory: names and contents."""
    parts = []
    for path in gk.cache_dir.rglob("*"):
        parts.append(str(path))
        if path.is_file():
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def test_env_reference_is_printed_and_kept_with_the_credential(gk: Env) -> None:
    gk.write_config(main_profile(gk, '{ "x-portkey-api-key" = { env = "PORTKEY_API_KEY" } }'))
    first = gk.run(context="interactive", PORTKEY_API_KEY=PORTKEY)
    assert (first.code, first.stdout) == (0, payload("tok-1", **{"x-portkey-api-key": PORTKEY}))
    assert PORTKEY not in first.err
    # The cache hit: the value came with the credential, not from this run's environment.
    hit = gk.run(context="background")
    assert (hit.code, hit.stdout, hit.stderr) == (first.code, first.stdout, b"")
    assert gk.count() == 1
    assert PORTKEY not in cache_files(gk)  # not the index, a token file or a file name
    assert PORTKEY not in gk.run_log.read_text()


def test_an_unset_variable_fails_the_run_naming_it(gk: Env) -> None:
    gk.write_config(main_profile(gk, '{ "x-portkey-api-key" = { env = "PORTKEY_API_KEY" } }'))
    r = gk.run(context="background")
    r.assert_clean_failure(3)
    assert "PORTKEY_API_KEY" in r.err
    assert "headers.x-portkey-api-key" in r.err


def test_file_reference_needs_an_owner_only_file(gk: Env, tmp_path: Path) -> None:
    secret = tmp_path / "portkey.key"
    secret.write_text(PORTKEY + "\n")
    secret.chmod(0o644)
    # No run log: the fixture's check of it would find the header's name from the refusal.
    headers = f'{{ "x-portkey-api-key" = {{ file = "{secret}" }} }}'
    gk.write_config(main_profile(gk, headers), run_log=False)
    refused = gk.run(context="background")
    refused.assert_clean_failure(78)
    assert gk.count() == 0  # refused before the source was asked
    assert "chmod 600" in refused.err
    assert 'key "headers.x-portkey-api-key"' in refused.err
    secret.chmod(0o600)
    ok = gk.run(context="background")
    assert (ok.code, ok.stdout) == (0, payload("tok-1", **{"x-portkey-api-key": PORTKEY}))


def test_keychain_reference_and_the_cache_hit_without_the_keychain(secret_service: Env) -> None:
    """Azure APIM: the subscription key from the keychain beside the bearer token. After the
    first run the hit prints it with the keychain item gone (kept with the credential, read
    with the next one); a new credential then finds it gone and fails (withdrawn on purpose)."""
    gk = secret_service
    gk.write_config(
        main_profile(gk, '{ "Ocp-Apim-Subscription-Key" = { keychain = "apim" } }')
        + '[profiles.apim]\nsource = "keychain"\n'
    )
    assert gk.run("store", "-p", "apim", stdin=PORTKEY.encode()).code == 0
    expected = payload("tok-1", **{"Ocp-Apim-Subscription-Key": PORTKEY})
    first = gk.run(context="setup-test")
    assert (first.code, first.stdout) == (0, expected), first.err
    assert gk.run("erase", "-p", "apim").code == 0
    for context in ("background", "mid-session-refresh", "scheduled-task"):
        hit = gk.run(context=context)
        assert (hit.code, hit.stdout, hit.stderr) == (0, expected, b""), context
    assert gk.count() == 1
    fresh = gk.run("get", "-p", "main", "--force-refresh")
    fresh.assert_clean_failure(3)
    assert "apim" in fresh.err


def test_profile_reference_and_token_placeholder(gk: Env) -> None:
    """Hosted Portkey wants the credential twice ({token}); another gateway a second profile's
    credential ({ profile = ... }), obtained as a run of its own."""
    gk.write_config(
        main_profile(
            gk,
            '{ "x-portkey-api-key" = "{token}", "x-upstream-token" = { profile = "upstream" } }',
        )
        + printing("upstream", UPSTREAM)
    )
    r = gk.run(context="interactive")
    assert (r.code, r.stdout) == (
        0,
        payload("tok-1", **{"x-portkey-api-key": "tok-1", "x-upstream-token": UPSTREAM}),
    ), r.err
    hit = gk.run(context="background")
    assert (hit.code, hit.stdout, hit.stderr) == (0, r.stdout, b"")


def test_a_circle_of_profile_references_is_a_config_error(gk: Env) -> None:
    gk.write_config(
        main_profile(gk, '{ "x-a-token" = { profile = "other" } }')
        + printing("other", UPSTREAM)
        + 'output = "json"\nheaders = { "x-b-token" = { profile = "main" } }\n'
    )
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert "main -> other -> main" in r.err
    self_ref = main_profile(gk, '{ "x-a-token" = { profile = "main" } }')
    gk.write_config(self_ref)
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert "{token}" in r.err


def test_a_changed_reference_never_serves_the_old_value(gk: Env) -> None:
    gk.write_config(main_profile(gk, '{ "x-portkey-api-key" = { env = "PORTKEY_API_KEY" } }'))
    first = gk.run(context="background", PORTKEY_API_KEY=PORTKEY, OTHER_API_KEY="other-key-0001")
    assert first.stdout == payload("tok-1", **{"x-portkey-api-key": PORTKEY}), first.err
    gk.write_config(main_profile(gk, '{ "x-portkey-api-key" = { env = "OTHER_API_KEY" } }'))
    second = gk.run(context="background", PORTKEY_API_KEY=PORTKEY, OTHER_API_KEY="other-key-0001")
    assert second.stdout == payload("tok-2", **{"x-portkey-api-key": "other-key-0001"})


def test_no_value_at_debug_level_and_where_it_comes_from_in_config_show(gk: Env) -> None:
    gk.write_config(main_profile(gk, '{ "x-portkey-api-key" = { env = "PORTKEY_API_KEY" } }'))
    r = gk.run(context="interactive", PORTKEY_API_KEY=PORTKEY, GATEKEY_LOG_LEVEL="debug")
    assert r.code == 0, r.err
    assert "profile" in r.err  # debug lines were written
    assert PORTKEY not in r.err
    shown = gk.run("config", "show", "-p", "main", PORTKEY_API_KEY=PORTKEY)
    assert shown.code == 0, shown.err
    assert "x-portkey-api-key" in shown.out
    assert "PORTKEY_API_KEY" in shown.out
    assert PORTKEY not in shown.out
    status = gk.run("status", PORTKEY_API_KEY=PORTKEY)
    assert PORTKEY not in status.out + status.err


def test_the_hit_imports_what_a_vault_secret_hit_imports(gk: Env) -> None:
    """The hit reads the credential and its headers from the kernel keyring (standard library,
    ctypes): the same modules as any vault secret's hit, never a keychain library."""
    gk.write_config(
        main_profile(gk, '{ "x-portkey-api-key" = { env = "PORTKEY_API_KEY" } }'), run_log=False
    )
    assert gk.run(context="background", PORTKEY_API_KEY=PORTKEY).code == 0
    env = dict(gk.vars, CLAUDE_HELPER_CONTEXT="background")
    names, stdout = imported([str(Path(sys.executable).parent / "gatekey")], env, gk.root)
    assert stdout == payload("tok-1", **{"x-portkey-api-key": PORTKEY})
    assert gk.count() == 1
    ours = {name for name in names if name.split(".")[0] == "gatekey"}
    assert ours == HIT_MODULES | {"gatekey.kernelkeys"}
    assert not {"keyring", "secretstorage", "jeepney", "tomllib"} & names
