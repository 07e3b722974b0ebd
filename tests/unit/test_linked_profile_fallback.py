"""A source that signs in through another profile (vault's ``auth.jwt_from``, Key Vault's
``credential_from``) keeps its own cached credential as the run's fallback.

refresh.get_token records the profile's cached credential on the run (RunContext.fallback) for
the deadline path to print. The linked profile's token is fetched with get_token too: on the
same RunContext it would replace the vault secret with the IdP's token (or with nothing), and
the deadline path would print the wrong credential. In-process, with get_token standing in for
the linked fetch: what it records stays on the linked run.
"""

from __future__ import annotations

from typing import Any

import pytest

from gatekey import refresh
from gatekey.context import RunContext
from gatekey.sources.azure import AzureKeyVaultSource
from gatekey.sources.vault import VaultSource
from gatekey.token import Token

LINKED_TOKEN = "linked-idp-token"
OUTER = object()  # the run's own fallback, as get_token left it for the vault profile


@pytest.fixture
def linked_get_token(monkeypatch: pytest.MonkeyPatch) -> list[RunContext]:
    """get_token for the linked profile: records its own fallback on the run it is given and
    counts a fetch, as the real one does. Returns the runs it was given."""
    given: list[RunContext] = []

    def get_token(profile: Any, run: RunContext, **_: Any) -> refresh.Outcome:
        given.append(run)
        run.fallback = "the linked profile's cached token"
        run.fetches += 1
        return refresh.Outcome(
            Token.from_expires_in(LINKED_TOKEN, 3600, source="oidc"), "fetched", []
        )

    monkeypatch.setattr(refresh, "get_token", get_token)
    return given


def _run() -> RunContext:
    run = RunContext("background", interactive=False, timeout=10)
    run.fallback = OUTER
    run.fetches = 1  # the vault profile's own fetch
    return run


def test_vault_jwt_from_keeps_the_runs_fallback(linked_get_token: list[RunContext]) -> None:
    source = VaultSource.__new__(VaultSource)  # only what _jwt reads
    source.jwt_profile = object()  # type: ignore[assignment]
    source.links = refresh.Links()  # what make_source hands every source
    run = _run()
    assert source._jwt(run) == LINKED_TOKEN
    assert run.fallback is OUTER
    [linked] = linked_get_token
    assert linked is not run
    assert linked.deadline == run.deadline  # the same budget, not a new one
    assert linked.children is run.children  # the watchdog stops what the linked fetch starts
    assert run.fetches == 2  # the run log still counts the linked request


def test_key_vault_credential_from_keeps_the_runs_fallback(
    linked_get_token: list[RunContext],
) -> None:
    source = AzureKeyVaultSource.__new__(AzureKeyVaultSource)
    source.credential_from = "corp"
    source.links = refresh.Links()
    source.entra = type("Profile", (), {"name": "corp"})()  # type: ignore[assignment]
    run = _run()
    token, where = source._access_token(run)
    assert (token, where) == (LINKED_TOKEN, 'profile "corp"')
    assert run.fallback is OUTER
    assert run.fetches == 2
