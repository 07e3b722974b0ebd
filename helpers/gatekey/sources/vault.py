"""The vault source: a field of a KV secret in HashiCorp Vault or OpenBao (same HTTP API).

Logs in with one of:
- ``token``: the profile's ``auth.token`` reference if set, else ``VAULT_TOKEN``, else
  ``~/.vault-token`` (what ``vault login`` leaves);
- ``jwt`` / ``oidc``: a JWT from another gatekey profile (``auth.jwt_from``, an entra or oidc
  profile) exchanged at ``auth/<mount>/login`` for a Vault token: the person's IdP sign-in
  unlocks the vault and no Vault token is kept on disk;
- ``approle``: ``auth.role_id`` and the ``auth.secret_id`` reference.
A Vault token obtained by logging in is cached like a secret (kernel keyring + OS keychain) until
shortly before its lease ends, and dropped and renewed once if Vault denies it early.

Reads ``GET /v1/<mount>/data/<path>`` (KV v2) or ``/v1/<mount>/<path>`` (KV v1), sending
``X-Vault-Namespace`` when a namespace is set. 403, 404, sealed (503) and network failures each
get their own error; a lease_duration caps how long the value is cached.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from gatekey import logs, paths, regular, secretref
from gatekey.cache import FileCache, cache_key
from gatekey.checks import FAIL, OK, WARN, Check
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import (
    AccessDenied,
    ConfigError,
    CredentialNotFound,
    HelperError,
    InteractionRequired,
    TemporaryFailure,
)
from gatekey.kinds import Linker, ProbeKit
from gatekey.token import Token

log = logging.getLogger(__name__)

LOGIN_MARGIN = 60.0  # renew a Vault login token this long before its lease ends
MAX_ERROR_TEXT = 200


class VaultSource:
    def __init__(self, profile: Profile, links: Linker) -> None:
        self.profile = profile
        self.links = links
        values = profile.values
        self.name = profile.name
        self.address = (values["address"] or os.environ.get("VAULT_ADDR") or "").rstrip("/")
        if not self.address:
            raise self._config("set address, or VAULT_ADDR in the environment", "address")
        from urllib.parse import urlsplit

        from gatekey.http import is_loopback_http

        try:
            usable = bool(urlsplit(self.address).hostname) and self.address.isprintable()
        except ValueError:  # e.g. an unclosed [IPv6 bracket
            usable = False
        if not usable:
            raise self._config(f"{self.address!r} is not a URL (address or VAULT_ADDR)", "address")
        if not self.address.lower().startswith("https://") and not is_loopback_http(self.address):
            raise self._config(
                f"{self.address} must be an https:// URL (plain http only to this machine)",
                "address",
            )
        namespace = values["namespace"] or os.environ.get("VAULT_NAMESPACE")
        self.namespace: str | None = namespace or None  # empty: none
        if self.namespace is not None and not _header_safe(self.namespace):
            raise self._config(
                f"{self.namespace!r} cannot be a namespace (namespace or VAULT_NAMESPACE: "
                "printable ASCII, no surrounding spaces)",
                "namespace",
            )
        self.mount = values["mount"].strip("/")
        self.path = values["path"].strip("/")
        self.kv_version = int(values["kv_version"])
        if self.kv_version not in (1, 2):
            raise self._config("expected 1 or 2 (the KV secrets engine version)", "kv_version")
        self.auth: dict[str, Any] = values["auth"] or {"method": "token"}
        self.method: str = self.auth.get("method") or "token"
        if self.method in ("jwt", "oidc"):
            for key in ("role", "jwt_from"):
                if not self.auth.get(key):
                    raise self._config(f"auth.{key} is needed for method {self.method}", "auth")
            self.jwt_profile = links.profile(
                profile,
                "auth.jwt_from",
                self.auth["jwt_from"],
                accept=lambda target: target.kind in ("entra", "oidc"),
                what="an entra or oidc profile",
            )
        if self.method == "approle":
            for key in ("role_id", "secret_id"):
                if not self.auth.get(key):
                    raise self._config(f"auth.{key} is needed for method approle", "auth")
        self.auth_mount = (self.auth.get("mount") or self.method).strip("/")
        if values["ca_bundle"]:
            from gatekey.tls import check_ca_bundle

            check_ca_bundle(values["ca_bundle"], profile)

    def _config(self, message: str, key: str) -> ConfigError:
        return ConfigError(message, file=self.profile.origins.get(key), profile=self.name, key=key)

    # --- the source interface ----------------------------------------------------------------
    def probe(self, kit: ProbeKit) -> Check:
        """Vault's health endpoint (no token needed): initialised, unsealed, active?"""
        ca_bundle = self.profile.values["ca_bundle"]
        response = kit.get(f"{self.address}/v1/sys/health", ca_bundle=ca_bundle, loopback_http=True)
        code = response.status_code
        word, state, fix = {
            200: (OK, "initialized, unsealed and active", None),
            429: (OK, "unsealed, a standby node", None),
            473: (OK, "unsealed, a performance standby", None),
            472: (WARN, "a disaster-recovery secondary", "point address at the primary cluster"),
            501: (FAIL, "not initialized", "initialize Vault (vault operator init)"),
            503: (FAIL, "sealed", "unseal Vault (vault operator unseal), or ask its operators"),
        }.get(code, (FAIL, f"answered HTTP {code}", "check address: the Vault API's base URL"))
        fixes = [fix] if fix else []
        return Check("source", word, f"Vault at {self.address}: {state}", fixes, {"status": code})

    def fetch(self, run: RunContext) -> Token:
        from gatekey.http import IdpSession

        session = IdpSession(
            run, ca_bundle=self.profile.values["ca_bundle"], loopback_http=True, answer_5xx=True
        )
        vault_token = self._vault_token(session, run)
        try:
            body = self._read(session, vault_token)
        except AccessDenied:
            if self.method == "token":
                raise
            log.debug("Vault denied the cached login token; logging in again")
            self._forget_login(run)
            body = self._read(session, self._vault_token(session, run, fresh=True))
        value = self._field(body)
        logs.register_secret(value)
        lease = body.get("lease_duration")
        cache_ttl = float(self.profile.values["cache_ttl"])
        if isinstance(lease, (int, float)) and not isinstance(lease, bool) and lease > 0:
            cache_ttl = min(cache_ttl, float(lease))  # the backend's word caps the profile's
        return Token.from_expires_in(value, None, source="vault", cache_ttl=cache_ttl)

    # --- reading ---------------------------------------------------------------------------------
    @property
    def api_path(self) -> str:
        if self.kv_version == 2:
            return f"{self.mount}/data/{self.path}"
        return f"{self.mount}/{self.path}"

    def _headers(self, vault_token: str | None = None) -> dict[str, str]:
        headers = {"X-Vault-Request": "true"}
        if vault_token:
            headers["X-Vault-Token"] = vault_token
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        return headers

    def _read(self, session: Any, vault_token: str) -> dict[str, Any]:
        response = session.get(
            f"{self.address}/v1/{self.api_path}", headers=self._headers(vault_token)
        )
        where = f"{self.api_path} in Vault at {self.address}"
        if self.namespace:
            where += f" (namespace {self.namespace})"
        if response.status_code == 404 and self.kv_version == 2 and _deleted(response):
            raise CredentialNotFound(
                f"the latest version of {where} is deleted; restore it (vault kv undelete) or "
                "write a new version",
                profile=self.name,
            )
        if response.status_code == 404:
            hint = (
                "; if the mount is KV version 1, set kv_version = 1"
                if self.kv_version == 2
                else "; if the mount is KV version 2, set kv_version = 2"
            )
            raise CredentialNotFound(f"no secret at {where}{hint}", profile=self.name)
        if response.status_code == 403:
            raise AccessDenied(
                f"Vault denied reading {where} (permission denied): the Vault token is expired "
                f'or revoked, or has no policy with "read" on {self.api_path}',
                profile=self.name,
            )
        self._check(response, f"reading {where}")
        body = _json(response)
        data = body.get("data")
        if self.kv_version == 2:
            data = data.get("data") if isinstance(data, dict) else None
            if data is None:
                raise CredentialNotFound(
                    f"the latest version of {where} is deleted", profile=self.name
                )
        if not isinstance(data, dict):
            raise HelperError(f"Vault answered without data for {where}", profile=self.name)
        return {"data": data, "lease_duration": body.get("lease_duration")}

    def _field(self, body: dict[str, Any]) -> str:
        data: dict[str, Any] = body["data"]
        field = self.profile.values["field"]
        if field is None:
            if len(data) != 1:
                names = ", ".join(sorted(map(str, data))) or "none"
                raise self._config(
                    f"the secret at {self.api_path} has fields {names}; set field to one of them",
                    "field",
                )
            field = next(iter(data))
        if field not in data:
            names = ", ".join(sorted(map(str, data))) or "none"
            raise CredentialNotFound(
                f"the secret at {self.api_path} has no field {field!r} (it has: {names})",
                profile=self.name,
            )
        value = data[field]
        if not isinstance(value, str):
            raise HelperError(
                f"field {field!r} of {self.api_path} is not a string", profile=self.name
            )
        return value.strip()

    def _check(self, response: Any, doing: str) -> None:
        """Map Vault's other failures to clear errors (the caller handled 403 and 404)."""
        status = response.status_code
        if status < 400:
            return
        errors = _errors(response)
        if status == 503 and "sealed" in errors.lower():
            raise TemporaryFailure(
                f"Vault at {self.address} is sealed",
                profile=self.name,
                fix="ask the Vault operators to unseal it",
            )
        if status == 429 or status >= 500:
            raise TemporaryFailure(
                f"Vault at {self.address} answered HTTP {status} {doing}"
                + (f" ({errors})" if errors else ""),
                profile=self.name,
                fix="try again later",
            )
        raise HelperError(
            f"Vault answered HTTP {status} {doing}" + (f": {errors}" if errors else ""),
            profile=self.name,
        )

    # --- logging in --------------------------------------------------------------------------
    def _vault_token(self, session: Any, run: RunContext, *, fresh: bool = False) -> str:
        if self.method == "token":
            return self._given_token(run)
        cache = FileCache()
        key = self._login_key()
        from gatekey.securecache import SecretTokens

        store = SecretTokens(cache, run, max_stale=0.0)
        with cache.lock(key, run):
            if not fresh:
                cached, _ = store.read(key)
                if cached is not None:
                    left = cached.remaining(time.time())
                    if left is None or left > LOGIN_MARGIN:
                        logs.register_secret(cached.value)
                        return cached.value
            token = self._login(session, run)
            store.write(key, token)
            return token.value

    def _login_key(self) -> str:
        settings = {
            "address": self.address,
            "namespace": self.namespace,
            "method": self.method,
            "mount": self.auth_mount,
            "role": self.auth.get("role") or self.auth.get("role_id"),
            "jwt_from": self.auth.get("jwt_from"),
        }
        return cache_key("vault-login", settings)

    def _forget_login(self, run: RunContext) -> None:
        from gatekey.securecache import SecretTokens

        SecretTokens(FileCache(), run, max_stale=0.0).delete(self._login_key())

    def _given_token(self, run: RunContext) -> str:
        ref = self.auth.get("token")
        if ref:
            return secretref.resolve(
                ref, profile=self.profile, key="auth.token", run=run, links=self.links
            )
        value = os.environ.get("VAULT_TOKEN", "").strip()
        if not value:
            try:  # a regular file only: a FIFO in its place must not hang the run
                path = os.path.join(paths.home(), ".vault-token")
                value = regular.read(path, 64 << 10).decode("utf-8").strip()
            except (OSError, ValueError):  # absent, not a file, no home, not UTF-8
                value = ""
        if not value:
            raise InteractionRequired(
                "no Vault token: run vault login, or set VAULT_TOKEN, or configure auth "
                '(e.g. auth = { method = "jwt", jwt_from = "<idp profile>", role = "..." })',
                profile=self.name,
            )
        logs.register_secret(value)
        if not _header_safe(value):
            raise InteractionRequired(
                "the Vault token (VAULT_TOKEN or ~/.vault-token) is not a token: it holds "
                "spaces or characters other than printable ASCII; run vault login again",
                profile=self.name,
            )
        return value

    def _login(self, session: Any, run: RunContext) -> Token:
        if self.method == "approle":
            secret_id = secretref.resolve(
                self.auth["secret_id"],
                profile=self.profile,
                key="auth.secret_id",
                run=run,
                links=self.links,
            )
            body = {"role_id": self.auth["role_id"], "secret_id": secret_id}
            what = f"AppRole login at auth/{self.auth_mount}"
        else:
            body = {"role": self.auth["role"], "jwt": self._jwt(run)}
            what = f"JWT login as role {self.auth['role']} at auth/{self.auth_mount}"
        response = session.post(
            f"{self.address}/v1/auth/{self.auth_mount}/login",
            headers=self._headers(),
            data=json.dumps(body),
        )
        if response.status_code in (400, 403):
            errors = _errors(response)
            raise AccessDenied(
                f"Vault refused the {what}" + (f" ({errors})" if errors else ""),
                profile=self.name,
            )
        if response.status_code == 404:
            raise self._config(
                f"Vault at {self.address} has no auth mount {self.auth_mount}", "auth"
            )
        self._check(response, f"for the {what}")
        auth = _json(response).get("auth")
        client_token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(client_token, str) or not client_token:
            raise HelperError(f"Vault's answer to the {what} has no token", profile=self.name)
        logs.register_secret(client_token)
        lease = auth.get("lease_duration") if isinstance(auth, dict) else None
        if not isinstance(lease, (int, float)) or isinstance(lease, bool) or lease <= 0:
            lease = None  # a token without a lease (root-like): keep it for cache_ttl
        return Token.from_expires_in(
            client_token,
            lease,
            source="vault-login",
            cache_ttl=float(self.profile.values["cache_ttl"]) or None,
        )

    def _jwt(self, run: RunContext) -> str:
        return self.links.token(self.jwt_profile, run).value


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise TemporaryFailure(
            f"Vault answered HTTP {response.status_code} with something that is not JSON"
        ) from None
    return body if isinstance(body, dict) else {}


def _deleted(response: Any) -> bool:
    """KV v2 answers a soft-deleted latest version with 404 and its metadata's deletion_time."""
    try:
        metadata = (response.json().get("data") or {}).get("metadata") or {}
    except (ValueError, AttributeError):
        return False
    return bool(isinstance(metadata, dict) and metadata.get("deletion_time"))


def _errors(response: Any) -> str:
    """Vault's ``errors`` list as one short line (it names paths and reasons, never secrets)."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(errors, list):
        return ""
    text = "; ".join(" ".join(str(e).split()) for e in errors if e)
    text = text.replace("1 error occurred: * ", "")
    return text[:MAX_ERROR_TEXT]


def _header_safe(value: str) -> bool:
    """Usable as an HTTP header value as Vault expects it: printable ASCII, not padded."""
    return bool(value) and value.isascii() and value.isprintable() and value == value.strip()
