"""refresh.get_token() in process, with a scripted source: a frozen clock (``Clock``), a source
that hands out lifetimes or exceptions (``FakeSource``), and a file cache in a temporary
directory with one profile (``Harness``).
"""

from __future__ import annotations

from pathlib import Path

from gatekey import config, refresh
from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.token import Token

NOW = 1_700_000_000.0
SECRET = "dummy-token-value-0123456789"  # test-generated, never a real credential


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSource:
    """Hands out scripted results: a lifetime in seconds (a new token), or an exception."""

    def __init__(self, clock: Clock, *results: float | Exception | None) -> None:
        self.clock = clock
        self.results = list(results)
        self.calls = 0

    def fetch(self, run: RunContext) -> Token:
        self.calls += 1
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return Token.from_expires_in(
            f"{SECRET}-{self.calls}", result, source="fake", now=self.clock()
        )


def make_profile(extra: dict[str, object] | None = None, name: str = "p") -> config.Profile:
    # the file store: these tests read and age its entries (securecache has its own tests)
    table = {
        "source": "command",
        "command": ["fake"],
        "allow_insecure_cache": True,
        **(extra or {}),
    }
    return config.Config([("/etc/test.toml", {"profiles": {name: table}})]).profile(name)


def silent(name: str = "background", **kw: bool) -> RunContext:
    return RunContext(name, interactive=False, timeout=5, **kw)


def interactive() -> RunContext:
    return RunContext("interactive", interactive=True, timeout=5)


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.cache = FileCache(str(tmp_path / "cache"))
        self.profile = make_profile()
        self.key = refresh.profile_cache_key(self.profile)

    def source(self, *results: float | Exception | None) -> FakeSource:
        return FakeSource(self.clock, *results)

    def get(self, src: FakeSource, run: RunContext | None = None, **kw) -> refresh.Outcome:
        return refresh.get_token(
            self.profile,
            run or silent(),
            cache=self.cache,
            source_factory=lambda _profile: src,
            clock=self.clock,
            **kw,
        )

    def seed(self, remaining: float | None, age: float = 0.0) -> Token:
        tok = Token(
            "dummy-cached-value-9876",
            expires_at=None if remaining is None else self.clock() + remaining,
            obtained_at=self.clock() - age,
            source="fake",
        )
        self.cache.write(self.key, tok)
        return tok
