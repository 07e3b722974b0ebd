"""The no-argument cache hit loads exactly these gatekey modules, no more.

Each module on the hit costs its start-up; the typed fast-path index (cache.IndexEntry) was
added without adding one. A change that makes the hit import another gatekey module (a new
home for something it reads) must show here, and in benchmarks/bench.py, that it is worth it.
The standard-library-only rule itself is test_blackbox.py's; this pins the gatekey side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hit_modules import HIT_MODULES, imported

GATEKEY = str(Path(sys.executable).parent / "gatekey")  # the installed executable
CONTEXTS = ("interactive", "mid-session-refresh", "scheduled-task", "setup-test", "background")
HEADERS = 'headers = { X-Org-Route = "prod", x-portkey-metadata = \'{"_user":"alice"}\' }'


def imported_modules(gk, context: str | None, *argv: str) -> tuple[set[str], bytes]:
    env = dict(gk.vars)
    if context is not None:
        env["CLAUDE_HELPER_CONTEXT"] = context
    return imported(list(argv), env, gk.root)


def imported_gatekey_modules(gk, context: str | None) -> tuple[set[str], bytes]:
    names, stdout = imported_modules(gk, context, GATEKEY)
    return {name for name in names if name.split(".")[0] == "gatekey"}, stdout


@pytest.mark.parametrize("context", [*CONTEXTS, None], ids=[*CONTEXTS, "unset"])
def test_the_cache_hit_imports_exactly_these_gatekey_modules(gk, context: str | None):
    gk.write_config(gk.counting_profile(extra=f'output = "json"\n{HEADERS}'), run_log=False)
    assert gk.run(context=context).code == 0  # warm-up: fills the cache and the index
    modules, stdout = imported_gatekey_modules(gk, context)
    assert stdout.startswith(b'{"token": "tok-1"'), stdout
    assert gk.count() == 1  # served from the cache: the source was asked by the warm-up only
    assert modules == HIT_MODULES, (
        f"the cache hit now also imports {sorted(modules - HIT_MODULES)} "
        f"and no longer {sorted(HIT_MODULES - modules)}"
    )


def test_with_a_run_log_the_hit_also_imports_the_run_log(gk):
    gk.write_config(gk.counting_profile())  # log_file set: the hit appends its line
    assert gk.run(context="background").code == 0
    modules, stdout = imported_gatekey_modules(gk, "background")
    assert stdout == b"tok-1\n"
    assert gk.count() == 1
    assert modules == HIT_MODULES | {"gatekey.runlog"}


def test_the_cache_hit_does_not_import_contextlib(gk):
    """Importing contextlib costs the hit about 0.4 ms (2 % of it, measured with
    benchmarks/bench.py's setup): fastpath.py and cache.py do without it."""
    gk.write_config(gk.counting_profile(), run_log=False)
    assert gk.run(context="background").code == 0
    baseline, _ = imported_modules(gk, "background", "-c", "pass")  # start-up (site, .pth)
    names, stdout = imported_modules(gk, "background", GATEKEY)
    assert stdout == b"tok-1\n"
    assert gk.count() == 1
    assert "contextlib" not in names - baseline
