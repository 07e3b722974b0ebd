"""Unit tests of the identity-provider source's plumbing that no peer here can exercise:
the broker switches, certificate credentials, and the browser launcher."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import trustme

from deadlines import SILENT_S
from gatekey import config
from gatekey.context import RunContext
from gatekey.errors import ConfigError
from gatekey.sources import idp
from gatekey.sources.idp import msal_state, signin
from gatekey.sources.idp.settings import load_certificate


def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> config.Profile:
    path = tmp_path / "c.toml"
    path.write_text(body)
    monkeypatch.setenv("GATEKEY_CONFIG", str(path))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("GATEKEY_CACHE_DIR", str(tmp_path / "cache"))
    return config.load().profile("p")


ENTRA = """
[profiles.p]
source = "entra"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
scopes = ["api://gw/.default"]
broker = true
token_cache = "file"
"""


def test_broker_profiles_pass_the_broker_switches_to_msal(tmp_path, monkeypatch):
    import msal

    seen: dict[str, object] = {}

    class FakeApp:
        CONSOLE_WINDOW_HANDLE = object()

        def __init__(self, client_id, **kwargs):
            seen.update(kwargs, client_id=client_id)

    monkeypatch.setattr(msal, "PublicClientApplication", FakeApp)
    source = idp.IdpSource(profile(tmp_path, monkeypatch, ENTRA))
    run = RunContext("interactive", interactive=True, timeout=5)
    source._public_app(run, msal_state.MsalStateStore(source.settings, run))
    assert seen["enable_broker_on_windows"] is True
    assert seen["enable_broker_on_mac"] is True
    assert seen["authority"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert "instance_discovery" not in seen  # the public cloud keeps instance discovery


def test_browser_sign_in_with_a_broker_gives_msal_a_parent_window(tmp_path, monkeypatch):
    source = idp.IdpSource(profile(tmp_path, monkeypatch, ENTRA))
    calls: list[dict[str, object]] = []

    class App:
        CONSOLE_WINDOW_HANDLE = object()

        def acquire_token_interactive(self, scopes, **kwargs):
            calls.append(dict(kwargs, scopes=scopes))
            return {"access_token": "at", "expires_in": 3600}

    app = App()
    run = RunContext("interactive", interactive=True, timeout=30)
    assert signin.browser(source.settings, app, run)["access_token"] == "at"
    assert calls[0]["parent_window_handle"] is App.CONSOLE_WINDOW_HANDLE
    assert calls[0]["scopes"] == ["api://gw/.default"]
    assert 0 < calls[0]["timeout"] <= 30


def test_a_certificate_credential_has_key_certificate_and_sha1_thumbprint(tmp_path, monkeypatch):
    import hashlib
    import ssl

    ca = trustme.CA()
    leaf = ca.issue_cert("svc.example.test")
    pem = leaf.private_key_pem.bytes().decode() + leaf.cert_chain_pems[0].bytes().decode()
    credential = load_certificate(pem, profile(tmp_path, monkeypatch, ENTRA))
    cert_pem = leaf.cert_chain_pems[0].bytes().decode().strip()
    assert credential["public_certificate"].strip() == cert_pem
    assert "PRIVATE KEY" in credential["private_key"]
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    assert credential["thumbprint"] == hashlib.sha1(der).hexdigest()  # noqa: S324


def test_a_pem_without_a_key_is_a_config_error(tmp_path, monkeypatch):
    leaf = trustme.CA().issue_cert("x.test")
    with pytest.raises(ConfigError, match="private key and the certificate"):
        load_certificate(
            leaf.cert_chain_pems[0].bytes().decode(), profile(tmp_path, monkeypatch, ENTRA)
        )


def test_the_detached_browser_runs_the_command_with_the_url_and_no_stdio(tmp_path, capsys):
    marker = tmp_path / "opened"
    script = (
        "import sys, os; "
        f"open({str(marker)!r}, 'w').write(sys.argv[1] + ' ' + str(os.getsid(0) == os.getpid()))"
    )
    launcher = signin.DetachedBrowser([sys.executable, "-c", script], profile="p")
    assert launcher.open("https://idp.example.test/auth?x=1") is True
    deadline = time.monotonic() + SILENT_S  # a silent run's deadline: ample for one start
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.02)
    url, own_session = marker.read_text().split()
    assert url == "https://idp.example.test/auth?x=1"
    assert own_session == "True"  # detached: a new session, not our process group
    assert "open https://idp.example.test/auth?x=1" in capsys.readouterr().err


def test_browser_command_placeholder_and_environment(monkeypatch):
    monkeypatch.setenv("BROWSER", "firefox --new-window" + os.pathsep + "chromium")
    assert signin._browser_from_environment() == ["firefox", "--new-window"]
    launcher = signin.DetachedBrowser(["/bin/true", "--url=%s"], profile="p")
    assert launcher.command == ["/bin/true", "--url=%s"]


MI = """
[profiles.p]
source = "entra"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
scopes = ["api://llm-gateway/.default"]
flow = "managed-identity"
managed_identity_client_id = "mi-client-id"
"""


class FakeImds:
    """Answers MSAL's IMDS request the way Azure's instance metadata service does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, dict]] = []

    def get(self, url, params=None, headers=None, **kwargs):
        import json as _json
        from types import SimpleNamespace

        self.calls.append((url, dict(params or {}), dict(headers or {})))
        body = {"access_token": "mi-token", "expires_in": "3599", "resource": params["resource"]}
        return SimpleNamespace(status_code=200, text=_json.dumps(body), headers={})

    def post(self, *args, **kwargs):
        raise AssertionError("managed identity on a VM only GETs")

    def close(self):
        pass


def test_managed_identity_asks_imds_for_the_gateway_resource(tmp_path, monkeypatch):
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(var, raising=False)
    source = idp.IdpSource(profile(tmp_path, monkeypatch, MI))
    imds = FakeImds()
    token = source._managed_identity(RunContext("background", interactive=False, timeout=5), imds)
    assert token.value == "mi-token"
    assert 3500 < token.lifetime <= 3599
    (url, params, headers) = imds.calls[0]
    assert url.startswith("http://169.254.169.254/metadata/identity/oauth2/token")
    assert params["resource"] == "api://llm-gateway"  # scopes' /.default removed
    assert params["client_id"] == "mi-client-id"
    assert headers.get("Metadata") == "true"


def test_managed_identity_is_for_entra_only(tmp_path, monkeypatch):
    body = MI.replace('source = "entra"', 'source = "oidc"\nissuer = "https://idp.test/x"')
    body = body.replace('tenant = "contoso.onmicrosoft.com"\n', "")
    body = body.replace('managed_identity_client_id = "mi-client-id"\n', "")
    with pytest.raises(ConfigError, match="managed-identity is for entra"):
        idp.IdpSource(profile(tmp_path, monkeypatch, body))


OIDC_CC = """
[profiles.p]
source = "oidc"
issuer = "https://idp.example.test/oauth2/default"
client_id = "svc"
client_secret = { env = "SVC_SECRET" }
flow = "client-credentials"
scopes = ["gateway.use"]
audience = "https://llm-gw.example.test"
resource = "https://llm-gw.example.test/api"
"""


class RecordingHttp:
    """Answers MSAL's discovery GET and token POST, recording what was sent."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []

    def get(self, url, params=None, headers=None, **kwargs):
        import json as _json
        from types import SimpleNamespace

        base = "https://idp.example.test/oauth2/default"
        doc = {
            "issuer": base,
            "authorization_endpoint": base + "/v1/authorize",
            "token_endpoint": base + "/v1/token",
            "device_authorization_endpoint": base + "/v1/device/authorize",
        }
        return SimpleNamespace(status_code=200, text=_json.dumps(doc), headers={})

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        import json as _json
        from types import SimpleNamespace

        self.posts.append((url, dict(data or {})))
        body = {"access_token": "at-xyz", "token_type": "Bearer", "expires_in": 3600}
        return SimpleNamespace(status_code=200, text=_json.dumps(body), headers={})

    def close(self):
        pass


def test_audience_and_resource_are_sent_on_token_requests(tmp_path, monkeypatch):
    monkeypatch.setenv("SVC_SECRET", "s3cret-value")
    source = idp.IdpSource(profile(tmp_path, monkeypatch, OIDC_CC))
    http = RecordingHttp()
    monkeypatch.setattr(source, "_session", lambda run: http)
    token = source.fetch(RunContext("background", interactive=False, timeout=5))
    assert token.value == "at-xyz"
    url, data = http.posts[-1]
    assert url.endswith("/v1/token")
    assert data["grant_type"] == "client_credentials"
    assert data["audience"] == "https://llm-gw.example.test"
    assert data["resource"] == "https://llm-gw.example.test/api"


def test_without_them_nothing_extra_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("SVC_SECRET", "s3cret-value")
    body = OIDC_CC.replace('audience = "https://llm-gw.example.test"\n', "").replace(
        'resource = "https://llm-gw.example.test/api"\n', ""
    )
    source = idp.IdpSource(profile(tmp_path, monkeypatch, body))
    http = RecordingHttp()
    monkeypatch.setattr(source, "_session", lambda run: http)
    source.fetch(RunContext("background", interactive=False, timeout=5))
    assert "audience" not in http.posts[-1][1]
    assert "resource" not in http.posts[-1][1]
