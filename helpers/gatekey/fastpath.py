"""Entry points of the executables, and the no-argument cache hit. Standard library only.

The app runs the helper with no arguments. When the full path last served this environment it
recorded, in the cache index, which profile and cache key the config selects, together with a
stat fingerprint of the config files. If the fingerprint still matches and the cached token is
fresh enough for this CLAUDE_HELPER_CONTEXT, this module prints it having imported nothing
outside the standard library (no click, keyring, msal, requests, nor even tomllib or typing),
in the profile's shape or the one a wrapper pins (GATEKEY_OUTPUT, read here on every run: one
index entry serves every wrapper of a profile).
Anything else (a miss, an edited config, any surprise) falls through to the full path, which
parses and validates the config, does the work and reports errors properly.
"""

from __future__ import annotations

import os  # not contextlib: importing it costs the cache hit 0.4 ms
import sys
import time

from gatekey import context, installcheck, output, paths
from gatekey.cache import FileCache, IndexEntry, selection_id
from gatekey.errors import StdoutUnavailable
from gatekey.token import Token, servable


def cache_hit(family: str | None) -> tuple[bytes, IndexEntry] | None:
    """The payload for a no-argument run served from the cache (and its index entry), or None."""
    try:
        cache = FileCache()
        entry = cache.lookup(selection_id(family))
        if entry is None or entry.config != paths.config_fingerprint():
            return None
        for var, value in entry.environment.items():
            if os.environ.get(var) != value:  # e.g. VAULT_ADDR: another credential
                return None
        key, min_ttl, store = entry.key, float(entry.min_ttl), entry.store
        bypass = context.context_name() == context.MID_SESSION

        def usable() -> Token | None:
            token = cache.read(key)[0] if store == "file" else _kernel_token(entry.kernel_name)
            if token is None or not servable(
                token, time.time(), min_ttl, bypass=bypass, force=False
            ):
                return None
            return token

        token = usable()
        if token is None:
            if cache.hold(key):
                return None  # this run refreshes; it keeps the lock for the full path
            # Another run is refreshing this credential (the app's tabs and tasks start
            # together): wait for it, within this run's deadline, and print what it obtained.
            run = context.resolve(entry.timeouts, started=context.PROCESS_START)
            with cache.lock(key, run):
                token = usable()
            if token is None:
                return None
        payload = output.render(
            token.value,
            output.pinned_shape() or entry.output,  # a wrapper's GATEKEY_OUTPUT wins
            auth_scheme=entry.auth_scheme,
            headers=entry.headers,
            resolved=token.headers,  # the profile's references, kept with the credential
            git_username=entry.git_username,
        )
        return payload, entry
    except Exception:  # the full path reports whatever this was
        return None


def _kernel_token(name: str | None) -> Token | None:
    """A vault secret cached in the kernel keyring (see securecache.py)."""
    import json

    from gatekey import kernelkeys

    raw = None if name is None else kernelkeys.read(name)
    return None if raw is None else Token.from_json(json.loads(raw))


def main(family: str | None = None) -> None:
    untrusted = installcheck.problem()
    if untrusted is not None:
        sys.stderr.write(installcheck.message(untrusted))
        sys.exit(installcheck.EXIT_CODE)
    # Shell completion (_GATEKEY_COMPLETE=bash_source gatekey) runs with no arguments: click
    # answers it, and no credential is fetched. The variable's name is the executable's.
    prog = "GATEKEY" if family is None else "GATEKEY_" + family.upper()
    if len(sys.argv) <= 1 and not os.environ.get(f"_{prog}_COMPLETE"):
        # Someone debugging (GATEKEY_LOG_LEVEL=debug/info) wants the full path's account of it.
        skip = os.environ.get("GATEKEY_NO_FASTPATH") or os.environ.get(
            "GATEKEY_LOG_LEVEL", ""
        ).strip().lower() in ("debug", "info")
        hit = None if skip or not output.stdout_open() else cache_hit(family)
        if hit is not None:
            payload, entry = hit
            try:
                output.write_payload(payload)
            except OSError as e:
                _stderr_line(str(output.undelivered(e)))
                sys.exit(StdoutUnavailable.exit_code)
            if entry.log_file:
                try:
                    from gatekey import runlog

                    runlog.append(
                        entry.log_file,
                        runlog.line(
                            profile=entry.profile,
                            family=family,
                            outcome="cache",
                            exit_code=0,
                            cache="hit",
                            fetches=0,
                        ),
                    )
                except Exception:  # noqa: S110 - a run log never changes the run's outcome
                    pass
            sys.exit(0)
        from gatekey.runner import no_argument_run

        no_argument_run(family)
    from gatekey.cli import cli_main

    cli_main(family)


def _stderr_line(message: str) -> None:
    try:
        os.write(2, f"gatekey: {message}\n".encode())
    except OSError:
        return  # stderr is gone too: nothing more can be said


def main_keychain() -> None:
    main("keychain")


def main_idp() -> None:
    main("idp")


def main_vault() -> None:
    main("vault")
