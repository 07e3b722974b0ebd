"""refresh.Obtained: how get_token obtained its token, an enum whose values are the strings the
run log and doctor print (they must stay byte-identical)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gatekey import config, refresh
from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.errors import TemporaryFailure
from gatekey.refresh import Obtained
from gatekey.token import Token

NOW = 1_800_000_000.0


def test_the_values_are_the_run_logs_words():
    assert [o.value for o in Obtained] == ["cache", "fetched", "fallback", "source"]


@pytest.mark.parametrize("member", list(Obtained))
def test_a_member_prints_as_its_value_everywhere(member: Obtained, caplog):
    word = member.value
    assert (str(member), f"{member}", "%s" % member) == (word, word, word)  # noqa: UP031
    assert json.dumps({"outcome": member}) == json.dumps({"outcome": word})
    assert member == word
    assert {word: 1}.get(member) == 1
    with caplog.at_level(logging.DEBUG, logger="gatekey.test"):
        logging.getLogger("gatekey.test").debug("credential from %s", member)
    assert caplog.messages == [f"credential from {word}"]


class Source:
    def __init__(self, *answers: Token | Exception) -> None:
        self.answers = list(answers)

    def fetch(self, run: RunContext) -> Token:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def profile(**extra: object) -> config.Profile:
    table = {"source": "command", "command": ["fake"], "allow_insecure_cache": True, **extra}
    return config.Config([("/etc/test.toml", {"profiles": {"p": table}})]).profile("p")


def test_get_token_says_how_with_the_enum(tmp_path: Path):
    clock = [NOW]
    cache = FileCache(str(tmp_path))
    run = RunContext("background", interactive=False, timeout=10)
    src = Source(
        Token.from_expires_in("dummy-one", 7200, source="fake", now=NOW),
        TemporaryFailure("down"),
    )

    def get(prof: config.Profile, **kw: bool) -> refresh.Outcome:
        return refresh.get_token(
            prof, run, cache=cache, source_factory=lambda _: src, clock=lambda: clock[0], **kw
        )

    hows = [get(profile()).how, get(profile()).how]
    clock[0] += 7000  # inside min_ttl: a refresh is due, and the source fails
    hows.append(get(profile()).how)
    src.answers.append(Token.from_expires_in("dummy-two", 7200, source="fake", now=clock[0]))
    hows.append(get(profile(cache=False)).how)
    assert hows == [Obtained.FETCHED, Obtained.CACHE, Obtained.FALLBACK, Obtained.SOURCE]
    assert all(type(how) is Obtained for how in hows)
