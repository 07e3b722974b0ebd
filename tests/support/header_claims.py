"""A JWT with claims for the header-template tests ({claims.NAME}), and a ``command`` profile
with JSON output that prints a given token."""

from __future__ import annotations

import base64
import json
import sys


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


TOKEN = jwt({"oid": "0a1b", "email": "alice@example.test", "ext": {"team": "ml"}, "adm": True})


def command_profile(token: str, headers: str) -> str:
    return (
        '[profiles.p]\nsource = "command"\noutput = "json"\n'
        f'command = [{json.dumps(sys.executable)}, "-c", {json.dumps(f"print({token!r})")}]\n'
        f"headers = {headers}\n"
    )
