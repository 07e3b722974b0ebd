"""The cache hit that fills a header from a token claim imports only the standard library.

A profile whose ``headers`` insert ``{claims.NAME}`` decodes the cached token on every hit:
output.fill_claims decodes it with token.jwt_claims (the one JWT decoder), which imports base64
only then. Like the rest of the hit, that path must import nothing outside the standard library,
and not ``typing`` either (about 3 ms of a hit that takes a few). Black box: the
installed executable, as the app runs it, under ``-X importtime``.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from hit_modules import HIT_MODULES, imported

pytestmark = pytest.mark.blackbox

FORBIDDEN = ("typing", "click", "requests", "msal", "keyring", "tomllib")


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_a_hit_that_inserts_a_claim_imports_only_the_standard_library(gk):
    token = jwt({"email": "alice@example.com", "exp": 4102444800})
    gk.write_config(
        gk.counting_profile(extra='output = "json"\nheaders = { X-User = "{claims.email}" }'),
        run_log=False,  # a run log adds gatekey.runlog to every hit (test_cache_hit_imports)
    )
    gk.vars["TOKEN"] = token
    gk.vars["CLAUDE_HELPER_CONTEXT"] = "background"
    assert gk.run().code == 0  # warm-up: fills the cache and the index
    helper = str(Path(sys.executable).with_name("gatekey"))
    baseline, _ = imported(["-c", "pass"], gk.vars, gk.root)  # interpreter start-up (site, .pth)
    names, stdout = imported([helper], gk.vars, gk.root)
    assert json.loads(stdout) == {"token": token, "headers": {"X-User": "alice@example.com"}}
    assert gk.count() == 1  # a hit: the source ran once, for the warm-up
    assert "gatekey.fastpath" in names
    assert {n for n in names if n.split(".")[0] == "gatekey"} == HIT_MODULES  # none more
    assert "gatekey.runner" not in names
    tops = {name.split(".")[0] for name in names}
    for forbidden in FORBIDDEN:
        assert forbidden not in tops, f"the cache hit imported {forbidden}"
    foreign = sorted(
        top
        for top in {name.split(".")[0] for name in names - baseline}
        if top not in sys.stdlib_module_names and top != "gatekey"
    )
    assert not foreign, f"the cache hit imported non-stdlib modules: {foreign}"
