"""credential_headers: which header names carry a credential (exact names and patterns, any
case), and which ones the app builds itself from the helper's token."""

from __future__ import annotations

import pytest

from gatekey import credential_headers

EXACT = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
    "x-portkey-api-key",
    "x-litellm-api-key",
)
BY_PATTERN = (
    "x-corp-api-key",  # *-api-key
    "x-session-token",  # *-token
    "x-amzn-client-secret",  # *-secret
    "x-gateway-auth",  # *auth*
    "x-authentication-info",
    "oauth-bearer",
)
ORDINARY = (
    "x-org-route",
    "x-portkey-metadata",
    "x-portkey-trace-id",
    "x-portkey-provider",
    "idempotency-key",
    "x-session-id",
    "content-type",
    "anthropic-beta",
    "x-request-id",
)


@pytest.mark.parametrize("name", EXACT + BY_PATTERN)
def test_credential_headers_in_any_case(name: str) -> None:
    for spelling in (name, name.upper(), name.title()):
        assert credential_headers.is_credential(spelling), spelling
        reason = credential_headers.why(spelling)
        assert reason is not None
        assert spelling in reason


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_headers_are_not_credentials(name: str) -> None:
    assert not credential_headers.is_credential(name)
    assert credential_headers.why(name) is None


def test_a_pattern_says_which_pattern_matched() -> None:
    assert "-api-key" in (credential_headers.why("X-Corp-Api-Key") or "")
    assert "-token" in (credential_headers.why("X-Session-Token") or "")
    assert "auth" in (credential_headers.why("X-Gateway-Auth") or "")


@pytest.mark.parametrize(
    ("name", "scheme", "built"),
    [
        ("Authorization", "bearer", True),
        ("AUTHORIZATION", "bearer", True),
        ("x-api-key", "bearer", False),
        ("X-Api-Key", "x-api-key", True),
        ("Authorization", "x-api-key", False),
        ("x-portkey-api-key", "bearer", False),
    ],
)
def test_the_header_the_app_builds_depends_on_the_auth_scheme(
    name: str, scheme: str, built: bool
) -> None:
    assert credential_headers.built_by_app(name, scheme) is built
