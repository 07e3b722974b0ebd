"""The diagnostic commands' reports as text and JSON: what the command layer writes to stdout.

No click and no I/O: each function returns the lines (or the document) to print. Everything a
check says passes through the log redactor here, so no secret a run registered can reach the
report; colour is added only on a terminal (present.py).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from gatekey import logs
from gatekey.checks import FAIL, WARN, Check
from gatekey.diagnostics.present import BOLD, VERDICTS, paint, table, verdict, when
from gatekey.diagnostics.token_checks import TRUNCATED, epoch, expected_audience

if TYPE_CHECKING:
    from gatekey.config import Profile
    from gatekey.diagnostics.inspect import Report


# --- gatekey doctor ----------------------------------------------------------------------------
def doctor_json(name: str | None, profile: Profile | None, checks: list[Check]) -> str:
    doc = {
        "profile": name,
        "source": profile.kind if profile else None,
        "ok": not any(c.verdict == FAIL for c in checks),
        "checks": [
            {
                "check": c.name,
                "verdict": c.verdict,
                "detail": c.detail,
                "fixes": c.fixes,
                "data": c.data,
            }
            for c in checks
        ],
    }
    return logs.redact(json.dumps(doc, indent=2))


def doctor_text(profile: Profile | None, checks: list[Check]) -> list[str]:
    title = "gatekey doctor"
    if profile is not None:
        title += f': profile "{profile.name}" ({profile.kind})'
    lines = [title]
    width = max(len(c.name) for c in checks)
    for c in checks:
        lines.append(f"{verdict(c.verdict)}  {c.name.ljust(width)}  {c.detail}")
        lines += [f"{' ' * (width + 8)}fix: {fix}" for fix in c.fixes]
    failed, warned = (sum(c.verdict == v for c in checks) for v in (FAIL, WARN))
    summary = f"{failed} check(s) failed" if failed else "all checks passed"
    if warned:
        summary += f", {warned} warning(s) (warnings do not fail doctor)"
    return [logs.redact(line) for line in [*lines, "", summary]]


# --- gatekey inspect ---------------------------------------------------------------------------
# The claims a support engineer looks at first, in this order; the rest follow as issued.
_FIRST = ("iss", "aud", "scp", "scope", "roles", "tid", "oid", "sub", "azp", "appid")
HIGHLIGHTED = (*_FIRST, "client_id", "exp", "nbf", "iat")
TIME_CLAIMS = frozenset({"exp", "nbf", "iat", "auth_time"})
LONG = 200  # characters of a claim shown in the text report
LENGTH_CLASSES = ((16, "1-15"), (40, "16-39"), (65, "40-64"), (129, "65-128"), (513, "129-512"))


def length_class(value: str) -> str:
    """A length range, never the exact length (that could help identify a token)."""
    for bound, label in LENGTH_CLASSES:
        if len(value) < bound:
            return f"{label} chars"
    return "over 512 chars"


def _clean(text: str) -> str:
    """One printable line: a token's claims must not move the cursor or colour the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _claim_text(name: str, value: Any, now: float) -> str:
    seconds = epoch(value)
    if name in TIME_CLAIMS and seconds is not None:
        return when(seconds, now)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ", ".join(value)
    else:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > LONG:  # an x5c certificate chain, a large group list: --json has it whole
        return f"{text[:LONG]}... ({len(text) - LONG} more characters; --json shows all)"
    return text


def _aligned(rows: list[tuple[str, str]], bold: frozenset[str] = frozenset()) -> list[str]:
    cells = [(paint(_clean(k), BOLD) if k in bold else _clean(k), _clean(v)) for k, v in rows]
    return table(cells, ("", ""), indent=2)[1:]


def _origin(report: Report) -> str:
    prof = report.profile
    if prof is None:
        return f"Token from stdin{_read_as(report)}"
    if report.origin == "stdin":
        compared = f'compared with profile "{prof.name}" (source {prof.kind})'
        return f"Token from stdin{_read_as(report)}, {compared}"
    how = {
        "cache": "from gatekey's cache",
        "fetched": "fetched from the source just now (and cached, as get does)",
        "fallback": "the cached copy: refreshing failed (see checks)",
        "source": "read from the source (not cached)",
    }.get(report.origin, report.origin)
    return f'Credential of profile "{prof.name}" (source {prof.kind}): {how}'


def _read_as(report: Report) -> str:
    described = report.given.described if report.given is not None else ""
    return f" ({described})" if described else ""


def inspect_text(report: Report) -> str:
    now = report.now
    lines = [_origin(report)]
    lines += [f"  note: {_clean(logs.redact(n))}" for n in report.notes]
    if report.kind == "opaque":
        lines.append(f"Opaque token ({length_class(report.value)}): not a JWT, no claims to read")
    elif report.kind == "malformed":
        lines.append(f"{TRUNCATED[0].upper()}{TRUNCATED[1:]} ({length_class(report.value)})")
    if report.header:
        label = {"jwt": "JWT", "jwe": "Encrypted JWT (JWE)"}.get(report.kind, "JWT")
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
    if report.header_names is not None:
        names = [(name, "") for name in report.header_names] or [("(none)", "")]
        lines += ["", "Headers it would send (names only: values are never shown)"]
        lines += _aligned(names)
    checks: list[tuple[str, str, str]] = []
    for c in report.checks:
        checks.append((verdict(c.verdict), c.name, _clean(logs.redact(c.detail))))
        checks += [("", "", f"fix: {_clean(logs.redact(fix))}") for fix in c.fixes]
    lines += ["", "Checks", *table(checks, ("", "", ""), indent=2)[1:]]
    failed = report.failed
    lines.append("")
    if failed:
        lines.append(f"Verdict: {paint('FAIL', VERDICTS['fail'])}, {_why_failed(failed)}")
    else:
        lines.append(f"Verdict: {paint('OK', VERDICTS['ok'])}, looks usable (no check failed)")
    return "\n".join(lines)


def _why_failed(failed: list[str]) -> str:
    """What the failed checks mean for the person: most are a gateway's refusal; a short
    lifetime and bad headers fail in the app instead."""
    refused = [name for name in failed if name not in ("lifetime", "headers")]
    why = [f"a gateway would refuse it ({', '.join(refused)})"] if refused else []
    if "lifetime" in failed:
        why.append("it expires while Claude still uses it (lifetime)")
    if "headers" in failed:
        why.append("the headers with it cannot be sent (headers)")
    return "; ".join(why)


def inspect_json(report: Report, show_token: bool) -> str:
    now = report.now
    token, expected = report.token, expected_audience(report.profile)
    data: dict[str, Any] = {
        "profile": report.profile.name if report.profile else None,
        "source": report.profile.kind if report.profile and report.origin != "stdin" else "stdin",
        "obtained_from": report.origin,
        "kind": report.kind,
        "length_class": length_class(report.value)
        if report.kind in ("opaque", "malformed")
        else None,
        "header": report.header,
        "claims": report.claims,
        "times": {
            k: {"epoch": e, "utc": _utc(e), "seconds_from_now": round(e - now)}
            for k in sorted(TIME_CLAIMS)
            if (e := epoch(report.claims.get(k))) is not None
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
            {
                "name": c.name,
                "verdict": c.verdict,
                "detail": logs.redact(c.detail),
                "fixes": [logs.redact(f) for f in c.fixes],
            }
            for c in report.checks
        ],
        "verification": report.verification,
        "notes": [logs.redact(n) for n in report.notes],
        "usable": not report.failed,
        # Added in issue 14: why a JWT-like value does not decode (kind "malformed"), how stdin
        # was read, the names of the headers a JSON or env payload sends, the time left
        # against Claude's TTL and the profile's min_ttl.
        "malformed": report.malformed,
        "stdin_format": report.given.form if report.given is not None else None,
        "headers_sent": report.header_names,
        "lifetime": report.lifetime,
    }
    if show_token:
        data["token"] = report.value
    return json.dumps(data, indent=2)


# --- gatekey check -----------------------------------------------------------------------------
def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _output(out: dict[str, Any] | None) -> str:
    if out is None:
        return "-"
    shown = f"{out['kind']} ({out['token']}, {out['token_length']} chars)"
    if out.get("names"):  # a headers helper's header names, git-credential's keys: no values
        return f"{out['kind']}: {', '.join(out['names'])} ({out['token']})"
    return shown + (f", {out['headers']} header(s)" if out["kind"] == "json" else "")


def check_text(report: dict[str, Any]) -> list[str]:
    lines = [f"helper: {report['helper']}"] + [f"  {note}" for note in report["notes"]]
    # A sibling helper (check --surface): one row per run, not per context.
    by_run = any("run" in r for r in report["runs"])
    if by_run:
        lines.insert(0, f"surface: {report['surface']} ({report['setting']}): {report['expects']}")
    lines.append("environment: " + " ".join(report["environment"]))
    lines.append("")
    header = (
        "RUN" if by_run else "CONTEXT",
        "VERDICT",
        "EXIT",
        "TIME",
        "LIMIT",
        "OUTPUT",
        "WHAT'S WRONG",
    )
    rows = []
    for r in report["runs"]:
        wrong = r["problems"] + [f"warning: {w}" for w in r["warnings"]]
        if r.get("note"):
            wrong.append(r["note"])
        if r["stderr"]:
            wrong.append(f"stderr: {r['stderr']}")
        exit_code = "-" if r["exit_code"] is None else str(r["exit_code"])
        if r["within_limit"] is False and r["exit_code"] is None:
            exit_code = "killed"
        rows.append(
            (
                r.get("run", r["context"]),
                verdict(r["verdict"]),
                exit_code,
                _seconds(r["seconds"]),
                f"{r['limit']:.3g} s",
                _output(r["output"]),
                "; ".join(wrong) or "-",
            )
        )
    lines += table(rows, header)  # fits the terminal; coloured verdicts take no width
    failed = [r.get("run", r["context"]) for r in report["runs"] if r["verdict"] == "fail"]
    ran = [r for r in report["runs"] if r["verdict"] != "skip"]
    what = "runs" if by_run else "contexts"
    lines.append("")
    if failed:
        lines.append(f"{len(failed)} of {len(ran)} {what} failed: {', '.join(failed)}")
    else:
        lines.append(f"all {len(ran)} {what} passed")
    return lines
