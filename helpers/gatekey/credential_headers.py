"""Which HTTP header names carry a credential: the one home of that rule. Standard library only.

Used wherever a header could leak a secret or compete with the credential: ``mdm --header``
(static headers every machine shares) and a profile's ``headers`` (plain config). A header
counts as a credential header by its exact name or by a pattern, compared case-insensitively
(HTTP field names are): better to ask an admin to say "this one is not a secret" once than to
let one more vendor's key header through silently.
"""

from __future__ import annotations

# Names the gateways the README names use for a key or a session, and HTTP's own.
EXACT = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",  # Azure OpenAI
        "apikey",  # Kong key-auth's default
        "x-goog-api-key",
        "ocp-apim-subscription-key",  # Azure API Management
        "x-portkey-api-key",
        "x-litellm-api-key",
        "x-functions-key",  # Azure Functions
        "x-amz-security-token",
        "private-token",  # GitLab
        "x-vault-token",
        "x-csrf-token",
    }
)
# (how the name ends, or a word it contains): *-api-key, *-token, *-secret, *auth*.
SUFFIXES = ("-api-key", "_api_key", "-apikey", "-token", "_token", "-secret", "_secret")
# Not "key" alone (Idempotency-Key, X-Cache-Key) nor "session" (X-Session-Id): not secrets.
CONTAINS = ("auth", "secret", "password", "passwd", "credential")


def why(name: str) -> str | None:
    """Why ``name`` carries a credential (what matched), or None for an ordinary header."""
    lower = name.strip().lower()
    if lower in EXACT:
        return f"{name} is a credential header"
    for suffix in SUFFIXES:
        if lower.endswith(suffix):
            return f"{name} ends in {suffix!r}, as credential headers do"
    for word in CONTAINS:
        if word in lower:
            return f"{name} contains {word!r}, as credential headers do"
    return None


def is_credential(name: str) -> bool:
    """Whether the header ``name`` carries a credential (case-insensitive)."""
    return why(name) is not None


def built_by_app(name: str, auth_scheme: str) -> bool:
    """Whether the app itself sends ``name`` with the helper's token for this auth scheme
    (Authorization: Bearer for bearer, x-api-key for x-api-key; contract.md): a profile's header
    of that name would compete with it."""
    wanted = "authorization" if auth_scheme == "bearer" else "x-api-key"
    return name.strip().lower() == wanted


REFERENCE_HINT = (
    'reference it instead: { keychain = "<keychain profile>" }, { env = "NAME" }, '
    '{ file = "/path" }, { profile = "<profile>" }, or "{token}" for the credential itself'
)


def _placeholder(text: str) -> bool:
    import re  # config validation only, never the cache hit

    return re.search(r"\{token\}|\{claims\.[A-Za-z0-9_.:-]+\}", text) is not None


def profile_problem(headers: dict[str, object], auth_scheme: str) -> str | None:
    """What is wrong with a profile's ``headers`` as to credentials, or None. Never quotes a
    value: a header the app builds itself may not be set at all; any other credential header
    may not hold a literal (a value with no reference and no placeholder)."""
    for name, value in headers.items():
        if built_by_app(name, auth_scheme):
            built = (
                "Authorization: Bearer <credential>"
                if auth_scheme == "bearer"
                else "x-api-key: <credential>"
            )
            return (
                f'header "{name}" may not be set by the profile: with auth_scheme = '
                f'"{auth_scheme}" the app itself sends {built} from what gatekey prints, and a '
                "header here would compete with it (the helper's headers win). Take it out; for "
                "another scheme set auth_scheme"
            )
        if isinstance(value, str) and not _placeholder(value):
            reason = why(name)
            if reason is not None:
                return (
                    f'header "{name}" holds a literal value, but {reason}: a secret is never '
                    f"written in the config; {REFERENCE_HINT}"
                )
    return None
