"""Fuzzing the config loader: whatever the file holds, the answer is a config or a ConfigError.

In-process, every step a run takes with a config (load, select, validate each profile, build
its source, compute its cache key, resolve the context) either succeeds or raises ConfigError.
Black-box, the installed executable exits with a documented code, prints nothing on failure and
never a traceback, and exits 78 naming the file whenever the config itself is at fault.

Integers stay within TOML's 64-bit range here; the loader's handling of larger ones (which
tomllib accepts) is a known bug with its own xfail test in test_config.py.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomllib
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blackbox_env import COUNTING_SOURCE
from gatekey import config, context, paths, refresh
from gatekey.errors import ConfigError

DOCUMENTED_EXITS = {0, 1, 3, 4, 69, 75, 78}

# --- a small TOML writer (tomllib only reads) -----------------------------------------------
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MUST_ESCAPE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in _MUST_ESCAPE:
            out.append(_MUST_ESCAPE[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_str(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, RawToml):
        return value.text
    raise TypeError(type(value))


class RawToml:
    """A literal TOML value with no Python counterpart in our generator (dates, times)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawToml({self.text!r})"


def dump(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """Scalars and inline values first, then each sub-table as a [section]."""
    lines = []
    if prefix:
        lines.append("[" + ".".join(toml_key(k) for k in prefix) + "]")
    tables = {}
    for key, value in data.items():
        if isinstance(value, dict):
            tables[key] = value
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    out = "\n".join(lines) + "\n"
    for key, value in tables.items():
        out += dump(value, (*prefix, key))
    return out


# --- strategies -----------------------------------------------------------------------------
# The keychain and command sources: their keys, mixed at random. (Identity-provider profiles
# reach the network and are fuzzed in their own tests, against the test provider.)
FUZZED_KINDS = ("keychain", "command")
KNOWN_PROFILE_KEYS = sorted(
    {*config.COMMON_KEYS, *(k for kind in FUZZED_KINDS for k in config.sources.BUILTIN[kind].keys)}
)
# Keys whose values decide what a black-box run executes or imports: drawn from safe values only.
SAFE_COMMANDS = [
    [sys.executable, str(COUNTING_SOURCE)],
    ["/nonexistent/gatekey-fuzz-tool"],
    ["gatekey-fuzz-not-on-path", "--x"],
    [""],
]
SAFE_BACKENDS = [
    "keyring.backends.null.Keyring",
    "keyring.backends.fail.Keyring",
    "keyring.backends.SecretService.Keyring",
    "gatekey_fuzz_missing_module.Keyring",
    "",
]
DANGEROUS_KEYS = {"command", "backend"}

names = st.one_of(
    st.sampled_from(["a", "b", "corp", "default", "cmd"]),
    st.text(min_size=0, max_size=8),
)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
durationish = st.one_of(
    st.sampled_from(["90s", "15m", "1h", "1h30m", "0", "19s", "20s", "500ms", "", "soon", "-5s"]),
    st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,2})?(ms|s|m|h|d)?\Z"),
)
scalars = st.one_of(
    st.booleans(),
    int64,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    durationish,
    st.sampled_from(["keychain", "command", "token", "json", "bearer", "x-api-key", "raw"]),
    st.sampled_from([RawToml("1979-05-27T07:32:00Z"), RawToml("1979-05-27"), RawToml("07:32:00")]),
)
# Random table keys are at most 6 characters: never "command" or "backend" (see above).
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=6), inner, max_size=3),
    ),
    max_leaves=6,
)


# Hypothesis favours small draws (0, False, the first choice), so the rare branches below are
# the largest values. Most drawn values are right for their key, so that generated profiles
# often get past validation and the later stages are exercised too.
PLAUSIBLE: dict[str, list[Any]] = {
    "source": ["keychain", "command"],
    "auth_scheme": ["bearer", "x-api-key"],
    "output": ["token", "json", "headers", "git-credential"],
    "headers": [{}, {"X-Route": "prod"}, {"x-portkey-api-key": {"env": "PK"}}],
    "git_username": ["x-access-token", "{claims.sub}"],
    "min_ttl": ["1m", "1h", 0, 120],
    "cache": [True, False],
    "cache_key_env": [[], ["AWS_PROFILE"], ["X", "Y_2"]],
    "service": ["svc"],
    "account": ["acct"],
    "allow_insecure_backend": [True, False],
    "parse": ["raw", "json"],
    "token_path": ["access_token", "token"],
    "expires_in_path": ["expires_in"],
    "cache_ttl": ["15m", 60, 0],
    "max_stale": ["1h", 0],
    "allow_insecure_cache": [True, False],
    "expires_path": ["expires_on"],
    "timeout": ["5s"],
}


@st.composite
def profile_tables(draw: st.DrawFn) -> dict[str, Any]:
    table: dict[str, Any] = {}
    keys = draw(st.lists(st.sampled_from(KNOWN_PROFILE_KEYS), max_size=6, unique=True))
    if draw(st.integers(0, 5)) < 5 and "source" not in keys:
        keys.insert(0, "source")
        if draw(st.sampled_from(["command", "keychain"])) == "command":
            table["source"] = "command"
            if draw(st.integers(0, 5)) < 5 and "command" not in keys:
                keys.append("command")
    for key in keys:
        if key in table:
            continue
        if key == "command":
            table[key] = draw(st.sampled_from(SAFE_COMMANDS))
        elif key == "backend":
            table[key] = draw(st.sampled_from(SAFE_BACKENDS))
        elif draw(st.integers(0, 3)) < 3:
            table[key] = draw(st.sampled_from(PLAUSIBLE[key]))
        else:
            table[key] = draw(values)
    if draw(st.integers(0, 4)) == 4:
        key = draw(st.text(min_size=1, max_size=10))
        if key not in DANGEROUS_KEYS and key not in table:
            table[key] = draw(values)
    return table


@st.composite
def structured_configs(draw: st.DrawFn) -> str:
    """Valid TOML with random keys, values and types where gatekey looks."""
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        data["default_profile"] = draw(names if draw(st.integers(0, 4)) < 4 else scalars)
    if draw(st.integers(0, 9)) == 9:  # sometimes a wrongly shaped section
        data[draw(st.sampled_from(["profiles", "timeouts"]))] = draw(values)
    if "timeouts" not in data and draw(st.booleans()):
        keys = st.one_of(st.sampled_from(sorted(config.TIMEOUT_KEYS)), st.text(max_size=8))
        data["timeouts"] = draw(
            st.dictionaries(keys, st.one_of(durationish, durationish, scalars), max_size=3)
        )
    if "profiles" not in data:
        data["profiles"] = draw(st.dictionaries(names, profile_tables(), max_size=3))
    if draw(st.integers(0, 9)) == 9:
        data[draw(st.text(min_size=1, max_size=8))] = draw(values)
    text = dump(data)
    tomllib.loads(text)  # the writer itself must produce valid TOML
    return text


TOKENS = [
    "[profiles.a]\n",
    "[profiles.b]\n",
    "[profiles]\n",
    "[timeouts]\n",
    "[[profiles.a]]\n",
    'source = "keychain"\n',
    'source = "command"\n',
    'command = ["/nonexistent/x"]\n',
    'default_profile = "a"\n',
    'min_ttl = "1h"\n',
    "mid_session_refresh = 25\n",
    'headers = { X = "y" }\n',
    "cache = false\n",
    "=",
    '"',
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "\n",
    " ",
    "#",
    "\\",
    '"""',
    "1979-05-27",
    "nan",
    "inf",
    "a",
    "profiles",
    "1h",
    "true",
    "\x00",
    "\ufeff",
]
tomlish_texts = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=30).map("".join),
    st.text(max_size=80),
)
raw_bytes = st.one_of(
    st.binary(max_size=200),
    tomlish_texts.map(lambda t: t.encode("utf-8")),
    tomlish_texts.map(lambda t: t.encode("utf-16")),
)


# --- the in-process property ----------------------------------------------------------------
def assert_profile_named(err: ConfigError, name: str) -> None:
    assert err.profile == name, f"ConfigError for profile {name!r} names {err.profile!r}: {err}"


def config_errors(path: Path) -> bool:
    """Run every config step on the file; returns whether a no-argument run fails on config.

    Any exception other than ConfigError fails the test. Every ConfigError names the file.
    """

    def checked(err: ConfigError) -> None:
        assert str(path) in str(err), f"ConfigError without the file name: {err}"

    try:
        cfg = config.load()
    except ConfigError as e:
        checked(e)
        return True
    cfg.top_level()
    for key in config.TIMEOUT_KEYS:
        assert 0 < cfg.timeout(key) <= 600
    context.resolve(cfg)
    for family in (*config.sources.FAMILIES, None):
        try:
            config.select_profile(cfg, family=family)
        except ConfigError as e:
            checked(e)
    for name in cfg.profile_names:
        try:
            prof = cfg.profile(name)
        except ConfigError as e:
            checked(e)
            continue
        refresh.profile_cache_key(prof)
        try:
            refresh.make_source(prof)
        except ConfigError as e:
            checked(e)
            assert_profile_named(e, name)
    # What the no-argument run would do: select, validate, build the source.
    try:
        prof = cfg.profile(config.select_profile(cfg))
        refresh.make_source(prof)
    except ConfigError:
        return True
    return False


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "fuzz.toml"
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(tmp_path / "no-real-managed"))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "no-managed.toml"))
    monkeypatch.setenv("GATEKEY_CONFIG", str(path))
    monkeypatch.delenv("GATEKEY_PROFILE", raising=False)
    monkeypatch.setenv("CLAUDE_HELPER_CONTEXT", "background")
    return path


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(content=raw_bytes)
@example(content=b"\xff\xfe")
@example(content=b"x = " + b"[" * 50_000)
@example(content=b"[profiles.a]\nsource = 'keychain'\n")
def test_random_bytes_load_or_raise_config_error(config_file: Path, content: bytes) -> None:
    config_file.write_bytes(content)
    config_errors(config_file)


@FUZZ
@given(text=tomlish_texts)
def test_tomlish_text_loads_or_raises_config_error(config_file: Path, text: str) -> None:
    config_file.write_text(text, encoding="utf-8")
    config_errors(config_file)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=structured_configs())
@example(text='[profiles.a]\nsource = "command"\ncommand = ["x"]\nmin_ttl = 1e400\n')
@example(text="[timeouts]\nmid_session_refresh = 19.000001\n")
def test_structured_toml_loads_or_raises_config_error(config_file: Path, text: str) -> None:
    config_file.write_text(text, encoding="utf-8")
    config_errors(config_file)


# --- the black-box property -----------------------------------------------------------------
BLACKBOX = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def run_on(gk, config_file: Path, content: bytes):
    config_file.write_bytes(content)
    expect_78 = config_errors(config_file)
    # A fresh cache per example, and an empty PATH: nothing generated can run a real program.
    cache = tempfile.mkdtemp(dir=gk.root, prefix="cache-")
    empty_path = gk.root / "empty-path"
    empty_path.mkdir(exist_ok=True)
    result = gk.run(
        context="background",
        GATEKEY_CONFIG=str(config_file),
        GATEKEY_CACHE_DIR=cache,
        PATH=str(empty_path),
    )
    assert result.code in DOCUMENTED_EXITS, (result.code, result.err)
    assert "Traceback" not in result.err, result.err
    assert "this is a bug in gatekey" not in result.err, result.err
    if result.code == 0:
        assert result.stdout.endswith(b"\n")
        assert result.stdout.count(b"\n") == 1
    else:
        assert result.stdout == b"", result.stdout
        assert result.err.startswith("gatekey: "), result.err
    if expect_78:
        result.assert_clean_failure(78)
        assert str(config_file) in result.err
    else:
        assert result.code != 78, result.err
    return result


@pytest.mark.blackbox
@BLACKBOX
@given(content=raw_bytes)
@example(content=b"[profiles.a\n")
@example(content=b"\xc3\x28")
def test_installed_gatekey_on_random_bytes(gk, config_file: Path, content: bytes) -> None:
    run_on(gk, config_file, content)


@pytest.mark.blackbox
@BLACKBOX
@given(text=structured_configs())
@example(text=f'[profiles.a]\nsource = "command"\ncommand = ["{sys.executable}", "x"]\nbad = 1\n')
@example(
    text=(
        f'[profiles.a]\nsource = "command"\ncommand = ["{sys.executable}", "{COUNTING_SOURCE}"]\n'
        'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n'
    )
)
def test_installed_gatekey_on_structured_toml(gk, config_file: Path, text: str) -> None:
    result = run_on(gk, config_file, text.encode("utf-8"))
    if "counting_source" in text and "bad = 1" not in text and result.code == 0:
        assert result.stdout.startswith(b"tok-")


def test_the_writer_round_trips() -> None:
    # The generator relies on it: a broken writer would fuzz nothing but parse errors.
    data = {
        "default_profile": "a b",
        "timeouts": {"silent": "5s"},
        "profiles": {"a b": {"source": "command", "command": ['x\n"y"\x7f'], "n": 1.5}},
    }
    assert tomllib.loads(dump(data)) == data
