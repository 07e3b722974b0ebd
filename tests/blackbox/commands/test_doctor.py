"""`gatekey doctor`: the installed executable against real peers (its rules in process:
tests/unit/test_doctor_rules.py).

The OpenID provider (node-oidc-provider over HTTPS, a client-credentials profile for
conf-client unless a test says otherwise), an IdP that is down (nothing listening, or
support/faulty_idp.py answering 500), and a gateway stand-in (support/gateway_stub.py) that
answers GET /v1/models with 200 / 401 / 403 / 404 and remembers what it was sent.

"This machine's trust store" for the process under test is SSL_CERT_FILE (OpenSSL's default
paths, which truststore uses on Linux): the test CA, unless a test leaves it out. Claude's
managed settings are written under GATEKEY_MANAGED_ROOT, never read from the real /etc.
Tokens and secrets are compared, never printed: assertions about them take a computed bool.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import Env, Result, exe
from claude_managed import doctor_lines
from faulty_idp import FaultyIdp
from gateway_stub import GatewayStub
from idp_helpers import (
    age_msal_access_token,
    idp_profile,
    login,
    make_expired,
    read_msal,
    refresh_token,
    revoke,
)
from idp_helpers import cc_profile as idp_cc_profile
from oidc_peer import API_AUDIENCE, PUBLIC_CLIENT, OidcProvider, make_tls

pytestmark = pytest.mark.blackbox

SECRET = "conf-secret"
CHECKS = ("config", "claude", "helper", "source", "sign-in", "clock", "token", "gateway", "ttl")
TTL_KEY = "inferenceCredentialHelperTtlSec"
TIMEOUT_KEY = "inferenceCredentialHelperTimeoutSec"
URL_KEY = "inferenceGatewayBaseUrl"


# --- set-up ------------------------------------------------------------------------------------
@pytest.fixture
def doc(gk: Env) -> Env:
    """gk with an empty managed root (the real /etc/claude-desktop is never read)."""
    root = gk.root / "managed-root"
    root.mkdir()
    gk.vars["GATEKEY_MANAGED_ROOT"] = str(root)
    gk.vars["CONF_SECRET"] = SECRET
    return gk


@pytest.fixture
def gateway(oidc_tls: dict[str, str]) -> Iterator[GatewayStub]:
    """An HTTPS gateway whose certificate the test CA signed."""
    with GatewayStub(oidc_tls) as stub:
        yield stub


def trust(gk: Env, ca: str) -> None:
    """Make ``ca`` part of this machine's trust store for gatekey's runs."""
    gk.vars["SSL_CERT_FILE"] = ca


def claude_settings(gk: Env, mode: int = 0o644, **values: str) -> Path:
    """Write Claude's managed-settings.json under the test's managed root: a gateway whose
    credential helper is the installed gatekey, with the test's values."""
    values = {
        "inferenceProvider": "gateway",
        "inferenceCredentialKind": "helper-script",
        "inferenceCredentialHelper": exe(),
        **values,
    }
    path = Path(gk.vars["GATEKEY_MANAGED_ROOT"]) / "etc/claude-desktop/managed-settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    for d in (path.parent, path.parent.parent):
        d.chmod(0o755)
    path.write_text(json.dumps(values))
    path.chmod(mode)
    return path


def cc_profile(
    op: OidcProvider | None,
    *,
    issuer: str | None = None,
    ca: str | None = None,
    min_ttl: str = "35m",
    extra: str = "",
) -> str:
    """The client-credentials profile "svc" (conf-client)."""
    issuer = issuer or (op.issuer if op else "")
    ca = ca or (op.ca if op else "")
    return (
        '[profiles.svc]\nsource = "oidc"\n'
        f'issuer = "{issuer}"\nclient_id = "conf-client"\n'
        'client_secret = { env = "CONF_SECRET" }\nflow = "client-credentials"\n'
        f'scopes = ["api.read"]\nca_bundle = "{ca}"\nmin_ttl = "{min_ttl}"\n{extra}\n'
    )


def token_of(gk: Env, profile: str = "svc") -> str:
    r = gk.run("get", "-p", profile)
    assert r.code == 0, r.err
    return r.out.strip()


# --- reading the report -------------------------------------------------------------------------
def report(r: Result) -> dict[str, tuple[str, str]]:
    """{check: (verdict, text with its fix lines)} from the human report: every check, in order."""
    found = doctor_lines(r)
    assert tuple(found) == CHECKS, r.out
    return found


def verdicts(r: Result) -> dict[str, str]:
    return {name: v for name, (v, _) in report(r).items()}


def as_json(r: Result) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def checks_of(r: Result) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in as_json(r)["checks"]}


def no_secret(r: Result, *secrets: str) -> None:
    """None of ``secrets`` (nor a JWT's signature) is in any output; the values stay unprinted."""
    text = r.out + r.err
    for secret in secrets:
        assert secret
        leaked = secret in text or (secret.count(".") == 2 and secret.rsplit(".", 1)[1] in text)
        assert not leaked, "a secret reached doctor's output"


def failed(r: Result, *names: str) -> None:
    assert r.code == 1, f"exit {r.code}: {r.out}{r.err}"
    assert "Traceback" not in r.err, r.err
    last = r.err.splitlines()[-1]  # after any warning the run logged, as a get would
    assert last.startswith("gatekey: doctor: "), r.err
    for name in names:
        assert name in last


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- healthy -------------------------------------------------------------------------------------
@pytest.mark.oidc
def test_a_healthy_setup_passes_every_check(
    doc: Env, oidc_provider: OidcProvider, gateway: GatewayStub
):
    trust(doc, oidc_provider.ca)
    doc.write_config(cc_profile(oidc_provider))
    claude_settings(doc, **{TTL_KEY: "1800", TIMEOUT_KEY: "60", URL_KEY: gateway.url})
    token = token_of(doc)
    requests_before = oidc_provider.token_requests()

    r = doc.run("doctor")
    assert r.code == 0, r.out + r.err
    assert r.err == "", r.err
    assert verdicts(r) == {
        "config": "OK",
        "claude": "OK",
        "helper": "OK",
        "source": "OK",
        "sign-in": "SKIP",  # client credentials: no person signs in
        "clock": "OK",
        "token": "OK",
        "gateway": "OK",
        "ttl": "OK",
    }
    lines = report(r)
    assert "from gatekey's cache" in lines["token"][1]
    assert "2 model(s)" in lines["gateway"][1]
    assert "fix:" not in r.out
    assert r.out.rstrip().endswith("all checks passed")
    sent_bearer = gateway.got("authorization", f"Bearer {token}")
    assert sent_bearer, "the gateway did not get the profile's token as a bearer token"
    assert gateway.got("anthropic-version", "2023-06-01")
    # Diagnostic: the cached token was used; the provider saw no token request from doctor.
    assert oidc_provider.token_requests() == requests_before

    j = doc.run("doctor", "--json")
    assert j.code == 0, j.err
    data = as_json(j)
    assert data["ok"] is True
    assert (data["profile"], data["source"]) == ("svc", "oidc")
    checks = checks_of(j)
    assert list(checks) == list(CHECKS)
    assert checks["ttl"]["data"]["ttl"] == 1800
    assert checks["ttl"]["data"]["lifetime"] == pytest.approx(3600, abs=5)
    assert checks["gateway"]["data"]["status"] == 200
    debug = doc.run("--debug", "doctor")
    assert debug.code == 0, debug.err
    for result in (r, j, debug):
        no_secret(result, token, SECRET)


@pytest.mark.oidc
def test_an_explicit_gateway_url_wins_and_doctor_never_colours_a_pipe(
    doc: Env, oidc_provider: OidcProvider, gateway: GatewayStub
):
    trust(doc, oidc_provider.ca)
    doc.write_config(cc_profile(oidc_provider))
    claude_settings(doc, **{TTL_KEY: "1800", URL_KEY: "https://127.0.0.1:1/unused"})
    r = doc.run("doctor", "--gateway-url", gateway.url)
    assert r.code == 0, r.out
    assert "\033[" not in r.out
    assert len(gateway.requests) == 1


@pytest.mark.oidc
def test_an_entra_profile_is_discovered_at_its_tenant(
    doc: Env, entra_provider: OidcProvider, gateway: GatewayStub
):
    trust(doc, entra_provider.ca)
    doc.write_config(idp_cc_profile(entra_provider, '{ env = "CONF_SECRET" }', kind="entra"))
    claude_settings(doc, **{TTL_KEY: "300", URL_KEY: gateway.url})  # its min_ttl is 10m
    r = doc.run("doctor")
    assert r.code == 0, r.out + r.err
    source = report(r)["source"]
    assert source[0] == "OK"
    assert f"{entra_provider.origin}/{entra_provider.tenant}/v2.0/.well-known/" in source[1]
    assert verdicts(r)["gateway"] == "OK"


# --- the identity provider down ----------------------------------------------------------------
def test_an_unreachable_idp_fails_with_a_fix(doc: Env, oidc_tls: dict[str, str]):
    issuer = f"https://127.0.0.1:{closed_port()}/oidc"
    doc.write_config(cc_profile(None, issuer=issuer, ca=oidc_tls["ca"]))
    r = doc.run("doctor")
    failed(r, "source", "token")
    lines = report(r)
    assert lines["source"][0] == "FAIL"
    assert "cannot reach 127.0.0.1" in lines["source"][1]
    assert "fix: check the network or VPN" in lines["source"][1]
    assert lines["clock"][0] == "SKIP"
    assert lines["token"][0] == "FAIL"
    assert "fix:" in lines["token"][1]
    assert lines["gateway"][0] == "SKIP"
    no_secret(r, SECRET)


def test_an_idp_whose_token_endpoint_fails_is_reported_at_the_token(
    doc: Env, oidc_tls: dict[str, str]
):
    with FaultyIdp(oidc_tls, mode="500") as idp:  # discovery answers; the token endpoint 500s
        doc.write_config(cc_profile(None, issuer=idp.issuer, ca=oidc_tls["ca"]))
        r = doc.run("doctor")
    failed(r, "token")
    lines = report(r)
    assert lines["source"][0] == "OK"
    assert lines["token"][0] == "FAIL"
    assert "500" in lines["token"][1]
    assert "--force-refresh" in lines["token"][1]


# --- the gateway's answers ---------------------------------------------------------------------
GATEWAY_CASES = {
    "401": (
        401,
        'Bearer realm="llm-gateway"',
        "invalid credentials",
        ["does not accept the credential", "(invalid credentials)"],
        ['set auth_scheme = "x-api-key"', "gatekey inspect -p svc"],
    ),
    "wrong-audience": (
        401,
        'Bearer error="invalid_token", error_description="audience"',
        "",
        ["rejects the token's audience (audience)", f"aud={API_AUDIENCE}"],
        ["audience or resource", "accept that audience"],
    ),
    "403": (
        403,
        None,
        "model access denied for this team",
        ["refuses it access (model access denied for this team)"],
        ["ask the gateway's admins to allow this identity", "client_id=conf-client"],
    ),
    "404": (
        404,
        None,
        "not here",
        ["no models endpoint there"],
        ["check the base URL", "list them in Claude's configuration"],
    ),
}


@pytest.mark.oidc
@pytest.mark.parametrize("case", list(GATEWAY_CASES))
def test_gateway_refusals_are_interpreted(
    doc: Env, oidc_provider: OidcProvider, gateway: GatewayStub, case: str
):
    status, challenge, message, says, fixes = GATEWAY_CASES[case]
    gateway.answer(status, challenge=challenge, message=message)
    trust(doc, oidc_provider.ca)
    doc.write_config(cc_profile(oidc_provider))
    claude_settings(doc, **{TTL_KEY: "1800", URL_KEY: gateway.url})
    token = token_of(doc)
    r = doc.run("doctor")
    failed(r, "gateway")
    verdict, text = report(r)["gateway"]
    assert verdict == "FAIL"
    assert f"answered {status}" in text
    for part in [*says, *fixes]:
        assert part in text, text
    assert verdicts(r)["token"] == "OK"
    no_secret(r, token, SECRET)


@pytest.mark.oidc
def test_a_base_url_ending_in_v1_is_named(
    doc: Env, oidc_provider: OidcProvider, gateway: GatewayStub
):
    trust(doc, oidc_provider.ca)
    doc.write_config(cc_profile(oidc_provider))
    claude_settings(doc, **{TTL_KEY: "1800"})
    r = doc.run("doctor", "--gateway-url", gateway.url + "/v1/")
    failed(r, "gateway")
    assert gateway.requests[-1][1] == "/v1/v1/models"
    assert "drop the trailing /v1" in report(r)["gateway"][1]


@pytest.mark.oidc
def test_x_api_key_scheme_and_headers_are_sent_as_claude_would(
    doc: Env, oidc_provider: OidcProvider, gateway: GatewayStub
):
    trust(doc, oidc_provider.ca)
    doc.write_config(
        cc_profile(
            oidc_provider,
            extra='auth_scheme = "x-api-key"\noutput = "json"\n'
            'headers = { "X-Org-Route" = "prod", "X-Client" = "{claims.client_id}" }',
        )
    )
    claude_settings(
        doc,
        **{
            TTL_KEY: "1800",
            URL_KEY: gateway.url,
            "inferenceGatewayAuthScheme": "x-api-key",
            "inferenceCustomHeaders": json.dumps({"X-Team": "blue", "X-Org-Route": "overridden"}),
        },
    )
    token = token_of(doc)
    r = doc.run("doctor")
    assert r.code == 0, r.out + r.err
    assert verdicts(r)["gateway"] == "OK"
    sent_key = gateway.got("x-api-key", json.loads(token)["token"])
    assert sent_key, "the gateway did not get the token as x-api-key"
    assert "authorization" not in gateway.requests[-1][2]
    assert gateway.got("x-org-route", "prod")  # the helper's header wins over Claude's
    assert gateway.got("x-team", "blue")
    assert gateway.got("x-client", "conf-client")
    no_secret(r, json.loads(token)["token"], SECRET)


@pytest.mark.oidc
def test_an_auth_scheme_that_differs_from_claudes_is_a_warning(
    doc: Env, oidc_provider: OidcProvider, gateway: GatewayStub
):
    trust(doc, oidc_provider.ca)
    doc.write_config(cc_profile(oidc_provider))
    claude_settings(
        doc, **{TTL_KEY: "1800", URL_KEY: gateway.url, "inferenceGatewayAuthScheme": "x-api-key"}
    )
    r = doc.run("doctor")
    assert r.code == 0, r.out  # a warning does not fail doctor
    verdict, text = report(r)["gateway"]
    assert verdict == "WARN"
    assert "inferenceGatewayAuthScheme" in text


# --- TLS to the gateway ------------------------------------------------------------------------
@pytest.mark.oidc
def test_a_gateway_certificate_nobody_trusts_fails(
    doc: Env, oidc_provider: OidcProvider, tmp_path: Path
):
    other = make_tls(tmp_path / "other-ca")  # a CA neither the trust store nor ca_bundle has
    trust(doc, oidc_provider.ca)
    doc.write_config(cc_profile(oidc_provider))
    claude_settings(doc, **{TTL_KEY: "1800"})
    with GatewayStub(other) as stub:
        r = doc.run("doctor", "--gateway-url", stub.url)
        assert stub.requests == []  # the token never went to an unverified server
    failed(r, "gateway")
    verdict, text = report(r)["gateway"]
    assert verdict == "FAIL"
    assert "TLS with 127.0.0.1" in text
    assert "certificate" in text
    assert "fix: 127.0.0.1:" in text
    assert "trust store" in text


@pytest.mark.oidc
def test_a_gateway_trusted_only_through_ca_bundle_is_a_warning(
    doc: Env, oidc_provider: OidcProvider, gateway: GatewayStub
):
    # No SSL_CERT_FILE: the OS trust store lacks the test CA; only the profile's ca_bundle has it.
    doc.write_config(cc_profile(oidc_provider))
    claude_settings(doc, **{TTL_KEY: "1800", URL_KEY: gateway.url})
    r = doc.run("doctor")
    assert r.code == 0, r.out + r.err
    verdict, text = report(r)["gateway"]
    assert verdict == "WARN"
    assert "trusted only through the profile's ca_bundle" in text
    assert "trust store" in text


# --- Claude's TTL and timeout --------------------------------------------------------------------
TTL_CASES = {
    # settings, profile's min_ttl, verdict, parts of the ttl line
    "fits": ({TTL_KEY: "1800", TIMEOUT_KEY: "60"}, "35m", "OK", ["these fit", "1800 s"]),
    "too-long": (
        {TTL_KEY: "3600"},
        "35m",
        "FAIL",
        [
            "inferenceCredentialHelperTtlSec 3600 s is longer than a new token's 3600 s",
            "fix: set inferenceCredentialHelperTtlSec to at most 3300",
            "min_ttl 2100 s is shorter than the TTL suggested above (3300 s)",
            'between 3300 s and 3569 s (e.g. min_ttl = "3540s")',
        ],
    ),
    "app-defaults": (
        None,
        "35m",
        "FAIL",
        ["the app's defaults", "Claude keeps a token 3600 s", "at most 3300"],
    ),
    "min-ttl-below-ttl": (
        {TTL_KEY: "2400"},
        "35m",
        "FAIL",
        ["min_ttl 2100 s is shorter than the app's TTL (2400 s)", 'min_ttl = "2700s"'],
    ),
    "min-ttl-too-long": (
        {TTL_KEY: "1800"},
        "65m",
        "WARN",
        ["not shorter than a new token's lifetime", "between 1800 s and 3569 s"],
    ),
    "ttl-too-short": ({TTL_KEY: "100"}, "35m", "WARN", ["does not re-run the helper"]),
    "timeout-too-short": (
        {TTL_KEY: "1800", TIMEOUT_KEY: "5"},
        "35m",
        "FAIL",
        ["inferenceCredentialHelperTimeoutSec 5 s is shorter than gatekey's silent deadline"],
    ),
    "not-a-number": ({TTL_KEY: "half an hour"}, "35m", "FAIL", ["not a whole number"]),
}


@pytest.mark.oidc
@pytest.mark.parametrize("case", list(TTL_CASES))
def test_ttl_advice_names_values_that_work(doc: Env, oidc_provider: OidcProvider, case: str):
    settings, min_ttl, verdict, parts = TTL_CASES[case]
    trust(doc, oidc_provider.ca)
    doc.write_config(cc_profile(oidc_provider, min_ttl=min_ttl))
    if settings is not None:
        claude_settings(doc, **settings)
    r = doc.run("doctor")
    got, text = report(r)["ttl"]
    assert got == verdict, text
    for part in parts:
        assert part in text, text
    assert (r.code == 1) == (verdict == "FAIL"), r.out + r.err
    assert {v for name, v in verdicts(r).items() if name != "ttl"} <= {"OK", "SKIP"}


def test_a_settings_file_claude_would_reject_is_named(doc: Env):
    doc.write_config(doc.counting_profile("cmd"))
    path = claude_settings(doc, mode=0o666, **{TTL_KEY: "1800"})
    r = doc.run("doctor")
    failed(r, "ttl")
    verdict, text = report(r)["ttl"]
    assert verdict == "FAIL"
    assert f"Claude ignores {path}: group/world writable (mode 666)" in text
    assert f"sudo chmod 644 {path}" in text


# --- sign-in -------------------------------------------------------------------------------------
@pytest.mark.oidc
def test_a_profile_never_signed_in_says_to_log_in_and_opens_nothing(
    doc: Env, oidc_provider: OidcProvider
):
    trust(doc, oidc_provider.ca)
    doc.write_config(
        "[profiles.user]\n"
        f'source = "oidc"\nissuer = "{oidc_provider.issuer}"\nclient_id = "{PUBLIC_CLIENT}"\n'
        f'scopes = ["api.read"]\nflow = "device-code"\ntoken_cache = "file"\n'
        f'ca_bundle = "{oidc_provider.ca}"\nmin_ttl = "35m"\n'
    )
    claude_settings(doc, **{TTL_KEY: "1800"})
    before = oidc_provider.requests_log()
    r = doc.run("doctor", context="interactive")  # even so: doctor never signs in
    failed(r, "sign-in")
    lines = report(r)
    assert lines["sign-in"][0] == "FAIL"
    assert "not signed in" in lines["sign-in"][1]
    assert "fix: run: gatekey login -p user" in lines["sign-in"][1]
    assert lines["token"][0] == "SKIP"
    # Claude's default 60 s is less than gatekey's 120 s for a person signing in.
    assert lines["ttl"][0] == "WARN"
    assert "gatekey login -p user" in lines["ttl"][1]
    new = [req for req in oidc_provider.requests_log()[len(before) :] if req[0] == "POST"]
    assert new == []  # no device code requested, no token request
    assert "to sign in" not in r.err
    assert "device" not in r.err.lower()


@pytest.mark.oidc
@pytest.mark.slow
def test_a_signed_in_user_passes_until_the_refresh_token_dies(
    doc: Env, make_oidc_provider: Callable[..., OidcProvider]
):
    op = make_oidc_provider()  # its own: this test revokes a grant
    trust(doc, op.ca)
    doc.write_config(idp_profile(op, min_ttl="35m"))
    claude_settings(doc, **{TTL_KEY: "1800", TIMEOUT_KEY: "180"})
    login(doc, op)
    rt = refresh_token(read_msal(doc))

    r = doc.run("doctor")
    assert r.code == 0, r.out + r.err
    lines = report(r)
    assert lines["sign-in"] == ("OK", "signed in as alice@example.test; kept in a user-only file")
    assert lines["token"][0] == "OK"
    assert lines["ttl"][0] == "OK"
    no_secret(r, rt)

    revoke(op, rt)  # as an admin or a password reset would
    make_expired(doc)
    age_msal_access_token(doc, -60)
    r = doc.run("doctor")
    failed(r, "token")
    lines = report(r)
    assert lines["sign-in"][0] == "OK"  # still saved: only the provider knows it is dead
    assert lines["token"][0] == "FAIL"
    assert "fix: run: gatekey login -p user" in lines["token"][1]
    no_secret(r, rt)
    # A silent get drops the dead sign-in; doctor, which does what a silent get does, too.
    again = report(doc.run("doctor"))
    assert again["sign-in"][0] == "FAIL"
    assert "fix: run: gatekey login -p user" in again["sign-in"][1]


# --- other sources and the config --------------------------------------------------------------
def test_a_command_source_passes_without_a_network(doc: Env):
    doc.write_config(doc.counting_profile("cmd", 'min_ttl = "65m"'))
    r = doc.run("doctor", TOKEN="tok-doctor-command-secret")
    assert r.code == 0, r.out + r.err
    v = verdicts(r)
    assert (v["source"], v["token"], v["ttl"], v["gateway"]) == ("OK", "OK", "OK", "SKIP")
    assert "fetched from the source" in report(r)["token"][1]
    no_secret(r, "tok-doctor-command-secret")


def test_a_missing_command_fails_at_the_source(doc: Env):
    doc.write_config('[profiles.cmd]\nsource = "command"\ncommand = ["no-such-tool-xyz"]\n')
    r = doc.run("doctor")
    failed(r, "source")
    verdict, text = report(r)["source"]
    assert verdict == "FAIL"
    assert "no-such-tool-xyz is not found" in text
    assert "fix: install it, or set command to its absolute path" in text


def test_a_keychain_without_a_secret_service_says_what_to_start(doc: Env):
    r = doc.run("doctor")  # no config: the built-in keychain profile; no D-Bus here
    failed(r, "source")
    lines = report(r)
    assert lines["config"][0] == "OK"
    assert "the built-in profile" in lines["config"][1]
    assert lines["source"][0] == "FAIL"
    assert "dbus-run-session" in lines["source"][1]
    assert lines["token"][0] == "SKIP"


def test_a_config_mistake_fails_and_the_rest_is_skipped(doc: Env):
    doc.write_config('[profiles.kc]\nsource = "keychain"\nacount = "x"\n')
    r = doc.run("doctor", "--json")
    failed(r, "config")
    checks = checks_of(r)
    assert checks["config"]["verdict"] == "fail"
    assert "acount" in checks["config"]["detail"]
    assert "did you mean 'account'" in checks["config"]["detail"]
    assert checks["config"]["fixes"]
    assert {checks[name]["verdict"] for name in CHECKS[1:]} == {"skip"}
    assert as_json(r)["ok"] is False
