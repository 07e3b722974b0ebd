"""The secret cache's rules, in process: how long a kernel key lives (securecache.keep_for) and
when a failing read may serve the cached secret (refresh._fall_back). The cache itself, through
the installed executables: tests/blackbox/cache/test_secure_cache.py."""

from __future__ import annotations

import math
import time

import pytest

from gatekey.config import Config
from gatekey.errors import AccessDenied, CredentialNotFound, HelperError
from gatekey.refresh import _fall_back
from gatekey.securecache import keep_for
from gatekey.token import Token


def test_kernel_timeout_covers_the_whole_max_stale_window():
    # keyctl_set_timeout(2): expiry = ktime_get_real_seconds() + timeout; the key is dead once
    # the (whole-second) real time reaches it.
    short = []
    for obtained, expires, now in [
        (100.0, None, 100.2),
        (100.5, None, 100.9),
        (100.0, None, 100.999),
        (100.0, 104.5, 100.9),  # a real expiry: the same rule
    ]:
        token = Token("k", expires_at=expires, obtained_at=obtained, source="command")
        horizon = expires if expires is not None else obtained + 4.0
        timeout = keep_for(token, 4.0, now)
        if math.floor(now) + timeout < horizon:
            short.append((obtained, expires, now, timeout))
    assert short == []


def _vault_profile(**values: object):
    table = {"source": "command", "command": ["true"], "cache_ttl": "1s", **values}
    return Config([("/etc/gatekey/test.toml", {"profiles": {"p": table}})]).profile("p")


@pytest.mark.parametrize(
    "error",
    [CredentialNotFound("secret deleted"), AccessDenied("permission denied")],
    ids=["not-found", "denied"],
)
def test_fall_back_never_serves_a_withdrawn_secret(error: HelperError):
    now = time.time()
    cached = Token("sk-old", expires_at=None, obtained_at=now - 10, source="command")
    with pytest.raises(type(error)) as raised:
        _fall_back(cached, error, now, _vault_profile())
    assert raised.value is error
    assert error.profile == "p"
    # ...even a secret that has a real expiry far ahead
    valid = Token("sk-old", expires_at=now + 7200, obtained_at=now - 10, source="command")
    with pytest.raises(type(error)):
        _fall_back(valid, error, now, _vault_profile())


def test_fall_back_serves_a_general_failure_within_max_stale():
    now = time.time()
    profile = _vault_profile(max_stale="1m")
    young = Token("sk-old", expires_at=None, obtained_at=now - 30, source="command")
    outcome = _fall_back(young, HelperError("vault is down"), now, profile)
    assert (outcome.token, outcome.how, len(outcome.warnings)) == (young, "fallback", 1)
    old = Token("sk-old", expires_at=None, obtained_at=now - 90, source="command")
    with pytest.raises(HelperError):
        _fall_back(old, HelperError("vault is down"), now, profile)
