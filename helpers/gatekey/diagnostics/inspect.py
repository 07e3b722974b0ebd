"""`gatekey inspect`: what a credential is and whether a gateway can accept it, never its value.

The credential comes from the profile exactly as ``gatekey get`` obtains it (cache, refresh; so
it may write what get writes and nothing else), or from stdin with ``--stdin``. A JWT is decoded
(not trusted) and checked: expiry, not-before, clock skew, audience against the profile's, a
Microsoft Graph audience, issuer / tenant; ``--verify`` checks the signature against the keys the
issuer publishes. An opaque token is described by what gatekey knows about it. The report goes to
stdout; the token only with ``--show-token``. Exit 1 when a check fails.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from gatekey import config, context, kinds, logs, output, process
from gatekey.checks import Check
from gatekey.claims import decode
from gatekey.diagnostics.present import BOLD, VERDICTS, paint, table, verdict, when
from gatekey.errors import ConfigError, HelperError

if TYPE_CHECKING:
    from gatekey.cli import State
    from gatekey.token import Token

MAX_STDIN = 64 * 1024
# iat/nbf this far in the future is a clock problem, not network delay (the usual JWT leeway).
SKEW = 60.0
GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
GRAPH = "https://graph.microsoft.com"
GRAPH_AUDIENCES = frozenset(
    {
        GRAPH,
        "00000003-0000-0000-c000-000000000000",  # Graph's application id
        "https://graph.microsoft.us",
        "https://dod-graph.microsoft.us",
        "https://microsoftgraph.chinacloudapi.cn",
    }
)
# The claims a support engineer looks at first, in this order; the rest follow as issued.
_FIRST = ("iss", "aud", "scp", "scope", "roles", "tid", "oid", "sub", "azp", "appid")
HIGHLIGHTED = (*_FIRST, "client_id", "exp", "nbf", "iat")
TIME_CLAIMS = frozenset({"exp", "nbf", "iat", "auth_time"})
# Signatures a gateway can check with the issuer's published (public) keys.
PUBLIC_KEY_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_EPOCH = 253402300800  # 10000-01-01: beyond what a clock (or strftime) can show
LONG = 200  # characters of a claim shown in the text report
LENGTH_CLASSES = ((16, "1-15"), (40, "16-39"), (65, "40-64"), (129, "65-128"), (513, "129-512"))


class ChecksFailed(HelperError):
    """The report was printed; at least one check says a gateway would refuse the credential."""


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

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.verdict == "fail"]


@click.command("inspect")
@click.option("-p", "--profile", metavar="NAME", help="Profile whose credential to inspect.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Inspect a token read from stdin.")
@click.option("--verify", is_flag=True, help="Check the signature against the issuer's JWKS.")
@click.option("--show-token", is_flag=True, help="Also print the token itself.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def command(
    st: State,
    profile: str | None,
    from_stdin: bool,
    verify: bool,
    show_token: bool,
    as_json: bool,
) -> None:
    """Decode and check a profile's credential (or a token on stdin); never shows the token."""

    def do() -> None:
        report, run = _obtain(st, profile, from_stdin)
        now = time.time()
        analyse(report, now)
        if verify:
            report.checks.append(_verify(report, run))
        else:
            report.checks.append(Check("signature", "skip", "not checked (use --verify)"))
        text = render_json(report, now, show_token) if as_json else render_text(report, now)
        output.write_text(text)
        if show_token and not as_json:
            output.write_text(f"\nToken (--show-token)\n{report.value}")
        if report.failed:
            raise ChecksFailed(
                f"the credential fails {len(report.failed)} check(s): {', '.join(report.failed)}"
            )

    st.guard(do)


# --- obtaining the credential ---------------------------------------------------------------
def _obtain(st: State, name: str | None, from_stdin: bool) -> tuple[Report, context.RunContext]:
    from gatekey import runner

    if not from_stdin:
        runner.require_family(st.family)
        cfg = config.load()
        prof = cfg.profile(config.select_profile(cfg, name, st.family))
        run = context.resolve(cfg)
        from gatekey.refresh import Links, get_token

        with process.stdout_to_stderr():  # nothing a source or library prints may enter the report
            outcome = get_token(prof, run, links=Links(cfg))
        logs.register_secret(outcome.token.value)
        report = Report(outcome.token.value, outcome.how, prof, outcome.token)
        report.checks += [Check("refresh", "warn", w) for w in outcome.warnings]
        return report, run
    value = _read_stdin()
    report = Report(value, "stdin")
    try:  # the profile only says what to expect (audience, issuer, CA); it is optional here
        cfg = config.load()
        report.profile = cfg.profile(config.select_profile(cfg, name, st.family))
        return report, context.resolve(cfg)
    except ConfigError as e:
        if name is not None:
            raise
        report.notes.append(f"compared with no profile ({e})")
        return report, context.resolve(None)


def _read_stdin() -> str:
    if sys.stdin is None or sys.stdin.closed:
        raise HelperError("--stdin: stdin is closed; pipe the token in")
    if sys.stdin.isatty():
        raw = click.prompt("Token", hide_input=True, err=True)
    else:
        data = process.read_stdin(MAX_STDIN)
        if data is None:
            raise HelperError(f"--stdin: more than {MAX_STDIN // 1024} KiB, not a token")
        raw = data.decode("utf-8", "replace")
    # A pasted "Authorization: Bearer <token>" line is taken as the token it carries.
    value = re.sub(r"^(authorization:\s*)?bearer\s+", "", raw.strip(), flags=re.IGNORECASE)
    logs.register_secret(value)
    if not value:
        raise HelperError("--stdin: stdin was empty")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise HelperError("--stdin: expected one token, got text with spaces or line breaks")
    return value


# --- analysis (pure) -----------------------------------------------------------------------
def analyse(report: Report, now: float) -> None:
    report.kind, report.header, report.claims = decode(report.value)
    if report.kind == "jwt":
        report.checks[:0] = _jwt_checks(report, now)
    else:
        report.checks[:0] = _opaque_checks(report, now)


def _epoch(value: Any) -> float | None:
    """A NumericDate claim as epoch seconds, or None if it is not one (nor a time we can show)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value < MAX_EPOCH else None


def _jwt_checks(report: Report, now: float) -> list[Check]:
    claims, checks = report.claims, []
    alg = str(report.header.get("alg"))
    if alg.lower() == "none":
        checks.append(Check("algorithm", "fail", "unsigned (alg none): no gateway accepts it"))
    elif alg.startswith("HS"):
        checks.append(
            Check(
                "algorithm",
                "warn",
                f"{alg} is a shared-secret signature: a gateway "
                "checking the issuer's published keys cannot verify it",
            )
        )
    exp, nbf, iat = (_epoch(claims.get(k)) for k in ("exp", "nbf", "iat"))
    if exp is None and "exp" in claims:
        checks.append(Check("expiry", "fail", "the exp claim is not a valid time"))
    elif exp is None:
        checks.append(Check("expiry", "warn", "no exp claim: most gateways refuse such tokens"))
    elif exp <= now:
        checks.append(Check("expiry", "fail", f"expired at {when(exp, now)}"))
    else:
        checks.append(Check("expiry", "ok", f"valid until {when(exp, now)}"))
    if nbf is not None and nbf > now:
        checks.append(
            Check(
                "not before",
                "fail" if nbf > now + SKEW else "warn",
                f"not valid until {when(nbf, now)}; check this machine's clock",
            )
        )
    if iat is not None:
        if iat > now + SKEW:
            checks.append(
                Check(
                    "clock",
                    "warn",
                    f"issued at {when(iat, now)}, in the future: this "
                    "machine's clock is behind the issuer's; check time synchronisation",
                )
            )
        else:
            checks.append(Check("clock", "ok", f"issued {when(iat, now)}"))
    checks.append(_audience_check(report))
    checks += _issuer_checks(report)
    prof = report.profile
    if prof is not None and prof.spec.family == "idp" and prof.values.get("token") == "id":
        checks.append(Check("token type", "warn", "an ID token: most gateways want access tokens"))
    return checks


def _opaque_checks(report: Report, now: float) -> list[Check]:
    checks = []
    if report.kind == "jwe":
        checks.append(
            Check(
                "format",
                "warn",
                "encrypted (JWE): only its intended recipient can read "
                "the claims; a gateway validating JWTs cannot use it",
            )
        )
    elif report.profile is not None and report.profile.spec.family == "idp":
        checks.append(
            Check(
                "format",
                "warn",
                "the identity provider issued an opaque access token; a "
                "gateway validating JWTs cannot use it (Okta: use a custom authorization "
                "server; Auth0: set audience)",
            )
        )
    token = report.token
    if token is None:
        checks.append(Check("expiry", "skip", "unknown: opaque, and not from gatekey's cache"))
    elif token.expires_at is None:
        again = f"; read again {when(token.refresh_at, now)}" if token.refresh_at else ""
        checks.append(Check("expiry", "skip", f"the source states no expiry{again}"))
    elif token.expires_at <= now:
        checks.append(Check("expiry", "fail", f"expired at {when(token.expires_at, now)}"))
    else:
        checks.append(Check("expiry", "ok", f"valid until {when(token.expires_at, now)}"))
    checks.append(Check("audience", "skip", "an opaque token carries no audience to read"))
    return checks


def expected_audience(prof: config.Profile | None) -> kinds.Audience | None:
    """The audiences the gateway should see, as the profile's kind tells (kinds.CheckingTokens)."""
    cls = kinds.capable(prof.spec, kinds.CheckingTokens) if prof is not None else None
    return None if cls is None else cls.audience(prof)


def _norm(aud: str) -> str:
    aud = aud.rstrip("/")
    return aud.lower() if GUID.fullmatch(aud) else aud


def _audience_check(report: Report) -> Check:
    raw = report.claims.get("aud")
    auds = [str(a) for a in raw] if isinstance(raw, list) else [] if raw is None else [str(raw)]
    shown = ", ".join(auds)
    if any(_norm(a) in GRAPH_AUDIENCES for a in auds):
        return Check(
            "audience",
            "fail",
            f"a Microsoft Graph token (aud {shown}): a gateway cannot "
            "validate it; request the gateway's API, e.g. scopes = [\"api://<gateway app>/"
            '.default"]',
        )
    expected = expected_audience(report.profile)
    if expected is None:
        why = "no profile" if report.profile is None else "the profile names no audience"
        return Check("audience", "skip", f"aud {shown or '(none)'}; nothing to compare ({why})")
    wanted, origin, app_ids = expected
    if not auds:
        return Check("audience", "fail", f"no aud claim; expected {', '.join(wanted)}")
    norm = {_norm(w) for w in wanted}
    # Entra names an application api://<id> or <id> (v2 tokens carry the bare id).
    norm |= {w[6:] for w in norm if w.startswith("api://") and GUID.fullmatch(w[6:])}
    if any(_norm(a) in norm for a in auds):
        return Check("audience", "ok", f"aud {shown}, as expected ({origin})")
    if app_ids and all(GUID.fullmatch(a) for a in auds):
        return Check(
            "audience",
            "warn",
            f"aud {shown} is an application id; expected {', '.join(wanted)}"
            f" ({origin}): the same only if that is this application's App ID URI",
        )
    return Check(
        "audience",
        "fail",
        f"aud {shown} is not the configured {', '.join(wanted)} ({origin}); "
        "the gateway will refuse it",
    )


def _issuer_checks(report: Report) -> list[Check]:
    prof = report.profile
    cls = kinds.capable(prof.spec, kinds.CheckingTokens) if prof is not None else None
    if cls is None:
        return []
    return list(cls.issuer_checks(prof, report.claims))


def length_class(value: str) -> str:
    """A length range, never the exact length (that could help identify a token)."""
    for bound, label in LENGTH_CLASSES:
        if len(value) < bound:
            return f"{label} chars"
    return "over 512 chars"


# --- signature verification (I/O) ------------------------------------------------------------
def _verify(report: Report, run: context.RunContext) -> Check:
    header, claims = report.header, report.claims
    alg, kid = header.get("alg"), header.get("kid")
    info: dict[str, Any] = {"alg": alg, "kid": kid, "jwks_uri": None, "kid_found": None}
    report.verification = info

    def result(verdict_word: str, detail: str) -> Check:
        info.update(valid=verdict_word == "ok", detail=detail)
        return Check("signature", verdict_word, detail)

    if report.kind != "jwt":
        what = "an encrypted (JWE)" if report.kind == "jwe" else "an opaque"
        return result("skip", f"{what} token has no signature gatekey can check")
    if alg not in PUBLIC_KEY_ALGS:
        return result("fail", f"alg {alg} cannot be checked against the issuer's published keys")
    if "nonce" in header:
        return result(
            "fail", "signed over a nonce (a Microsoft Graph token): only Graph can verify it"
        )
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss.lower().startswith("https://"):
        return result("fail", "no https iss claim, so no issuer keys to check against")
    ca_bundle = report.profile.values.get("ca_bundle") if report.profile else None
    try:
        keys, info["jwks_uri"] = _issuer_keys(iss, run, ca_bundle)
    except HelperError as e:
        return result("fail", f"could not get the issuer's keys: {e}")
    candidates = [k for k in keys if k.get("kid") == kid] if kid else keys
    info["kid_found"] = bool(candidates) if kid else None
    if not candidates:
        return result(
            "fail",
            f"kid {kid} is not among the {len(keys)} key(s) at {info['jwks_uri']}: "
            "not signed by this issuer, or its keys rotated",
        )
    import jwt

    other_algs = {str(k["alg"]) for k in candidates if k.get("alg") not in (None, alg)}
    for jwk in candidates:
        if jwk.get("alg") not in (None, alg):
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=str(alg))
            jwt.PyJWS().decode_complete(report.value, key=key, algorithms=[str(alg)])
        except jwt.PyJWTError:
            continue
        which = f"key {kid}" if kid else "a key"
        return result("ok", f"{alg}, {which} from {info['jwks_uri']}: signature valid")
    if other_algs and len(other_algs) == len(candidates):
        return result(
            "fail", f"the token says {alg}, the issuer's key is for {', '.join(other_algs)}"
        )
    which = f"key {kid}" if kid else f"{len(candidates)} key(s)"
    return result(
        "fail",
        f"INVALID signature: {alg} does not verify with the issuer's {which}; the token was "
        f"altered, or not signed by {iss}",
    )


def _issuer_keys(
    iss: str, run: context.RunContext, ca_bundle: str | None
) -> tuple[list[dict[str, Any]], str]:
    import requests

    from gatekey.http import IdpSession, JsonAnswer, fetch_discovery, get_json

    session = IdpSession(run, ca_bundle=ca_bundle)  # no cache: inspect keeps no state of its own

    def get(url: str) -> requests.Response:
        try:
            return session.get(url, headers={"Accept": "application/json"})
        except requests.RequestException as e:
            raise HelperError(f"{url}: {type(e).__name__}") from None

    def document(answer: JsonAnswer) -> dict[str, Any]:
        if answer.status != 200:
            raise HelperError(f"{answer.url} answered HTTP {answer.status}")
        if not answer.is_json:
            raise HelperError(f"{answer.url} did not answer JSON")
        if answer.document is None:
            raise HelperError(f"{answer.url} did not answer a JSON object")
        return answer.document

    discovery = document(fetch_discovery(iss, get))
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise HelperError("the issuer's discovery document has no jwks_uri")
    keys = document(get_json(jwks_uri, get)).get("keys")
    return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else [], jwks_uri


# --- rendering -------------------------------------------------------------------------------
def _clean(text: str) -> str:
    """One printable line: a token's claims must not move the cursor or colour the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _claim_text(name: str, value: Any, now: float) -> str:
    epoch = _epoch(value)
    if name in TIME_CLAIMS and epoch is not None:
        return when(epoch, now)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ", ".join(value)
    else:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > LONG:  # an x5c certificate chain, a large group list: --json has it whole
        return f"{text[:LONG]}... ({len(text) - LONG} more characters; --json shows all)"
    return text


def _aligned(rows: list[tuple[str, str]], bold: frozenset[str] = frozenset()) -> list[str]:
    lines = table([(_clean(k), _clean(v)) for k, v in rows], ("", ""))[1:]
    return [
        "  " + (paint(line, BOLD) if k in bold else line)
        for (k, _), line in zip(rows, lines, strict=True)
    ]


def _describe(report: Report) -> str:
    prof = report.profile
    if prof is None:
        return "Token from stdin"
    if report.origin == "stdin":
        return f'Token from stdin, compared with profile "{prof.name}" (source {prof.kind})'
    how = {
        "cache": "from gatekey's cache",
        "fetched": "fetched from the source just now (and cached, as get does)",
        "fallback": "the cached copy: refreshing failed (see checks)",
        "source": "read from the source (not cached)",
    }.get(report.origin, report.origin)
    return f'Credential of profile "{prof.name}" (source {prof.kind}): {how}'


def render_text(report: Report, now: float) -> str:
    lines = [_describe(report)]
    lines += [f"  note: {_clean(logs.redact(n))}" for n in report.notes]
    if report.kind == "opaque":
        lines.append(f"Opaque token ({length_class(report.value)}): not a JWT, no claims to read")
    else:
        label = "JWT" if report.kind == "jwt" else "Encrypted JWT (JWE)"
        lines += ["", f"{label} header"]
        lines += _aligned([(k, _claim_text(k, v, now)) for k, v in report.header.items()])
    if report.claims:
        order = [k for k in HIGHLIGHTED if k in report.claims]
        order += [k for k in report.claims if k not in HIGHLIGHTED]
        rows = [(k, _claim_text(k, report.claims[k], now)) for k in order]
        lines += ["", "Claims (decoded)", *_aligned(rows, frozenset(HIGHLIGHTED))]
    token = report.token
    if token is not None:
        rows = [("source", token.source), ("obtained", when(token.obtained_at, now))]
        expires = "no known expiry" if token.expires_at is None else when(token.expires_at, now)
        rows.append(("expires", expires))
        if token.refresh_at is not None:
            rows.append(("read again", when(token.refresh_at, now)))
        if token.meta.get("account"):
            rows.append(("account", str(token.meta["account"])))
        lines += ["", "What gatekey knows", *_aligned(rows)]
    checks = table([(c.name, _clean(logs.redact(c.detail))) for c in report.checks], ("", ""))[1:]
    lines += ["", "Checks"]
    lines += [
        f"  {verdict(c.verdict)}  {line}" for c, line in zip(report.checks, checks, strict=True)
    ]
    failed = report.failed
    lines.append("")
    if failed:
        refused = f"a gateway would refuse it ({', '.join(failed)})"
        lines.append(f"Verdict: {paint('FAIL', VERDICTS['fail'])}, {refused}")
    else:
        lines.append(f"Verdict: {paint('OK', VERDICTS['ok'])}, looks usable (no check failed)")
    return "\n".join(lines)


def render_json(report: Report, now: float, show_token: bool) -> str:
    token, expected = report.token, expected_audience(report.profile)
    data: dict[str, Any] = {
        "profile": report.profile.name if report.profile else None,
        "source": report.profile.kind if report.profile and report.origin != "stdin" else "stdin",
        "obtained_from": report.origin,
        "kind": report.kind,
        "length_class": length_class(report.value) if report.kind == "opaque" else None,
        "header": report.header,
        "claims": report.claims,
        "times": {
            k: {"epoch": e, "utc": _utc(e), "seconds_from_now": round(e - now)}
            for k in sorted(TIME_CLAIMS)
            if (e := _epoch(report.claims.get(k))) is not None
        },
        "expected_audience": expected[0] if expected else None,
        "expected_audience_from": expected[1] if expected else None,
        "cached": None
        if token is None
        else {
            "source": token.source,
            "obtained_at": token.obtained_at,
            "expires_at": token.expires_at,
            "refresh_at": token.refresh_at,
            "account": token.meta.get("account"),
        },
        "checks": [
            {"name": c.name, "verdict": c.verdict, "detail": logs.redact(c.detail)}
            for c in report.checks
        ],
        "verification": report.verification,
        "notes": [logs.redact(n) for n in report.notes],
        "usable": not report.failed,
    }
    if show_token:
        data["token"] = report.value
    return json.dumps(data, indent=2)
