"""What a source kind is and what it can do: its spec, its capabilities, plugin loading.

Standard library only, and below ``config``, ``refresh`` and every source: the layers above ask a
profile's kind what it can do through these protocols instead of switching on its name, so a
third-party kind registered by entry point gets doctor's probe, status's storage line, sign-in
and fleet treatment by implementing the same methods a built-in kind does.

A kind is a ``SourceSpec`` (config keys, family, caching, the profiles it links to; read without
importing the kind) and a source class named by ``SourceSpec.factory``, constructed as
``factory(profile, links)``. The class implements ``Source.fetch`` and any of:

    Probing        probe(kit) -> Check             doctor's "source" check: is it reachable?
    SigningIn      person_signs_in(profile)        a person signs in (browser, device code):
                   sign_in_flows(profile)          the flows `login --browser/--device-code`
                   login(run, flow=), logout(...)  may pick; login/logout/status/doctor/mdm
                   also_signed_out(run, others)    follow it; who a logout signs out besides
                   sign_in_state(run)              who is signed in, read only (doctor)
                   sign_in_storage()               where the sign-in is kept (status)
    Storing        store(value, run), erase(run)   holds a secret gatekey writes (store/erase),
                   where, storage_line(profile)    and can be a { keychain = ... } reference
    Holding        holds(run)                      whether that secret is there now (status)
    CheckingTokens audience(profile),              what a token from it should say (inspect,
                   issuer_checks(profile, claims)  doctor's advice on a gateway's 401)
                   audience_fix(profile)

Questions answered from the profile alone are classmethods (no source is constructed, so a
misconfigured profile still gets an answer); those that do I/O are methods of a constructed one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from gatekey.schema import PRESENTATION_KEYS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from gatekey.checks import Check
    from gatekey.context import RunContext
    from gatekey.schema import KeySpec
    from gatekey.token import Token

# Source families, each served by its own executable (gatekey-<family>) as well as by gatekey.
FAMILIES = {
    "keychain": "OS keychain",
    "idp": "identity-provider (Entra ID, OIDC)",
    "vault": "secrets-vault",
}


class SourceSpec(NamedTuple):
    """What a source kind is, without importing it."""

    kind: str
    family: str  # a key of FAMILIES
    keys: dict[str, KeySpec]
    factory: str  # "module:callable" taking (profile, links) and returning a Source
    # Whether fetched tokens go into gatekey's file cache. Sources that are themselves a secure
    # store (the keychain) say no: copying their secret into a file would weaken it.
    file_cache: bool = True
    # Vault-like sources hand out long-lived keys: their cached copy goes to the kernel keyring
    # and the OS keychain, never a plain file (see securecache.py).
    secure_cache: bool = False
    summary: str = ""
    # Environment variables the source reads when the profile leaves a setting out (VAULT_ADDR):
    # part of the cache key, and checked by the cache hit, so a changed variable is a miss.
    env_inputs: tuple[str, ...] = ()
    # Dotted keys whose value names another profile this one gets a credential through (a
    # vault's auth.jwt_from). { keychain = "<profile>" } secret references are links too.
    links: tuple[str, ...] = ()


class Profile(NamedTuple):
    """A validated profile: every key resolved (defaults included) with its origin."""

    name: str
    spec: SourceSpec
    values: dict[str, Any]
    origins: dict[str, str]

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def env_inputs(self) -> tuple[str, ...]:
        """Environment variables that change which credential the source returns: those the
        source kind falls back on, and those the profile names in ``cache_key_env``."""
        named = tuple(
            v for v in self.values.get("cache_key_env", ()) if v not in self.spec.env_inputs
        )
        return self.spec.env_inputs + named

    def source_settings(self) -> dict[str, Any]:
        """The inputs that decide which credential the source returns (the cache key's inputs):
        the profile's values, and the environment variables the source falls back on."""
        settings = {
            k: v
            for k, v in self.values.items()
            if k not in PRESENTATION_KEYS and not (k == "cache_key_env" and not v)
        }
        if self.env_inputs:
            settings["environment"] = {var: os.environ.get(var) for var in self.env_inputs}
        # Header values by reference are resolved with the credential and cached with it: a
        # changed reference must not serve the old value (absent otherwise: keys stay as before).
        refs = {k: v for k, v in self.values.get("headers", {}).items() if isinstance(v, dict)}
        if refs:
            settings["header_refs"] = refs
        return settings


class Profiles(Protocol):
    """The profiles of a loaded config (config.Config)."""

    @property
    def profile_names(self) -> list[str]: ...

    def profile(self, name: str) -> Profile: ...


class Source(Protocol):
    """What every source implements."""

    def fetch(self, run: RunContext) -> Token:
        """Get a new credential from the source, within ``run``'s deadline and permissions."""


class Linker(Protocol):
    """What a source may ask of the rest of gatekey, handed to its constructor: the profiles it
    links to (from the config already loaded) and their credentials (through the cache)."""

    def profile(
        self,
        referrer: Profile,
        key: str,
        name: str,
        *,
        accept: Callable[[Profile], bool],
        what: str,
    ) -> Profile:
        """The profile ``name`` that ``referrer``'s ``key`` names; ConfigError (against the
        referrer and key) when it does not exist or ``accept`` refuses it as not ``what``."""

    def named(self, name: str) -> Profile:
        """The profile ``name`` of the loaded config (ConfigError when there is none)."""

    def token(self, profile: Profile, run: RunContext) -> Token:
        """A linked profile's credential, as a run of its own sharing ``run``'s deadline."""

    def fetch(self, profile: Profile, run: RunContext) -> Token:
        """A linked profile's credential straight from its source (a keychain reference)."""


class ProbeKit(Protocol):
    """What doctor lends a probe: one silent run's budget and a GET with its TLS rules."""

    def run_context(self) -> RunContext:
        """A silent run: the budget a probe has."""

    def get(self, url: str, *, ca_bundle: str | None, loopback_http: bool = False) -> Any: ...


@runtime_checkable
class Probing(Protocol):
    def probe(self, kit: ProbeKit) -> Check:
        """Doctor's "source" check: is the source there and answering? Reads, never writes."""


class SignInState(NamedTuple):
    account: str | None  # who is signed in, None when nobody is
    has_refresh: bool  # whether a later run can refresh silently
    storage: str  # "file" or "keychain"


@runtime_checkable
class SigningIn(Protocol):
    @classmethod
    def person_signs_in(cls, profile: Profile) -> bool:
        """Whether a person signs in for this profile (not a service principal)."""

    @classmethod
    def sign_in_flows(cls, profile: Profile) -> tuple[str, ...]:
        """The flows a person may sign in with ("browser", "device-code"), the profile's own
        first; ``login(run, flow=...)`` takes any of them. Empty when no person signs in."""

    def login(self, run: RunContext, *, flow: str | None = None) -> Token: ...

    def logout(self, run: RunContext, *, all_accounts: bool = False) -> int: ...

    def also_signed_out(
        self, run: RunContext, others: Iterable[Profile], *, all_accounts: bool = False
    ) -> list[str]:
        """The names of ``others`` that ``logout`` would sign out too (a sign-in they share),
        read before acting; never this profile itself."""

    def sign_in_state(self, run: RunContext) -> SignInState: ...

    def sign_in_storage(self) -> str: ...


@runtime_checkable
class Storing(Protocol):
    @property
    def where(self) -> str: ...

    @classmethod
    def storage_line(cls, profile: Profile) -> str:
        """Status's storage column for a profile whose secret is read on each run."""

    def store(self, value: str, run: RunContext) -> None: ...

    def erase(self, run: RunContext) -> bool: ...


@runtime_checkable
class Holding(Protocol):
    def holds(self, run: RunContext) -> bool:
        """Whether the secret is stored now (status), found without reading it where the store
        allows; a store that cannot tell without reading it reads it, and shows it nowhere."""


class Audience(NamedTuple):
    wanted: list[str]  # the audiences a gateway should see in the token
    origin: str  # which setting of the profile says so
    app_ids: bool = False  # a bare application id may stand for an App ID URI (Entra)


@runtime_checkable
class CheckingTokens(Protocol):
    @classmethod
    def audience(cls, profile: Profile) -> Audience | None: ...

    @classmethod
    def issuer_checks(cls, profile: Profile, claims: dict[str, Any]) -> list[Check]: ...

    @classmethod
    def audience_fix(cls, profile: Profile) -> str: ...


def source_class(spec: SourceSpec) -> Any:
    """The callable ``spec.factory`` names, imported (heavy SDKs stay inside its functions)."""
    import importlib

    module_name, _, attr = spec.factory.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def capable(spec: SourceSpec, capability: type) -> Any:
    """The kind's source class when it declares ``capability``, else None."""
    cls = source_class(spec)
    return cls if isinstance(cls, capability) else None


def links(profile: Profile) -> list[tuple[str, str]]:
    """(key, profile name) of every other profile ``profile`` names: its kind's link keys and
    its { keychain = ... } secret references. A name need not exist; callers check."""
    found: list[tuple[str, str]] = []
    for dotted in profile.spec.links:
        value: Any = profile.values
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            found.append((dotted, value))
    for key, value in _secret_refs(profile.spec.keys, profile.values, ""):
        if isinstance(value, dict) and isinstance(value.get("keychain"), str):
            found.append((key, value["keychain"]))
    return found


def _secret_refs(
    keys: dict[str, KeySpec], values: dict[str, Any], prefix: str
) -> Iterable[tuple[str, Any]]:
    for name, spec in keys.items():
        value = values.get(name) if isinstance(values, dict) else None
        if spec.type == "secret_ref":
            yield prefix + name, value
        elif spec.type == "table" and spec.fields and isinstance(value, dict):
            yield from _secret_refs(spec.fields, value, f"{prefix}{name}.")


def person_signs_in(profile: Profile) -> bool:
    """Whether a person signs in for ``profile`` (its kind is SigningIn, and says so)."""
    cls = capable(profile.spec, SigningIn)
    return cls is not None and bool(cls.person_signs_in(profile))


def sign_in_profile(cfg: Profiles | None, profile: Profile) -> Profile | None:
    """The profile whose sign-in ``profile`` needs: itself when its kind signs in, else the
    first profile it links to whose kind does (a vault's auth.jwt_from)."""
    if capable(profile.spec, SigningIn) is not None:
        return profile
    if cfg is None:
        return None
    for _key, name in links(profile):
        if name in cfg.profile_names:
            target = cfg.profile(name)
            if capable(target.spec, SigningIn) is not None:
                return target
    return None


def plugins() -> dict[str, SourceSpec]:
    """Source kinds registered by installed distributions (``gatekey.sources`` entry points)."""
    from importlib.metadata import entry_points

    found: dict[str, SourceSpec] = {}
    for ep in entry_points(group="gatekey.sources"):
        try:
            spec = ep.load()
        except Exception:  # noqa: S112 - a broken plugin must not break other profiles
            continue
        if isinstance(spec, SourceSpec):
            found[spec.kind] = spec
    return found
