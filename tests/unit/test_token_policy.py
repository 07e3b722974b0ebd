"""Token state and refresh policy (token.py), and get_token() with a fake source (refresh.py)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from gatekey import config, refresh
from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.errors import (
    BadToken,
    ExpiredOnArrival,
    HelperError,
    InteractionRequired,
    TemporaryFailure,
)
from gatekey.token import (
    EXPIRED,
    EXPIRY_MARGIN,
    FRESH,
    RECENT,
    STALE,
    Token,
    servable,
    short_lifetime,
    state,
    usable_without_fetch,
)
from refresh_harness import (
    NOW,
    SECRET,
    Clock,
    FakeSource,
    Harness,
    interactive,
    make_profile,
    silent,
)

MIN_TTL = 3900.0


def token(remaining: float | None, *, age: float = 0.0, value: str = SECRET) -> Token:
    """A token with ``remaining`` seconds left at NOW, obtained ``age`` seconds before NOW."""
    expires_at = None if remaining is None else NOW + remaining
    return Token(value, expires_at=expires_at, obtained_at=NOW - age, source="test")


# --- state ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (MIN_TTL + 0.001, FRESH),
        (MIN_TTL + 3600, FRESH),
        (MIN_TTL, STALE),  # not more than min_ttl: refresh
        (EXPIRY_MARGIN + 0.001, STALE),
        (EXPIRY_MARGIN, EXPIRED),  # within the margin counts as expired
        (1.0, EXPIRED),
        (0.0, EXPIRED),
        (-100.0, EXPIRED),
        (None, FRESH),
    ],
)
def test_state_boundaries(remaining: float | None, expected: str) -> None:
    assert state(token(remaining), NOW, MIN_TTL) == expected


def test_state_follows_min_ttl() -> None:
    tok = token(600)
    assert state(tok, NOW, 300) == FRESH
    assert state(tok, NOW, 600) == STALE
    assert state(tok, NOW, 0) == FRESH
    assert state(token(20), NOW, 0) == EXPIRED  # the margin applies whatever min_ttl says


def test_token_without_expiry_is_always_fresh() -> None:
    tok = token(None, age=10 * 365 * 86400)
    assert state(tok, NOW, 1e9) == FRESH
    assert usable_without_fetch(tok, NOW, 1e9)
    assert tok.remaining(NOW) is None
    assert tok.lifetime is None
    assert not short_lifetime(tok, 1e9)


# --- usable_without_fetch -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("remaining", "age", "usable"),
    [
        (MIN_TTL + 1, 3000, True),  # fresh, however old
        (1800, 0, True),  # stale but just obtained: its whole lifetime is short
        (1800, RECENT - 0.001, True),
        (1800, RECENT, False),  # stale and not recent: refresh
        (1800, 600, False),
        (EXPIRY_MARGIN, 0, False),  # expired is never usable, even brand new
        (-5, 1, False),
    ],
)
def test_usable_without_fetch(remaining: float, age: float, usable: bool) -> None:
    assert usable_without_fetch(token(remaining, age=age), NOW, MIN_TTL) is usable


def test_a_token_from_the_future_is_not_trusted() -> None:
    far = token(MIN_TTL + 100, age=-(EXPIRY_MARGIN + 1))
    near = token(MIN_TTL + 100, age=-(EXPIRY_MARGIN - 1))
    assert not usable_without_fetch(far, NOW, MIN_TTL)
    assert usable_without_fetch(near, NOW, MIN_TTL)


# --- servable -------------------------------------------------------------------------------
def test_servable_without_bypass_is_usable_without_fetch() -> None:
    for tok in (token(MIN_TTL + 1, age=500), token(1800, age=5), token(1800, age=500)):
        assert servable(tok, NOW, MIN_TTL, bypass=False, force=False) is usable_without_fetch(
            tok, NOW, MIN_TTL
        )


@pytest.mark.parametrize(
    ("remaining", "age", "ok"),
    [
        (MIN_TTL + 1, 0, True),
        (MIN_TTL + 1, RECENT - 0.001, True),
        (MIN_TTL + 1, RECENT, False),  # fresh but older than a moment: the app just rejected it
        (MIN_TTL + 1, 3000, False),
        (1800, 10, True),  # stale but just obtained by another run
        (EXPIRY_MARGIN, 10, False),
        (None, 10, True),
        (None, 120, False),
        (MIN_TTL + 1, -1, False),  # obtained "in the future"
    ],
)
def test_servable_with_bypass_only_serves_moments_old_tokens(
    remaining: float | None, age: float, ok: bool
) -> None:
    assert servable(token(remaining, age=age), NOW, MIN_TTL, bypass=True, force=False) is ok


@pytest.mark.parametrize("bypass", [True, False])
def test_force_never_serves_a_cached_token(bypass: bool) -> None:
    assert not servable(token(None, age=0), NOW, MIN_TTL, bypass=bypass, force=True)
    assert not servable(token(MIN_TTL + 1, age=1), NOW, MIN_TTL, bypass=bypass, force=True)


def test_short_lifetime() -> None:
    assert short_lifetime(token(600), MIN_TTL)
    assert short_lifetime(token(MIN_TTL), MIN_TTL)
    assert not short_lifetime(token(MIN_TTL + 1), MIN_TTL)
    # Lifetime is measured from receipt, not from now.
    assert not short_lifetime(token(600, age=MIN_TTL), MIN_TTL)


# --- repr and JSON --------------------------------------------------------------------------
def test_repr_and_str_hide_the_value() -> None:
    tok = token(100)
    for text in (repr(tok), str(tok), f"{tok}", repr([tok]), repr({"t": tok})):
        assert SECRET not in text
        assert "<hidden>" in text


def test_json_round_trip() -> None:
    tok = Token(SECRET, expires_at=NOW + 5, obtained_at=NOW, source="s", meta={"k": "v"})
    back = Token.from_json(json.loads(json.dumps(tok.to_json())))
    assert (back.value, back.expires_at, back.obtained_at, back.source, back.meta) == (
        SECRET,
        NOW + 5,
        NOW,
        "s",
        {"k": "v"},
    )
    no_expiry = Token.from_json({"token": "t", "expires_at": None, "obtained_at": 1})
    assert no_expiry.expires_at is None
    assert no_expiry.obtained_at == 1.0
    assert isinstance(no_expiry.obtained_at, float)


def test_from_expires_in_measures_from_receipt() -> None:
    tok = Token.from_expires_in(SECRET, 3600, source="s", now=NOW)
    assert tok.expires_at == NOW + 3600
    assert tok.obtained_at == NOW
    assert tok.lifetime == 3600
    assert Token.from_expires_in(SECRET, None, source="s", now=NOW).expires_at is None


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "token",
        42,
        {},
        {"token": "", "obtained_at": 1},
        {"token": 5, "obtained_at": 1},
        {"token": None, "obtained_at": 1},
        {"token": "t"},
        {"token": "t", "obtained_at": None},
        {"token": "t", "obtained_at": "1"},
        {"token": "t", "obtained_at": True},
        {"token": "t", "obtained_at": math.nan},
        {"token": "t", "obtained_at": 1, "expires_at": "soon"},
        {"token": "t", "obtained_at": 1, "expires_at": False},
        {"token": "t", "obtained_at": 1, "expires_at": math.nan},
        {"token": "t", "obtained_at": 1, "expires_at": [1]},
    ],
)
def test_from_json_rejects_malformed_entries(data: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the reason is for the debug log only
        Token.from_json(data)


def test_from_json_tolerates_odd_optional_fields() -> None:
    tok = Token.from_json({"token": "t", "obtained_at": 1, "source": 3, "meta": "x"})
    assert tok.source == ""
    assert tok.meta == {}


def test_from_json_rejects_numbers_beyond_a_float() -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Token.from_json({"token": "t", "obtained_at": 10**400})


# --- get_token with a fake source -----------------------------------------------------------
@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_fresh_cached_token_is_served_without_fetching(h: Harness) -> None:
    cached = h.seed(7200, age=1000)
    src = h.source(7200)
    out = h.get(src)
    assert (out.how, out.token.value, out.warnings) == ("cache", cached.value, [])
    assert src.calls == 0


def test_a_miss_fetches_and_persists(h: Harness) -> None:
    src = h.source(7200)
    out = h.get(src)
    assert (out.how, out.warnings, src.calls) == ("fetched", [], 1)
    saved, _ = h.cache.read(h.key)
    assert saved is not None
    assert saved.value == out.token.value
    again = h.get(src)
    assert (again.how, src.calls) == ("cache", 1)


def test_stale_token_is_refreshed(h: Harness) -> None:
    h.seed(1800, age=5000)
    src = h.source(7200)
    out = h.get(src)
    assert (out.how, src.calls) == ("fetched", 1)
    assert out.token.value == f"{SECRET}-1"


def test_stale_token_is_printed_with_one_warning_when_refresh_fails(h: Harness) -> None:
    cached = h.seed(1800, age=5000)
    src = h.source(TemporaryFailure("identity provider unreachable"))
    out = h.get(src)
    assert out.how == "fallback"
    assert out.token.value == cached.value
    assert len(out.warnings) == 1
    warning = out.warnings[0]
    assert "could not refresh" in warning
    assert "identity provider unreachable" in warning
    assert 'profile "p"' in warning
    assert "expires in 30 min" in warning
    assert cached.value not in warning


def test_any_source_failure_falls_back_and_is_remembered_with_its_exit_code(h: Harness) -> None:
    cached = h.seed(1800, age=5000)
    out = h.get(h.source(InteractionRequired("sign in: gatekey login -p p")))
    assert (out.how, out.token.value) == ("fallback", cached.value)
    remembered = h.cache.read_failure(h.key, h.clock())
    assert remembered is not None  # every source failure is kept briefly, against storms
    assert remembered[0].exit_code == InteractionRequired.exit_code == 4


@pytest.mark.parametrize("remaining", [EXPIRY_MARGIN, 10, -60])
def test_expired_token_and_failed_refresh_raises(h: Harness, remaining: float) -> None:
    h.seed(remaining, age=5000)
    with pytest.raises(TemporaryFailure) as info:
        h.get(h.source(TemporaryFailure("identity provider unreachable")))
    assert info.value.profile == "p"
    assert 'profile "p": identity provider unreachable' in str(info.value)


def test_no_cached_token_and_failed_refresh_raises(h: Harness) -> None:
    with pytest.raises(HelperError, match="command exited"):
        h.get(h.source(HelperError("command exited with status 1")))


def test_a_remembered_failure_stops_silent_runs_from_asking_again(h: Harness) -> None:
    src = h.source(TemporaryFailure("identity provider unreachable"))
    with pytest.raises(TemporaryFailure):
        h.get(src)
    assert src.calls == 1
    h.clock.now += 2
    with pytest.raises(HelperError) as info:
        h.get(src)
    assert src.calls == 1  # not asked again
    assert info.value.exit_code == TemporaryFailure.exit_code
    message = str(info.value)
    assert "identity provider unreachable" in message
    assert "not asking again until" in message
    assert "(in 3 s)" in message  # the first failure backs off 5 s; 2 s have passed
    assert "gatekey get -p p --force-refresh" in message
    # Once the backoff is over, the source is asked again.
    h.clock.now += 3.5
    with pytest.raises(TemporaryFailure):
        h.get(src)
    assert src.calls == 2


def test_a_remembered_failure_still_serves_a_valid_stale_token(h: Harness) -> None:
    cached = h.seed(1800, age=5000)
    src = h.source(TemporaryFailure("vault unreachable"))
    assert h.get(src).how == "fallback"
    out = h.get(src)
    assert (out.how, out.token.value, src.calls) == ("fallback", cached.value, 1)
    assert "not asking again until" in out.warnings[0]


def test_interactive_run_ignores_the_remembered_failure(h: Harness) -> None:
    src = h.source(TemporaryFailure("vault unreachable"), 7200)
    with pytest.raises(TemporaryFailure):
        h.get(src)
    out = h.get(src, interactive())
    assert (out.how, src.calls) == ("fetched", 2)


def test_force_refresh_ignores_the_remembered_failure(h: Harness) -> None:
    src = h.source(TemporaryFailure("vault unreachable"), 7200)
    with pytest.raises(TemporaryFailure):
        h.get(src)
    out = h.get(src, silent(force_refresh=True))
    assert (out.how, src.calls) == ("fetched", 2)


def test_success_clears_the_remembered_failure(h: Harness) -> None:
    src = h.source(TemporaryFailure("vault unreachable"), 7200, TemporaryFailure("down again"))
    with pytest.raises(TemporaryFailure):
        h.get(src)
    assert h.cache.read_failure(h.key, h.clock()) is not None
    h.get(src, interactive())
    assert h.cache.read_failure(h.key, h.clock()) is None
    # The next failure starts the backoff afresh (5 s), not where the old one left off.
    h.clock.now += 10_000  # the token is now stale: a refresh is due
    with pytest.raises(TemporaryFailure):
        h.get(src, silent(force_refresh=True))
    remembered = h.cache.read_failure(h.key, h.clock())
    assert remembered is not None
    assert remembered[1] == h.clock() + 5


def test_force_refresh_fetches_even_a_fresh_token(h: Harness) -> None:
    h.seed(7200, age=1)
    src = h.source(7200)
    out = h.get(src, silent(force_refresh=True))
    assert (out.how, src.calls) == ("fetched", 1)


def test_mid_session_refresh_bypasses_a_token_older_than_a_moment(h: Harness) -> None:
    h.seed(7200, age=RECENT + 1)
    src = h.source(7200)
    assert h.get(src, silent("mid-session-refresh")).how == "fetched"
    assert src.calls == 1
    # The token just fetched is moments old: another mid-session run reuses it.
    assert h.get(src, silent("mid-session-refresh")).how == "cache"
    assert src.calls == 1


def test_a_token_refreshed_while_waiting_for_the_lock_is_reused(h: Harness) -> None:
    h.seed(1800, age=5000)
    src = h.source(7200)

    def factory(_profile: config.Profile) -> FakeSource:
        # Runs after the first cache read, before the lock: as if another process refreshed.
        h.cache.write(h.key, Token.from_expires_in("dummy-other-run", 7200, source="x", now=NOW))
        return src

    out = refresh.get_token(
        h.profile, silent(), cache=h.cache, source_factory=factory, clock=h.clock
    )
    assert (out.how, out.token.value, src.calls) == ("cache", "dummy-other-run", 0)


def test_short_lived_token_is_served_with_one_warning(h: Harness) -> None:
    src = h.source(1200)
    out = h.get(src)
    assert out.how == "fetched"
    assert out.token.value == f"{SECRET}-1"
    assert len(out.warnings) == 1
    warning = out.warnings[0]
    assert "inferenceCredentialHelperTtlSec" in warning
    assert "at most 900" in warning  # its lifetime minus 5 min
    assert "20 min" in warning
    assert SECRET not in warning
    # It is not fetched again on the next run merely for being short-lived.
    h.clock.now += 10
    again = h.get(src)
    assert (again.how, again.warnings, src.calls) == ("cache", [], 1)


def test_min_ttl_argument_overrides_the_profile(h: Harness) -> None:
    h.seed(1800, age=5000)
    src = h.source(7200)
    assert h.get(src, min_ttl=600).how == "cache"
    assert h.get(src).how == "fetched"


@pytest.mark.parametrize("lifetime", [EXPIRY_MARGIN, 5, 0, -10])
def test_a_source_returning_an_almost_expired_token_is_refused(h: Harness, lifetime: float) -> None:
    src = h.source(lifetime)
    with pytest.raises(ExpiredOnArrival) as info:
        h.get(src)
    assert info.value.profile == "p"
    assert "too soon to use" in str(info.value)
    assert SECRET not in str(info.value)
    assert h.cache.read(h.key)[0] is None  # never persisted


def test_an_almost_expired_token_falls_back_to_a_valid_cached_one(h: Harness) -> None:
    cached = h.seed(1800, age=5000)
    out = h.get(h.source(10))
    assert (out.how, out.token.value) == ("fallback", cached.value)
    assert "too soon to use" in out.warnings[0]


def test_a_token_with_control_characters_is_refused(h: Harness) -> None:
    class Bad:
        def fetch(self, run: RunContext) -> Token:
            return Token.from_expires_in("dummy\nvalue", 7200, source="x", now=NOW)

    with pytest.raises(BadToken):
        refresh.get_token(
            h.profile, silent(), cache=h.cache, source_factory=lambda _p: Bad(), clock=h.clock
        )
    assert h.cache.read(h.key)[0] is None


def test_uncached_profiles_ask_the_source_every_time(tmp_path: Path) -> None:
    clock = Clock()
    prof = make_profile({"cache": False})
    cache = FileCache(str(tmp_path / "cache"))
    src = FakeSource(clock, 1200)
    for _ in range(2):
        out = refresh.get_token(
            prof, silent(), cache=cache, source_factory=lambda _p: src, clock=clock
        )
        assert out.how == "source"
        assert len(out.warnings) == 1  # the short-lifetime warning applies here too
    assert src.calls == 2
    assert not (tmp_path / "cache").exists()


def test_token_values_never_appear_in_warnings_or_errors(h: Harness) -> None:
    cached = h.seed(1800, age=5000)
    outcomes = [h.get(h.source(TemporaryFailure("down")))]
    h.clock.now += 10
    outcomes.append(h.get(h.source(TemporaryFailure("down"))))  # remembered failure
    outcomes.append(h.get(h.source(600), interactive()))  # short-lived
    for out in outcomes:
        for warning in out.warnings:
            assert cached.value not in warning
            assert SECRET not in warning
    h.clock.now += 10_000
    with pytest.raises(HelperError) as info:
        h.get(h.source(TemporaryFailure("down")), interactive())
    assert SECRET not in str(info.value)
    assert cached.value not in str(info.value)


def test_a_damaged_failure_record_does_not_crash_get_token(h: Harness) -> None:
    failures = Path(h.cache.root) / "failures"
    failures.mkdir(parents=True)
    (failures / f"{h.key}.json").write_text(
        '{"until": NaN, "at": 0, "count": 1, "class": "TemporaryFailure", "message": "down"}'
    )
    src = h.source(7200)
    out = h.get(src)
    assert out.how == "fetched"


def test_a_default_command_profile_reuses_its_output_for_cache_ttl(tmp_path: Path) -> None:
    prof = make_profile({"command": ["/bin/echo", "dummy-echo-token"]})
    assert prof.values["cache_ttl"] == 900.0
    cache = FileCache(str(tmp_path / "cache"))
    first = refresh.get_token(prof, silent(), cache=cache)
    assert (first.how, first.token.value) == ("fetched", "dummy-echo-token")
    later = refresh.get_token(prof, silent(), cache=cache, clock=lambda: time.time() + 300)
    assert later.how == "cache"  # 5 min into a 15 min cache_ttl
