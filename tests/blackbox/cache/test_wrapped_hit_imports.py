"""A wrapped profile's cache hit (``gatekey wrap --format``) loads exactly the default hit's
gatekey modules: GATEKEY_OUTPUT is read by the fast path itself and every shape is rendered by
output.py, so a wrapper pinned to ``headers`` or ``git-credential`` (claims in its headers or
username included: token.py decodes them) costs the hit no module more.

The wrapper is run as the app runs it (its absolute path, no arguments, stdin closed); the
import trace is Python's ``-X importtime`` through the environment (PYTHONPROFILEIMPORTTIME),
since the wrapper execs gatekey itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from blackbox_env import CONTEXTS, Env
from header_claims import jwt
from hit_modules import HIT_MODULES, IMPORT_LINE

pytestmark = pytest.mark.blackbox

TOKEN = jwt({"oid": "0a1b", "preferred_username": "alice"})
SHAPES = {
    "headers": (
        'headers = { X-User = "{claims.oid}", X-Org-Route = "prod" }',
        f'{{"Authorization": "Bearer {TOKEN}", "X-User": "0a1b", "X-Org-Route": "prod"}}\n',
    ),
    "git-credential": (
        'git_username = "{claims.preferred_username}"',
        f"username=alice\npassword={TOKEN}\n",
    ),
}


def wrapped_run(gk: Env, wrapper: Path, context: str | None) -> tuple[set[str], bytes]:
    """The gatekey modules a run of ``wrapper`` imported, and what it printed."""
    env = dict(gk.vars, PYTHONPROFILEIMPORTTIME="1")
    if context is not None:
        env["CLAUDE_HELPER_CONTEXT"] = context
    proc = subprocess.run(
        [str(wrapper)], stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd="/",
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    names = set()
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time: self"):
            continue
        match = IMPORT_LINE.match(line)
        assert match, f"unexpected stderr line: {line!r}"
        names.add(match.group(2))
    return {n for n in names if n.split(".")[0] == "gatekey"}, proc.stdout


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("context", [*CONTEXTS, None], ids=[*CONTEXTS, "unset"])
def test_a_wrapped_hit_imports_exactly_the_default_hits_modules(
    gk: Env, tmp_path: Path, shape: str, context: str | None
) -> None:
    extra, expected = SHAPES[shape]
    gk.write_config(gk.counting_profile("mcp", extra), run_log=False)
    wrapper = tmp_path / f"{shape}-helper"
    r = gk.run("wrap", "-p", "mcp", "-o", str(wrapper), "--format", shape)
    assert r.code == 0, r.err
    warm = gk.run(context=context, TOKEN=TOKEN, GATEKEY_PROFILE="mcp", GATEKEY_OUTPUT=shape)
    assert (warm.code, warm.stdout) == (0, expected.encode()), warm.err  # fills cache and index
    modules, stdout = wrapped_run(gk, wrapper, context)
    assert stdout == expected.encode()
    assert gk.count() == 1  # the wrapper's run was a cache hit
    assert modules == HIT_MODULES, (
        f"a wrapped {shape} hit also imports {sorted(modules - HIT_MODULES)} "
        f"and no longer {sorted(HIT_MODULES - modules)}"
    )
