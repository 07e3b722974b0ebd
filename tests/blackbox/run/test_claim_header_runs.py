"""Header templates ({claims.NAME} in a profile's headers) on the installed executable: the JSON
payload on a fetch and on the cache hit, and the config errors (in process:
tests/unit/test_claim_headers.py)."""

from __future__ import annotations

import json

import pytest

from header_claims import TOKEN, command_profile

pytestmark = pytest.mark.blackbox


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
