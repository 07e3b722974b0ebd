"""Clock trouble: a new token's own times (JWT ``exp``, ``nbf``, ``iat``) against this machine's.

A gateway judges a JWT by its claims and its own clock; gatekey can only see this machine's, and
takes the gateway to agree with it (``gatekey doctor`` compares this clock with the source's).
A source's ``expires_in`` is measured from receipt, so it is immune to skew; the claims are not:

- a token whose ``exp`` claim comes before receipt + ``expires_in`` (the IdP's clock behind ours)
  expires at its claim: the earlier of the two wins, never a token the gateway sees as expired;
- a token not valid yet by our clock (``nbf``/``iat`` ahead: the IdP's clock ahead, or ours
  behind) is held back until it is, when that is at most ``NOT_YET_VALID_WAIT`` seconds away
  within the run's deadline; further off, it is refused with the measured difference: the
  gateway would refuse it too, with a far less helpful message;
- a token that is fine but issued more than ``SKEW_WARN`` seconds away from our clock is printed
  with one warning naming the difference.

Claims are decoded, never verified: they only move times earlier or hold a token back.
Opaque tokens and values with no stated lifetime (a vault's API key) are left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gatekey.context import RunContext
from gatekey.durations import format_duration
from gatekey.errors import ClockTrouble
from gatekey.token import EXPIRY_MARGIN, Token, is_time, jwt_claims

log = logging.getLogger(__name__)

NOT_YET_VALID_WAIT = 10.0  # seconds a run waits for a token to become valid by our clock
SKEW_WARN = 60.0  # the clocks differ by more than this: say so (doctor's warning threshold)
# Claims are whole seconds and the answer took a moment to arrive: an exp up to this much before
# receipt + expires_in is the same expiry, not a clock behind ours.
ROUNDING = 2.0


def jwt_times(value: str) -> dict[str, float]:
    """The ``exp``, ``nbf`` and ``iat`` claims of a compact JWS, unverified; {} otherwise."""
    claims = jwt_claims(value) or {}
    return {k: float(v) for k in ("exp", "nbf", "iat") if is_time(v := claims.get(k))}


def settle(
    token: Token,
    kind: str,
    profile_name: str,
    run: RunContext,
    clock: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Bring ``token.expires_at`` in line with its claims, wait for it to become valid, or
    raise ClockTrouble. A token with no stated lifetime is left alone."""
    if token.expires_at is None:
        return
    times = jwt_times(token.value)
    if not times:
        return
    now = clock()
    exp = times.get("exp")
    # How far our clock is ahead of the source's: the expiry by expires_in (our clock) against
    # the expiry by the claim (theirs). Unlike now - iat, this holds for a token MSAL reused.
    skew = None if exp is None else token.expires_at - exp
    if exp is not None and exp < token.expires_at - ROUNDING:
        token.expires_at = exp
        if exp - now <= EXPIRY_MARGIN:
            raise ClockTrouble(
                f"the {kind} source's new token expired at {_utc(exp)} by its own exp claim, "
                f"and this machine's clock reads {_utc(now)}: {_skew_advice(skew)}",
                profile=profile_name,
            )
    start = max(times.get("nbf", now), times.get("iat", now))
    wait = start - now
    if wait > 0:
        if wait > min(NOT_YET_VALID_WAIT, run.remaining() - 1.0):
            raise ClockTrouble(
                f"the {kind} source's new token is not valid until {_utc(start)} by its own "
                f"claims, {format_duration(wait, nearest=True)} from now by this machine's clock, "
                f"so the gateway would refuse it: {_skew_advice(-wait if skew is None else skew)}",
                profile=profile_name,
            )
        log.debug("waiting %.1f s for the new token to become valid by this clock", wait)
        sleep(wait + 0.05)
    elif skew is not None and skew > SKEW_WARN:
        log.warning(
            'profile "%s": %s; tokens are refreshed early to make up for it',
            profile_name,
            _skew_advice(skew),
        )


def _skew_advice(skew: float | None) -> str:
    if skew is None:
        return "this machine's clock and the source's disagree; run: gatekey doctor"
    size = format_duration(abs(skew), nearest=True)
    direction = "ahead of" if skew > 0 else "behind"
    return (
        f"this machine's clock is about {size} {direction} the source's; "
        "correct the clock that is wrong (on Linux: timedatectl set-ntp true; gatekey doctor "
        "measures the difference)"
    )


def _utc(epoch: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch))
