"""`gatekey inspect`: what a credential is and whether a gateway can accept it, never its value.

The credential comes from the profile exactly as ``gatekey get`` obtains it (cache, refresh; so
it may write what get writes and nothing else), or from stdin with ``--stdin``. A JWT is decoded
(not trusted) and checked: expiry, not-before, clock skew, audience against the profile's, a
Microsoft Graph audience, issuer / tenant; ``--verify`` checks the signature against the keys the
issuer publishes. An opaque token is described by what gatekey knows about it. The report goes to
stdout; the token only with ``--show-token``. Exit 1 when a check fails.

A value that starts like a JWT and does not decode (cut short when copied) is said to be one,
and fails. The time left is judged against what Claude does with a token (lifetime.py: it keeps
it for its TTL without reading the expiry). What ``--stdin`` may be given (gatekey's own JSON,
env or header output too) is read in pasted.py.

Here: obtaining the credential and putting the report together. The rules are in
token_checks.py and lifetime.py, the signature check in jwks.py, the text and JSON in report.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatekey import config, context, logs, process
from gatekey.checks import FAIL, SKIP, Check
from gatekey.diagnostics import jwks, lifetime, pasted, token_checks
from gatekey.errors import ConfigError
from gatekey.token import credential_problem, decode

if TYPE_CHECKING:
    from gatekey.token import Token


@dataclass
class Report:
    value: str
    origin: str  # "stdin", or how get obtained it: cache | fetched | fallback | source
    profile: config.Profile | None = None
    token: Token | None = None
    kind: str = "opaque"  # jwt | jwe | malformed (starts like a JWT, does not decode) | opaque
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    now: float = 0.0  # when the checks were made: the report's times are relative to it
    malformed: str | None = None  # why a value that starts like a JWT does not decode
    given: pasted.Pasted | None = None  # what --stdin was given, and how it was read
    header_names: list[str] | None = None  # the valid names of the headers it would send
    lifetime: dict[str, Any] | None = None  # the time left against Claude's TTL and min_ttl

    @property
    def failed(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.checks if c.verdict == "fail"))


def inspect(
    family: str | None, name: str | None, given: pasted.Pasted | None, *, verify: bool
) -> Report:
    """The report on profile ``name``'s credential as ``gatekey get`` obtains it, or on the
    token ``given`` on stdin (see ``pasted.read``), compared with the profile."""
    report, run = _obtain(family, name, given)
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
    family: str | None, name: str | None, given: pasted.Pasted | None
) -> tuple[Report, context.RunContext]:
    from gatekey import runner

    if given is None:
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
    report = Report(given.value, "stdin", given=given)
    report.notes += given.notes
    try:  # the profile only says what to expect (audience, issuer, CA); it is optional here
        cfg = config.load()
        report.profile = cfg.profile(config.select_profile(cfg, name, family))
        return report, context.resolve(cfg)
    except ConfigError as e:
        if name is not None:
            raise
        report.notes.append(f"compared with no profile ({e})")
        return report, context.resolve(None)


def analyse(report: Report, now: float) -> None:
    """Decode the token and put the rules' checks first (before any refresh warning)."""
    report.kind, report.header, report.claims = decode(report.value)
    if report.kind == "jwt":
        found = token_checks.jwt_checks(report.header, report.claims, report.profile, now)
        found += token_checks.jws_format(report.header, report.value)
    elif report.kind == "opaque" and (broken := token_checks.broken_jwt(report.value)):
        report.kind, report.malformed = "malformed", broken[0]
        report.header = broken[1]
        found = token_checks.malformed_checks(broken[0])
    else:
        found = token_checks.opaque_checks(report.kind, report.profile, report.token, now)
        problem = credential_problem(report.value)  # gatekey never prints such a value
        if problem is not None:
            found.insert(0, Check("format", FAIL, f"not usable in an HTTP header: {problem}"))
    found += _lifetime(report, now)
    given = report.given
    if given is not None and given.headers is not None:
        header_checks, report.header_names = pasted.header_checks(given.headers)
        found += header_checks
    report.checks[:0] = found


def _lifetime(report: Report, now: float) -> list[Check]:
    """The time left against Claude's TTL; nothing when the expiry check fails already (an
    expired token, an exp that is no time) or there are no claims to read (malformed)."""
    if report.malformed:
        return []
    exp = token_checks.epoch(report.claims.get("exp"))
    iat = token_checks.epoch(report.claims.get("iat"))
    token = report.token
    if "exp" in report.claims and exp is None:
        return []  # "not a valid time": the expiry check fails it
    if exp is not None and exp <= now:
        return []  # expired: the expiry check fails it
    new_life = token.lifetime if token is not None else None
    if new_life is None and exp is not None and iat is not None:
        new_life = exp - iat  # how long the issuer makes such tokens live
    if exp is None and token is not None:
        exp = token.expires_at  # an opaque token's (or a JWT's with no exp) recorded expiry
        if exp is not None and exp <= now:
            return []
    prof = report.profile
    check = lifetime.check(
        expires_at=exp,
        now=now,
        ttl=lifetime.app_ttl(),
        min_ttl=float(prof.values["min_ttl"]) if prof is not None else None,
        lifetime=new_life,
        origin=report.origin,
        profile=prof.name if prof is not None else None,
    )
    report.lifetime = check.data
    return [check]
