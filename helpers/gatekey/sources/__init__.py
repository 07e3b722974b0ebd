"""The built-in source kinds: their config keys, family and caching. Standard library only.

A source *fetches*; it never caches, prints or exits. The registry describes each kind without
importing it, so the cache hit can validate a profile and compute its cache key cheaply. Built-in
kinds are listed here; third-party kinds register a ``SourceSpec`` under the ``gatekey.sources``
entry-point group and are looked up only when a profile names a kind that is not built in (the
entry-point scan costs tens of milliseconds, which the cache hit must not pay).
"""

from __future__ import annotations

from gatekey import kinds
from gatekey.kinds import FAMILIES, Source, SourceSpec
from gatekey.schema import PROFILE_NAME, KeySpec

__all__ = ["BUILTIN", "FAMILIES", "Source", "SourceSpec", "find", "plugins"]


KEYCHAIN = SourceSpec(
    kind="keychain",
    family="keychain",
    keys={
        "service": KeySpec("str", "gatekey", doc="keychain service name"),
        "account": KeySpec("str", PROFILE_NAME, doc="keychain account (default: profile name)"),
        "backend": KeySpec(
            "str",
            None,
            doc="keyring backend class, e.g. keyring.backends.SecretService.Keyring "
            "(default: the OS keychain of this platform)",
        ),
        "allow_insecure_backend": KeySpec(
            "bool", False, doc="allow a backend that is not an OS keychain (plaintext files)"
        ),
    },
    factory="gatekey.sources.keychain:KeychainSource",
    file_cache=False,
    summary="a secret stored in the OS keychain (gatekey store)",
)

# Every vault-like source: how long its secret is cached, and where.
_VAULT_CACHE_KEYS: dict[str, KeySpec] = {
    "cache_ttl": KeySpec(
        "duration",
        900.0,
        doc="how long to keep the secret before reading the source again (0: always read)",
    ),
    "max_stale": KeySpec(
        "duration",
        24 * 3600.0,
        doc="serve a cached secret up to this old when the source is unreachable",
    ),
    "allow_insecure_cache": KeySpec(
        "bool", False, doc="cache the secret in a user-only file instead of the keychain"
    ),
}

COMMAND = SourceSpec(
    kind="command",
    family="vault",
    keys={
        "command": KeySpec(
            "str_list",
            None,
            required=True,
            doc='argument vector, no shell: ["tool", "print-token"]',
        ),
        "parse": KeySpec("choice", "raw", choices=("raw", "json"), doc="what the command prints"),
        "token_path": KeySpec("str", "token", doc="dotted path of the token in JSON output"),
        "expires_in_path": KeySpec(
            "str", None, doc="dotted path of the lifetime in seconds in JSON output"
        ),
        "expires_path": KeySpec(
            "str",
            None,
            doc="dotted path of the expiry time in JSON output (epoch seconds or ISO 8601)",
        ),
        "timeout": KeySpec(
            "duration", None, doc="stop the command after this long (within the run's deadline)"
        ),
        **_VAULT_CACHE_KEYS,
    },
    factory="gatekey.sources.command:CommandSource",
    secure_cache=True,
    summary="any command that prints a token (argument vector, no shell)",
)

_VAULT_AUTH_FIELDS: dict[str, KeySpec] = {
    "method": KeySpec(
        "choice",
        "token",
        choices=("token", "jwt", "oidc", "approle"),
        doc="how gatekey logs in to Vault",
    ),
    "mount": KeySpec("str", None, doc="the auth mount (default: the method's name)"),
    "role": KeySpec("str", None, doc="jwt/oidc: the role to log in as"),
    "jwt_from": KeySpec("str", None, doc="jwt/oidc: the gatekey IdP profile that provides the JWT"),
    "role_id": KeySpec("str", None, doc="approle: the role id"),
    "secret_id": KeySpec("secret_ref", None, doc="approle: where the secret id is"),
    "token": KeySpec(
        "secret_ref", None, doc="token: where the Vault token is (else VAULT_TOKEN, ~/.vault-token)"
    ),
}

VAULT = SourceSpec(
    kind="vault",
    family="vault",
    keys={
        "address": KeySpec("str", None, doc="the Vault/OpenBao address (default: $VAULT_ADDR)"),
        "namespace": KeySpec("str", None, doc="Vault Enterprise / OpenBao namespace"),
        "mount": KeySpec("str", "secret", doc="the KV secrets engine's mount"),
        "path": KeySpec("str", None, required=True, doc="the secret's path in the mount"),
        "field": KeySpec("str", None, doc="which field of the secret (optional if it has one)"),
        "kv_version": KeySpec("int", 2, doc="KV secrets engine version: 1 or 2"),
        "ca_bundle": KeySpec("str", None, doc="extra CA certificates (PEM) for the Vault server"),
        "auth": KeySpec(
            "table",
            None,
            doc='how to log in, e.g. { method = "jwt", jwt_from = "corp", role = "llm" }',
            fields=_VAULT_AUTH_FIELDS,
        ),
        **_VAULT_CACHE_KEYS,
    },
    factory="gatekey.sources.vault:VaultSource",
    secure_cache=True,
    links=("auth.jwt_from",),
    env_inputs=("VAULT_ADDR", "VAULT_NAMESPACE"),
    summary="HashiCorp Vault / OpenBao KV secret",
)

AWS_SECRETS_MANAGER = SourceSpec(
    kind="aws-secrets-manager",
    family="vault",
    keys={
        "secret_id": KeySpec("str", None, required=True, doc="the secret's name or ARN"),
        "json_key": KeySpec("str", None, doc="for a JSON secret: which key holds the token"),
        "region": KeySpec("str", None, doc="AWS region (default: the AWS config's)"),
        "profile": KeySpec("str", None, doc="AWS profile (default: the AWS config's)"),
        **_VAULT_CACHE_KEYS,
    },
    factory="gatekey.sources.aws:AwsSecretsManagerSource",
    secure_cache=True,
    env_inputs=(
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    ),
    summary="AWS Secrets Manager secret (needs gatekey[aws])",
)

AZURE_KEY_VAULT = SourceSpec(
    kind="azure-key-vault",
    family="vault",
    keys={
        "vault_url": KeySpec(
            "https_url", None, required=True, doc="https://<name>.vault.azure.net"
        ),
        "secret_name": KeySpec("str", None, required=True, doc="the secret's name"),
        "version": KeySpec("str", None, doc="a secret version (default: the latest)"),
        "credential_from": KeySpec(
            "str",
            None,
            required=True,
            doc='an entra profile giving Key Vault tokens, or "azure-cli" / "managed-identity"',
        ),
        "ca_bundle": KeySpec("str", None, doc="extra CA certificates (PEM) for the vault"),
        **_VAULT_CACHE_KEYS,
    },
    factory="gatekey.sources.azure:AzureKeyVaultSource",
    secure_cache=True,
    links=("credential_from",),
    summary="Azure Key Vault secret",
)

ONEPASSWORD = SourceSpec(
    kind="onepassword",
    family="vault",
    keys={
        "reference": KeySpec("str", None, required=True, doc="op://vault/item/field"),
        "account": KeySpec("str", None, doc="1Password account (op --account)"),
        "op_path": KeySpec("str", "op", doc="the 1Password CLI executable"),
        "timeout": KeySpec("duration", None, doc="stop op after this long (within the deadline)"),
        **_VAULT_CACHE_KEYS,
    },
    factory="gatekey.sources.onepassword:OnePasswordSource",
    secure_cache=True,
    summary="1Password item field (op read)",
)

_IDP_KEYS: dict[str, KeySpec] = {
    "client_id": KeySpec("str", None, required=True, doc="the application (client) id"),
    "scopes": KeySpec(
        "str_list", [], doc='API scopes, e.g. ["api://gateway/.default"] (sign-in scopes implied)'
    ),
    "token": KeySpec(
        "choice", "access", choices=("access", "id"), doc="which token the gateway wants"
    ),
    "flow": KeySpec(
        "choice",
        "browser",
        choices=("browser", "device-code", "client-credentials", "managed-identity"),
        doc="how a person (or a service) signs in",
    ),
    "browser_command": KeySpec(
        "str_list", None, doc='the browser to open for sign-in, e.g. ["firefox"] (else $BROWSER)'
    ),
    "login_hint": KeySpec("str", None, doc="the account to sign in as (user@example.com)"),
    "client_secret": KeySpec("secret_ref", None, doc="for client-credentials: where the secret is"),
    "client_certificate": KeySpec(
        "secret_ref", None, doc="for client-credentials: a PEM file with key and certificate"
    ),
    "ca_bundle": KeySpec("str", None, doc="extra CA certificates (PEM), beside the OS trust store"),
    "token_cache": KeySpec(
        "choice",
        "keychain",
        choices=("keychain", "file"),
        doc="where refresh tokens are kept: the OS keychain, or a user-only file",
    ),
}

ENTRA = SourceSpec(
    kind="entra",
    family="idp",
    keys={
        "tenant": KeySpec("str", None, required=True, doc="tenant id or domain"),
        **_IDP_KEYS,
        "authority_host": KeySpec(
            "https_url", None, doc="sovereign cloud or test authority (no instance discovery)"
        ),
        "broker": KeySpec(
            "bool", False, doc="sign in through WAM (Windows) / Company Portal (macOS)"
        ),
        "managed_identity_client_id": KeySpec(
            "str", None, doc="flow managed-identity: a user-assigned identity's client id"
        ),
    },
    factory="gatekey.sources.idp:IdpSource",
    summary="Microsoft Entra ID (MSAL)",
)

OIDC = SourceSpec(
    kind="oidc",
    family="idp",
    keys={
        "issuer": KeySpec("https_url", None, required=True, doc="the OpenID issuer URL"),
        **_IDP_KEYS,
        "audience": KeySpec(
            "str", None, doc="audience parameter of sign-in and token requests (Auth0 style)"
        ),
        "resource": KeySpec(
            "str", None, doc="resource parameter of sign-in and token requests (RFC 8707)"
        ),
        "authorize_params": KeySpec(
            "str_table",
            None,
            doc='extra parameters of the browser sign-in URL, e.g. { organization = "org_1" }',
        ),
    },
    factory="gatekey.sources.idp:IdpSource",
    summary="any OpenID Connect provider (MSAL)",
)

BUILTIN: dict[str, SourceSpec] = {
    spec.kind: spec
    for spec in (
        KEYCHAIN,
        COMMAND,
        ENTRA,
        OIDC,
        VAULT,
        AWS_SECRETS_MANAGER,
        AZURE_KEY_VAULT,
        ONEPASSWORD,
    )
}


def find(kind: str) -> SourceSpec | None:
    """The spec of a source kind: built-in first, then installed plugins."""
    spec = BUILTIN.get(kind)
    if spec is not None:
        return spec
    return plugins().get(kind)


def plugins() -> dict[str, SourceSpec]:
    """Source kinds registered by installed distributions that do not shadow a built-in one."""
    return {kind: spec for kind, spec in kinds.plugins().items() if kind not in BUILTIN}
