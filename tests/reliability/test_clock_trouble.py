"""Clock trouble (issue 7, item 4): this machine's clock ahead of or behind the IdP's, for real.

The clocks are really moved, with libfaketime (``faketime``, installed by the test command):
either the real OIDC provider runs on a shifted clock (its tokens' ``iat``/``exp`` and its
``Date`` header move), or the installed ``gatekey`` does (its notion of now, in the cache and on
the fast path). The gateway is PyJWT's strict validation (no leeway, ``iat`` in the future
refused) on the real clock, with the provider's own JWKS, right after the run: no token gatekey
prints may fail it. ``gatekey doctor`` must report the difference in both directions.

The policy (helpers/gatekey/clocks.py): the earlier of ``expires_in`` and the ``exp`` claim
wins; a token not yet valid by this machine's clock is waited for up to 10 s, and refused
beyond with the measured difference (exit 1); a token issued by a clock more than a minute
behind ours is printed with one warning and refreshed early.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from blackbox_env import Env
from oidc_peer import OidcProvider, session

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
API = "https://api.example.test"

pytestmark = [
    pytest.mark.oidc,
    pytest.mark.skipif(
        not FAKETIME_LIB.exists(), reason="faketime not installed; run the README's test command"
    ),
]


def shifted(offset: str) -> dict[str, str]:
    """Environment running a process on a clock moved by ``offset`` (faketime: "+10m", "-3s")."""
    return {
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # deadlines stay real
    }


def client_credentials(gk: Env, provider: OidcProvider) -> None:
    gk.vars["CONF_SECRET"] = "conf-secret"
    gk.write_config(
        "[profiles.svc]\n"
        'source = "oidc"\n'
        f'issuer = "{provider.issuer}"\n'
        'client_id = "conf-client"\n'
        'client_secret = { env = "CONF_SECRET" }\n'
        'flow = "client-credentials"\n'
        'scopes = ["api.read"]\n'
        f'audience = "{API}"\n'
        f'ca_bundle = "{provider.ca}"\n'
        'min_ttl = "10m"\n'
    )


def gateway_accepts(provider: OidcProvider, token: str) -> dict[str, object]:
    """The token passes a strict gateway on the real clock: signature, audience, exp, nbf, iat."""
    s = session(provider.ca)
    jwks_uri = s.get(f"{provider.issuer}/.well-known/openid-configuration").json()["jwks_uri"]
    header = jwt.get_unverified_header(token)
    keys = [k for k in s.get(jwks_uri).json()["keys"] if k.get("kid") == header.get("kid")]
    assert keys, "the token's key is not in the provider's JWKS"
    claims: dict[str, object] = jwt.decode(
        token,
        jwt.PyJWK(keys[0]).key,
        algorithms=[header["alg"]],
        audience=API,
        leeway=0,
        options={"require": ["exp", "iat"]},
    )
    return claims


def cached_expiry(gk: Env) -> float:
    entry = json.loads(gk.entry_path().read_text())
    return float(entry["expires_at"])


@pytest.fixture
def provider_at(make_oidc_provider: Callable[..., OidcProvider]) -> Callable[[str], OidcProvider]:
    return lambda offset: make_oidc_provider(**shifted(offset))


def test_idp_behind_ours_prints_a_token_the_gateway_accepts_and_refreshes_it_early(
    gk: Env, provider_at: Callable[[str], OidcProvider]
) -> None:
    provider = provider_at("-10m")
    client_credentials(gk, provider)
    r = gk.run(context="background")
    assert r.code == 0, r.err
    token = r.out.rstrip("\n")
    claims = gateway_accepts(provider, token)
    # One warning, naming the difference and the way out.
    assert len(r.err.splitlines()) == 1, r.err
    assert "10 min ahead of the source's" in r.err, r.err
    assert "timedatectl" in r.err
    # The cache keeps it until its claim says, not the 10 min longer expires_in would.
    assert cached_expiry(gk) == pytest.approx(float(claims["exp"]), abs=1)  # type: ignore[arg-type]
    again = gk.run(context="background")
    assert (again.code, again.stdout, again.stderr) == (0, r.stdout, b"")  # a quiet cache hit


def test_idp_ahead_of_ours_is_refused_naming_the_difference(
    gk: Env, provider_at: Callable[[str], OidcProvider]
) -> None:
    provider = provider_at("+10m")
    client_credentials(gk, provider)
    r = gk.run(context="background")
    r.assert_clean_failure(1)
    assert "not valid until" in r.err, r.err
    assert "10 min behind the source's" in r.err
    assert "timedatectl" in r.err


def test_an_idp_a_few_seconds_ahead_is_waited_for(
    gk: Env, provider_at: Callable[[str], OidcProvider]
) -> None:
    provider = provider_at("+4")
    client_credentials(gk, provider)
    r = gk.run(context="background")
    assert r.code == 0, r.err
    gateway_accepts(provider, r.out.rstrip("\n"))  # valid the moment it is printed
    assert r.elapsed >= 3.0, f"printed after {r.elapsed:.1f} s: before the token was valid"
    assert r.err == ""


def test_our_clock_ahead_prints_a_token_the_gateway_accepts(
    gk: Env, oidc_provider: OidcProvider
) -> None:
    client_credentials(gk, oidc_provider)
    r = gk.run(context="background", **shifted("+10m"))
    assert r.code == 0, r.err
    claims = gateway_accepts(oidc_provider, r.out.rstrip("\n"))
    assert "10 min ahead of the source's" in r.err, r.err
    # By our (shifted) clock the token expires at its claim, 10 min before expires_in says.
    assert cached_expiry(gk) == pytest.approx(float(claims["exp"]), abs=1)  # type: ignore[arg-type]
    hit = gk.run(context="background", **shifted("+10m"))
    assert (hit.code, hit.stdout, hit.stderr) == (0, r.stdout, b"")


def test_our_clock_behind_is_refused_naming_the_difference(
    gk: Env, oidc_provider: OidcProvider
) -> None:
    client_credentials(gk, oidc_provider)
    r = gk.run(context="background", **shifted("-10m"))
    r.assert_clean_failure(1)
    assert "10 min behind the source's" in r.err, r.err


def test_a_token_already_expired_by_our_clock_is_refused(
    gk: Env, oidc_provider: OidcProvider
) -> None:
    client_credentials(gk, oidc_provider)
    r = gk.run(context="background", **shifted("+2h"))
    r.assert_clean_failure(1)
    assert "expired at" in r.err, r.err
    assert "by its own exp claim" in r.err
    assert "2 h 0 min ahead of the source's" in r.err, r.err


def test_a_cached_token_is_not_trusted_after_the_clock_moved_back(
    gk: Env, oidc_provider: OidcProvider
) -> None:
    """Obtained "in the future" by the clock now: not served from the cache (it may have
    expired for the gateway); the source is asked again."""
    client_credentials(gk, oidc_provider)
    first = gk.run(context="background", **shifted("+30m"))
    assert first.code == 0, first.err
    before = oidc_provider.token_requests()
    r = gk.run(context="background")
    assert r.code == 0, r.err
    assert oidc_provider.token_requests() == before + 1
    assert r.stdout != first.stdout
    gateway_accepts(oidc_provider, r.out.rstrip("\n"))


@pytest.mark.parametrize(
    ("who", "offset", "words"),
    [
        ("gatekey", "+10m", "ahead of"),
        ("gatekey", "-10m", "behind"),
        ("idp", "+10m", "behind"),
        ("idp", "-10m", "ahead of"),
    ],
)
def test_doctor_reports_the_skew(
    gk: Env,
    oidc_provider: OidcProvider,
    provider_at: Callable[[str], OidcProvider],
    who: str,
    offset: str,
    words: str,
) -> None:
    provider = provider_at(offset) if who == "idp" else oidc_provider
    client_credentials(gk, provider)
    extra = shifted(offset) if who == "gatekey" else {}
    r = gk.run("doctor", "-p", "svc", "--json", **extra)
    assert r.code == 1, r.err  # a 10-minute skew fails the clock check
    checks = {c["check"]: c for c in json.loads(r.out)["checks"]}
    clock = checks["clock"]
    assert clock["verdict"] == "fail", clock
    skew = float(clock["data"]["skew_seconds"])
    assert abs(abs(skew) - 600) < 5, skew
    assert (skew > 0) == (words == "ahead of")
    text = gk.run("doctor", "-p", "svc", **extra)
    assert f"10 min {words}" in text.out, text.out


def test_clock_trouble_leaves_the_sign_in_and_cache_alone(
    gk: Env, oidc_provider: OidcProvider
) -> None:
    """A refused token is not cached: once the clock is right, the next run works at once."""
    client_credentials(gk, oidc_provider)
    refused = gk.run(context="background", **shifted("-10m"))
    assert refused.code == 1
    assert not list((gk.cache_dir / "tokens").glob("*.json"))
    r = gk.run(context="background")
    assert r.code == 0, r.err
    gateway_accepts(oidc_provider, r.out.rstrip("\n"))
