"""Secret references: how config points at a secret without containing it.

One syntax for every secret-bearing key of every source, a table with exactly one of:
    { env = "NAME" }             an environment variable
    { file = "/path" }           a file readable by its owner only (0600 or stricter)
    { keychain = "<profile>" }   the secret of a keychain profile (gatekey store -p <profile>)
"""

from __future__ import annotations

import os
import stat
import sys

from gatekey import logs, regular
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import ConfigError, CredentialNotFound, HelperError, NotRegular, TooLarge
from gatekey.kinds import Linker

MAX_SECRET_FILE = 64 << 10
_DESCRIBE = {"env": "environment variable", "file": "file", "keychain": "keychain entry"}


def resolve(
    ref: dict[str, str],
    *,
    profile: Profile,
    key: str,
    run: RunContext,
    links: Linker | None = None,
) -> str:
    """The secret a reference points at; errors name the profile and key, never the value."""
    kind, where = next(iter(ref.items()))
    if kind == "env":
        value = os.environ.get(where, "").strip()
        if not value:
            raise CredentialNotFound(
                f"{key}: the environment variable {where} is not set", profile=profile.name
            )
    elif kind == "file":
        value = _read_private_file(where, profile=profile, key=key)
    else:
        if links is None:  # pragma: no cover - every source hands its links on
            raise HelperError(
                f"{key}: a keychain reference cannot be read here", profile=profile.name
            )
        value = _from_keychain(profile, key, where, run=run, links=links)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # os.environ's surrogate escapes for bytes that are not UTF-8
        raise ConfigError(
            f"{key}: the {_DESCRIBE.get(kind, kind)} {where} holds bytes that are not UTF-8 text",
            profile=profile.name,
        ) from None
    logs.register_secret(value)
    return value


def _read_private_file(path: str, *, profile: Profile, key: str) -> str:
    def mistake(message: str) -> ConfigError:
        origin = profile.origins.get(key.split(".")[0])  # headers.NAME: the headers' file
        return ConfigError(message, file=origin, profile=profile.name, key=key)

    try:
        st = os.stat(path)
        if sys.platform != "win32" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise mistake(
                f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                f"run: chmod 600 {path}"
            )
        value = regular.read(path, MAX_SECRET_FILE).decode("utf-8").strip()
    except FileNotFoundError:
        raise CredentialNotFound(
            f"{key}: the file {path} does not exist", profile=profile.name
        ) from None
    except NotRegular as e:  # a FIFO must not hang the run
        raise mistake(f"{path} is {e.what}, not a regular file holding the secret") from None
    except TooLarge:
        raise mistake(
            f"{path} is larger than {MAX_SECRET_FILE // 1024} KiB, so it does not hold one secret"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise HelperError(
            f"{key}: cannot read {path} ({type(e).__name__})", profile=profile.name
        ) from None
    if not value:
        raise CredentialNotFound(f"{key}: the file {path} is empty", profile=profile.name)
    return value


def _from_keychain(profile: Profile, key: str, name: str, *, run: RunContext, links: Linker) -> str:
    """The secret a profile that stores one (kinds.Storing: the keychain) holds."""
    from gatekey import kinds

    target = links.named(name)
    if kinds.capable(target.spec, kinds.Storing) is None:
        raise ConfigError(
            f"a keychain secret reference must name a keychain profile, and {name!r} "
            f"uses source {target.kind!r}",
            profile=name,
        )
    return links.fetch(target, run).value


def resolve_headers(
    profile: Profile, run: RunContext, links: Linker
) -> tuple[dict[str, str], float | None]:
    """The values of the profile's headers given by reference, resolved now (when its
    credential is obtained, to be kept with it), and the earliest expiry among them (another
    profile's credential): the payload is no fresher than its stalest part."""
    from gatekey.schema import header_refs

    values: dict[str, str] = {}
    expires_at: float | None = None
    for name, ref in header_refs(profile.values["headers"]).items():
        key = f"headers.{name}"
        if "profile" not in ref:
            value = resolve(ref, profile=profile, key=key, run=run, links=links)
        else:
            token = links.token(_linked(profile, name, ref["profile"], links), run)
            value = token.value
            logs.register_secret(value)
            if token.expires_at is not None:
                expires_at = min(token.expires_at, expires_at or token.expires_at)
        from gatekey.output import header_value_problem

        problem = header_value_problem(value)
        if problem is not None:  # never quoted: it is a secret
            raise ConfigError(
                f'header "{name}": the value its reference gives is not a valid header value '
                f"({problem})",
                file=profile.origins.get("headers"),
                profile=profile.name,
                key="headers",
            )
        values[name] = value
    return values, expires_at


def _linked(profile: Profile, header: str, name: str, links: Linker) -> Profile:
    """The profile a ``{ profile = ... }`` header names, refused when getting its credential
    would come back to this profile (it would wait for its own lock until the deadline)."""

    def mistake(message: str) -> ConfigError:
        return ConfigError(
            f'header "{header}": {message}',
            file=profile.origins.get("headers"),
            profile=profile.name,
            key="headers",
        )

    if name == profile.name:
        raise mistake('names this profile itself; write "{token}" for its own credential')
    target = links.profile(profile, "headers", name, accept=lambda _p: True, what="a profile")
    # Depth first from this profile: a link to a profile still on the path is a circle.
    path: list[str] = [profile.name]
    done: set[str] = set()

    def visit(current: Profile) -> None:
        if current.name in path:
            circle = " -> ".join([*path[path.index(current.name) :], current.name])
            raise mistake(
                f"its credential needs its own through the profiles linked ({circle}), so none "
                "of them could be obtained; break the circle"
            )
        if current.name in done:
            return
        path.append(current.name)
        for _key, linked in _credential_links(current):
            try:
                nxt = links.named(linked)
            except ConfigError:
                continue  # a missing profile: the run that needs it says so
            visit(nxt)
        path.pop()
        done.add(current.name)

    visit(target)
    return target


def _credential_links(profile: Profile) -> list[tuple[str, str]]:
    """The profiles whose credentials (through the cache, as a run of their own) ``profile``'s
    credential needs: its kind's link keys and its { profile = ... } headers."""
    from gatekey import kinds
    from gatekey.schema import header_refs

    found = [(k, n) for k, n in kinds.links(profile) if k in profile.spec.links]
    for name, ref in header_refs(profile.values["headers"]).items():
        if "profile" in ref:
            found.append((f"headers.{name}", ref["profile"]))
    return found
