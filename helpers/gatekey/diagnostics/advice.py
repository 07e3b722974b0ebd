"""What doctor's findings mean and what to do about them: pure rules, no I/O.

Each rule returns ``Check``s named after the doctor check they serve: a verdict (OK / WARN /
FAIL), one line saying what was found, and the fix, with the numbers that would work. What a
gateway's answer means is in gateway_advice.py.
"""

from __future__ import annotations

from gatekey.checks import FAIL, OK, WARN, Check, worst
from gatekey.diagnostics.claude_settings import TIMEOUT_KEY, TTL_KEY
from gatekey.durations import format_duration

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
