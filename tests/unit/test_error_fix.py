"""An error's next step is a field (``fix``), printed after its message exactly as the one line
always read, and read back as a field: by doctor, and when a remembered failure adds its retry.

The expected lines are byte-for-byte what gatekey printed before the step became a field.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gatekey import config, refresh
from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.diagnostics.doctor import Doctor
from gatekey.errors import (
    CommandNotFound,
    ConfigError,
    HelperError,
    InteractionRequired,
    SourceUnavailable,
    TemporaryFailure,
)

NOW = 1_800_000_000.0
KEY = "0123456789abcdef0123456789abcdef01234567"


# --- the line -----------------------------------------------------------------------------------
def test_the_fix_follows_the_message_on_the_one_line():
    error = InteractionRequired("not signed in", profile="work", fix="run: gatekey login -p work")
    assert str(error) == 'profile "work": not signed in; run: gatekey login -p work'
    assert error.message == "not signed in"
    assert error.fix == "run: gatekey login -p work"
    assert error.describe(where=False) == "not signed in; run: gatekey login -p work"
    assert error.describe(fix=False) == 'profile "work": not signed in'
    assert error.describe(where=False, fix=False) == "not signed in"


def test_without_a_fix_or_a_profile_the_line_is_the_message():
    assert str(HelperError("op read failed with status 1")) == "op read failed with status 1"
    assert HelperError("m").fix is None
    assert str(TemporaryFailure("down", profile="p")) == 'profile "p": down'


def test_a_config_error_names_file_profile_and_key_before_message_and_fix():
    error = ConfigError("is not a number", file="/c.toml", profile="p", key="min_ttl", fix="x")
    assert str(error) == '/c.toml: profile "p": key "min_ttl": is not a number; x'
    assert error.describe(fix=False) == '/c.toml: profile "p": key "min_ttl": is not a number'
    assert str(ConfigError("bad")) == "bad"


# --- a remembered failure -------------------------------------------------------------------------
def make_profile(name: str = "work") -> config.Profile:
    table = {"source": "command", "command": ["fake"], "allow_insecure_cache": True}
    return config.Config([("/etc/test.toml", {"profiles": {name: table}})]).profile(name)


def test_a_remembered_failure_keeps_its_step_and_adds_the_wait_and_retry(tmp_path: Path):
    cache = FileCache(str(tmp_path))
    first = InteractionRequired("not signed in", fix="run: gatekey login -p work")
    until = cache.record_failure(KEY, first, NOW)
    record = json.loads((tmp_path / "failures" / f"{KEY}.json").read_text())
    assert (record["message"], record["fix"]) == ("not signed in", "run: gatekey login -p work")
    run = RunContext("background", interactive=False, timeout=10)
    remembered = refresh.remembered_failure(cache, KEY, run, make_profile(), NOW + 2)
    assert remembered is not None
    clock = time.strftime("%H:%M:%SZ", time.gmtime(until))
    wait = (
        f"not asking again until {clock} (in 3 s) to spare the source; to retry now, run: "
        "gatekey get -p work --force-refresh"
    )
    assert str(remembered) == f"not signed in; run: gatekey login -p work; {wait}"
    assert remembered.message == "not signed in"  # not rewritten
    assert remembered.fix == f"run: gatekey login -p work; {wait}"
    assert remembered.exit_code == InteractionRequired.exit_code


def test_a_record_from_before_the_fix_field_prints_the_same_line(tmp_path: Path):
    cache = FileCache(str(tmp_path))
    (tmp_path / "failures").mkdir()
    record = {"at": NOW, "until": NOW + 5, "count": 1, "exit": 4, "kind": "InteractionRequired"}
    record["message"] = "not signed in; run: gatekey login -p work"
    (tmp_path / "failures" / f"{KEY}.json").write_text(json.dumps(record))
    run = RunContext("background", interactive=False, timeout=10)
    remembered = refresh.remembered_failure(cache, KEY, run, make_profile(), NOW + 2)
    assert remembered is not None
    assert str(remembered) == (
        "not signed in; run: gatekey login -p work; not asking again until "
        f"{time.strftime('%H:%M:%SZ', time.gmtime(NOW + 5))} (in 3 s) to spare the source; to "
        "retry now, run: gatekey get -p work --force-refresh"
    )


@pytest.mark.parametrize("fix", [5, None, ["x"], {"a": 1}, True])
def test_a_damaged_fix_in_a_record_is_left_out(tmp_path: Path, fix: object):
    cache = FileCache(str(tmp_path))
    cache.record_failure(KEY, TemporaryFailure("down", fix="later"), NOW)
    path = tmp_path / "failures" / f"{KEY}.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), fix=fix)))
    remembered = cache.read_failure(KEY, NOW + 1)
    assert remembered is not None
    assert (remembered[0].message, remembered[0].fix) == ("down", None)


# --- doctor reads the field -----------------------------------------------------------------------
@pytest.fixture
def doctor() -> Doctor:
    d = Doctor(None, None, None)
    d.name = "work"
    return d


RETRY = "; then retry: gatekey get -p work --force-refresh"
EXPLAINED = [
    pytest.param(
        InteractionRequired("not signed in", profile="work", fix="run: gatekey login -p work"),
        "token",
        ("not signed in", ["run: gatekey login -p work"]),
        id="its own step",
    ),
    pytest.param(
        InteractionRequired("not signed in", profile="idp", fix="run: gatekey login -p idp"),
        "token",
        ('profile "idp": not signed in', ["run: gatekey login -p idp"]),
        id="a linked profile's step",
    ),
    pytest.param(
        TemporaryFailure("cannot reach idp (x)", profile="work", fix="check the network or VPN"),
        "token",
        ("cannot reach idp (x)", [f"check the network or VPN{RETRY}"]),
        id="temporary, then retry",
    ),
    pytest.param(
        TemporaryFailure("cannot reach idp (x)", profile="work", fix="check the network or VPN"),
        "sign-in",
        ("cannot reach idp (x)", ["check the network or VPN"]),
        id="temporary, not the token check",
    ),
    pytest.param(
        SourceUnavailable("no Secret Service is available", fix="on a desktop, a; on b, c"),
        "source",
        ("no Secret Service is available", ["on a desktop, a; on b, c"]),
        id="a step holding a semicolon",
    ),
    pytest.param(
        CommandNotFound("command not found: x", profile="work", fix="install it"),
        "token",
        ("command not found: x", ["install it"]),
        id="unavailable",
    ),
    pytest.param(
        TemporaryFailure("cannot reach idp (x)", profile="work"),
        "token",
        (
            "cannot reach idp (x)",
            [
                "check the network or VPN (and HTTPS_PROXY), then retry: gatekey get -p work "
                "--force-refresh"
            ],
        ),
        id="temporary, no step of its own",
    ),
    pytest.param(
        InteractionRequired("the keychain is locked; sign in", profile="work"),
        "token",
        (
            "the keychain is locked; sign in",
            ["unlock the keychain (sign in to the desktop session), then retry"],
        ),
        id="by kind",
    ),
]


@pytest.mark.parametrize(("error", "check", "expected"), EXPLAINED)
def test_doctor_shows_the_step_the_error_carries(
    doctor: Doctor, error: HelperError, check: str, expected: tuple[str, list[str]]
):
    assert doctor._explain(error, check) == expected


def test_doctor_shows_a_remembered_failures_own_step_then_the_wait(doctor: Doctor, tmp_path: Path):
    cache = FileCache(str(tmp_path))
    cache.record_failure(KEY, TemporaryFailure("cannot reach idp", fix="check the VPN"), NOW)
    run = RunContext("background", interactive=False, timeout=10)
    remembered = refresh.remembered_failure(cache, KEY, run, make_profile(), NOW + 1)
    assert remembered is not None
    remembered.profile = "work"
    clock = time.strftime("%H:%M:%SZ", time.gmtime(NOW + 5))
    assert doctor._explain(remembered, "token") == (
        "cannot reach idp",
        [
            f"check the VPN; not asking again until {clock} (in 4 s) to spare the source; to "
            f"retry now, run: gatekey get -p work --force-refresh{RETRY}"
        ],
    )
