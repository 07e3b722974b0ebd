"""What doctor's findings mean and what to do about them: pure rules, no I/O.

Each rule returns ``Check``s named after the doctor check they serve: a verdict (OK / WARN /
FAIL), one line saying what was found, and the fix, with the numbers that would work. Nothing
here sees a token: gateway advice gets the token's claims (``aud``, ``iss``, ``scp``...), which
are not secret.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gatekey import kinds
from gatekey.checks import FAIL, OK, WARN, Check, worst
from gatekey.diagnostics.claude_settings import SCHEME_KEY, TIMEOUT_KEY, TTL_KEY
from gatekey.durations import format_duration

if TYPE_CHECKING:
    from gatekey.config import Profile


TTL_MARGIN = 300  # a new token must outlive the app's TTL by this much (refresh.py's margin)
SKEW_WARN, SKEW_FAIL = 60.0, 300.0


def combine(check: Check, findings: list[Check]) -> Check:
    """``check`` with the findings' worst verdict, their details after its own, and their fixes."""
    check.verdict = worst([f.verdict for f in findings])
    texts = [f.detail for f in findings if f.detail]
    check.detail = ": ".join(p for p in (check.detail, "; ".join(texts)) if p)
    check.fixes += [fix for f in findings for fix in f.fixes if fix]
    return check


# --- the clock -------------------------------------------------------------------------------
def clock(skew: float, host: str) -> Check:
    """This machine's clock against a server's ``Date`` header; ``skew`` > 0: ours is ahead."""
    size = abs(skew)
    if size <= 2:  # Date has whole seconds, and the request took a moment
        return Check("clock", OK, f"in step with {host} (its Date header)")
    direction = "ahead of" if skew > 0 else "behind"
    text = f"this machine's clock is {format_duration(size, nearest=True)} {direction}"
    text += f" {host}"
    fix = (
        "turn on network time (Linux: timedatectl set-ntp true; macOS: Date & Time, set "
        "automatically; Windows: w32tm /resync)"
    )
    if size <= SKEW_WARN:
        return Check("clock", OK, text)
    if size <= SKEW_FAIL:
        return Check("clock", WARN, f"{text} (tokens near expiry may be refused)", [fix])
    return Check("clock", FAIL, f"{text} (fresh tokens can look expired or not yet valid)", [fix])


# --- Claude's TTL and timeout ----------------------------------------------------------------
def seconds_setting(
    values: dict[str, str], key: str, default: int, low: int, high: int
) -> tuple[int, Check | None]:
    """An integer setting of the app (stored as a string), or its default and why."""
    raw = values.get(key)
    if raw is None:
        return default, None
    try:
        number = int(raw.strip())
    except ValueError:
        number = low - 1
    if low <= number <= high:
        return number, None
    return default, Check(
        "ttl",
        WARN,
        f"{key} = {raw!r} is not a whole number of seconds from {low} to {high}; assuming the "
        f"app's default {default}",
        [f'write {key} as a decimal string, e.g. "{default}"'],
    )


def ttl(
    *,
    ttl: int,
    timeout: int,
    lifetime: float | None,
    known: bool,
    min_ttl: float,
    silent: float,
    interactive: float | None,
    profile: str,
) -> list[Check]:
    """Claude's ``ttl`` / ``timeout`` against a new token's ``lifetime`` (None: no expiry, or
    unknown when not ``known``), the profile's ``min_ttl`` and gatekey's deadlines
    (``interactive``: the sign-in budget, None when no person signs in).

    What must hold, and why:
    - the app keeps a printed token ``ttl`` seconds and never looks at its expiry, so a new token
      must outlive it with a margin: ``ttl <= lifetime - 300``;
    - gatekey must not print a token with less than ``ttl`` left: ``min_ttl >= ttl``; yet a new
      token must count as fresh, or nearly every run fetches again: ``min_ttl < lifetime - 30``;
    - the app does not re-run the helper before a turn when ``ttl <= 120``;
    - the app's timeout must not cut gatekey's own deadlines short.
    """
    from gatekey.refresh import MIN_APP_TTL
    from gatekey.token import EXPIRY_MARGIN

    found: list[Check] = []
    target = ttl  # the TTL the advice below assumes (the suggested one if this one cannot work)
    if lifetime is not None:
        longest = int(lifetime - TTL_MARGIN)
        if longest <= MIN_APP_TTL:
            return [
                Check(
                    "ttl",
                    FAIL,
                    f"a new token lives only {int(lifetime)} s, too short for any TTL (above "
                    f"{MIN_APP_TTL} s, with {TTL_MARGIN} s of margin)",
                    [
                        f"configure a token lifetime of at least {max(ttl, 600) + TTL_MARGIN} s at "
                        "the source (e.g. the identity provider's access-token lifetime)"
                    ],
                )
            ]
        if ttl > longest:
            target = _round_down(longest)
            found.append(
                Check(
                    "ttl",
                    FAIL,
                    f"{TTL_KEY} {ttl} s is longer than a new token's {int(lifetime)} s minus "
                    f"{TTL_MARGIN} s of margin, so the app would use tokens after they expire",
                    [
                        f"set {TTL_KEY} to at most {longest}"
                        + (f" (e.g. {target})" if target != longest else "")
                    ],
                )
            )
    if ttl <= MIN_APP_TTL:
        most = f" and at most {int(lifetime) - TTL_MARGIN}" if lifetime else ""
        found.append(
            Check(
                "ttl",
                WARN,
                f"with {TTL_KEY} <= {MIN_APP_TTL} s the app does not re-run the helper before a "
                "turn, only after the gateway has rejected a token",
                [f"set {TTL_KEY} above {MIN_APP_TTL}{most}"],
            )
        )
    if lifetime is not None or not known:  # a credential with no expiry fits any min_ttl
        found += _min_ttl(target, target != ttl, lifetime, min_ttl, EXPIRY_MARGIN, profile)
    if timeout < silent:
        found.append(
            Check(
                "ttl",
                FAIL,
                f"{TIMEOUT_KEY} {timeout} s is shorter than gatekey's silent deadline "
                f"({silent:g} s), so the app may kill a refresh that would have succeeded",
                [f"set {TIMEOUT_KEY} to at least {int(silent) + 5}, or lower [timeouts] silent"],
            )
        )
    if interactive is not None and timeout < interactive:
        found.append(
            Check(
                "ttl",
                WARN,
                f"a person signing in during an interactive run has {timeout} s before the app "
                f"kills the helper (gatekey allows {interactive:g} s)",
                [
                    f"set {TIMEOUT_KEY} to at least {int(interactive)} (e.g. "
                    f"{max(int(interactive), 180)}), or sign in beforehand: gatekey login -p "
                    f"{profile}"
                ],
            )
        )
    return found


def _min_ttl(
    target: int,
    suggested: bool,
    lifetime: float | None,
    min_ttl: float,
    expiry_margin: float,
    profile: str,
) -> list[Check]:
    high = None if lifetime is None else int(lifetime - expiry_margin) - 1
    if high is None:
        span, example = f"to at least {target} s", target + TTL_MARGIN
    else:
        span = f"between {target} s and {high} s"
        example = max(target, min(target + TTL_MARGIN, high) // 60 * 60)
    fix = f'set min_ttl {span} (e.g. min_ttl = "{example}s") in profile "{profile}"'
    which = "the TTL suggested above" if suggested else "the app's TTL"
    if min_ttl < target:
        return [
            Check(
                "ttl",
                FAIL,
                f"min_ttl {int(min_ttl)} s is shorter than {which} ({target} s), so gatekey may "
                "print a token that expires while the app still uses it",
                [fix],
            )
        ]
    if high is not None and min_ttl > high:
        return [
            Check(
                "ttl",
                WARN,
                f"min_ttl {int(min_ttl)} s is not shorter than a new token's lifetime, so "
                "nearly every run fetches a new token",
                [fix],
            )
        ]
    return []


def _round_down(seconds: int) -> int:
    """A round value at most ``seconds`` (which is above 120), for examples."""
    step = 300 if seconds >= 600 else 60
    return seconds // step * step


# --- the gateway's answer ----------------------------------------------------------------------
def gateway(
    status: int,
    *,
    endpoint: str,
    profile: Profile,
    claims: dict[str, object] | None,
    challenge: str = "",
    message: str = "",
    models: int | None = None,
    location: str | None = None,
) -> Check:
    """What a gateway's answer to ``GET /v1/models`` with the token means."""
    said = f" ({message})" if message else ""
    head = f"GET {endpoint} answered {status}"
    if status == 200:
        if models == 0:
            return Check(
                "gateway",
                WARN,
                f"{head} but lists no models",
                ["ask the gateway's admins for access"],
            )
        listed = "" if models is None else f" ({models} model(s))"
        return Check("gateway", OK, f"{head}{listed}: the gateway accepts the token")
    if status == 401:
        return _unauthorized(head, challenge, message, claims, profile)
    if status == 403:
        held = claims_text(claims, ("sub", "azp", "appid", "client_id", "scp", "scope", "roles"))
        who = f" ({held})" if held else " (the key's team or model permissions)"
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway knows the credential but refuses it access{said}",
            [
                f"ask the gateway's admins to allow this identity{who}, or request the scope or "
                "role the gateway requires (the profile's scopes)"
            ],
        )
    if status in (404, 405):
        base = endpoint[: -len("/v1/models")]
        if base.rstrip("/").endswith("/v1"):
            fix = f"drop the trailing /v1 from the base URL ({base}): Claude appends /v1/..."
        else:
            fix = (
                "check the base URL: it is the address under which the gateway serves "
                "/v1/messages; if the gateway does not list models, list them in Claude's "
                "configuration so the app does not call /v1/models"
            )
        return Check("gateway", FAIL, f"{head}: no models endpoint there{said}", [fix])
    if 300 <= status < 400:
        return Check(
            "gateway",
            FAIL,
            f"{head}: a redirect to {location or '(no Location)'}",
            ["set the base URL to the address the gateway redirects to"],
        )
    if status == 429:
        return Check("gateway", WARN, f"{head}: rate limited{said}", ["try again later"])
    if status >= 500:
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway failed{said}",
            ["the gateway or its upstream is failing"],
        )
    return Check("gateway", FAIL, f"{head}{said}", ["check the gateway's logs for why it refused"])


def _unauthorized(
    head: str, challenge: str, message: str, claims: dict[str, object] | None, profile: Profile
) -> Check:
    """401: which part of the token the gateway rejects, from its challenge and message."""
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    reason = params.get("error_description") or params.get("error") or message
    said = f" ({reason})" if reason else ""
    text = f"{params.get('error_description', '')} {message}".lower()
    has = {name: claims_text(claims, (name,)) or f"no {name}" for name in ("aud", "iss")}
    if re.search(r"\baud|audience", text):
        issuer = kinds.capable(profile.spec, kinds.CheckingTokens)
        how = (
            issuer.audience_fix(profile)
            if issuer is not None
            else "use a credential issued for this gateway"
        )
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway rejects the token's audience{said}; the token has {has['aud']}",
            [f"{how}, or configure the gateway to accept that audience"],
        )
    if re.search(r"\biss|issuer", text):
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway rejects the token's issuer{said}; the token has {has['iss']}",
            ["configure the gateway to trust this issuer, or sign in at the one it trusts"],
        )
    if "expired" in text:
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway says the token expired{said}",
            [
                "compare the clocks (the clock check), then: gatekey get -p "
                f"{profile.name} --force-refresh"
            ],
        )
    if "signature" in text:
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway cannot verify the token's signature{said}",
            [f"the gateway checks another issuer's keys; the token has {has['iss']}"],
        )
    other = "x-api-key" if profile.values["auth_scheme"] == "bearer" else "bearer"
    return Check(
        "gateway",
        FAIL,
        f"{head}: the gateway does not accept the credential{said}",
        [
            f'if the gateway wants it as {other}, set auth_scheme = "{other}" (and {SCHEME_KEY}); '
            f"otherwise look at the token: gatekey inspect -p {profile.name}"
        ],
    )


def claims_text(claims: dict[str, object] | None, names: tuple[str, ...]) -> str:
    if not claims:
        return ""
    return ", ".join(f"{n}={claims[n]}" for n in names if claims.get(n) not in (None, ""))


def tls(reason: str, host: str) -> str:
    """The fix for a TLS failure with ``host``, from OpenSSL's ``reason``."""
    lowered = reason.lower()
    if "hostname" in lowered or "ip address mismatch" in lowered:
        return f"the certificate is for another name than {host}: use the name it was issued for"
    if "expired" in lowered:
        return f"{host}'s certificate has expired: the gateway's operators must renew it"
    return (
        f"{host}'s certificate is not trusted here: add the CA that issued it (your "
        "organisation's, or a TLS-inspecting proxy's) to this machine's trust store"
    )
