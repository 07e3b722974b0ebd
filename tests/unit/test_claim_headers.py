"""Header templates: {claims.NAME} in a profile's headers inserts a claim of the printed token.

In process (output.py, config.py); the installed executable's runs are in
tests/blackbox/run/test_claim_header_runs.py.
"""

from __future__ import annotations

import pytest

from gatekey.errors import ConfigError, MissingClaim
from gatekey.output import fill_claims
from gatekey.token import jwt_claims
from header_claims import TOKEN, command_profile


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


def test_config_error_type_for_malformed_placeholders(tmp_path, monkeypatch):
    from gatekey import config

    path = tmp_path / "c.toml"
    path.write_text(command_profile(TOKEN, '{ "X" = "{claims.}" }'))
    monkeypatch.setenv("GATEKEY_CONFIG", str(path))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError):
        config.load().profile("p")
