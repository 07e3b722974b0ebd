"""Tokens and readers for the `gatekey inspect` tests: crafted JWTs, Claude's managed TTL, the
report's check lines, and the proof that no piece of a token was printed."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from blackbox_env import Env, Result

TTL_KEY = "inferenceCredentialHelperTtlSec"
VERDICTS = ("OK", "WARN", "FAIL", "SKIP")


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def crafted(signature_bytes: int = 256, **claims: Any) -> str:
    """A JWT with a made-up RS256 signature of the size a 2048-bit key gives (nothing checks
    it without --verify)."""
    header = {"alg": "RS256", "kid": "made-up", "typ": "JWT"}
    signature = base64.urlsafe_b64encode(os.urandom(signature_bytes)).rstrip(b"=").decode()
    return f"{b64(header)}.{b64(claims)}.{signature}"


def managed_settings(gk: Env, values: dict[str, str], mode: int = 0o644) -> Path:
    """Claude's managed-settings.json under a managed root of the test's own (GATEKEY_MANAGED_ROOT;
    never this machine's /etc); an empty ``values`` writes no file (the app's defaults)."""
    root = gk.root / "managed-root"
    path = root / "etc/claude-desktop/managed-settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    for d in (path.parent, path.parent.parent):
        d.chmod(0o755)
    if values:
        path.write_text(json.dumps(values))
        path.chmod(mode)
    gk.vars["GATEKEY_MANAGED_ROOT"] = str(root)
    return path


def check_lines(r: Result, name: str) -> list[str]:
    """The report's lines for a check: ``OK    expiry     valid until ...``."""
    found = []
    for line in r.out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in VERDICTS and parts[1] == name:
            found.append(line.strip())
    assert found, f"no {name} check in:\n{r.out}"
    return found


def check_line(r: Result, name: str) -> str:
    (line,) = check_lines(r, name)
    return line


def fixes_of(r: Result, name: str) -> list[str]:
    """The ``fix:`` lines printed under a check."""
    lines = r.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] in _check_heads(name))
    fixes = []
    for line in lines[start + 1 :]:
        if not line.strip().startswith("fix: "):
            break
        fixes.append(line.strip()[5:])
    return fixes


def _check_heads(name: str) -> list[list[str]]:
    return [[verdict, name] for verdict in VERDICTS]


def assert_no_token(r: Result, token: str) -> None:
    """Neither the token, its signature, nor any 16-character piece of it was printed."""
    printed = r.out + r.err
    assert token not in printed
    if token.count(".") == 2 and len(token.rsplit(".", 1)[1]) >= 16:
        assert token.rsplit(".", 1)[1] not in printed
    pieces = {token[i : i + 16] for i in range(len(token) - 15)}
    assert not any(piece in printed for piece in pieces), "a fragment of the token was printed"
