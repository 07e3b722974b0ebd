"""Header templates: {claims.NAME} in a profile's headers inserts a claim of the printed token."""

from __future__ import annotations

import base64
import json
import sys

import pytest

from gatekey.claims import jwt_claims
from gatekey.errors import ConfigError
from gatekey.output import MissingClaim, fill_claims

pytestmark = pytest.mark.blackbox


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


TOKEN = jwt({"oid": "0a1b", "email": "alice@example.test", "ext": {"team": "ml"}, "adm": True})


def test_claims_are_inserted_and_other_braces_are_kept():
    headers = {
        "X-User": "{claims.oid}",
        "x-portkey-metadata": '{"_user": "{claims.email}", "team": "{claims.ext.team}"}',
        "X-Admin": "{claims.adm}",
        "X-Static": "prod",
    }
    assert fill_claims(headers, TOKEN) == {
        "X-User": "0a1b",
        "x-portkey-metadata": '{"_user": "alice@example.test", "team": "ml"}',
        "X-Admin": "true",
        "X-Static": "prod",
    }


def test_headers_without_templates_need_no_jwt():
    assert fill_claims({"X": "y"}, "opaque-token") == {"X": "y"}


@pytest.mark.parametrize(
    ("token", "fragment"),
    [(TOKEN, "the token has no claim 'tid'"), ("opaque-token", "opaque")],
)
def test_a_missing_claim_is_a_clear_error(token, fragment):
    with pytest.raises(MissingClaim, match=fragment):
        fill_claims({"X-Tenant": "{claims.tid}"}, token)


def test_jwt_claims_of_non_jwts_is_none():
    assert jwt_claims("a.b") is None
    assert jwt_claims("a.!!!.c") is None
    assert jwt_claims(TOKEN)["oid"] == "0a1b"


def command_profile(token: str, headers: str) -> str:
    return (
        '[profiles.p]\nsource = "command"\noutput = "json"\n'
        f'command = [{json.dumps(sys.executable)}, "-c", {json.dumps(f"print({token!r})")}]\n'
        f"headers = {headers}\n"
    )


def test_json_output_fills_claims_on_fetch_and_on_the_cache_hit(gk):
    gk.write_config(command_profile(TOKEN, '{ "X-User" = "{claims.oid}" }'))
    expected = json.dumps({"token": TOKEN, "headers": {"X-User": "0a1b"}}).encode() + b"\n"
    first = gk.run()
    assert (first.code, first.stdout) == (0, expected), first.err
    hit = gk.run()
    assert (hit.code, hit.stdout, hit.stderr) == (0, expected, b"")


def test_a_claim_the_token_lacks_is_a_config_error_naming_headers(gk):
    gk.write_config(command_profile(TOKEN, '{ "X-Tenant" = "{claims.tid}" }'))
    result = gk.run()
    result.assert_clean_failure(78)
    assert 'profile "p": key "headers"' in result.err
    assert "tid" in result.err


def test_a_malformed_placeholder_is_caught_by_config_validate(gk):
    gk.write_config(command_profile(TOKEN, '{ "X-User" = "{claims oid}" }'))
    result = gk.run("config", "validate")
    result.assert_clean_failure(78)
    assert 'key "headers"' in result.err
    assert "{claims.NAME}" in result.err


def test_config_error_type_for_malformed_placeholders(tmp_path, monkeypatch):
    from gatekey import config

    path = tmp_path / "c.toml"
    path.write_text(command_profile(TOKEN, '{ "X" = "{claims.}" }'))
    monkeypatch.setenv("GATEKEY_CONFIG", str(path))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError):
        config.load().profile("p")
