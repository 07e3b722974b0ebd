"""What the black-box tests of the vault-family sources (vault, aws-secrets-manager,
azure-key-vault, onepassword) and of their secret cache share: running ``gatekey-vault`` as the
app does, what a success and a clean failure look like, a one-profile config, and the cached
secrets in the kernel keyring (finding, aging and dropping them).

The cached secret of a vault-family source lives in the kernel's user keyring, never in a file:
a test that needs its cached copy to be older than it is rewrites that kernel entry, as time
passing would, and every test drops its entries when it is done (the kernel would otherwise
keep them for ``max_stale``, 24 h by default).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from gatekey import kernelkeys
from gatekey.cache import FileCache
from gatekey.securecache import kernel_name

if TYPE_CHECKING:
    from blackbox_env import Env, Result


# --- config -----------------------------------------------------------------------------------
def write_llm_profile(gk: Env, *lines: str, extra: str = "", silent: str | None = None) -> None:
    """A config of one profile, ``llm`` (the default), made of ``lines`` and then ``extra``
    (TOML); ``silent`` is the deadline of the silent contexts, mid-session-refresh included
    (None: the documented deadlines, for runs that must finish work rather than wait one out)."""
    timeouts = (
        ""
        if silent is None
        else f'[timeouts]\nsilent = "{silent}"\nmid_session_refresh = "{silent}"\n\n'
    )
    gk.write_config(
        'default_profile = "llm"\n\n'
        + timeouts
        + "[profiles.llm]\n"
        + "".join(f"{line}\n" for line in lines)
        + f"{extra}\n"
    )


# --- runs and what they may show --------------------------------------------------------------
def run_app(gk: Env, context: str | None = "scheduled-task", **env: str) -> Result:
    """What the app runs: gatekey-vault, no arguments."""
    return gk.run(exe_name="gatekey-vault", context=context, **env)


def run_get(gk: Env, *args: str, context: str | None = "scheduled-task", **env: str) -> Result:
    return gk.run("get", "-p", "llm", *args, context=context, **env)


def assert_prints(result: Result, value: str, *, warnings: int = 0) -> None:
    """Success per the contract: exactly the value and a newline on stdout, and on stderr
    nothing but ``warnings`` warning lines."""
    assert result.code == 0, f"exit {result.code}; stderr: {result.err}"
    assert result.stdout == (value + "\n").encode()
    lines = result.err.splitlines()
    assert len(lines) == warnings, result.err
    assert all(line.startswith("gatekey: warning: ") for line in lines), result.err


def assert_fails(result: Result, code: int, *words: str) -> str:
    """A clean failure: the code, nothing on stdout, exactly one ``gatekey:`` line, holding
    every one of ``words``. Returns stderr."""
    result.assert_clean_failure(code)
    assert result.err.count("\n") == 1, result.err
    for word in words:
        assert word in result.err, f"{word!r} not in {result.err!r}"
    return result.err


def assert_no_leak_of(values: Iterable[str], gk: Env, *results: Result) -> None:
    """None of ``values`` on any run's stderr, nor in any file gatekey (or anything else) left
    in the test's HOME, runtime directory or cache directory."""
    for result in results:
        for value in values:
            assert value not in result.err, f"{value!r} on stderr of {result.argv}:\n{result.err}"
    for top in (gk.cache_dir, gk.root / "home", gk.root / "run"):
        for path in top.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for value in values:
                    assert value.encode() not in data, f"{value!r} in {path}"


# --- the kernel keyring, where cached secrets live --------------------------------------------
def kernel_name_prefix(cache_dir: Path) -> str:
    """How the names of the kernel keys of the cache directory ``cache_dir`` begin (names as
    gatekey.kernelkeys takes them, without its PREFIX)."""
    return kernel_name(FileCache(str(cache_dir)), "")


def kernel_keys(cache_dir: Path) -> dict[str, list[str]]:
    """{name (as gatekey.kernelkeys takes it): its /proc/keys columns} of the user keys that
    hold the entries of the cache directory ``cache_dir`` (OSError: /proc/keys unreadable)."""
    prefix = kernelkeys.PREFIX + kernel_name_prefix(cache_dir)
    found = {}
    for line in Path("/proc/keys").read_text().splitlines():
        fields = line.split(None, 8)
        if len(fields) == 9 and fields[7] == "user" and fields[8].startswith(prefix):
            found[fields[8].rpartition(": ")[0].removeprefix(kernelkeys.PREFIX)] = fields
    return found


def kernel_names(gk: Env) -> list[str]:
    """Names (as kernelkeys takes them) of this test's cached secrets in the user keyring."""
    return list(kernel_keys(gk.cache_dir))


def drop_kernel_keys(cache_dir: Path) -> None:
    """Remove every kernel key that holds an entry of ``cache_dir``."""
    for name in kernel_keys(cache_dir):
        kernelkeys.delete(name)


# Ages or drops cached secrets by profile, naming them as gatekey does. It runs in a process of
# its own, with a test's environment, so that it loads the same config and cache directory.
#   age PROFILE SECONDS: the copy's obtained_at and refresh_at move SECONDS back.
#   forget: stdin holds a JSON list of environments; every profile of each one's config goes.
_CACHED_SECRETS = """
import contextlib, json, os, sys
from gatekey import config, kernelkeys, securecache
from gatekey.cache import FileCache
from gatekey.refresh import profile_cache_key

def kernel_name(cfg, profile):
    return securecache.kernel_name(FileCache(), profile_cache_key(cfg.profile(profile)))

if sys.argv[1] == "age":
    name = kernel_name(config.load(), sys.argv[2])
    data = json.loads(kernelkeys.read(name))
    for field in ("obtained_at", "refresh_at"):
        if data.get(field) is not None:
            data[field] -= float(sys.argv[3])
    assert kernelkeys.write(name, json.dumps(data).encode(), timeout=3600)
elif sys.argv[1] == "forget":
    for env in json.load(sys.stdin):
        os.environ.clear()
        os.environ.update(env)
        with contextlib.suppress(Exception):
            cfg = config.load()
            for profile in cfg.profile_names:
                with contextlib.suppress(Exception):
                    kernelkeys.delete(kernel_name(cfg, profile))
"""


def edit_cached_secrets(
    action: str,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str = "",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the ``_CACHED_SECRETS`` script: ``action`` ("age" or "forget") and its arguments."""
    return subprocess.run(
        [sys.executable, "-c", _CACHED_SECRETS, action, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def age_cached_secret(gk: Env, seconds: float, profile: str = "llm") -> None:
    """Make the cached copy ``seconds`` older (obtained_at and refresh_at move back)."""
    done = edit_cached_secrets("age", profile, str(seconds), env=gk.vars, timeout=30)
    assert done.returncode == 0, done.stderr


@contextmanager
def cached_secrets_forgotten_at_end() -> Iterator[Callable[[Env], None]]:
    """Yields ``remember(gk)``, for a test's environment: when the block ends, the cached
    secrets of every profile of each remembered test's config are dropped from the kernel
    keyring (one process for all of them)."""
    environments: list[dict[str, str]] = []

    def remember(gk: Env) -> None:
        if gk.config_path.exists():
            environments.append(dict(gk.vars))

    yield remember
    edit_cached_secrets("forget", stdin=json.dumps(environments))
