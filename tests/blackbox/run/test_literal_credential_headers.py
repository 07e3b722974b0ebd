"""A profile's headers never hold a credential written in the config, and never set the header
the app builds itself from the credential: exit 78 naming the file, the profile, the key
`headers` and the header (never its value) in `config validate`, `check` and every helper run.
Black-box runs of the installed executable."""

from __future__ import annotations

import pytest

from blackbox_env import Env

pytestmark = pytest.mark.blackbox

STATIC = "pk-static-0001-abcdef"
CONTEXTS = ("interactive", "mid-session-refresh", "scheduled-task", "setup-test", "background")


def config(gk: Env, headers: str, scheme: str = "bearer") -> None:
    gk.write_config(
        'default_profile = "gw"\n'
        + gk.counting_profile(
            "gw", f'output = "json"\nauth_scheme = "{scheme}"\nheaders = {headers}'
        ),
        run_log=False,  # the refusal names the header, which the log check would misread
    )


def assert_names_the_header(gk: Env, err: str, header: str) -> None:
    assert str(gk.config_path) in err
    assert 'profile "gw"' in err
    assert 'key "headers"' in err
    assert f'header "{header}"' in err
    assert STATIC not in err
    assert "Bearer static" not in err


LITERALS = [
    ("x-portkey-api-key", f'{{ "x-portkey-api-key" = "{STATIC}" }}'),
    ("Ocp-Apim-Subscription-Key", f'{{ "Ocp-Apim-Subscription-Key" = "{STATIC}" }}'),
    ("X-Corp-Session-Token", f'{{ "X-Corp-Session-Token" = "{STATIC}" }}'),
    ("x-api-key", f'{{ "x-api-key" = "{STATIC}" }}'),  # bearer: not the app's header, a secret
]


@pytest.mark.parametrize(("header", "headers"), LITERALS, ids=[h for h, _ in LITERALS])
def test_a_literal_credential_header_is_refused_everywhere(
    gk: Env, header: str, headers: str
) -> None:
    config(gk, headers)
    for argv in (("config", "validate"), ("check", "-p", "gw")):
        r = gk.run(*argv)
        assert r.code == 78, (argv, r.err)
        assert r.stdout == b""
        assert_names_the_header(gk, r.err, header)
    for context in CONTEXTS:
        r = gk.run(context=context)
        r.assert_clean_failure(78)
        assert_names_the_header(gk, r.err, header)
        assert "reference it instead" in r.err
    assert gk.count() == 0  # refused before the source was asked


@pytest.mark.parametrize(
    ("scheme", "header", "value"),
    [
        ("bearer", "Authorization", '"Bearer static"'),
        ("bearer", "authorization", '{ env = "GW_AUTH" }'),  # not even by reference
        ("bearer", "Authorization", '"Bearer {token}"'),
        ("x-api-key", "X-Api-Key", '"{token}"'),
    ],
)
def test_the_header_the_app_builds_may_not_be_set_at_all(
    gk: Env, scheme: str, header: str, value: str
) -> None:
    config(gk, f'{{ "{header}" = {value} }}', scheme)
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert_names_the_header(gk, r.err, header)
    assert f'auth_scheme = "{scheme}"' in r.err
    assert "the app itself sends" in r.err
    v = gk.run("config", "validate")
    assert v.code == 78
    assert_names_the_header(gk, v.err, header)


def test_references_placeholders_and_ordinary_headers_pass(gk: Env) -> None:
    config(
        gk,
        '{ "x-portkey-api-key" = "{token}", "X-Org-Route" = "prod", '
        '"Authorization" = { env = "GW_AUTH" } }',
        "x-api-key",  # Authorization is not the app's header here: by reference it may be set
    )
    assert gk.run("config", "validate").code == 0
    r = gk.run(context="background", GW_AUTH="Bearer entra-like-0001")
    assert r.code == 0, r.err
    assert b'"x-portkey-api-key": "tok-1"' in r.stdout
    assert b'"Authorization": "Bearer entra-like-0001"' in r.stdout
