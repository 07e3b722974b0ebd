"""`gatekey inspect`: what a credential is and whether a gateway can accept it, never its value.

The credential comes from the profile exactly as ``gatekey get`` obtains it (cache, refresh; so
it may write what get writes and nothing else), or from stdin with ``--stdin``. A JWT is decoded
(not trusted) and checked: expiry, not-before, clock skew, audience against the profile's, a
Microsoft Graph audience, issuer / tenant; ``--verify`` checks the signature against the keys the
issuer publishes. An opaque token is described by what gatekey knows about it. The report goes to
stdout; the token only with ``--show-token``. Exit 1 when a check fails.

Here: obtaining the credential and putting the report together. The rules are in
token_checks.py, the signature check in jwks.py, the text and JSON in report.py.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatekey import config, context, logs, process
from gatekey.checks import SKIP, Check
from gatekey.diagnostics import jwks, token_checks
from gatekey.errors import ConfigError, HelperError
from gatekey.token import decode

if TYPE_CHECKING:
    from gatekey.token import Token


@dataclass
class Report:
    value: str
    origin: str  # "stdin", or how get obtained it: cache | fetched | fallback | source
    profile: config.Profile | None = None
    token: Token | None = None
    kind: str = "opaque"  # jwt | jwe | opaque
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    now: float = 0.0  # when the checks were made: the report's times are relative to it

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.verdict == "fail"]


def inspect(family: str | None, name: str | None, value: str | None, *, verify: bool) -> Report:
    """The report on profile ``name``'s credential as ``gatekey get`` obtains it, or on
    ``value`` (a token given on stdin: see ``token_from_text``) compared with the profile."""
    report, run = _obtain(family, name, value)
    report.now = time.time()
    analyse(report, report.now)
    if verify:
        ca_bundle = report.profile.values.get("ca_bundle") if report.profile else None
        check, report.verification = jwks.verify(
            report.value, report.kind, report.header, report.claims, ca_bundle, run
        )
        report.checks.append(check)
    else:
        report.checks.append(Check("signature", SKIP, "not checked (use --verify)"))
    return report


# --- obtaining the credential ---------------------------------------------------------------
def _obtain(
    family: str | None, name: str | None, value: str | None
) -> tuple[Report, context.RunContext]:
    from gatekey import runner

    if value is None:
        runner.require_family(family)
        cfg = config.load()
        prof = cfg.profile(config.select_profile(cfg, name, family))
        run = context.resolve(cfg)
        from gatekey.refresh import Links, get_token

        with process.stdout_to_stderr():  # nothing a source or library prints may enter the report
            outcome = get_token(prof, run, links=Links(cfg))
        logs.register_secret(outcome.token.value)
        report = Report(outcome.token.value, outcome.how, prof, outcome.token)
        report.checks += [Check("refresh", "warn", w) for w in outcome.warnings]
        return report, run
    report = Report(value, "stdin")
    try:  # the profile only says what to expect (audience, issuer, CA); it is optional here
        cfg = config.load()
        report.profile = cfg.profile(config.select_profile(cfg, name, family))
        return report, context.resolve(cfg)
    except ConfigError as e:
        if name is not None:
            raise
        report.notes.append(f"compared with no profile ({e})")
        return report, context.resolve(None)


def token_from_text(raw: str) -> str:
    """The token in what was given on stdin (or typed at the prompt), registered as a secret."""
    # A pasted "Authorization: Bearer <token>" line is taken as the token it carries.
    value = re.sub(r"^(authorization:\s*)?bearer\s+", "", raw.strip(), flags=re.IGNORECASE)
    logs.register_secret(value)
    if not value:
        raise HelperError("--stdin: stdin was empty")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise HelperError("--stdin: expected one token, got text with spaces or line breaks")
    return value


def analyse(report: Report, now: float) -> None:
    """Decode the token and put the rules' checks first (before any refresh warning)."""
    report.kind, report.header, report.claims = decode(report.value)
    if report.kind == "jwt":
        found = token_checks.jwt_checks(report.header, report.claims, report.profile, now)
    else:
        found = token_checks.opaque_checks(report.kind, report.profile, report.token, now)
    report.checks[:0] = found
