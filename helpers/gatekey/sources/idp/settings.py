"""An ``entra`` or ``oidc`` profile's settings, checked once when the source is built: what every
flow reads (flow, scopes, extra parameters, the authority and how MSAL reaches it), and the
certificate credential of client credentials. No I/O beyond reading the ca_bundle."""

from __future__ import annotations

from typing import Any

from gatekey.cache import cache_key
from gatekey.config import Profile
from gatekey.errors import ConfigError, HelperError
from gatekey.tls import check_ca_bundle

ENTRA_HOST = "https://login.microsoftonline.com"
MSAL_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# Parameters of the authorize URL that the authorization-code flow itself sets.
FLOW_PARAMS = frozenset(
    {
        "client_id",
        "client_info",
        "code_challenge",
        "code_challenge_method",
        "nonce",
        "redirect_uri",
        "response_mode",
        "response_type",
        "scope",
        "state",
    }
)


class IdpSettings:
    """One profile's settings. ConfigError (naming the file, profile and key) for what MSAL would
    refuse or a flow could not use, before anything is asked of the identity provider."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.values = profile.values
        self.flow: str = self.values["flow"]
        self.wants_id = self.values["token"] == "id"  # noqa: S105 - a setting, not a secret
        self.scopes: list[str] = list(self.values["scopes"] or [])
        reserved = MSAL_RESERVED_SCOPES & set(self.scopes)
        if reserved:
            raise ConfigError(
                f"remove {', '.join(sorted(reserved))}: they are always requested for sign-in",
                file=profile.origins.get("scopes"),
                profile=profile.name,
                key="scopes",
            )
        if self.flow == "managed-identity" and profile.kind != "entra":
            raise ConfigError(
                "flow managed-identity is for entra profiles on Azure-hosted machines",
                file=profile.origins.get("flow"),
                profile=profile.name,
                key="flow",
            )
        if self.flow == "client-credentials" and not (
            self.values.get("client_secret") or self.values.get("client_certificate")
        ):
            raise ConfigError(
                "flow client-credentials needs client_secret or client_certificate "
                '(a reference such as { env = "CORP_SECRET" })',
                file=profile.origins.get("flow"),
                profile=profile.name,
                key="client_secret",
            )
        if profile.kind == "oidc":
            issuer: str = self.values["issuer"]
            if "/" not in issuer.split("://", 1)[1]:
                raise ConfigError(
                    f"issuer {issuer} has no path; MSAL cannot use an issuer at the root of a "
                    "host (e.g. Google), so this provider is not supported yet",
                    file=profile.origins.get("issuer"),
                    profile=profile.name,
                    key="issuer",
                )
        if self.values["ca_bundle"]:
            check_ca_bundle(self.values["ca_bundle"], profile)
        # Extra parameters (oidc): audience/resource go on every token request and on the
        # browser sign-in URL; authorize_params on the sign-in URL only.
        self.extra: dict[str, str] = {
            key: self.values[key] for key in ("audience", "resource") if self.values.get(key)
        }
        self.authorize_params = {**self.extra, **self._authorize_params(profile)}
        # Refresh tokens belong to (authority, client); scopes are asked per request.
        self.state_key = cache_key(
            profile.kind, {"authority": self.authority, "client_id": self.values["client_id"]}
        )

    def _authorize_params(self, profile: Profile) -> dict[str, str]:
        params: dict[str, str] = dict(self.values.get("authorize_params") or {})
        taken = sorted(FLOW_PARAMS & set(params))
        if "login_hint" in params:
            taken.append("login_hint (use the login_hint key)")
        if taken:
            raise ConfigError(
                f"remove {', '.join(taken)} from authorize_params: the sign-in flow sets them",
                file=profile.origins.get("authorize_params"),
                profile=profile.name,
                key="authorize_params",
            )
        for key in ("audience", "resource"):
            if key in params and self.values.get(key):
                raise ConfigError(
                    f"{key} is set both as a key and in authorize_params; keep the {key} key "
                    "(it is sent on token requests too)",
                    file=profile.origins.get("authorize_params"),
                    profile=profile.name,
                    key="authorize_params",
                )
        return params

    @property
    def authority(self) -> str:
        if self.profile.kind == "oidc":
            return str(self.values["issuer"])
        host = self.values["authority_host"] or ENTRA_HOST
        return f"{host}/{self.values['tenant']}"

    @property
    def name(self) -> str:
        return self.profile.name

    def app_kwargs(self, http_client: Any) -> dict[str, Any]:
        """How an MSAL application of this profile reaches its authority."""
        kwargs: dict[str, Any] = {"http_client": http_client}
        if self.profile.kind == "oidc":
            kwargs["oidc_authority"] = self.authority
        else:
            kwargs["authority"] = self.authority
            if self.values["authority_host"]:
                # Sovereign clouds and test authorities: no instance discovery on the public cloud.
                kwargs["instance_discovery"] = False
        return kwargs

    def authority_error(self, error: ValueError) -> HelperError:
        """What MSAL's refusal of the authority (its ValueError) means for this profile."""
        key = "issuer" if self.profile.kind == "oidc" else "tenant"
        return HelperError(
            f"the identity provider at {self.authority} cannot be used ({error}); check {key}",
            profile=self.name,
        )


def broker_kwargs() -> dict[str, Any]:
    """MSAL's broker switches (WAM on Windows, Company Portal on macOS)."""
    return {"enable_broker_on_windows": True, "enable_broker_on_mac": True}


def load_certificate(pem: str, profile: Profile) -> dict[str, Any]:
    """MSAL's certificate credential from one PEM text holding the private key and certificate."""
    import hashlib
    import re
    import ssl

    key = re.search(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.S
    )
    cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if key is None or cert is None:
        raise ConfigError(
            "client_certificate must name a PEM file holding both the private key and the "
            "certificate",
            file=profile.origins.get("client_certificate"),
            profile=profile.name,
            key="client_certificate",
        )
    der = ssl.PEM_cert_to_DER_cert(cert.group(0))
    return {
        "private_key": key.group(0),
        "thumbprint": hashlib.sha1(der).hexdigest(),  # noqa: S324 - the x5t MSAL sends is SHA-1
        "public_certificate": cert.group(0),
    }
