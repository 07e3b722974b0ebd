"""clocks.settle, in process: a new token's JWT times against this machine's clock."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from gatekey import clocks
from gatekey.context import RunContext
from gatekey.errors import ClockTrouble
from gatekey.token import Token

NOW = 1_800_000_000.0


def jwt_with(**claims: float) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def token(value: str, expires_in: float | None = 3600) -> Token:
    return Token.from_expires_in(value, expires_in, source="oidc", now=NOW)


def settle(t: Token, timeout: float = 30.0) -> list[float]:
    slept: list[float] = []
    run = RunContext("background", interactive=False, timeout=timeout)
    clocks.settle(t, "oidc", "p", run, clock=lambda: NOW, sleep=slept.append)
    return slept


def test_claims_are_read_from_a_jws_and_nothing_else() -> None:
    assert clocks.jwt_times(jwt_with(exp=5, nbf=2, iat=1, sub="x")) == {  # type: ignore[arg-type]
        "exp": 5.0,
        "nbf": 2.0,
        "iat": 1.0,
    }
    deep = base64.urlsafe_b64encode(b"[" * 5000).decode()
    assert clocks.jwt_times(f"h.{deep}.s") == {}  # too deep for json: not a JWT, not a crash
    for opaque in ("opaque-token", "a.b", "a..c", "a.!!!.c", f"a.{'W10'}.c", "x.eyJleHAiOiJ4In0.y"):
        assert clocks.jwt_times(opaque) == {}


def test_an_exp_claim_earlier_than_expires_in_wins() -> None:
    t = token(jwt_with(iat=NOW - 600, exp=NOW + 3000))
    assert settle(t) == []
    assert t.expires_at == NOW + 3000


def test_a_later_exp_claim_changes_nothing() -> None:
    t = token(jwt_with(iat=NOW + 1 - 1, exp=NOW + 4200))  # our clock behind, within a second
    settle(t)
    assert t.expires_at == NOW + 3600


def test_opaque_tokens_and_tokens_without_a_lifetime_are_left_alone() -> None:
    t = token("opaque", 3600)
    settle(t)
    assert t.expires_at == NOW + 3600
    static = token(jwt_with(exp=NOW - 10), None)
    settle(static)
    assert static.expires_at is None


def test_a_token_expired_by_its_claim_is_refused() -> None:
    with pytest.raises(ClockTrouble, match="about 2 h 0 min ahead"):
        settle(token(jwt_with(iat=NOW - 7200, exp=NOW - 3600)))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_token_valid_in_a_few_seconds_is_waited_for(claim: str) -> None:
    assert settle(token(jwt_with(exp=NOW + 3604, **{claim: NOW + 4}))) == [pytest.approx(4.05)]


def test_a_token_valid_later_than_the_wait_or_the_deadline_is_refused() -> None:
    with pytest.raises(ClockTrouble, match="about 10 min behind"):
        settle(token(jwt_with(iat=NOW + 600, exp=NOW + 4200)))
    with pytest.raises(ClockTrouble, match="not valid until"):
        settle(token(jwt_with(iat=NOW + 5, exp=NOW + 3605)), timeout=4.0)


def test_our_clock_ahead_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settle(token(jwt_with(iat=NOW - 600, exp=NOW + 3000)))
    assert [r.getMessage() for r in caplog.records] == [
        "profile \"p\": this machine's clock is about 10 min ahead of the source's; correct the "
        "clock that is wrong (on Linux: timedatectl set-ntp true; gatekey doctor measures the "
        "difference); tokens are refreshed early to make up for it"
    ]


def test_a_reused_token_is_not_mistaken_for_skew(caplog: pytest.LogCaptureFixture) -> None:
    """MSAL hands back a token issued 40 min ago with its remaining lifetime: no skew."""
    with caplog.at_level(logging.WARNING):
        t = token(jwt_with(iat=NOW - 2400, exp=NOW + 1200), expires_in=1200)
        settle(t)
    assert caplog.records == []
    assert t.expires_at == NOW + 1200
