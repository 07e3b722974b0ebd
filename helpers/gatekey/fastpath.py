"""Entry points of the executables, and the no-argument cache hit. Standard library only.

The app runs the helper with no arguments. When the full path last served this environment it
recorded, in the cache index, which profile and cache key the config selects, together with a
stat fingerprint of the config files. If the fingerprint still matches and the cached token is
fresh enough for this CLAUDE_HELPER_CONTEXT, this module prints it having imported nothing
outside the standard library (no click, keyring, msal, requests, nor even tomllib or typing).
Anything else (a miss, an edited config, any surprise) falls through to the full path, which
parses and validates the config, does the work and reports errors properly.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from gatekey import context, installcheck, output
from gatekey.cache import FileCache, config_fingerprint, selection_id
from gatekey.errors import StdoutUnavailable
from gatekey.token import Token, is_time, servable

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the cache hit ~3 ms
if TYPE_CHECKING:
    from typing import Any


def cache_hit(family: str | None) -> tuple[bytes, dict[str, Any]] | None:
    """The payload for a no-argument run served from the cache (and its index entry), or None."""
    try:
        cache = FileCache()
        entry = cache.read_index(selection_id(family))
        if entry is None or not trusted(entry) or entry["config"] != config_fingerprint():
            return None
        for var, value in entry["environment"].items():
            if os.environ.get(var) != value:  # e.g. VAULT_ADDR: another credential
                return None
        key, min_ttl, store = entry["key"], float(entry["min_ttl"]), entry["store"]
        bypass = context.context_name() == context.MID_SESSION

        def usable() -> Token | None:
            token = cache.read(key)[0] if store == "file" else _kernel_token(entry["kernel_name"])
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
            run = context.resolve(entry["timeouts"], started=context.PROCESS_START)
            with cache.lock(key, run):
                token = usable()
            if token is None:
                return None
        payload = output.render(
            token.value, entry["output"], auth_scheme=entry["auth_scheme"], headers=entry["headers"]
        )
        return payload, entry
    except Exception:  # the full path reports whatever this was
        return None


def trusted(entry: dict[str, Any]) -> bool:
    """Whether every value of an index entry is one the full path could have written.

    The index sits in a user-writable directory; an edited entry must not make the cache hit
    print a payload the config would never produce (an Authorization line, shell exports,
    headers with line breaks, a run log on stdout). Anything unexpected is a miss, and the full
    path, which reads the config itself, decides.
    """
    headers, timeouts, environment = (
        entry.get("headers"),
        entry.get("timeouts"),
        entry.get("environment"),
    )
    log_file, store = entry.get("log_file"), entry.get("store")
    key = entry.get("key")
    return (
        isinstance(entry.get("config"), list)
        and isinstance(key, str)
        and len(key) == 40
        and all(c in "0123456789abcdef" for c in key)
        and is_time(entry.get("min_ttl"))
        and entry["min_ttl"] >= 0
        and entry.get("output") in ("token", "json")
        and entry.get("auth_scheme") in ("bearer", "x-api-key")
        and isinstance(headers, dict)
        and all(
            output.header_name_problem(name) is None and output.header_value_problem(value) is None
            for name, value in headers.items()
        )
        and isinstance(timeouts, dict)
        and set(timeouts) <= set(context.DEFAULT_TIMEOUTS)
        and all(is_time(v) and 0 < v <= 600 for v in timeouts.values())
        and isinstance(environment, dict)
        and all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in environment.items()
        )
        and (log_file is None or (isinstance(log_file, str) and os.path.isabs(log_file)))
        and (
            store == "file"
            or (
                store == "kernel"
                and isinstance(entry.get("kernel_name"), str)
                and entry["kernel_name"].endswith(":" + key)
            )
        )
    )


def _kernel_token(name: str) -> Token | None:
    """A vault secret cached in the kernel keyring (see securecache.py)."""
    import json

    from gatekey import kernelkeys

    raw = kernelkeys.read(name)
    return None if raw is None else Token.from_json(json.loads(raw))


def main(family: str | None = None) -> None:
    untrusted = installcheck.problem()
    if untrusted is not None:
        sys.stderr.write(installcheck.message(untrusted))
        sys.exit(installcheck.EXIT_CODE)
    if len(sys.argv) <= 1:
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
            if entry["log_file"]:
                try:
                    from gatekey import runlog

                    runlog.append(
                        entry["log_file"],
                        runlog.line(
                            profile=entry.get("profile"),
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
    with contextlib.suppress(OSError):
        os.write(2, f"gatekey: {message}\n".encode())


def main_keychain() -> None:
    main("keychain")


def main_idp() -> None:
    main("idp")


def main_vault() -> None:
    main("vault")
