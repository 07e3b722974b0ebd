"""Whether a token lasts as long as Claude will use it: inspect's lifetime check.

The app keeps what the helper printed for ``inferenceCredentialHelperTtlSec`` (3600 s by
default) and never reads the token's expiry, so a token that expires first fails mid-session,
after the app stopped asking for a new one. gatekey prints only tokens with more than the
profile's ``min_ttl`` left (refreshing first), which is why ``min_ttl`` must be at least that TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatekey.checks import FAIL, OK, SKIP, WARN, Check
from gatekey.diagnostics import claude_settings
from gatekey.diagnostics.advice import TTL_MARGIN, seconds_setting
from gatekey.durations import format_duration
from gatekey.refresh import MIN_APP_TTL

LONGEST_TTL = 366 * 86400  # what doctor accepts as a TTL, too


@dataclass(frozen=True)
class AppTtl:
    seconds: int
    where: str  # for people: the key and the file, or why it is the app's default
    path: str | None  # the managed settings it came from; None: the app's default


def app_ttl() -> AppTtl:
    """Claude's TTL on this machine, from its managed settings (claude_settings.read: the file
    under GATEKEY_MANAGED_ROOT in tests), else the app's default."""
    key, default = claude_settings.TTL_KEY, claude_settings.DEFAULT_TTL
    found = claude_settings.read()
    if found.problem:  # the app ignores the whole file, so it uses its default
        return AppTtl(default, f"the app's default: {found.problem}", None)
    if key not in found.values:
        why = f"{found.where} does not set {key}" if found.where else "no managed settings"
        return AppTtl(default, f"the app's default; {why}", None)
    seconds, bad = seconds_setting(found.values, key, default, 0, LONGEST_TTL)
    if bad is not None:
        return AppTtl(seconds, f"{bad.detail}, in {found.where}", None)
    return AppTtl(seconds, f"{key} in {found.where}", found.where)


def check(
    *,
    expires_at: float | None,
    now: float,
    ttl: AppTtl,
    min_ttl: float | None,
    lifetime: float | None,
    origin: str,
    profile: str | None,
) -> Check:
    """The token's time left (``expires_at``: its exp, else the expiry gatekey recorded) against
    Claude's ``ttl`` and the profile's ``min_ttl``; ``lifetime``: how long such a token lives
    when new (None: unknown); ``origin``: stdin, or how get obtained it (inspect.Report)."""
    data: dict[str, Any] = {
        "seconds_left": None if expires_at is None else round(expires_at - now),
        "claude_ttl": ttl.seconds,
        "claude_ttl_from": ttl.path,
        "min_ttl": min_ttl,
        "lifetime": None if lifetime is None else round(lifetime),
    }
    uses = f"Claude uses a token {ttl.seconds} s without reading its expiry ({ttl.where})"
    if expires_at is None:
        return Check("lifetime", SKIP, f"no known expiry, so nothing to compare: {uses}", [], data)
    left = expires_at - now
    span = format_duration(left)
    refresh = ""
    if min_ttl is not None and left <= min_ttl:
        refresh = (
            f"; gatekey would not print it: it fetches a new one once less than min_ttl "
            f"({format_duration(min_ttl)}) is left"
            if origin == "stdin"
            else f"; less than min_ttl ({format_duration(min_ttl)}) is left, so gatekey "
            "fetches a new one on a coming run"
        )
    if left < ttl.seconds:
        gap = format_duration(max(1.0, ttl.seconds - left), nearest=True)
        detail = (
            f"{span} left, but {uses}: requests fail mid-session once it expires, "
            f"{gap} before the app asks for a new one{refresh}"
        )
        return Check(
            "lifetime", FAIL, detail, _fixes(ttl, min_ttl, lifetime, origin, profile), data
        )
    if left < ttl.seconds + TTL_MARGIN:
        detail = (
            f"{span} left, only {format_duration(left - ttl.seconds)} more than the {ttl.seconds} "
            f"s Claude uses a token ({ttl.where}): a gateway clock a little ahead of this "
            f"machine's, or a slow request, and it expires mid-session{refresh}"
        )
        return Check(
            "lifetime", WARN, detail, _fixes(ttl, min_ttl, lifetime, origin, profile), data
        )
    detail = f"{span} left, more than the {ttl.seconds} s Claude uses a token ({ttl.where})"
    return Check("lifetime", OK, detail + refresh, [], data)


def _fixes(
    ttl: AppTtl, min_ttl: float | None, lifetime: float | None, origin: str, profile: str | None
) -> list[str]:
    """What to do, most fundamental first: a source whose new tokens cannot cover the TTL, a
    min_ttl below it, a refresh that failed, a token that should not have been printed."""
    fixes = []
    enough = ttl.seconds + TTL_MARGIN
    key = claude_settings.TTL_KEY
    if lifetime is not None and lifetime < enough:
        longest = int(lifetime) - TTL_MARGIN
        # At or below MIN_APP_TTL the app stops re-running the helper before a turn.
        shorter = f"set Claude's {key} to at most {longest} (managed settings), or "
        longer = f"have the issuer grant tokens that live over {enough} s"
        life = format_duration(lifetime)
        fixes.append(
            f"tokens like this live only {life} when new: "
            + (shorter if longest > MIN_APP_TTL else "")
            + longer
        )
    target = f'profile "{profile}"' if profile else "the profile"
    if min_ttl is not None and min_ttl < enough:
        why = (
            "lets it print one that expires inside Claude's TTL"
            if min_ttl < ttl.seconds
            else f"leaves less than {TTL_MARGIN} s of margin over Claude's TTL"
        )
        fixes.append(
            f'set min_ttl = "{enough}s" (or more) in {target}: gatekey refreshes a token once '
            f"less than min_ttl is left, and {int(min_ttl)} s {why}"
        )
    if origin == "fallback":
        fixes.append(
            "refreshing failed (see the refresh check); once it works, gatekey prints a new token"
        )
    elif origin == "stdin":
        fixes.append(
            f"gatekey get -p {profile} prints one with more than min_ttl left (refreshing first)"
            if profile
            else f"print a token with more than {enough} s left: refresh it first (as gatekey "
            "does once less than a profile's min_ttl is left)"
        )
    return fixes
