"""The azure-key-vault source: a secret from Azure Key Vault.

One documented REST call, ``GET {vault_url}/secrets/{name}[/{version}]?api-version=7.5`` with a
bearer token for Key Vault, taken from (``credential_from``):
- an ``entra`` profile of this config whose scopes are Key Vault's
  (``["https://vault.azure.net/.default"]``): the person's sign-in, cached and refreshed by
  gatekey like any IdP token;
- ``azure-cli``: ``az account get-access-token --resource <Key Vault>``, run as a command source;
- ``managed-identity``: MSAL's managed identity client (Azure-hosted machines).
Never the Azure SDK's DefaultAzureCredential probe chain, which can spend tens of seconds off
Azure. A 401 explains the bearer challenge (which tenant and resource Key Vault wants).
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote, urlsplit

from gatekey import logs
from gatekey.checks import OK, Check
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import (
    AccessDenied,
    ConfigError,
    CredentialNotFound,
    HelperError,
    TemporaryFailure,
)
from gatekey.kinds import Linker, ProbeKit
from gatekey.token import Token

API_VERSION = "7.5"
BUILTIN_CREDENTIALS = ("azure-cli", "managed-identity")
MAX_ERROR_TEXT = 200


class AzureKeyVaultSource:
    def __init__(self, profile: Profile, links: Linker) -> None:
        self.profile = profile
        self.links = links
        self.name = profile.name
        values = profile.values
        self.vault_url: str = values["vault_url"]
        self.secret_name: str = values["secret_name"]
        if not re.fullmatch(r"[0-9A-Za-z-]{1,127}", self.secret_name):
            raise self._config(
                "a Key Vault secret name has 1-127 letters, digits and dashes", "secret_name"
            )
        self.version: str | None = values["version"]
        self.credential_from: str = values["credential_from"]
        self.entra: Profile | None = None
        if self.credential_from not in BUILTIN_CREDENTIALS:
            self.entra = links.profile(
                profile,
                "credential_from",
                self.credential_from,
                accept=lambda target: target.kind == "entra",
                what="an entra profile, or be azure-cli or managed-identity",
            )
        if values["ca_bundle"]:
            from gatekey.tls import check_ca_bundle

            check_ca_bundle(values["ca_bundle"], profile)

    def _config(self, message: str, key: str) -> ConfigError:
        return ConfigError(message, file=self.profile.origins.get(key), profile=self.name, key=key)

    @property
    def resource(self) -> str:
        """Key Vault's resource for this vault's cloud: https://vault.azure.net for
        <name>.vault.azure.net, https://vault.azure.cn in China, and so on."""
        host = urlsplit(self.vault_url).hostname or ""
        return "https://" + (host.split(".", 1)[1] if host.count(".") >= 2 else host)

    # --- the source interface ----------------------------------------------------------------
    def probe(self, kit: ProbeKit) -> Check:
        """The vault's URL answers (without credentials: the token check reads the secret)."""
        response = kit.get(self.vault_url, ca_bundle=self.profile.values["ca_bundle"])
        return Check(
            "source",
            OK,
            f"Azure Key Vault at {self.vault_url} answers (HTTP {response.status_code} "
            "without credentials)",
        )

    def fetch(self, run: RunContext) -> Token:
        from gatekey.http import IdpSession

        bearer, where = self._access_token(run)
        session = IdpSession(run, ca_bundle=self.profile.values["ca_bundle"], answer_5xx=True)
        url = f"{self.vault_url}/secrets/{quote(self.secret_name)}"
        if self.version:
            url += f"/{quote(self.version)}"
        response = session.get(
            url, params={"api-version": API_VERSION}, headers={"Authorization": f"Bearer {bearer}"}
        )
        self._check(response, where)
        try:
            body = response.json()
        except ValueError:
            raise TemporaryFailure(
                "Key Vault answered with something that is not JSON", profile=self.name
            ) from None
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise CredentialNotFound(
                f"the secret {self.secret_name} in {self.vault_url} has no value",
                profile=self.name,
            )
        value = value.strip()
        logs.register_secret(value)
        attributes = body.get("attributes") or {}
        expires = attributes.get("exp") if isinstance(attributes, dict) else None
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            # The secret's own expiry date: the gateway key stops being valid then.
            return Token(
                value,
                expires_at=float(expires),
                obtained_at=time.time(),
                refresh_at=time.time() + float(self.profile.values["cache_ttl"]),
                source="azure-key-vault",
            )
        return Token.from_expires_in(
            value, None, source="azure-key-vault", cache_ttl=self.profile.values["cache_ttl"]
        )

    def _check(self, response: Any, where: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code, message = _error(response)
        secret = f"{self.secret_name} in {self.vault_url}"
        if status == 401:
            challenge = _challenge(response.headers.get("WWW-Authenticate", ""))
            wants = ""
            if challenge:
                wants = "; Key Vault wants a token " + " ".join(
                    f"{k} {v}" for k, v in challenge.items()
                )
            resource = challenge.get("resource") or self.resource
            raise AccessDenied(
                f"Key Vault rejected the token from {where} ({code or 'Unauthorized'}: "
                f"{message}){wants}; for an entra profile, set its scopes to "
                f'["{resource.rstrip("/")}/.default"]',
                profile=self.name,
            )
        if status == 403:
            inner = _inner_code(response)
            if inner == "SecretDisabled":
                raise AccessDenied(f"the secret {secret} is disabled", profile=self.name)
            raise AccessDenied(
                f"Key Vault denied reading {secret} to the identity from {where} "
                f"({inner or code or 'Forbidden'}); it needs the Key Vault Secrets User role "
                "(or a get-secret access policy)",
                profile=self.name,
            )
        if status == 404:
            raise CredentialNotFound(
                f"Key Vault has no secret {secret}"
                + (f" (version {self.version})" if self.version else ""),
                profile=self.name,
            )
        if status == 429 or status >= 500:
            raise TemporaryFailure(
                f"Key Vault answered HTTP {status} ({code or 'error'})",
                profile=self.name,
                fix="try again later",
            )
        raise HelperError(
            f"Key Vault answered HTTP {status} ({code}: {message})", profile=self.name
        )

    # --- the bearer token --------------------------------------------------------------------
    def _access_token(self, run: RunContext) -> tuple[str, str]:
        """(token, where it came from, for messages)."""
        if self.credential_from == "azure-cli":
            return self._azure_cli(run), "the Azure CLI"
        if self.credential_from == "managed-identity":
            return self._managed_identity(run), "the managed identity"
        entra = self.entra
        if entra is None:  # pragma: no cover - __init__ sets it for anything but the built-ins
            raise HelperError(f"unknown credential_from {self.credential_from!r}")
        return self.links.token(entra, run).value, f'profile "{entra.name}"'

    def _azure_cli(self, run: RunContext) -> str:
        from gatekey import sources
        from gatekey.sources.command import CommandSource

        values = {
            "command": [
                "az",
                "account",
                "get-access-token",
                "--resource",
                self.resource,
                "--output",
                "json",
            ],
            "parse": "json",
            "token_path": "accessToken",
            "expires_in_path": None,
            "expires_path": "expires_on",
            "timeout": None,
            "cache_ttl": 0.0,
        }
        cli = Profile(self.name, sources.COMMAND, values, {})
        return CommandSource(cli, self.links).fetch(run).value

    def _managed_identity(self, run: RunContext) -> str:
        from gatekey.sources.idp.managed import acquire

        result = acquire(run, self.resource, profile=self.name)  # the system-assigned identity
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str):
            raise AccessDenied(
                "the managed identity gave no token for Key Vault "
                f"({(result or {}).get('error', 'no answer')})",
                profile=self.name,
            )
        logs.register_secret(token)
        return token


def _error(response: Any) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    code = str(error.get("code") or "")
    message = " ".join(str(error.get("message") or "").split())[:MAX_ERROR_TEXT]
    return code, message


def _inner_code(response: Any) -> str:
    try:
        inner = (response.json().get("error") or {}).get("innererror") or {}
    except (ValueError, AttributeError):
        return ""
    return str(inner.get("code") or "") if isinstance(inner, dict) else ""


def _challenge(header: str) -> dict[str, str]:
    """``Bearer authorization="...", resource="..."`` → {"authorization": ..., "resource": ...}."""
    if not header.lower().startswith("bearer"):
        return {}
    found = dict(re.findall(r'(\w+)="([^"]*)"', header))
    return {k: v for k, v in found.items() if k in ("authorization", "resource", "scope")}
