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
        return ConfigError(message, file=profile.origins.get(key), profile=profile.name, key=key)

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
