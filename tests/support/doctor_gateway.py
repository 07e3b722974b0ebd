"""`gatekey doctor` against the gateway stand-in (gateway_stub.py) with a token that is not a JWT
and has no server behind it: the counting `command` source, so the gateway is the only HTTP
server doctor talks to. Shared by the doctor gateway tests.
"""

from __future__ import annotations

import json
from typing import Any

from blackbox_env import Env, Result
from claude_managed import doctor_lines, gateway_with_helper

# Not a JWT; random-looking, so the log redactor masks nothing else and a leak is visible.
TOKEN = "tok-7Qz9pX2mVb4Ls8Wn1Rt6Yc3Hd5Jf0Kg"
TTL_KEY = "inferenceCredentialHelperTtlSec"
URL_KEY = "inferenceGatewayBaseUrl"


def command_setup(gk: Env, ca: str | None, **settings: str) -> None:
    """A command profile printing TOKEN (lives 2 h; min_ttl fits a 30-minute TTL), Claude's
    managed settings naming the installed gatekey (plus ``settings``), and ``ca`` as this
    machine's trust store (SSL_CERT_FILE) when given."""
    gk.write_config(gk.counting_profile("cmd", 'min_ttl = "35m"'))
    gk.vars["TOKEN"] = TOKEN
    if ca is not None:
        gk.vars["SSL_CERT_FILE"] = ca
    gateway_with_helper(gk, **{TTL_KEY: "1800", **settings})


def lines(r: Result) -> dict[str, tuple[str, str]]:
    """{check: (verdict, its text and fix lines)}, with no trace of TOKEN anywhere."""
    assert "Traceback" not in r.err, r.err
    assert TOKEN not in r.out + r.err, "the credential reached doctor's output"
    assert TOKEN[8:20] not in r.out + r.err, "a piece of the credential reached doctor's output"
    return doctor_lines(r)


def checks(r: Result) -> dict[str, dict[str, Any]]:
    """doctor --json's checks by name."""
    assert TOKEN not in r.out + r.err, "the credential reached doctor's output"
    return {c["check"]: c for c in json.loads(r.out)["checks"]}
