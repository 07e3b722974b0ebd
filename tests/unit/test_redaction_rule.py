"""The redaction rule of gatekey.logs (issue 12, item 6), unit tests.

Any run of 6 characters of a registered secret (or of its base64, base64url or URL-encoded
form) is masked; so is a word starting with its first 3 (or more) characters when a later word
of the same line ends with its last 3 (or more), the masked-key style of many CLIs; ordinary
text around them is kept. The same for a small secret (its windows in a set) and a large one
(sorted arrays). Each test starts from a fresh module: nothing registered.
"""

from __future__ import annotations

import base64
import importlib
import random
import string
import urllib.parse
from collections.abc import Iterator
from types import ModuleType

import pytest

import hygiene
from gatekey import logs as logs_module

TOKEN = "sk-Zq9x" + "Tb4Hw2Lr8NcVd1Yp6Ks3Jm5gFe" + "2vK7mPL"
MASK = "[redacted]"


@pytest.fixture
def logs() -> Iterator[ModuleType]:
    """gatekey.logs with no secret registered (and none left behind for other tests)."""
    yield importlib.reload(logs_module)
    importlib.reload(logs_module)


def large_token() -> str:
    """A token with more windows than logs.LARGE, so its windows go to sorted arrays."""
    rng = random.Random(7)
    size = logs_module.LARGE * 3
    return "sk-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(size))


@pytest.fixture(params=["small", "large"])
def token(request: pytest.FixtureRequest, logs: ModuleType) -> str:
    value = TOKEN if request.param == "small" else large_token()
    logs.register_secret(value)
    return value


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("authenticated with key {h7}...{t7}", f"authenticated with key {MASK}...{MASK}"),
        ("key {h4}...{t3} ok", f"key {MASK}...{MASK} ok"),
        ("key={h3}****{t4};", f"key={MASK}****{MASK};"),
        ("using {h4}\u2026{t3} (keychain)", f"using {MASK}\u2026{MASK} (keychain)"),
        ("[{h3}] and [{t3}]", f"[{MASK}] and [{MASK}]"),
        ("{h4}{t3}", MASK),  # both ends, nothing between
        ("Bearer {all}", f"Bearer {MASK}"),
        ("x{all}y", f"x{MASK}y"),
    ],
)
def test_a_masked_key_is_masked(logs: ModuleType, token: str, template: str, expected: str) -> None:
    line = template.format(
        all=token, h3=token[:3], h4=token[:4], h7=token[:7], t3=token[-3:], t4=token[-4:],
        t7=token[-7:],
    )  # fmt: skip
    assert logs.redact(line) == expected
    assert hygiene.partial_leaks(token, logs.redact(line), words=True) == []


def test_every_six_characters_of_a_secret_are_masked(logs: ModuleType, token: str) -> None:
    step = 1 if len(token) < 100 else 997  # a sample of a large token's windows
    for i in range(0, len(token) - 5, step):
        assert logs.redact(f"got {token[i : i + 6]} here") == f"got {MASK} here", i
        # Inside a word too (of characters that are not the token's, so it cannot go on).
        assert logs.redact(f"\u00fc{token[i : i + 9]}\u00fc") == f"\u00fc{MASK}\u00fc", i


def test_pieces_shorter_than_the_window_are_ordinary_text(logs: ModuleType, token: str) -> None:
    # Five characters from the middle (not a word starting or ending the key): kept, as the
    # same five characters would be in a word that has nothing to do with the key.
    piece = token[10:15]
    assert logs.redact(f"got {piece} here") == f"got {piece} here"


@pytest.mark.parametrize(
    "line",
    [
        "nothing secret here: account alice, region eu-west-1",
        "task-force {t3}",  # "sk-" inside a word is not a word starting with it
        "{h3} and x{t3}y",  # the last 3 inside a word
        "{h3} only the start",
        "only the end {t3}",
        "{t3} before {h3}",  # the end before the start
        "{h4}\n...{t3}",  # two lines
    ],
)
def test_ordinary_text_is_kept(logs: ModuleType, line: str) -> None:
    logs.register_secret(TOKEN)
    text = line.format(h3=TOKEN[:3], h4=TOKEN[:4], t3=TOKEN[-3:])
    assert logs.redact(text) == text


def test_the_encoded_forms_and_their_pieces_are_masked(logs: ModuleType) -> None:
    value = "tok+Zq9x/Tb4Hw2=Lr8&NcVd1Yp6Ks3~Jm5gFe"
    logs.register_secret(value)
    raw = value.encode()
    for form in (
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(value, safe=""),
    ):
        assert logs.redact(f"sent {form} ok") == f"sent {MASK} ok"
        assert logs.redact(f"sent {form[8:14]} ok") == f"sent {MASK} ok"


def test_a_short_secret_is_masked_whole_only(logs: ModuleType) -> None:
    logs.register_secret("abc")  # too short to mask: it would be everywhere
    logs.register_secret("Zq9x")
    assert logs.redact("abc Zq9x and xZq9xy") == f"abc {MASK} and x{MASK}y"
    assert logs.redact("Zq9 and Zq9") == "Zq9 and Zq9"
    assert logs.redact("Zq9 and q9x") == f"{MASK} and {MASK}"  # its two ends: all of it


def test_other_text_keeps_its_characters(logs: ModuleType) -> None:
    logs.register_secret("pässwörd-Ωmega-42-süß")
    odd = "caf\u00e9 \udcff \U0001f600"  # a lone surrogate (from a file name) and an emoji
    assert logs.redact(odd) == odd
    assert logs.redact(f"{odd} pässwörd {odd}") == f"{odd} {MASK} {odd}"
    assert logs.redact(f"{odd} -Ωmega- {odd}") == f"{odd} {MASK} {odd}"


def test_nothing_registered_changes_nothing(logs: ModuleType) -> None:
    assert logs.redact(f"key {TOKEN}") == f"key {TOKEN}"


def test_what_is_left_never_shows_part_of_the_secret(logs: ModuleType, token: str) -> None:
    # Random lines made of pieces of the token and of other text: whatever redact leaves, the
    # suite's hygiene checker (the same rule, written plainly) finds nothing in it.
    rng = random.Random(3)
    other = "the quick brown fox jumps over 13 lazy dogs ...***"
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(1, 12)
            if rng.random() < 0.5:
                at = rng.choice([0, len(token) - n, rng.randrange(len(token) - n)])
                parts.append(token[at : at + n])
            else:
                at = rng.randrange(len(other) - n)
                parts.append(other[at : at + n])
        line = rng.choice(["", " ", "...", "\u2026", "*"]).join(parts)
        assert hygiene.partial_leaks(token, logs.redact(line), words=True) == [], line
